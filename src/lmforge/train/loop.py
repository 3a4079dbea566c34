"""The training loop: one for every task and method. Setup, run, save, clean up.

    result = train(load_config("examples/train/sft_customer_service.yaml"))

Steps count optimizer steps. Each step takes ``grad_accum`` micro-batches per
process; the loss is summed over the step's targets (tokens or examples) on all
processes and divided by their total count, so one process with batch 8 and two
processes with batch 4 compute the same loss and gradients.
"""

from __future__ import annotations

import contextlib
import json
import math
import resource
import signal
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from transformers import get_scheduler

from lmforge.config import RunConfig
from lmforge.data.canaries import Canaries
from lmforge.errors import LmforgeError
from lmforge.hardware import has_bf16
from lmforge.home import atomic_dir, atomic_write_text, runs_dir
from lmforge.hub import resolve
from lmforge.hub.load import quiet_transformers
from lmforge.progress import ProgressFn
from lmforge.tasks import Task, get_task
from lmforge.tasks.base import FittedTask, MeasuredTask, PreparedTask, RolloutTask
from lmforge.track import OUTPUT_DIR_TAG, NullTracker, Tracker, resume_run, start_run
from lmforge.track.registry import log_model, register_model
from lmforge.train import distributed
from lmforge.train.batching import batch_order
from lmforge.train.checkpoint import (
    TrainerState,
    checkpoint_dirs,
    save_checkpoint,
)
from lmforge.train.data import TrainingData, build_data
from lmforge.train.ema import WeightAverage
from lmforge.train.methods import MethodOptions, apply_method, count_parameters
from lmforge.train.privacy import PRIVACY_FILE, PrivateTraining, prepare_model
from lmforge.train.start import ProximalTerm, load_start_weights


class TrainingInterrupted(LmforgeError):
    """Ctrl-C: a checkpoint was saved; the message says how to resume."""

    exit_code = 130


@dataclass
class TrainResult:
    """What a finished run produced."""

    run_id: str
    run_dir: Path
    model_dir: Path
    steps: int
    final_loss: float
    eval_metrics: dict[str, Any] = field(default_factory=dict)
    train_seconds: float = 0.0
    tokens_per_second: float = 0.0
    peak_memory_mb: float = 0.0
    trainable_parameters: int = 0
    total_parameters: int = 0
    data_metrics: dict[str, float] = field(default_factory=dict)
    privacy: dict[str, float] = field(default_factory=dict)  # the budget spent, when private
    canaries: Canaries | None = None  # what audit.canaries put into the training data


@dataclass
class Loop:
    """Everything the loop works with, built once by ``_train`` and passed whole."""

    config: RunConfig
    dist: distributed.Dist
    task: Task
    tokenizer: Any
    data: TrainingData
    model: Any  # the network with its method applied (LoRA, frozen layers)
    module: torch.nn.Module  # TrainingModule(model), wrapped for the strategy (DDP, FSDP)
    training: TrainingModule  # the same, unwrapped: it keeps the task's step metrics
    optimizer: torch.optim.Optimizer
    scheduler: Any
    state: TrainerState  # the counters a checkpoint saves
    total_steps: int
    micro_per_epoch: int
    run_dir: Path
    tracker: Tracker
    progress: ProgressFn | None
    average: WeightAverage | None  # train.ema_decay: what evaluation and the saved model use
    private: PrivateTraining | None  # privacy: the hooks, the noisy optimizer, the accountant
    proximal: ProximalTerm | None  # train.proximal_mu: the pull toward the starting weights

    def averaged(self) -> Any:
        """The model holds the weight average inside the block (when there is one)."""
        return self.average.applied() if self.average else contextlib.nullcontext()

    def evaluate(self) -> dict[str, Any]:
        """Validation metrics of the model now (gathered whole when sharded)."""
        with distributed.unsharded(self.module), self.averaged():
            return _evaluate(self.config, self.task, self.model, self.data, self.tokenizer,
                             self.dist.device)  # fmt: skip


