"""The fused LoRA training path computes what peft computes, with the same gradients."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lmforge.train.fused_lora import LoraLinearFunction, fuse_lora_layers, keep_mask


def _peft_model(path: Path, dropout: float) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=dropout, task_type="CAUSAL_LM",
                        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])  # fmt: skip
    model = get_peft_model(model, config)
    for name, parameter in model.named_parameters():
        if "lora_B" in name:  # peft starts B at zero; make the adapter do something
            torch.nn.init.normal_(parameter, std=0.1)
    return model


def _loss_and_grads(model: torch.nn.Module) -> tuple[float, dict[str, torch.Tensor]]:
    ids = torch.arange(2 * 12).reshape(2, 12) % 100 + 3
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return float(loss.detach()), grads


def test_fused_model_matches_peft_loss_and_gradients(tiny_causal_lm: Path) -> None:
    reference_loss, reference = _loss_and_grads(_peft_model(tiny_causal_lm, dropout=0.0))
    fused_model = _peft_model(tiny_causal_lm, dropout=0.0)
    assert fuse_lora_layers(fused_model) == 8  # 2 layers x q/k/v/o
    fused_loss, fused = _loss_and_grads(fused_model)

    assert fused_loss == pytest.approx(reference_loss, abs=1e-5)
    assert fused.keys() == reference.keys() and len(fused) == 16  # every lora_A and lora_B
    for name, grad in reference.items():
        torch.testing.assert_close(fused[name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_function_with_dropout_matches_autograd_on_the_same_mask() -> None:
    torch.manual_seed(1)
    x = torch.randn(10, 6, dtype=torch.float64, requires_grad=True)
    weight, bias = torch.randn(5, 6, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    lora_a = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    lora_b = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    keep, p, scaling = keep_mask(x.shape, 0.3), 0.3, 2.0

    fused = LoraLinearFunction.apply(x, weight, bias, lora_a, lora_b, scaling, keep, 1 / (1 - p))
    dropped = x * keep / (1 - p)
    reference = F.linear(x, weight, bias) + scaling * (dropped @ lora_a.t()) @ lora_b.t()
    torch.testing.assert_close(fused, reference)

    upstream = torch.randn_like(reference)
    grads = torch.autograd.grad(fused, (x, lora_a, lora_b), upstream)
    expected = torch.autograd.grad(reference, (x, lora_a, lora_b), upstream)
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want)


def test_keep_mask_drops_at_the_asked_rate_and_follows_the_seed() -> None:
    torch.manual_seed(7)
    first = keep_mask(torch.Size([400, 1000]), 0.05)
    torch.manual_seed(7)
    again = keep_mask(torch.Size([400, 1000]), 0.05)
    assert torch.equal(first, again)
    dropped = 1 - first.float().mean().item()
    assert dropped == pytest.approx(0.05, abs=0.002)  # 400k draws: 5 sigma is 0.0017
    columns = 1 - first.float().mean(0)  # no lane of the packed random words is biased
    assert columns.reshape(-1, 4).mean(0).sub(0.05).abs().max() < 0.004


def test_evaluation_and_merged_adapters_fall_back_to_peft(tiny_causal_lm: Path) -> None:
    model = _peft_model(tiny_causal_lm, dropout=0.1)
    fuse_lora_layers(model)
    model.eval()
    ids = torch.arange(12).reshape(1, 12) + 3
    with torch.no_grad():
        adapted = model(input_ids=ids).logits
        model.merge_adapter()
        merged = model(input_ids=ids).logits
    torch.testing.assert_close(adapted, merged, atol=1e-5, rtol=1e-4)
