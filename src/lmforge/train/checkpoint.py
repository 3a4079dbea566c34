"""Checkpoints: trainable weights, optimizer, scheduler, RNG and data position.

Each checkpoint is a directory ``checkpoints/step-NNNNNN`` written atomically (temp
dir, then rename), so a crash mid-save leaves the previous checkpoints intact; only the
newest ``keep`` are kept.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from lmforge.errors import LmforgeError
from lmforge.home import atomic_dir

WEIGHTS = "trainable.safetensors"
AVERAGES = "ema.safetensors"  # train.ema_decay: the moving average of the weights
STATE = "trainer_state.json"


@dataclass
class TrainerState:
    """Where a run is: enough to continue exactly where it stopped."""

    step: int = 0  # optimizer steps done
    micro_batch: int = 0  # micro-batches consumed in total (data position)
    run_id: str | None = None  # the tracking run to continue
    tokens_seen: int = 0
    history: list[dict[str, float]] = field(default_factory=list)  # logged train metrics


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step-*") if (p / STATE).is_file())


def save_checkpoint(
    run_dir: Path,
    state: TrainerState,
    model: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    *,
    keep: int,
    weights: dict[str, torch.Tensor] | None = None,
    averages: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write a checkpoint for ``state.step`` and drop all but the newest ``keep``;
    ``averages``: the weight average's tensors (``train.ema_decay``)."""
    target = run_dir / "checkpoints" / f"step-{state.step:06d}"
    if weights is None:
        weights = trainable_state(model)
    with atomic_dir(target) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, tmp / WEIGHTS)
        if averages is not None:
            save_file({k: v.cpu().contiguous() for k, v in averages.items()}, tmp / AVERAGES)
        torch.save(
            {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": _rng_state(),
            },
            tmp / "optimizer.pt",
        )
        (tmp / STATE).write_text(json.dumps(asdict(state), indent=2))
    for old in checkpoint_dirs(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def load_checkpoint(
    checkpoint: Path,
    model: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    average: Any = None,
) -> TrainerState:
    """Restore weights, optimizer, scheduler, RNG (and ``average``, a ``WeightAverage``)
    from ``checkpoint``; return its state."""
    if average is not None and not (checkpoint / AVERAGES).is_file():
        raise LmforgeError(
            f"checkpoint {checkpoint} has no weight average ({AVERAGES}), but train.ema_decay "
            "is set; resume with the config that started the run."
        )
    try:
        if average is not None:
            average.load_state_dict(load_file(checkpoint / AVERAGES))
        weights = load_file(checkpoint / WEIGHTS)
        extra = torch.load(checkpoint / "optimizer.pt", weights_only=False)
        state = TrainerState(**json.loads((checkpoint / STATE).read_text()))
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        raise LmforgeError(
            f"checkpoint {checkpoint} is unreadable ({err}); delete it to resume from the one "
            "before, or start the run again without resuming."
        ) from None
    missing = set(trainable_state(model)) - set(weights)
    if missing:
        raise LmforgeError(
            f"checkpoint {checkpoint} does not match this model (missing {sorted(missing)[:3]}); "
            "resume with the config that started the run."
        )
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in weights.items():
            parameters[name].copy_(tensor)
    optimizer.load_state_dict(extra["optimizer"])
    scheduler.load_state_dict(extra["scheduler"])
    _set_rng_state(extra["rng"])
    return state


def trainable_state(model: Any) -> dict[str, torch.Tensor]:
    """The parameters that train (all of them for full fine-tuning, adapters for LoRA)."""
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def _rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