class TrainingModule(torch.nn.Module):
    """The model plus its task's loss: what DDP/FSDP wrap, so the loss runs inside
    their forward (gradient sync hooks need that)."""

    def __init__(self, task: Task, model: torch.nn.Module) -> None:
        super().__init__()
        self.task = task
        self.model = model
        self.metric_sums: dict[str, float] = {}  # a MeasuredTask's, since the last step

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if not isinstance(self.task, MeasuredTask):
            return self.task.loss(self.model, batch)
        loss, sums = self.task.loss_and_metrics(self.model, batch)
        for key, value in sums.items():
            self.metric_sums[key] = self.metric_sums.get(key, 0.0) + float(value)
        return loss

    def step_metrics(self, targets: float, dist: distributed.Dist) -> dict[str, float]:
        """The task's metrics since the last step, each averaged over the step's
        ``targets`` on every process: ``{"train/NAME": value}``."""
        sums, self.metric_sums = self.metric_sums, {}
        return {f"train/{key}": distributed.sum_across(value, dist) / max(targets, 1)
                for key, value in sorted(sums.items())}  # fmt: skip


def train(
    config: RunConfig,
    *,
    resume: Path | bool | None = None,
    track: bool = True,
    progress: ProgressFn | None = None,
    on_start: Callable[[str, Path], None] | None = None,
    tags: dict[str, str] | None = None,
    importance: dict[str, torch.Tensor] | None = None,
) -> TrainResult:
    """Train as ``config`` says; returns where the model went and what was measured.

    Args:
        config: a validated run config.
        resume: a run directory to continue, ``True`` for the newest resumable run.
        track: log to the tracking store (MLflow); off, nothing is tracked.
        progress: called after each step with (step, total_steps, "loss L, N tok/s").
        on_start: called once with (run_id, run_dir) before the first step.
        tags: more tags of the new run (a continual stage's sequence).
        importance: each trained weight's importance (by parameter name): the gradients
            gain ``importance * (w - w_start)``, EWC's penalty (``lmforge.train.continual``).

    Raises:
        LmforgeError: bad config, data or model; NaN loss; ``TrainingInterrupted`` on Ctrl-C.
    """
    if config.train.continual is not None:
        raise LmforgeError("train.continual: a sequence of stages; train it with lmforge "
                           "train (lmforge.train.continual.train_sequence)")  # fmt: skip
    dist = distributed.setup()
    try:
        return _train(config, dist, resume, track, progress, on_start, tags or {}, importance)
    finally:
        distributed.teardown()


