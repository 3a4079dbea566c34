"""Continual fine-tuning: a sequence of data sets (stages), each trained after the last.

``train.continual.stages`` lists the data sets. Each stage is an ordinary run of the one
training loop, started from the model the stage before saved (``model.init_from``), with
its own MLflow run nested under the sequence's (tags ``lmforge.continual.*``). Plain
sequential fine-tuning forgets what earlier stages taught; two remedies are built in:

- **Replay**: after each stage a sample of its records (``buffer_size``, drawn uniformly)
  joins the replay buffer, saved as ``replay.jsonl`` beside the stage's model. A later
  stage's training data is its own records plus records drawn from the buffer so that
  they make up ``replay`` of the mix, shuffled together: each batch holds that share on
  average.
- **EWC** (Kirkpatrick et al., 2017): after each stage the diagonal Fisher information of
  its training data (the mean squared gradient of each example's loss, over
  ``fisher_samples`` examples) is added to the earlier stages'; the next stage's
  gradients gain ``ewc * F * (w - w_start)``, the gradient of ``ewc/2 * sum F (w -
  w_start)^2``, so weights that mattered before move less. It is saved as
  ``fisher.safetensors`` beside the model.

The sequence's folder holds one folder per stage (its data as trained, its run) and
``sequence.json``, what ``lmforge eval continual`` reads to fill the accuracy matrix.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from lmforge.config import RunConfig
from lmforge.config.schema import ContinualConfig, ContinualStage
from lmforge.data.fetch import data_file
from lmforge.data.records import read_records, shuffle_records
from lmforge.errors import LmforgeError
from lmforge.home import atomic_write_text, runs_dir
from lmforge.progress import ProgressFn
from lmforge.tasks import get_task
from lmforge.tasks.base import Task
from lmforge.track import CONTINUAL_SEQUENCE_FILE, OUTPUT_DIR_TAG, start_run
from lmforge.train.data import build_data, read_options
from lmforge.train.loop import TrainResult, _build_model, _resolve_base, train
from lmforge.train.start import load_start_weights

REPLAY_FILE = "replay.jsonl"
FISHER_FILE = "fisher.safetensors"
SEQUENCE_TAG = "lmforge.continual.sequence"
STAGE_TAG = "lmforge.continual.stage"


@dataclass
class SequenceResult:
    """What a continual sequence trained: one result per stage, and where it all is."""

    sequence_id: str
    sequence_dir: Path
    stages: list[TrainResult]


def train_sequence(
    config: RunConfig,
    *,
    track: bool = True,
    progress: ProgressFn | None = None,
    on_stage: Callable[[int, ContinualStage], None] | None = None,
    on_fisher: Callable[[int, ContinualStage], None] | None = None,
) -> SequenceResult:
    """Train ``config``'s stages one after another (see the module docs).

    Args:
        config: a validated run config with ``train.continual``.
        track: log the sequence and every stage to the tracking store.
        progress: each stage's step progress, as ``train`` reports it, and then (with EWC)
            the examples of its Fisher information.
        on_stage: called with (index, stage) before each stage starts.
        on_fisher: called with (index, stage) before EWC's Fisher information of a trained
            stage is computed (so a caller can show that work apart from the steps).

    Raises:
        LmforgeError: bad stage data, or what a stage's training raises.
    """
    continual = config.train.continual
    if continual is None:
        raise LmforgeError("train.continual: not set; train the config with lmforge train")
    parent = start_run(config.output.experiment, run_name="continual sequence",
                       tags={"lmforge.command": "train", "lmforge.continual": "sequence"},
                       enabled=track)  # fmt: skip
    sequence_id = parent.run_id or uuid.uuid4().hex
    sequence_dir = Path(config.output.dir or runs_dir() / f"continual-{sequence_id}")
    sequence_dir.mkdir(parents=True, exist_ok=True)
    parent.set_tags({OUTPUT_DIR_TAG: str(sequence_dir), SEQUENCE_TAG: sequence_id})
    parent.log_params({"stages": ", ".join(s.name for s in continual.stages),
                       "replay": continual.replay, "buffer_size": continual.buffer_size,
                       "ewc": continual.ewc, "task": config.task.name})  # fmt: skip
    task = get_task(config.task.name)
    rng = random.Random(config.data.seed)
    buffer: list[dict[str, Any]] = []
    importance: dict[str, torch.Tensor] | None = None
    start_from = config.model.init_from
    results: list[TrainResult] = []
    described: list[dict[str, Any]] = []
    try:
        for index, stage in enumerate(continual.stages):
            if on_stage is not None:
                on_stage(index, stage)
            where = f"train.continual.stages[{index}]"
            stage_dir = sequence_dir / f"{index + 1}-{_slug(stage.name)}"
            records, fmt = _records(config, stage, stage.train, f"{where}.train", task)
            replayed = _draw(buffer, continual.replay, len(records), rng)
            train_file = _write(stage_dir / "data" / "train.jsonl",
                                shuffle_records(records + replayed, config.data.seed))  # fmt: skip
            files = {"train": train_file}
            for split in ("validation", "test"):
                source = getattr(stage, split)
                if source is not None:
                    kept, _ = _records(config, stage, source, f"{where}.{split}", task)
                    files[split] = _write(stage_dir / "data" / f"{split}.jsonl", kept)
            stage_config = _stage_config(config, stage_dir, files, fmt, start_from)
            tags = {SEQUENCE_TAG: sequence_id, STAGE_TAG: str(index),
                    "lmforge.continual.stage_name": stage.name,
                    "mlflow.parentRunId": sequence_id if track else "",
                    "mlflow.runName": stage.name}  # fmt: skip
            result = train(stage_config, track=track, progress=progress,
                           tags={k: v for k, v in tags.items() if v},
                           importance=importance)  # fmt: skip
            buffer += [{**record, "stage": stage.name} for record in
                       _sample(records, continual.buffer_size, rng)]  # fmt: skip
            _write(result.model_dir / REPLAY_FILE, buffer)
            if continual.ewc > 0 and index + 1 < len(continual.stages):
                if on_fisher is not None:
                    on_fisher(index, stage)
                trained = stage_config.model.model_copy(update={"init_from": str(result.model_dir)})
                fisher = fisher_information(stage_config.model_copy(update={"model": trained}),
                                            continual.fisher_samples,
                                            progress=progress)  # fmt: skip
                importance = _add_importance(importance, fisher, continual.ewc)
                save_file({k: v.contiguous() for k, v in importance.items()},
                          result.model_dir / FISHER_FILE)  # fmt: skip
            results.append(result)
            described.append({"name": stage.name, "run_id": result.run_id,
                              "model_dir": str(result.model_dir),
                              "test": str(files.get("test", files.get("validation", ""))),
                              "train_records": len(records),
                              "replayed_records": len(replayed)})  # fmt: skip
            start_from = str(result.model_dir)
            _write_sequence(sequence_dir, sequence_id, config, continual, described)
    except BaseException:
        parent.close("FAILED")
        raise
    parent.close("FINISHED")
    return SequenceResult(sequence_id, sequence_dir, results)


def _records(
    config: RunConfig, stage: ContinualStage, path: Path, where: str, task: Task
) -> tuple[list[dict[str, Any]], str]:
    """A stage file's canonical records (those with ``stage.labels`` when it lists some),
    and the format to read them back in."""
    records, report = read_records(data_file(path), source_name=where,
                                   **read_options(task, config.data))  # fmt: skip
    if stage.labels is not None:
        wanted = set(stage.labels)
        records = [record for record in records if str(record.get("label")) in wanted]
    if not records:
        kept = f" with labels {stage.labels}" if stage.labels else ""
        raise LmforgeError(f"{where}: no records{kept} in {path}")
    # alpaca rows are read as messages, so they are written back as messages
    return records, "messages" if report.format == "alpaca" else report.format


def _draw(
    buffer: list[dict[str, Any]], share: float, count: int, rng: random.Random
) -> list[dict[str, Any]]:
    """Records from ``buffer`` that make up ``share`` of a mix with ``count`` new ones."""
    if not buffer or share <= 0:
        return []
    wanted = round(share / (1 - share) * count)
    return [rng.choice(buffer) for _ in range(wanted)]


def _sample(records: list[dict[str, Any]], size: int, rng: random.Random) -> list[dict]:
    return records if len(records) <= size else rng.sample(records, size)


def _write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


def _stage_config(
    config: RunConfig, stage_dir: Path, files: dict[str, Path], fmt: str, start: str | None
) -> RunConfig:
    """The run config of one stage: its data, the model to start from, its own folder."""
    data = config.data.model_copy(update={"train": files["train"],
                                          "validation": files.get("validation"),
                                          "format": fmt, "fields": {}})  # fmt: skip
    train_cfg = config.train.model_copy(update={"continual": None})
    model = config.model.model_copy(update={"init_from": start})
    output = config.output.model_copy(update={"dir": stage_dir / "run", "register_as": None})
    return config.model_copy(update={"data": data, "train": train_cfg, "model": model,
                                     "output": output})  # fmt: skip


def fisher_information(
    config: RunConfig, samples: int, *, progress: ProgressFn | None = None
) -> dict[str, torch.Tensor]:
    """The diagonal (empirical) Fisher information of ``config``'s training data under the
    model ``config.model.init_from`` holds: the mean over ``samples`` examples of each
    trained weight's squared gradient of the example's loss, by parameter name;
    ``progress`` is told after each example."""
    task = get_task(config.task.name).configured(config)
    base = _resolve_base(config.model.ref, task) if config.model.ref else None
    tokenizer = task.load_processor(base.path if base else None)
    data = build_data(task, tokenizer, config.data, max_length=config.task.max_length)
    model = _build_model(config, task, str(base.path) if base else "", data.labels,
                         torch.device("cpu"))  # fmt: skip
    assert config.model.init_from is not None
    load_start_weights(model, config.model.init_from, task.weights_subfolder)
    model.eval()  # no dropout: the information of the model as it is
    weights = {name: p for name, p in model.named_parameters() if p.requires_grad}
    totals = {name: torch.zeros_like(p) for name, p in weights.items()}
    examples = data.train[:samples]
    for number, example in enumerate(examples):
        batch = task.collate([example], tokenizer, seed=number)
        model.zero_grad(set_to_none=True)
        loss = task.loss(model, batch) / max(task.target_count(batch), 1)
        loss.backward()
        for name, weight in weights.items():
            if weight.grad is not None:
                totals[name] += weight.grad.detach() ** 2
        if progress is not None:
            progress(number + 1, len(examples), "")
    return {name: total / max(len(examples), 1) for name, total in totals.items()}


def _add_importance(
    earlier: dict[str, torch.Tensor] | None, fisher: dict[str, torch.Tensor], strength: float
) -> dict[str, torch.Tensor]:
    """EWC's per-weight pull after one more stage: the earlier stages' plus this one's."""
    added = {name: strength * value for name, value in fisher.items()}
    if earlier is None:
        return added
    return {name: earlier[name] + value for name, value in added.items()}


def _write_sequence(
    sequence_dir: Path,
    sequence_id: str,
    config: RunConfig,
    continual: ContinualConfig,
    stages: list[dict[str, Any]],
) -> None:
    eval_task = continual.eval_task or "classification"
    content = {"sequence_id": sequence_id, "task": config.task.name, "eval_task": eval_task,
               "metric": continual.metric, "replay": continual.replay, "ewc": continual.ewc,
               "stages_planned": [s.name for s in continual.stages], "stages": stages}  # fmt: skip
    atomic_write_text(sequence_dir / CONTINUAL_SEQUENCE_FILE, json.dumps(content, indent=2) + "\n")


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name.lower()).strip("-")
