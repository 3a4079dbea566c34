"""Several processes, one run: process-group setup, model wrapping, torchrun launch.

``lmforge train --nproc N`` re-runs itself under torchrun; each process then calls
``setup()``, which joins the process group (gloo on CPU, nccl on GPU) when torchrun's
environment says there is more than one process. Only rank 0 logs and writes outputs.

Under ``fsdp`` every process holds a shard of each weight (a DTensor), so anything
that reads whole weights outside a training step goes through a helper here:
``full_state_dict`` (saving the model), ``save_checkpoint``/``load_checkpoint``, and
``unsharded`` (evaluation). Every process must call them, in the same order: they
gather shards with collectives. Under ``ddp`` or alone they cost nothing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as torch_dist
from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.fsdp import FSDPModule
from torch.distributed.run import parse_args, run
from torch.distributed.tensor import DTensor, distribute_tensor
from torch.nn.parallel import DistributedDataParallel

from lmforge.errors import LmforgeError
from lmforge.train import checkpoint
from lmforge.train.methods import transformer_layers

if TYPE_CHECKING:
    from lmforge.train.checkpoint import TrainerState

STRATEGIES = ("auto", "ddp", "fsdp")  # what wrap() runs; "deepspeed" is refused


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
        if local_rank >= torch.cuda.device_count():
            raise LmforgeError(
                f"nproc: process {local_rank} has no GPU of its own (this machine has "
                f"{torch.cuda.device_count()}); use at most that many processes per machine, "
                "or hide the GPUs (CUDA_VISIBLE_DEVICES=) to train on CPU with gloo."
            )
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


@contextlib.contextmanager
def main_first(dist: Dist) -> Iterator[None]:
    """Run the block on each machine's first process, then on the others.

    For work that fills a cache on first use (converting a zoo model): one process
    does it while the others wait, then they find it done instead of racing to write
    the same directory.
    """
    if not dist.active:
        yield
        return
    if dist.local_rank != 0:
        torch_dist.barrier()
    try:
        yield
    finally:
        if dist.local_rank == 0:
            torch_dist.barrier()


def check_strategy(strategy: str, device: torch.device | None = None) -> None:
    """Refuse a strategy this version cannot run, naming the one to use instead.

    ``device`` defaults to this machine's (CUDA when there is a GPU); the CLI calls
    this before launching processes, ``wrap`` again in each one.

    Raises:
        LmforgeError: ``deepspeed`` (not supported here), or an unknown name.
    """
    if strategy in STRATEGIES:
        return
    if strategy == "deepspeed":
        on_gpu = device.type == "cuda" if device is not None else torch.cuda.is_available()
        if not on_gpu:
            raise LmforgeError(
                "train.strategy: 'deepspeed' needs CUDA GPUs (its ZeRO kernels and nccl) and "
                "this machine has none; use train.strategy: fsdp, which shards weights, "
                "gradients and optimizer state like ZeRO-3 and runs on CPU (gloo), or ddp."
            )
        raise LmforgeError(
            "train.strategy: 'deepspeed' is not supported by this lmforge version; use "
            "train.strategy: fsdp, which shards weights, gradients and optimizer state like "
            "ZeRO-3, or ddp."
        )
    raise LmforgeError(f"train.strategy: unknown strategy {strategy!r}; use ddp or fsdp.")


def wrap(module: torch.nn.Module, strategy: str, dist: Dist) -> torch.nn.Module:
    """Wrap the training module for ``strategy`` (unchanged when running alone).

    Build the optimizer after this: ``fsdp`` replaces every parameter with a
    sharded one (a DTensor) in place.

    Raises:
        LmforgeError: a strategy this version cannot run (see ``check_strategy``).
    """
    check_strategy(strategy, dist.device)
    if not dist.active:
        return module
    if strategy in {"auto", "ddp"}:
        device_ids = [dist.local_rank] if dist.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=device_ids)
    try:
        from torch.distributed.fsdp import fully_shard
    except ImportError:  # FSDP2 is public from torch 2.6
        raise LmforgeError(
            f"train.strategy: fsdp needs torch >= 2.6 (FSDP2) and this is torch "
            f"{torch.__version__}; upgrade torch or use train.strategy: ddp."
        ) from None

    # FSDP2: one all-gather unit per transformer block, the rest (embeddings, final
    # norm, head: tied weights stay together) in the root unit.
    for layer in transformer_layers(module):
        fully_shard(layer)
    fully_shard(module)
    return module


def is_sharded(model: torch.nn.Module) -> bool:
    """Whether ``model``'s weights are sharded across processes (fsdp)."""
    return any(isinstance(p, DTensor) for p in model.parameters())