def _train(
    config: RunConfig,
    dist: distributed.Dist,
    resume: Path | bool | None,
    track: bool,
    progress: ProgressFn | None,
    on_start: Callable[[str, Path], None] | None,
    tags: dict[str, str],
    importance: dict[str, torch.Tensor] | None,
) -> TrainResult:
    # Find what to resume before loading anything: nothing to resume fails in a second.
    run_dir, checkpoint = _find_resume(resume, config) if resume else (None, None)
    torch.manual_seed(config.train.seed)
    task = get_task(config.task.name).configured(config)
    with distributed.main_first(dist):  # a zoo model is converted once, not per process
        base = _resolve_base(config.model.ref, task) if config.model.ref else None
        # a tokenizer, a text+image processor, or a table's (fitted when the data is read)
        tokenizer = task.load_processor(base.path if base else None)
    data = build_data(task, tokenizer, config.data, max_length=config.task.max_length,
                      audit=config.audit)  # fmt: skip
    if isinstance(task, FittedTask):
        if config.privacy is not None:
            raise LmforgeError(f"privacy: task {task.name} is fitted in one call, not by "
                               "gradient steps, so DP-SGD cannot train it; remove "
                               "privacy")  # fmt: skip
        return _fit(config, dist, task, tokenizer, data, track, progress, on_start)
    if isinstance(task, RolloutTask) and dist.active:
        raise LmforgeError(f"task {task.name}: sampling in several processes (--nproc) is "
                           "not built yet; train it in one process")  # fmt: skip
    if config.privacy is not None and (dist.active or checkpoint is not None):
        why = "several processes (--nproc)" if dist.active else "resuming (--resume)"
        raise LmforgeError(f"privacy: {why} is not built for private training yet (the "
                           "accountant's history is per process and not in checkpoints); "
                           "train privately in one process, from the start")  # fmt: skip
    model = _build_model(config, task, str(base.path) if base else "", data.labels, dist.device)
    if config.model.init_from is not None:  # a resumed run's checkpoint then overwrites them
        load_start_weights(model, config.model.init_from, task.weights_subfolder)
    if isinstance(task, PreparedTask):  # scored by the model training starts from
        size = config.eval.batch_size or config.train.batch_size
        for examples in (data.train, data.validation):
            task.prepare(model, examples, tokenizer, dist.device, size)
    if config.privacy is not None:
        model = prepare_model(model)
    proximal = ProximalTerm(model, config.train.proximal_mu) if config.train.proximal_mu else None
    if importance is not None:  # EWC: each weight pulled by its own importance
        proximal = ProximalTerm(model, 1.0, importance)
    trainable, total = count_parameters(model)
    training = TrainingModule(task, model)
    module = distributed.wrap(training, config.train.strategy, dist)

    micro_per_epoch = len(_epoch_batches(config, data, dist, epoch=0))
    total_steps = _total_steps(config, micro_per_epoch)
    optimizer = _optimizer(config, [p for p in model.parameters() if p.requires_grad])
    private = None
    if config.privacy is not None:
        private = PrivateTraining.attach(
            config.privacy, model, optimizer, examples=len(data.train),
            batch_size=config.train.batch_size, steps=total_steps,
        )  # fmt: skip
        optimizer = private.optimizer
    scheduler = _scheduler(config, optimizer, total_steps)
    average = WeightAverage(model, config.train.ema_decay) if config.train.ema_decay else None

    state = TrainerState()
    if checkpoint is not None:
        state = distributed.load_checkpoint(checkpoint, model, optimizer, scheduler, dist, average)
    tracker = _start_tracker(config, dist, track, state.run_id, tags)
    new_run = tracker.run_id is None or tracker.run_id != state.run_id
    run_id = distributed.broadcast(tracker.run_id or state.run_id or uuid.uuid4().hex, dist)
    state.run_id = run_id
    run_dir = run_dir or Path(config.output.dir or runs_dir() / run_id)
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_config(run_dir / "config.yaml", config)
        if new_run:
            tracker.log_params(config.model_dump(mode="json"))
            tracker.set_tags({OUTPUT_DIR_TAG: str(run_dir), "lmforge.task": task.name})
            tracker.log_params({"model_parameters": total, "trainable_parameters": trainable})
            tracker.log_metrics(data.metrics, step=0)
    if on_start is not None and dist.is_main:
        on_start(run_id, run_dir)

    loop = Loop(config, dist, task, tokenizer, data, model, module, training, optimizer,
                scheduler, state, total_steps, micro_per_epoch, run_dir, tracker, progress,
                average, private, proximal)  # fmt: skip
    try:
        if config.eval.before_training and data.validation and checkpoint is None:
            tracker.log_metrics(_numbers(loop.evaluate(), "eval"), step=0)
        stats = _run_steps(loop)
    except KeyboardInterrupt:
        # Sharded weights need every process to gather them, which cannot be trusted
        # after an interrupt: fsdp runs keep their last train.save_every checkpoint.
        saved = not distributed.is_sharded(model)
        if dist.is_main:
            if saved:
                save_checkpoint(
                    run_dir, state, model, optimizer, scheduler,
                    keep=config.train.keep_checkpoints,
                    averages=average.state_dict() if average else None,
                )  # fmt: skip
            tracker.close("KILLED")
        where = "a checkpoint is saved" if saved else "the last train.save_every checkpoint is"
        raise TrainingInterrupted(
            f"interrupted at step {state.step}; {where} in {run_dir}/checkpoints. "
            f"Resume with: lmforge train CONFIG --resume {run_dir}"
        ) from None
    except BaseException:
        tracker.close("FAILED")
        raise

    try:
        if private is not None:
            private.detach()  # no hooks in what evaluation runs and what is saved
        eval_metrics = loop.evaluate() if data.validation else {}
        result = TrainResult(
            run_id=run_id,
            run_dir=run_dir,
            model_dir=run_dir / "model",
            steps=state.step,
            final_loss=stats["loss"],
            eval_metrics=eval_metrics,
            train_seconds=stats["seconds"],
            tokens_per_second=stats["tokens_per_second"],
            peak_memory_mb=_peak_memory_mb(dist.device),
            trainable_parameters=trainable,
            total_parameters=total,
            data_metrics=data.metrics,
            privacy=private.report() if private is not None else {},
            canaries=data.canaries,
        )
        with loop.averaged():
            weights = distributed.full_state_dict(model, dist)  # every process: fsdp gathers
            if dist.is_main:
                saved = model
                if task.merge_on_save and hasattr(model, "merge_and_unload"):
                    saved, weights = model.merge_and_unload(), None  # a plain model, adapters in
                _save_outputs(config, result, saved, tokenizer, base, tracker, weights,
                              task.weights_subfolder)  # fmt: skip
    except BaseException:
        tracker.close("FAILED")
        raise
    tracker.close("FINISHED")
    return result


