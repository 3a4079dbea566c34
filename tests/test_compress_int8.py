"""INT8 for serving: SmoothQuant keeps the fp32 function, fused projections keep the
quantized one, and LoRA adapters are rescaled with their layers."""

from __future__ import annotations

from pathlib import Path

import torch

from lmforge.compress.int8 import fuse_projections, quantize_int8, smooth
from lmforge.serve.runner import SlotRunner

PROMPT = [5, 17, 99, 3, 42, 7, 250, 1000]
CALIBRATION = [[11, 12, 13, 14, 15, 16], [200, 300, 400, 500]]


def load(path: Path) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.inference_mode():
        return model(torch.tensor([PROMPT])).logits[0]


def test_smoothing_and_fusing_leave_the_fp32_model_unchanged(tiny_causal_lm: Path) -> None:
    model = load(tiny_causal_lm)
    before = logits(model)
    smooth(model, CALIBRATION)
    torch.testing.assert_close(logits(model), before, atol=1e-4, rtol=1e-4)
    fuse_projections(model)
    assert hasattr(model.model.layers[0].self_attn, "qkv_proj")
    torch.testing.assert_close(logits(model), before, atol=1e-4, rtol=1e-4)
    runner = SlotRunner(model, slots=1, max_len=64)  # the runner's fused path, in fp32
    torch.testing.assert_close(runner.prefill(0, PROMPT), before[-1], atol=1e-5, rtol=1e-5)


def test_smoothing_rescales_lora_adapters_too(tiny_causal_lm: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(load(tiny_causal_lm), LoraConfig(r=4, target_modules="all-linear"))
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.5)
    model.eval()
    before = logits(model)
    smooth(model, CALIBRATION)
    torch.testing.assert_close(logits(model), before, atol=1e-4, rtol=1e-4)


def test_the_runner_computes_what_the_quantized_model_computes(tiny_causal_lm: Path) -> None:
    reference = logits(load(tiny_causal_lm))
    model = quantize_int8(load(tiny_causal_lm), CALIBRATION)
    quantized = logits(model)
    runner = SlotRunner(model, slots=1, max_len=64)
    last = runner.prefill(0, PROMPT)  # fused q/k/v and gate/up inside the runner
    # Dynamic INT8 rounds each activation batch: last-bit differences between the two
    # attention code paths (exact in fp32, above) can flip a rounding, so not 1e-5 here.
    assert (last - quantized[-1]).abs().max() < 0.05
    assert last.argmax() == quantized[-1].argmax()
    # and INT8 stays close to fp32: the same top token at most positions
    agree = (quantized.argmax(-1) == reference.argmax(-1)).float().mean()
    assert agree >= 0.75, agree


def test_the_split_projections_run_the_quantized_fused_layer(tiny_causal_lm: Path) -> None:
    """transformers' own forward calls q_proj, k_proj...: after fusing and quantizing they
    must run the INT8 fused layer, not the fp32 one it replaced."""
    model = quantize_int8(load(tiny_causal_lm), CALIBRATION)
    attention, mlp = model.model.layers[0].self_attn, model.model.layers[0].mlp
    assert "quantized" in type(attention.qkv_proj).__module__
    x = torch.randn(1, 3, model.config.hidden_size)
    q = attention.q_proj(x)
    assert torch.equal(q, attention.qkv_proj(x)[..., : q.shape[-1]])
    up = mlp.up_proj(x)
    assert torch.equal(up, mlp.gate_up_proj(x)[..., -up.shape[-1] :])
