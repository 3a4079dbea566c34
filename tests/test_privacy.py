"""Differentially private training: the config, Opacus' per-example gradients on a LoRA
model against a per-example loop, the guard on frozen weights, a private run of the one
training loop (LoRA and full fine-tuning, the tabular and remaining-life Transformers)
that spends and records its budget, and what cannot train privately, refused by name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from lmforge.config import RunConfig, load_config_dict
from lmforge.errors import LmforgeError
from lmforge.train.loop import train
from lmforge.train.privacy import PRIVACY_FILE, PrivateTraining, default_delta, prepare_model
from tests.datafiles import chat_rows, labeled_rows, write_jsonl

PRIVATE = {"target_epsilon": 3.0, "max_grad_norm": 1.0}


def _classifier_config(model: Path, data: Path, out: Path, **train: Any) -> dict[str, Any]:
    return {
        "model": {"ref": str(model)},
        "task": {"name": "classify", "max_length": 32},
        "data": {"train": str(data)},
        "method": {"name": "lora"},
        "train": {"max_steps": 6, "batch_size": 8, "lr": 1e-2, "log_every": 1, **train},
        "output": {"dir": str(out)},
        "privacy": PRIVATE,
    }


def test_the_privacy_section_and_what_it_refuses(tmp_path: Path) -> None:
    base = {"task": {"name": "classify"}, "data": {"train": "x.jsonl"}, "model": {"ref": "m"}}
    with pytest.raises(ValueError, match=r"privacy: give target_epsilon .* or noise_multiplier"):
        RunConfig.model_validate({**base, "privacy": {"max_grad_norm": 1.0}})
    with pytest.raises(ValueError, match="privacy: give target_epsilon"):
        RunConfig.model_validate({**base, "privacy": {"target_epsilon": 1, "noise_multiplier": 1}})
    with pytest.raises(ValueError, match=r"privacy.noise_multiplier: below 0.2 the prv"):
        RunConfig.model_validate({**base, "privacy": {"noise_multiplier": 1e-6}})
    refused = {
        "train.grad_accum": {"train": {"grad_accum": 2}},
        "train.precision": {"train": {"precision": "bf16"}},
        "data.packing": {"data": {"train": "x.jsonl", "packing": True}},
    }
    for key, section in refused.items():
        with pytest.raises(ValueError, match=rf"{key}: not with privacy \("):
            RunConfig.model_validate({**base, **section, "privacy": PRIVATE})
    config = RunConfig.model_validate({**base, "privacy": PRIVATE})
    assert config.privacy is not None and config.privacy.accountant == "prv"
    assert default_delta(8000) == 1e-4 and default_delta(100) == 1e-2
    assert default_delta(150) == pytest.approx(1e-3)


class _Net(nn.Module):
    """Embedding, LayerNorm and Linear layers: what Opacus has per-example rules for."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 8)
        self.norm = nn.LayerNorm(8)
        self.hidden = nn.Linear(8, 8)
        self.out = nn.Linear(8, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(self.norm(self.embed(ids)).mean(1))))


def test_per_example_gradients_of_a_lora_model_match_a_loop_over_examples() -> None:
    from opacus.grad_sample import GradSampleHooks
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = get_peft_model(_Net(), LoraConfig(r=2, lora_alpha=4, target_modules=["hidden"]))
    for name, weight in model.named_parameters():
        if "lora_B" in name:  # peft starts B at zero, which makes A's gradients zero
            nn.init.normal_(weight, std=0.1)
    ids, labels = torch.randint(0, 20, (5, 4)), torch.randint(0, 3, (5,))
    trained = {name: p for name, p in model.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in name for name in trained)

    expected = {name: [] for name in trained}  # one example at a time, plain autograd
    for i in range(len(ids)):
        loss = nn.functional.cross_entropy(model(ids[i : i + 1]), labels[i : i + 1])
        for name, grad in zip(trained, torch.autograd.grad(loss, list(trained.values())),
                              strict=True):  # fmt: skip
            expected[name].append(grad)
    hooks = GradSampleHooks(model, loss_reduction="mean")
    nn.functional.cross_entropy(model(ids), labels).backward()  # the batch's mean
    for name, weight in trained.items():
        torch.testing.assert_close(weight.grad_sample, torch.stack(expected[name]))
    frozen = [p for p in model.parameters() if not p.requires_grad]
    assert all(getattr(p, "grad_sample", None) is None and p.grad is None for p in frozen)
    hooks.cleanup()


