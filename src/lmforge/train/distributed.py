"""Several processes, one run: process-group setup, model wrapping, torchrun launch.

``lmforge train --nproc N`` re-runs itself under torchrun; each process then calls
``setup()``, which joins the process group (gloo on CPU, nccl on GPU) when torchrun's
environment says there is more than one process. Only rank 0 logs and writes outputs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as torch_dist

from lmforge.errors import LmforgeError


@dataclass(frozen=True)
class Dist:
    """This process's place in the run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def setup() -> Dist:
    """Join the process group if torchrun started several processes; pick the device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world_size > 1 and not torch_dist.is_initialized():
        torch_dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(rank, world_size, local_rank, device)


def teardown() -> None:
    if torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def sum_across(value: float, dist: Dist) -> float:
    """Sum a number over all processes (the number itself when alone)."""
    if not dist.active:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=dist.device)
    torch_dist.all_reduce(tensor)
    return float(tensor.item())


def broadcast(value: Any, dist: Dist) -> Any:
    """Rank 0's ``value`` on every process."""
    if not dist.active:
        return value
    box = [value]
    torch_dist.broadcast_object_list(box, src=0)
    return box[0]


def wrap(module: torch.nn.Module, strategy: str, dist: Dist) -> torch.nn.Module:
    """Wrap the training module for ``strategy`` (unchanged when running alone)."""
    if not dist.active:
        return module
    if strategy in {"auto", "ddp"}:
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [dist.local_rank] if dist.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=device_ids)
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        from lmforge.train.methods import transformer_layers

        for layer in transformer_layers(module):
            fully_shard(layer)
        fully_shard(module)
        return module
    raise LmforgeError(
        f"train.strategy: {strategy!r} is not supported by this lmforge version with several "
        "processes; use ddp or fsdp."
    )


def launch(nproc: int, argv: Sequence[str], torchrun_args: Sequence[str] = ()) -> int:
    """Run ``lmforge <argv>`` in ``nproc`` processes under torchrun; return its exit code."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc-per-node={nproc}",
        *torchrun_args,
        "-m",
        "lmforge.cli.main",
        *argv,
    ]
    if not torchrun_args:
        command.insert(3, "--standalone")
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.call(command, env=env)