def _fit(
    config: RunConfig,
    dist: distributed.Dist,
    task: FittedTask,
    processor: Any,
    data: TrainingData,
    track: bool,
    progress: ProgressFn | None,
    on_start: Callable[[str, Path], None] | None,
) -> TrainResult:
    """Fit a model in one call (gradient-boosted trees), tracked, scored and saved as a
    trained one is; there are no steps to checkpoint or resume."""
    if dist.world_size > 1:
        raise LmforgeError(f"task {task.name}: fitted by one process (with its own threads); "
                           "run it without --nproc")  # fmt: skip
    tracker = _start_tracker(config, dist, track, None)
    run_id = tracker.run_id or uuid.uuid4().hex
    run_dir = Path(config.output.dir or runs_dir() / run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_config(run_dir / "config.yaml", config)
    tracker.log_params(config.model_dump(mode="json"))
    tracker.set_tags({OUTPUT_DIR_TAG: str(run_dir), "lmforge.task": task.name})
    tracker.log_metrics(data.metrics, step=0)
    if on_start is not None:
        on_start(run_id, run_dir)
    try:
        started = time.perf_counter()
        model = task.fit(data.train, data.validation, progress)
        seconds = time.perf_counter() - started
        size = config.eval.batch_size or config.train.batch_size
        batches = (task.collate(data.validation[start : start + size], processor, seed=start)
                   for start in range(0, len(data.validation), size))  # fmt: skip
        metrics = task.evaluate(model, batches) if data.validation else {}
        result = TrainResult(run_id=run_id, run_dir=run_dir, model_dir=run_dir / "model",
                             steps=0, final_loss=float(metrics.get("loss", math.nan)),
                             eval_metrics=metrics, train_seconds=seconds,
                             peak_memory_mb=_peak_memory_mb(torch.device("cpu")),
                             data_metrics=data.metrics)  # fmt: skip
        _save_outputs(config, result, model, processor, None, tracker)
    except BaseException:
        tracker.close("FAILED")
        raise
    tracker.close("FINISHED")
    return result


# --- setup ---------------------------------------------------------------------------


def _resolve_base(ref: str, task: Task) -> Any:
    base = resolve(ref)
    if base.kind in {"adapter", "gguf"}:
        raise LmforgeError(
            f"model.ref: {ref!r} is a {base.kind}; training starts from a Hugging Face model "
            "directory or zoo model. Merge an adapter first (lmforge merge ADAPTER OUT)."
        )
    if base.kind not in task.model_kinds:
        raise LmforgeError(
            f"model.ref: {ref!r} is a {base.kind} model but task {task.name!r} needs one of "
            f"{', '.join(task.model_kinds)}."
        )
    return base


def _build_model(
    config: RunConfig, task: Task, path: str, labels: list[str], device: torch.device
) -> Any:
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(
        config.model.dtype, torch.float32
    )
    if config.train.precision != "fp32" and device.type == "cpu" and not has_bf16():
        warnings.warn(
            f"train.precision {config.train.precision}: this CPU has no native bf16/fp16 "
            "math, so mixed precision will be slower than fp32 here.",
            stacklevel=2,
        )
    quiet_transformers()
    model = task.build_model(
        path, labels=labels, dtype=dtype, pretrained=not config.model.from_scratch
    )
    if config.train.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    method = config.method
    options = MethodOptions(
        name=method.name,
        lora_r=method.lora_r,
        lora_alpha=method.lora_alpha,
        lora_dropout=method.lora_dropout,
        target_modules=method.target_modules,
        trainable_layers=method.trainable_layers,
        lora_layers=method.lora_layers,
        base_precision=method.base_precision,
        peft_task_type=task.peft_task_type,
        head_modules=task.head_modules,
        frozen_modules=task.frozen_modules,
        fuse_lora=config.privacy is None,
    )
    model = apply_method(model, options, device)
    model.to(device)
    model.train()
    return model


def _epoch_batches(
    config: RunConfig, data: TrainingData, dist: distributed.Dist, epoch: int
) -> list[list[int]]:
    """This epoch's global batches (every process computes the same list)."""
    return batch_order(
        [_length(example) for example in data.train],
        config.train.batch_size * dist.world_size,
        seed=config.train.seed,
        epoch=epoch,
        group_by_length=config.train.group_by_length,
        drop_last=dist.active,
    )


def _total_steps(config: RunConfig, micro_per_epoch: int) -> int:
    if micro_per_epoch == 0:
        raise LmforgeError(
            "train.batch_size: larger than the training set split across processes; "
            "lower it or use fewer processes."
        )
    if config.train.max_steps:  # as in Hugging Face's Trainer: max_steps overrides epochs
        return config.train.max_steps
    return math.ceil(config.train.epochs * micro_per_epoch / config.train.grad_accum)


def _optimizer(config: RunConfig, parameters: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    train_config = config.train
    if train_config.optimizer == "sgd":
        return torch.optim.SGD(
            parameters,
            lr=train_config.lr,
            momentum=0.9 if train_config.momentum is None else train_config.momentum,
            weight_decay=train_config.weight_decay,
        )
    return torch.optim.AdamW(parameters, lr=train_config.lr, weight_decay=train_config.weight_decay)


def _scheduler(config: RunConfig, optimizer: torch.optim.Optimizer, total_steps: int) -> Any:
    name = {"constant": "constant_with_warmup"}.get(config.train.scheduler, config.train.scheduler)
    return get_scheduler(
        name,
        optimizer,
        num_warmup_steps=int(config.train.warmup_ratio * total_steps),
        num_training_steps=total_steps,
    )


def _start_tracker(
    config: RunConfig,
    dist: distributed.Dist,
    track: bool,
    run_id: str | None,
    tags: dict[str, str] | None = None,
) -> Tracker:
    if not dist.is_main or not track:
        return NullTracker()
    if run_id is not None:
        try:
            return resume_run(run_id)
        except LmforgeError:  # the run was started untracked, or in another store
            pass
    return start_run(config.output.experiment, tags={"lmforge.command": "train", **(tags or {})})


def _find_resume(resume: Path | bool, config: RunConfig) -> tuple[Path, Path | None]:
    """The run directory to continue and its newest checkpoint."""
    if resume is True:
        root = config.output.dir.parent if config.output.dir else runs_dir()
        candidates = [
            p.parent.parent
            for run in (root.iterdir() if root.is_dir() else ())
            if run.is_dir()
            for p in checkpoint_dirs(run)[-1:]
            if not (run / "metrics.json").exists()
        ]
        if config.output.dir is not None:
            candidates = [c for c in candidates if c == config.output.dir]
        if not candidates:
            raise LmforgeError(
                f"resume: no unfinished run with a checkpoint under {root}; name the run "
                "directory to continue, or start a new run without resuming."
            )
        run_dir = max(candidates, key=lambda p: checkpoint_dirs(p)[-1].stat().st_mtime)
    else:
        assert not isinstance(resume, bool)
        run_dir = Path(resume)
    checkpoints = checkpoint_dirs(run_dir)
    if not checkpoints:
        raise LmforgeError(
            f"resume: {run_dir} holds no checkpoint (looked in {run_dir / 'checkpoints'}); "
            "name a run directory that saved one (train.save_every), or start a new run."
        )
    return run_dir, checkpoints[-1]


# --- the loop ------------------------------------------------------------------------


def _micro_batches(
    config: RunConfig, data: TrainingData, dist: distributed.Dist, start: int, per_epoch: int
) -> Iterator[tuple[int, list[int]]]:
    """(global micro-batch number, this process's example indices), from ``start`` on."""
    number = start
    while True:
        epoch, offset = divmod(number, per_epoch)
        for batch in _epoch_batches(config, data, dist, epoch)[offset:]:
            yield number, batch[dist.rank :: dist.world_size]
            number += 1


def _run_steps(loop: Loop) -> dict[str, float]:
    config, dist, task, data, state = loop.config, loop.dist, loop.task, loop.data, loop.state
    model, module, optimizer, scheduler = loop.model, loop.module, loop.optimizer, loop.scheduler
    total_steps, micro_per_epoch, run_dir = loop.total_steps, loop.micro_per_epoch, loop.run_dir
    tokenizer = loop.tokenizer
    train_cfg = config.train
    stream = _micro_batches(config, data, dist, state.micro_batch, micro_per_epoch)
    parameters = [p for p in model.parameters() if p.requires_grad]
    autocast = _autocast(train_cfg.precision, dist.device)
    scaler = torch.amp.GradScaler(
        enabled=train_cfg.precision == "fp16" and dist.device.type == "cuda"
    )
    loss = float("nan")
    started = time.perf_counter()
    tokens_at_start = state.tokens_seen
    sampler = torch.Generator().manual_seed(train_cfg.seed)  # private steps' Poisson batches
    with _sigterm_as_interrupt():
        while state.step < total_steps:
            step_started = time.perf_counter()
            if loop.private is not None:
                if config.privacy is not None and not config.privacy.poisson:
                    indices = next(stream)[1]  # the shuffled batches, as without privacy
                else:
                    indices = loop.private.sample(sampler)
                loss, tokens, grad_norm, targets = _private_step(loop, loop.private, indices,
                                                                 loss)  # fmt: skip
                number = state.micro_batch  # a private batch stands for one batch
                extra = loop.training.step_metrics(targets, dist)
                _finish_step(loop, number, tokens, loss, grad_norm, step_started, extra)
                continue
            batches = []
            for _ in range(train_cfg.grad_accum):
                number, indices = next(stream)
                examples = [data.train[i] for i in indices]
                batch = task.collate(examples, tokenizer, train_cfg.seed * 1_000_003 + number)
                if isinstance(task, RolloutTask):  # completed by the model as it is now
                    batch = task.rollout(model, {k: v.to(dist.device) for k, v in batch.items()})
                batches.append(batch)
            targets = distributed.sum_across(sum(task.target_count(b) for b in batches), dist)
            tokens = distributed.sum_across(sum(_real_tokens(b) for b in batches), dist)
            loss_sum = 0.0
            for index, batch in enumerate(batches):
                batch = {k: v.to(dist.device) for k, v in batch.items()}
                last = index == len(batches) - 1
                with _accumulating(module, not last), autocast:
                    summed = module(batch)
                # DDP averages gradients over processes; scale so the result is sum / targets.
                scaler.scale(summed * dist.world_size / max(targets, 1)).backward()
                loss_sum += float(summed.detach())
            loss = distributed.sum_across(loss_sum, dist) / max(targets, 1)
            extra = loop.training.step_metrics(targets, dist)
            _check_finite(loss, state.step, run_dir)
            scaler.unscale_(optimizer)
            if loop.proximal is not None:
                loop.proximal.add_to_gradients()
            grad_norm = float(
                torch.nn.utils.clip_grad_norm_(parameters, train_cfg.max_grad_norm or float("inf"))
            )
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            _finish_step(loop, number, tokens, loss, grad_norm, step_started, extra)
    elapsed = time.perf_counter() - started
    return {
        "loss": loss,
        "seconds": elapsed,
        "tokens_per_second": (state.tokens_seen - tokens_at_start) / max(elapsed, 1e-9),
    }


def _private_step(
    loop: Loop, private: PrivateTraining, indices: list[int], last_loss: float
) -> tuple[float, float, float, float]:
    """One DP-SGD step (``lmforge.train.privacy``) on the examples at ``indices`` (a
    Poisson batch): (loss, tokens, norm of the noisy gradient, targets). An empty batch takes a
    noise-only step and keeps the last loss."""
    if not indices:
        private.empty_step()
        loop.scheduler.step()
        loop.optimizer.zero_grad(set_to_none=True)
        private.check_frozen()
        return last_loss, 0.0, 0.0, 0.0
    seed = loop.config.train.seed * 1_000_003 + loop.state.step
    targets, tokens, loss_sum = 0, 0.0, 0.0
    for number, chunk in enumerate(_private_chunks(loop, indices)):
        batch = loop.task.collate([loop.data.train[i] for i in chunk], loop.tokenizer,
                                  seed + number)  # fmt: skip
        targets += loop.task.target_count(batch)
        tokens += float(_real_tokens(batch))
        summed = loop.module({k: v.to(loop.dist.device) for k, v in batch.items()})
        # The hooks keep each example's gradient of its own summed loss (not an average
        # over targets, whose count the other examples would change); the chunks' add up.
        summed.backward()
        loss_sum += float(summed.detach())
    loss = loss_sum / max(targets, 1)
    _check_finite(loss, loop.state.step, loop.run_dir)
    private.check_gradients(len(indices))
    loop.optimizer.step()  # clips each example's gradient, adds the noise, steps the optimizer
    gradients = [p.grad for p in private.optimizer.params if p.grad is not None]
    grad_norm = float(torch.linalg.vector_norm(torch.stack(
        [torch.linalg.vector_norm(g) for g in gradients]))) if gradients else 0.0  # fmt: skip
    loop.scheduler.step()
    loop.optimizer.zero_grad(set_to_none=True)
    private.check_frozen()
    return loss, tokens, grad_norm, float(targets)


PRIVATE_CHUNK = 32  # examples per forward pass of a private step whose lengths differ


def _private_chunks(loop: Loop, indices: list[int]) -> list[list[int]]:
    """A Poisson batch in forward passes of similar lengths: such a batch mixes every
    length, so one padded pass computed 2.4x its real tokens on the bundled reviews at
    batch 128 (1.3x in length-sorted passes of 32). Batches of one length (tables, sensor
    windows) or ``group_by_length: false`` stay one pass."""
    lengths = {i: _length(loop.data.train[i]) for i in indices}
    if not loop.config.train.group_by_length or len(set(lengths.values())) == 1:
        return [indices]
    ordered = sorted(indices, key=lengths.__getitem__)
    return [ordered[i : i + PRIVATE_CHUNK] for i in range(0, len(ordered), PRIVATE_CHUNK)]


def _check_finite(loss: float, step: int, run_dir: Path) -> None:
    """Raise before a step with a non-finite loss updates the weights."""
    if math.isfinite(loss):
        return
    last_good = checkpoint_dirs(run_dir)
    where = f"the last good checkpoint is {last_good[-1]}" if last_good else \
        "no checkpoint was saved yet"  # fmt: skip
    raise LmforgeError(
        f"the loss became {loss} at step {step + 1}; {where}. Lower train.lr, "
        "set train.max_grad_norm, or check the data, then resume or restart."
    )


def _finish_step(loop: Loop, number: int, tokens: float, loss: float, grad_norm: float,
                 started: float, extra: dict[str, float]) -> None:  # fmt: skip
    """After the optimizer stepped: counters, the weight average, metrics (with the budget
    spent, when private), evaluation, checkpoints and progress, each when due."""
    config, state, dist, data = loop.config, loop.state, loop.dist, loop.data
    train_cfg, average = config.train, loop.average
    state.step += 1
    if average is not None:
        average.update(state.step)
    state.micro_batch = number + 1
    state.tokens_seen += int(tokens)
    seconds = time.perf_counter() - started
    metrics = {
        "train/loss": loss,
        "train/learning_rate": loop.scheduler.get_last_lr()[0],
        "train/grad_norm": grad_norm,
        "train/tokens_per_second": tokens / max(seconds, 1e-9),
        "train/epoch": state.micro_batch / loop.micro_per_epoch,
        **extra,  # the task's own (a MeasuredTask's)
    }
    if state.step % train_cfg.log_every == 0 or state.step == loop.total_steps:
        if loop.private is not None:
            metrics["privacy/epsilon"] = loop.private.epsilon()
        loop.tracker.log_metrics(metrics, step=state.step)
        state.history.append({"step": state.step, **metrics})
    if config.eval.every and state.step % config.eval.every == 0 and data.validation:
        loop.tracker.log_metrics(_numbers(loop.evaluate(), "eval"), step=state.step)
    if train_cfg.save_every and state.step % train_cfg.save_every == 0:
        distributed.save_checkpoint(
            loop.run_dir, state, loop.model, loop.optimizer, loop.scheduler,
            keep=train_cfg.keep_checkpoints, dist=dist,
            averages=average.state_dict() if average else None,
        )  # fmt: skip
    if loop.progress is not None and dist.is_main:
        shown = [f"loss {loss:.4f}"]
        for name in getattr(loop.task, "progress_metrics", ()):  # the task's headline ones
            if f"train/{name}" in metrics:
                shown.append(f"{name} {metrics[f'train/{name}']:.3f}")
        shown.append(f"{metrics['train/tokens_per_second']:,.0f} tok/s")
        loop.progress(state.step, loop.total_steps, ", ".join(shown))


def _accumulating(module: Any, skip_sync: bool) -> Any:
    """DDP's no_sync for all but the last micro-batch of a step: one all-reduce a step."""
    if skip_sync and hasattr(module, "no_sync"):
        return module.no_sync()
    return contextlib.nullcontext()


def _length(example: dict[str, Any]) -> int:
    """An example's length in tokens, for batching by length; 1 for an example without
    token ids (a sensor window)."""
    ids = example.get("input_ids")
    return len(ids) if ids is not None else 1


def _real_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Non-padding input tokens in a batch."""
    mask = batch.get("attention_mask", batch.get("token_mask"))
    return int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())


def _autocast(precision: str, device: torch.device) -> Any:
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (a scheduler stopping the job) like Ctrl-C: checkpoint, then exit."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _evaluate(
    config: RunConfig,
    task: Task,
    model: Any,
    data: TrainingData,
    tokenizer: Any,
    device: torch.device,
) -> dict[str, Any]:
    examples = data.validation[: config.eval.max_samples]
    size = config.eval.batch_size or config.train.batch_size
    order = sorted(range(len(examples)), key=lambda i: _length(examples[i]))
    batches = (
        {
            k: v.to(device)
            for k, v in task.collate(
                [examples[i] for i in order[start : start + size]], tokenizer, seed=start
            ).items()
        }
        for start in range(0, len(order), size)
    )
    model.eval()
    try:
        return task.evaluate(model, batches)
    finally:
        model.train()


def _numbers(metrics: dict[str, Any], prefix: str) -> dict[str, float]:
    return {f"{prefix}/{k}": float(v) for k, v in metrics.items() if isinstance(v, int | float)}


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# --- outputs -------------------------------------------------------------------------


def _write_config(path: Path, config: RunConfig) -> None:
    text = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    atomic_write_text(path, text)


def _save_outputs(
    config: RunConfig,
    result: TrainResult,
    model: Any,
    tokenizer: Any,
    base: Any,
    tracker: Tracker,
    weights: dict[str, torch.Tensor] | None = None,
    weights_subfolder: str = "",
) -> None:
    """Write the model (or adapter) with its tokenizer, chat template and config;
    ``weights``: the whole state dict when the model is sharded (fsdp); a whole model
    goes into ``weights_subfolder`` (the task's), an adapter at the top."""
    with atomic_dir(result.model_dir) as tmp:
        if hasattr(model, "peft_config"):
            model.save_pretrained(tmp, state_dict=weights)
        elif weights is not None:
            model.save_pretrained(tmp / weights_subfolder, state_dict=weights)
        else:
            model.save_pretrained(tmp / weights_subfolder)
        tokenizer.save_pretrained(tmp)
        _write_config(tmp / "lmforge_config.yaml", config)
        adapter_config = tmp / "adapter_config.json"
        if adapter_config.is_file():
            # Plain peft finds the base by path; lmforge also keeps the reference the
            # user gave (a zoo name or registry ref) to find it on another machine.
            settings = json.loads(adapter_config.read_text())
            settings["base_model_name_or_path"] = str(base.path)
            adapter_config.write_text(json.dumps(settings, indent=2))
            (tmp / "lmforge_base.json").write_text(json.dumps({"base_ref": config.model.ref}))
            if settings.get("task_type") == "SEQ_CLS":
                # the head's size and label names, which plain peft cannot infer
                model.get_base_model().config.save_pretrained(tmp)
        if result.privacy:  # the budget travels with the model
            (tmp / PRIVACY_FILE).write_text(json.dumps(result.privacy, indent=2) + "\n")
        if result.canaries is not None:  # what the memorisation audit looks for
            result.canaries.save(tmp)
    summary = {
        "run_id": result.run_id,
        "steps": result.steps,
        "final_loss": result.final_loss,
        "eval": result.eval_metrics,
        "train_seconds": result.train_seconds,
        "tokens_per_second": result.tokens_per_second,
        "peak_memory_mb": result.peak_memory_mb,
        "trainable_parameters": result.trainable_parameters,
        "total_parameters": result.total_parameters,
        "data": result.data_metrics,
        **({"privacy": result.privacy} if result.privacy else {}),
    }
    atomic_write_text(result.run_dir / "metrics.json", json.dumps(summary, indent=2) + "\n")
    tracker.log_metrics(
        {
            **_numbers(result.eval_metrics, "eval"),
            "peak_memory_mb": result.peak_memory_mb,
            "train_seconds": result.train_seconds,
            "train/effective_tokens_per_second": result.tokens_per_second,
            **_numbers(result.privacy, "privacy"),
        },
        step=result.steps,
    )
    log_model(tracker, result.model_dir)
    tracker.log_artifact(result.run_dir / "config.yaml")
    tracker.log_artifact(result.run_dir / "metrics.json")
    if config.output.register_as and tracker.run_id:
        # points the version at the model/ just logged: one copy of the model per run
        register_model(result.model_dir, config.output.register_as, run_id=tracker.run_id)
