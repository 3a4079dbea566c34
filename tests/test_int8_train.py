"""LoRA training on an INT8 frozen base (method.base_precision: int8)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lmforge.config import ConfigError, load_config_dict
from lmforge.errors import LmforgeError
from lmforge.train import int8_base
from lmforge.train.fused_lora import LoraLinearFunction, fuse_lora_layers
from lmforge.train.int8_base import FrozenInt8Linear, quantize_frozen_base
from lmforge.train.loop import TrainResult, train
from tests.datafiles import chat_rows, write_jsonl


def _relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).detach().norm() / want.detach().norm())


def test_int8_linear_forward_and_input_gradient_are_close_to_fp32() -> None:
    torch.manual_seed(0)
    linear = torch.nn.Linear(96, 64).requires_grad_(False)
    layer = FrozenInt8Linear(linear)
    assert layer.qweight.dtype == torch.int8 and layer.qweight.shape == (64, 96)
    x = torch.randn(3, 40, 96, requires_grad=True)
    x.data[0, 5] *= 30  # one loud token: per-row scales keep the others precise
    upstream = torch.randn(3, 40, 64)

    got = layer(x)
    want = linear(x)
    (grad_got,) = torch.autograd.grad(got, x, upstream)
    (grad_want,) = torch.autograd.grad(want, x, upstream)

    assert _relative_error(got, want) < 0.02  # measured 0.007
    assert _relative_error(got[1], want[1]) < 0.02  # rows away from the loud one
    assert _relative_error(grad_got, grad_want) < 0.02
    assert not any(p.requires_grad for p in layer.parameters())


def test_fused_lora_on_an_int8_base_matches_its_fp32_path() -> None:
    torch.manual_seed(1)
    linear = torch.nn.Linear(64, 48).requires_grad_(False)
    x = torch.randn(20, 64, requires_grad=True)
    lora_a = torch.randn(4, 64, requires_grad=True)
    lora_b = torch.randn(48, 4, requires_grad=True)
    upstream = torch.randn(20, 48)

    def outputs(weight: torch.Tensor | FrozenInt8Linear) -> list[torch.Tensor]:
        out = LoraLinearFunction.apply(x, weight, linear.bias, lora_a, lora_b, 2.0, None, 1.0)
        return [out, *torch.autograd.grad(out, (x, lora_a, lora_b), upstream)]

    for got, want in zip(outputs(FrozenInt8Linear(linear)), outputs(linear.weight), strict=True):
        assert _relative_error(got, want) < 0.02


def _tiny_peft(path: Path) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, task_type="CAUSAL_LM",
                        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])  # fmt: skip
    model = get_peft_model(model, config)
    for name, parameter in model.named_parameters():
        if "lora_B" in name:  # peft starts B at zero, which leaves A without a gradient
            torch.nn.init.normal_(parameter, std=0.1)
    fuse_lora_layers(model)
    return model


def test_adapters_get_gradients_and_the_base_none(tiny_causal_lm: Path) -> None:
    model = _tiny_peft(tiny_causal_lm)
    # 2 layers x (q, k, v, o inside LoRA + gate, up, down unadapted); the tied head stays
    assert quantize_frozen_base(model) == 14
    assert not any(type(m) is torch.nn.Linear and "lora_" not in n
                   for n, m in model.named_modules() if n.count(".") > 3)  # fmt: skip
    assert type(model.get_output_embeddings()) is torch.nn.Linear
    ids = torch.arange(24).reshape(2, 12) % 100 + 3
    model(input_ids=ids, labels=ids).loss.backward()

    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert len(grads) == 16  # every lora_A and lora_B of 8 layers
    assert all("lora_" in n and float(g.abs().sum()) > 0 for n, g in grads.items())
    assert not [n for n, p in model.named_parameters() if p.requires_grad and "lora_" not in n]


def test_training_on_an_int8_base_lowers_the_loss_and_saves_a_plain_adapter(
    tiny_causal_lm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    monkeypatch.setattr(int8_base, "cpu_has_int8_dot", lambda: True)  # INT8 on every CPU
    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(12))

    def losses_and_result(precision: str) -> tuple[list[float], TrainResult]:
        config = load_config_dict({
            "model": {"ref": str(tiny_causal_lm)},
            "task": {"name": "sft", "max_length": 64},
            "data": {"train": str(data)},
            "method": {"name": "lora", "lora_r": 4, "base_precision": precision,
                       "target_modules": ["q_proj", "v_proj", "down_proj"]},
            "train": {"max_steps": 12, "batch_size": 4, "lr": 1e-2, "log_every": 1},
            "output": {"dir": str(tmp_path / precision), "experiment": "tests"},
        })  # fmt: skip
        losses: list[float] = []

        def progress(step: int, total: int, detail: str) -> None:  # "loss 10.8234, ..."
            losses.append(float(detail.split(",")[0].removeprefix("loss ")))

        done = train(config, track=False, progress=progress)
        return losses, done

    losses, result = losses_and_result("int8")
    fp32_losses, _ = losses_and_result("fp32")
    assert len(losses) == 12 and losses[-1] < losses[0] - 0.3  # 10.82 -> 10.46 measured
    assert losses[-1] == pytest.approx(fp32_losses[-1], rel=0.01)
    assert losses != fp32_losses  # the INT8 path really ran
    assert result.total_parameters > result.trainable_parameters * 10  # INT8 weights counted

    # The adapter is peft's own: it loads on the fp32 base and changes its output.
    base = AutoModelForCausalLM.from_pretrained(tiny_causal_lm).eval()
    tuned = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_causal_lm), result.model_dir
    ).eval()
    ids = torch.tensor([[5, 17, 300, 2048, 7, 9]])
    with torch.no_grad():
        assert not torch.allclose(base(input_ids=ids).logits, tuned(input_ids=ids).logits)


def test_without_vnni_the_base_stays_fp32_with_a_warning(
    tiny_causal_lm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(int8_base, "cpu_has_int8_dot", lambda: False)
    model = _tiny_peft(tiny_causal_lm)
    with pytest.warns(UserWarning, match="no VNNI"):
        int8_base.apply_int8_base(model, torch.device("cpu"))
    assert not any(isinstance(m, FrozenInt8Linear) for m in model.modules())


def test_a_model_without_linear_layers_is_refused() -> None:
    model = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Conv1d(4, 4, 1))
    model.requires_grad_(False)
    with pytest.raises(LmforgeError, match=r"no frozen torch.nn.Linear.*Conv1d.*base_precision"):
        int8_base.apply_int8_base(model, torch.device("cpu"))


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"method": {"name": "full", "base_precision": "int8"}}, "method 'full' trains base"),
        ({"method": {"name": "lora", "base_precision": "int8"}, "train": {"precision": "bf16"}},
         "train.precision 'fp32'"),
        ({"method": {"name": "lora", "base_precision": "int4"}}, "base_precision"),
    ],
)  # fmt: skip
def test_config_refuses_int8_base_where_it_cannot_apply(
    sections: dict[str, dict[str, str]], message: str
) -> None:
    config = {"model": {"ref": "x"}, "task": {"name": "sft"}, "data": {"train": "t.jsonl"}}
    with pytest.raises(ConfigError, match=message):
        load_config_dict({**config, **sections})