@contextlib.contextmanager
def unsharded(module: torch.nn.Module) -> Iterator[None]:
    """Whole weights on every process inside the block: for evaluation under fsdp.

    Evaluation calls the model directly, not the wrapped module's forward, so the
    root unit's weights (embeddings, head) are gathered here; the transformer blocks
    gather their own in their forward hooks. Every process must enter the block and
    run the same forward passes in it.
    """
    if not isinstance(module, FSDPModule):
        yield
        return
    # FSDP2 takes the first module to run forward as its root; settle that now, or an
    # evaluation before the first training step would make a block the root.
    module._get_fsdp_state()._lazy_init()
    module.unshard()
    try:
        yield
    finally:
        module.reshard()


def full_state_dict(model: torch.nn.Module, dist: Dist) -> dict[str, torch.Tensor] | None:
    """``model.state_dict()`` with whole CPU tensors gathered from the shards (fsdp).

    Every process must call it. Returns the dict on rank 0 and None on the others;
    None everywhere when the model is not sharded (its own state dict is whole).
    Weights tied together stay one tensor, so ``save_pretrained`` sees the tie.
    """
    if not is_sharded(model):
        return None
    gathered: dict[int, torch.Tensor] = {}
    state: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) not in gathered:
            gathered[id(tensor)] = _whole(tensor.detach())
        state[name] = gathered[id(tensor)]
    return state if dist.is_main else None


def save_checkpoint(
    run_dir: Path,
    state: TrainerState,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    *,
    keep: int,
    dist: Dist,
    averages: dict[str, torch.Tensor] | None = None,
) -> Path | None:
    """``checkpoint.save_checkpoint`` for any strategy; rank 0 writes.

    Every process must call it. Under fsdp the trainable weights and the optimizer
    state are gathered whole first, so the checkpoint is the same as one process
    would write: it resumes with any strategy and process count.

    Returns:
        The checkpoint directory on rank 0, None on the others.
    """

    if not is_sharded(model):
        if not dist.is_main:
            return None
        return checkpoint.save_checkpoint(
            run_dir, state, model, optimizer, scheduler, keep=keep, averages=averages
        )
    weights = {name: _whole(p.detach()) for name, p in checkpoint.trainable_state(model).items()}
    optimizer_state = _whole_optimizer_state(optimizer)
    if not dist.is_main:
        return None
    return checkpoint.save_checkpoint(
        run_dir,
        state,
        model,
        _SavedOptimizer(optimizer_state),  # type: ignore[arg-type]
        scheduler,
        keep=keep,
        weights=weights,
    )


