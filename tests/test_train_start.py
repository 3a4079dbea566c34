"""Starting from an earlier run's weights (model.init_from) and the proximal pull toward
them (train.proximal_mu, FedProx's term): what federated rounds are built on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from lmforge.config import load_config_dict
from lmforge.errors import LmforgeError
from lmforge.train.loop import train
from tests.datafiles import labeled_rows, write_jsonl


def _run(base: Path, data: Path, out: Path, method: str, **sections: Any) -> Any:
    config = {
        "model": {"ref": str(base), **sections.pop("model", {})},
        "task": {"name": "classify", "max_length": 32},
        "data": {"train": str(data)},
        "method": {"name": method},
        "train": {"max_steps": 3, "batch_size": 8, "lr": 1e-2, "log_every": 1,
                  **sections.pop("train", {})},
        "output": {"dir": str(out)},
    }  # fmt: skip
    return train(load_config_dict(config), track=False)


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    name = "adapter_model.safetensors" if (model_dir / "adapter_model.safetensors").is_file() \
        else "model.safetensors"  # fmt: skip
    return load_file(model_dir / name)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_a_run_starts_from_the_weights_of_another(
    method: str, tiny_classifier: Path, tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "train.jsonl", labeled_rows(24))
    first = _run(tiny_classifier, data, tmp_path / "first", method)
    # a step too small to move anything: the second run saves what it started from
    second = _run(tiny_classifier, data, tmp_path / "second", method,
                  model={"init_from": str(first.run_dir)},
                  train={"max_steps": 1, "lr": 1e-12})  # fmt: skip
    before, after = _weights(first.model_dir), _weights(second.model_dir)
    assert before.keys() == after.keys()
    for name, weight in before.items():
        torch.testing.assert_close(after[name], weight, rtol=0, atol=1e-6, msg=name)
    fresh = _weights(_run(tiny_classifier, data, tmp_path / "fresh", method,
                          train={"max_steps": 1, "lr": 1e-12}).model_dir)  # fmt: skip
    assert any(not torch.allclose(fresh[n], w, atol=1e-4) for n, w in before.items())


def test_weights_of_another_method_are_refused(tiny_classifier: Path, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "train.jsonl", labeled_rows(24))
    full = _run(tiny_classifier, data, tmp_path / "full", "full")
    with pytest.raises(LmforgeError, match=r"model.init_from: .* holds no LoRA adapter"):
        _run(tiny_classifier, data, tmp_path / "lora", "lora",
             model={"init_from": str(full.run_dir)})  # fmt: skip


def test_the_proximal_pull_keeps_weights_near_the_start(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "train.jsonl", labeled_rows(24))
    start = _run(tiny_classifier, data, tmp_path / "start", "lora")
    moved = {}
    for mu in (0.0, 100.0):
        result = _run(tiny_classifier, data, tmp_path / f"mu{mu}", "lora",
                      model={"init_from": str(start.run_dir)},
                      train={"max_steps": 6, "proximal_mu": mu})  # fmt: skip
        after, before = _weights(result.model_dir), _weights(start.model_dir)
        moved[mu] = sum(float((after[n] - w).norm() ** 2) for n, w in before.items()) ** 0.5
    assert moved[100.0] < 0.5 * moved[0.0]