def test_a_frozen_weight_written_during_training_is_caught() -> None:
    from peft import LoraConfig, get_peft_model

    model = prepare_model(get_peft_model(_Net(), LoraConfig(r=2, target_modules=["hidden"])))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
    private = PrivateTraining.attach(RunConfig.model_validate({
        "task": {"name": "classify"}, "data": {"train": "x"}, "model": {"ref": "m"},
        "privacy": PRIVATE}).privacy, model, optimizer, examples=100, batch_size=10, steps=20)  # type: ignore[arg-type]  # fmt: skip
    private.check_frozen()  # nothing written yet
    with torch.no_grad():
        model.base_model.model.out.weight.add_(1.0)
    with pytest.raises(LmforgeError, match=r"frozen weight .*out\.weight changed"):
        private.check_frozen()
    private.detach()


def test_a_private_lora_classifier_spends_its_budget_and_records_it(
    tiny_classifier: Path, home: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file
    from typer.testing import CliRunner

    from lmforge.cli.main import app

    data = write_jsonl(tmp_path / "train.jsonl", labeled_rows(48))
    config = load_config_dict(_classifier_config(tiny_classifier, data, tmp_path / "run"))
    result = train(config)  # tracked: the budget is an MLflow metric of the run
    budget = result.privacy
    # 6 steps of Poisson batches of 8 expected out of 48: the noise spends about 3
    assert 2.0 < budget["epsilon"] <= 3.0 + 0.1 and budget["steps"] == 6
    assert budget["delta"] == 0.01 and budget["noise_multiplier"] > 0.5
    saved = json.loads((result.model_dir / PRIVACY_FILE).read_text())
    assert saved["epsilon"] == budget["epsilon"]
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["privacy"]["epsilon"] == budget["epsilon"]
    shown = CliRunner().invoke(app, ["runs", "show", result.run_id, "--json"])
    assert shown.exit_code == 0, shown.output
    tracked = json.loads(shown.stdout)["metrics"]
    assert tracked["privacy/epsilon"] == pytest.approx(budget["epsilon"])
    assert tracked["privacy/delta"] == 0.01
    adapter = load_file(result.model_dir / "adapter_model.safetensors")
    trained = [name for name, weight in adapter.items()
               if name.endswith("lora_B.weight") and weight.abs().sum() > 0]  # fmt: skip
    assert trained  # the noisy steps moved the adapters off their zero start


def test_full_private_fine_tuning_gives_every_example_its_own_position_gradient(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    """BERT looks positions up once per batch; each example still gets its own gradient
    of the position embeddings (else Opacus cannot clip per example and the step fails)."""
    data = write_jsonl(tmp_path / "train.jsonl", labeled_rows(32))
    config = _classifier_config(tiny_classifier, data, tmp_path / "run", max_steps=3)
    config["method"] = {"name": "full"}
    result = train(load_config_dict(config), track=False)
    assert result.privacy["steps"] == 3 and result.privacy["epsilon"] > 0


def test_fixed_size_batches_when_poisson_sampling_is_off(
    tiny_classifier: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lmforge.pipeline.card import privacy_section

    def no_poisson(self: PrivateTraining, generator: torch.Generator) -> list[int]:
        raise AssertionError("a Poisson batch was drawn")

    monkeypatch.setattr(PrivateTraining, "sample", no_poisson)
    data = write_jsonl(tmp_path / "train.jsonl", labeled_rows(32))
    config = _classifier_config(tiny_classifier, data, tmp_path / "run", max_steps=3)
    config["privacy"] = {**PRIVATE, "poisson": False}
    result = train(load_config_dict(config), track=False)
    assert result.privacy["poisson"] == 0.0 and result.privacy["steps"] == 3
    lines = privacy_section([{"outputs": {"privacy": result.privacy}}])
    assert "fixed-size, not Poisson samples" in lines[2]


def test_private_lora_sft_of_a_causal_lm(tiny_causal_lm: Path, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(16))
    config = _classifier_config(tiny_causal_lm, data, tmp_path / "run", max_steps=3,
                                batch_size=4)  # fmt: skip
    config["task"] = {"name": "sft", "max_length": 64}
    result = train(load_config_dict(config), track=False)
    assert result.privacy["steps"] == 3 and result.privacy["epsilon"] > 0


@pytest.mark.parametrize("kind", ["ft-transformer", "rul-sensor", "rul-time-sinusoids"])
def test_per_example_gradients_of_the_tabular_and_series_transformers(kind: str) -> None:
    """Opacus' per-example gradients of lmforge's own Transformers (its rules for linear
    and norm layers, functorch for the token layers) match a loop over single examples."""
    from opacus.grad_sample import GradSampleHooks

    from lmforge.hub.tabular import FTShape, FTTransformer
    from lmforge.hub.timeseries import RULTransformer, SeriesShape

    torch.manual_seed(0)
    small = {"d_token": 8, "heads": 2, "layers": 1, "attention_dropout": 0.0, "ffn_dropout": 0.0}
    model: nn.Module
    if kind == "ft-transformer":
        model = FTTransformer(FTShape(numeric=3, cardinalities=(4,), **small))
        inputs: tuple[torch.Tensor, ...] = (torch.randn(5, 3), torch.randint(0, 4, (5, 1)))
    else:
        sensor = kind == "rul-sensor"
        tokens, positions = ("sensor", "learned") if sensor else ("time", "sinusoidal")
        model = RULTransformer(SeriesShape(window=6, features=4, tokens=tokens,
                                           positions=positions, **small))  # fmt: skip
        inputs = (torch.randn(5, 6, 4),)
    model = prepare_model(model).train()

    def loss_of(*batch: torch.Tensor) -> torch.Tensor:
        out = model(*batch)
        return (out if isinstance(out, torch.Tensor) else out[0] + out[1]).pow(2).mean()

    weights = dict(model.named_parameters())
    expected: dict[str, list[torch.Tensor]] = {name: [] for name in weights}
    for i in range(5):
        grads = torch.autograd.grad(loss_of(*(x[i : i + 1] for x in inputs)),
                                    list(weights.values()), allow_unused=True)  # fmt: skip
        for name, grad in zip(weights, grads, strict=True):
            expected[name].append(torch.zeros_like(weights[name]) if grad is None else grad)
    hooks = GradSampleHooks(model, loss_reduction="mean", strict=True)
    loss_of(*inputs).backward()
    for name, weight in weights.items():
        wanted = torch.stack(expected[name])  # float error scales with the gradients' size
        scale = float(wanted.abs().max()) + 1e-3  # (RUL outputs are in cycles, up to 125)
        torch.testing.assert_close(weight.grad_sample, wanted, rtol=0, atol=1e-5 * scale)
    hooks.cleanup()


def test_private_tabular_and_remaining_life_runs(tmp_path: Path) -> None:
    import numpy as np

    from lmforge.config.schema import SeriesColumns
    from lmforge.data.cmapss import simulate_cmapss

    rng = np.random.default_rng(0)
    values = rng.normal(size=120)
    table = tmp_path / "table.csv"
    table.write_text("x,y\n" + "".join(f"{v},{'yes' if v > 0 else 'no'}\n" for v in values))
    tabular = {
        "task": {"name": "tabular", "d_token": 8, "layers": 1, "heads": 2},
        "data": {"train": str(table), "format": "tabular", "columns": {"target": "y"}},
        "train": {"max_steps": 5, "batch_size": 16, "lr": 1e-2, "log_every": 5},
        "output": {"dir": str(tmp_path / "tabular")},
        "privacy": {"noise_multiplier": 1.0, "accountant": "rdp"},
    }
    result = train(load_config_dict(tabular), track=False)
    # 90 training rows (val 25%), q = 16 / 90: five RDP steps at noise 1 spend about 2
    assert result.privacy["steps"] == 5 and 1.0 < result.privacy["epsilon"] < 3.0
    assert (result.model_dir / PRIVACY_FILE).is_file()

    series = SeriesColumns(format="cmapss", subset="FD001", window=12, horizon=20)
    engines = simulate_cmapss(tmp_path / "cmapss", "FD001", seed=0, train_units=8, test_units=2)
    remaining_life = {
        "task": {"name": "timeseries", "tokens": "sensor", "d_model": 8, "heads": 2, "layers": 1},
        "data": {"train": str(engines), "val_ratio": 0.25, "format": "timeseries",
                 "series": series.model_dump()},
        "train": {"max_steps": 4, "batch_size": 32, "lr": 3e-3, "log_every": 100},
        "output": {"dir": str(tmp_path / "rul")},
        "privacy": {"target_epsilon": 8.0},
    }  # fmt: skip
    result = train(load_config_dict(remaining_life), track=False)
    assert result.privacy["steps"] == 4 and 7.0 < result.privacy["epsilon"] <= 8.1


def test_what_cannot_train_privately_is_refused_by_name(tmp_path: Path) -> None:
    class Mixed(nn.Module):  # a weight and a buffer in one module: no per-example rule
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.ones(3))
            self.register_buffer("offset", torch.zeros(3))

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = Mixed()

    with pytest.raises(LmforgeError, match=r"per-example gradients of inner \(trainable weights"):
        prepare_model(Net())
    table = tmp_path / "table.csv"
    table.write_text("x,y\n" + "".join(f"{i},{'yes' if i % 2 else 'no'}\n" for i in range(40)))
    fitted = {
        "task": {"name": "lightgbm"},
        "data": {"train": str(table), "format": "tabular", "columns": {"target": "y"}},
        "output": {"dir": str(tmp_path / "lightgbm")},
        "privacy": {"noise_multiplier": 1.0},
    }
    with pytest.raises(LmforgeError, match="privacy: task lightgbm is fitted in one call"):
        train(load_config_dict(fitted), track=False)
    assert not (tmp_path / "lightgbm" / "model").exists()


def test_the_model_card_states_the_budget_or_its_absence() -> None:
    from lmforge.pipeline.card import privacy_section

    spent = {"epsilon": 2.97, "delta": 1e-5, "steps": 40.0, "noise_multiplier": 1.05,
             "max_grad_norm": 1.0, "sample_rate": 0.05}  # fmt: skip
    lines = privacy_section([{"outputs": {"privacy": spent}}, {"outputs": {"privacy": {}}}])
    assert lines[0] == "## Privacy"
    assert ("- Trained with differential privacy (DP-SGD): epsilon 2.97 at delta 1e-05, over "
            "40 steps (noise multiplier 1.05") in lines[2]  # fmt: skip
    assert lines[3].startswith("- Trained without differential privacy")
    assert "No train step" in privacy_section([])[2]


@pytest.mark.parametrize("method", ["lora", "full"])
def test_a_private_step_without_noise_or_clipping_is_the_plain_step(
    method: str, tiny_classifier: Path, tmp_path: Path
) -> None:
    """Opacus' per-example gradients, summed and divided by the batch size, with noise and
    clipping too small to matter, give the gradient of the loop's plain step, also when
    the private step takes its batch in two passes (as it does for mixed lengths)."""
    from lmforge.hub import resolve
    from lmforge.tasks import get_task
    from lmforge.train.data import build_data
    from lmforge.train.loop import TrainingModule, _build_model

    data_file = write_jsonl(tmp_path / "train.jsonl", labeled_rows(24))
    settings = _classifier_config(tiny_classifier, data_file, tmp_path / "run")
    settings["method"] = {"name": method}
    settings["privacy"] = {"noise_multiplier": 1e-9, "max_grad_norm": 1e3,  # noise std 1e-6
                           "accountant": "rdp"}  # prv cannot count so little noise  # fmt: skip
    config = load_config_dict(settings)
    assert config.privacy is not None
    task = get_task("classify").configured(config)
    tokenizer = task.load_processor(resolve(str(tiny_classifier)).path)
    data = build_data(task, tokenizer, config.data, max_length=32)
    torch.manual_seed(0)
    model = prepare_model(_build_model(config, task, str(tiny_classifier), data.labels,
                                       torch.device("cpu")))  # fmt: skip
    for layer in model.modules():  # the same function twice: no dropout
        if isinstance(layer, nn.Dropout):
            layer.p = 0.0
    module, batch = TrainingModule(task, model), task.collate(data.train[:8], tokenizer, 0)
    weights = [p for p in model.parameters() if p.requires_grad]
    (module(batch) / 8).backward()
    plain = [p.grad.clone() for p in weights]  # type: ignore[union-attr]
    for weight in weights:
        weight.grad = None
    optimizer = torch.optim.AdamW(weights, lr=1e-2)
    private = PrivateTraining.attach(config.privacy, model, optimizer, examples=len(data.train),
                                     batch_size=8, steps=4)  # fmt: skip
    for chunk in (data.train[:3], data.train[3:8]):  # two passes, as the loop's private
        module(task.collate(chunk, tokenizer, 0)).backward()  # step of mixed lengths takes
    private.check_gradients(8)
    private.optimizer.pre_step()  # clip, sum, noise, divide by the expected batch size
    for weight, expected in zip(weights, plain, strict=True):
        torch.testing.assert_close(weight.grad, expected, rtol=1e-4, atol=1e-6)
    private.detach()