def load_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    dist: Dist,
    average: Any = None,
) -> TrainerState:
    """``checkpoint.load_checkpoint`` for any strategy; every process reads ``path``.

    Under fsdp the whole weights and optimizer state are read, then each process
    keeps its own shard (no communication).

    Returns:
        Where the checkpointed run was.
    """

    if not is_sharded(model):
        return checkpoint.load_checkpoint(path, model, optimizer, scheduler, average)
    sharded = checkpoint.trainable_state(model)
    stand_ins = _WholeParameters(
        {
            name: torch.zeros(p.shape, dtype=p.dtype).requires_grad_(True)
            for name, p in sharded.items()
        }
    )
    state = checkpoint.load_checkpoint(path, stand_ins, optimizer, scheduler)
    with torch.no_grad():
        for name, parameter in sharded.items():
            parameter.copy_(_shard_like(stand_ins.tensors[name], parameter))
    # optimizer.load_state_dict restored whole tensors; keep each parameter's shard.
    for parameter, values in optimizer.state.items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor) and value.shape == parameter.shape and value.ndim:
                values[key] = _shard_like(value, parameter)
    return state


def launch(nproc: int, argv: Sequence[str], torchrun_args: Sequence[str] = ()) -> int:
    """Run ``lmforge <argv>`` in ``nproc`` processes under torchrun; return the exit code.

    ``torchrun_args`` are torchrun's multi-node flags (``--nnodes``, ``--node-rank``,
    ``--master-addr``, ``--master-port``); without them the run is one machine
    (``--standalone``). Each process gets ``OMP_NUM_THREADS=1`` unless it is set, so
    processes do not fight over cores. torchrun runs in this process, so a worker's
    error is its own one-line message and exit code (2 for a bad config), not a
    launcher traceback.
    """
    standalone = [] if torchrun_args else ["--standalone"]
    args = parse_args(
        [
            *standalone,
            f"--nproc-per-node={nproc}",
            *torchrun_args,
            "--module",
            "lmforge.cli.main",
            *argv,
        ]
    )
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # the workers inherit it
    try:
        run(args)
    except ChildFailedError as failed:
        _, first = failed.get_first_failure()
        # A worker killed by a signal reports -signum; shells say 128 + signum.
        return first.exitcode if first.exitcode > 0 else 128 - first.exitcode
    except SignalException as stopped:  # Ctrl-C or a scheduler: workers were stopped
        return 128 + int(stopped.sigval)
    return 0


# --- gathering and sharding ----------------------------------------------------------


def _whole(tensor: torch.Tensor) -> torch.Tensor:
    """A whole CPU copy of ``tensor``; all-gathers a DTensor (every process must call)."""
    if isinstance(tensor, DTensor):
        tensor = tensor.full_tensor()
    return tensor.to("cpu", copy=True)


def _shard_like(whole: torch.Tensor, parameter: torch.Tensor) -> torch.Tensor:
    """This process's shard of ``whole``, laid out like the sharded ``parameter``."""
    if not isinstance(parameter, DTensor):
        return whole.to(parameter.device)
    # src_data_rank=None: every process holds ``whole``, so each cuts its own shard.
    return distribute_tensor(
        whole.to(parameter.device, parameter.dtype),
        parameter.device_mesh,
        parameter.placements,
        src_data_rank=None,
    )


def _whole_optimizer_state(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """``optimizer.state_dict()`` with sharded state tensors gathered whole."""
    saved = optimizer.state_dict()
    state: dict[int, dict[str, Any]] = {}
    for index in sorted(saved["state"]):  # the same order on every process
        state[index] = {}
        for key, value in sorted(saved["state"][index].items()):
            state[index][key] = _whole(value) if isinstance(value, torch.Tensor) else value
    return {"state": state, "param_groups": saved["param_groups"]}


class _SavedOptimizer:
    """An optimizer's gathered state dict, handed to ``checkpoint.save_checkpoint``
    (which only calls ``state_dict()``)."""

    def __init__(self, state: dict[str, Any]) -> None:
        self._state = state

    def state_dict(self) -> dict[str, Any]:
        return self._state


class _WholeParameters:
    """Whole-size stand-ins for sharded trainable weights, for
    ``checkpoint.load_checkpoint`` to fill (it reads only ``named_parameters()``)."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        self.tensors = tensors

    def named_parameters(self) -> Iterator[tuple[str, torch.Tensor]]:
        return iter(self.tensors.items())
