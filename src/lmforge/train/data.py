"""From the data section of a run config to encoded train/validation examples."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lmforge.config import DataConfig
from lmforge.config.schema import AuditConfig
from lmforge.data.canaries import Canaries, draw_canaries
from lmforge.data.fetch import data_file
from lmforge.data.records import read_records, shuffle_records, split_records
from lmforge.data.tabular import read_table, split_table
from lmforge.data.timeseries import cut_before_failure, read_series
from lmforge.errors import LmforgeError
from lmforge.tasks.base import EncodeOptions, Example, Task
from lmforge.train.batching import pack_examples


@dataclass
class TrainingData:
    """Encoded examples and what reading them did."""

    train: list[Example]
    validation: list[Example]
    labels: list[str]
    metrics: dict[str, float] = field(default_factory=dict)
    canaries: Canaries | None = None  # what ``audit`` put into the training examples


def read_options(task: Task, data: DataConfig) -> dict[str, Any]:
    """The keyword arguments of ``read_records`` for ``task``'s records as ``data`` describes
    them (a task that reads one format reads it without guessing)."""
    single = data.format == "auto" and len(task.formats) == 1
    return dict(format=task.formats[0] if single else data.format, fields=dict(data.fields),
                on_error=data.on_error, label_kind=task.label_kind, labels=data.labels)  # fmt: skip


def build_data(
    task: Task,
    tokenizer: Any,
    data: DataConfig,
    *,
    max_length: int,
    audit: AuditConfig | None = None,
) -> TrainingData:
    """Read, validate, split, encode (and pack) the data the ``data`` section names, in
    examples of at most ``max_length`` tokens; with ``audit``, canaries join the training
    records (never the validation ones). Nothing here trains."""
    if data.columns is not None:
        return _tabular_data(task, tokenizer, data)
    if data.series is not None:
        return _series_data(task, tokenizer, data)
    train_path, validation_path, labels = data_file(data.train_path), data.validation, data.labels
    validation_path = data_file(validation_path) if validation_path is not None else None
    read = read_options(task, data)
    records, report = read_records(train_path, source_name="data.train", **read)
    metrics = report.metrics("data/train")
    records = shuffle_records(records, data.seed)
    if validation_path is not None:
        validation, val_report = read_records(
            validation_path, source_name="data.validation", **read
        )
        metrics |= val_report.metrics("data/validation")
    elif data.val_ratio > 0:
        records, validation = split_records(records, val_ratio=data.val_ratio, seed=data.seed)
    else:
        validation = []
    if data.max_samples is not None:
        records = records[: data.max_samples]
    canaries = None
    if audit is not None:
        canaries = draw_canaries(audit, "messages" if "messages" in records[0] else "text")
        records = shuffle_records(records + canaries.records(), data.seed)
    if task.label_kind == "class":
        labels = labels or sorted({str(record["label"]) for record in records})
        if len(labels) < 2:
            raise LmforgeError(
                f"data.train: {train_path} has only the label {labels!r}; classification needs "
                "at least two classes."
            )
        unknown = sorted({r["label"] for r in validation} - set(labels))
        if unknown:
            raise LmforgeError(
                f"data.validation: labels {unknown} never occur in data.train (labels: {labels}); "
                "add training examples for them or set data.labels."
            )
    options = EncodeOptions(
        max_length=max_length,
        overlong=data.overlong,
        packing=data.packing,
        labels=tuple(labels or ()),
    )
    train, stats = task.encode(records, tokenizer, options)
    metrics |= stats.metrics("data/train")
    if not train:
        raise LmforgeError(
            f"data.train: no training examples left from {train_path} after encoding "
            f"({stats}); check task.max_length and data.overlong."
        )
    valid, val_stats = task.encode(validation, tokenizer, options)
    metrics |= val_stats.metrics("data/validation")
    if data.packing:
        if not task.packable:
            raise LmforgeError(f"data.packing: task {task.name!r} cannot pack examples")
        before = len(train)
        train = pack_examples(train, max_length)
        metrics["data/train/packed_sequences"] = float(len(train))
        metrics["data/train/packing_ratio"] = before / max(len(train), 1)
    if canaries is not None:
        metrics["data/train/canary_records"] = float(len(canaries.secrets) * canaries.repeats)
    return TrainingData(train, valid, list(labels or ()), metrics, canaries)


def _tabular_data(task: Task, processor: Any, data: DataConfig) -> TrainingData:
    """A table's rows as examples: split (by time when ``data.split`` says so), the
    processor fitted on the training rows alone (unless it came fitted with model.ref)."""
    assert data.columns is not None
    table = read_table(data_file(data.train_path), data.columns, source_name="data.train")
    if data.validation is not None:
        validation = read_table(data_file(data.validation), data.columns,
                                source_name="data.validation")  # fmt: skip
    else:
        time = data.columns.time
        by_time = data.split == "time" or (data.split == "auto" and time is not None)
        table, validation = split_table(table, val_ratio=data.val_ratio, seed=data.seed,
                                        time_column=time if by_time else None)  # fmt: skip
    if data.max_samples is not None and data.max_samples < len(table):
        rng = np.random.default_rng(data.seed)
        table = table.take(np.sort(rng.choice(len(table), data.max_samples, replace=False)))
    if not processor.fitted:
        processor.fit(table)
    options = EncodeOptions(max_length=1, labels=tuple(processor.classes))
    train, _ = task.encode(table, processor, options)
    valid, _ = task.encode(validation, processor, options) if len(validation) else ([], None)
    metrics = {"data/train/rows": float(len(train)),
               "data/train/positives": float(sum(ex["label"] for ex in train)),
               "data/validation/rows": float(len(valid)),
               "data/validation/positives": float(sum(ex["label"] for ex in valid))}  # fmt: skip
    return TrainingData(train, valid, list(processor.classes), metrics)


def _series_data(task: Task, processor: Any, data: DataConfig) -> TrainingData:
    """Sensor windows as examples. Validation: ``data.validation`` (a C-MAPSS folder's test
    units, or a long table with a RUL column), or ``data.val_ratio`` of the training
    entities held out and cut at a random reading before failure, as C-MAPSS' test units
    are; either is scored on each entity's last window. The processor is fitted on the
    training rows alone (unless it came fitted with model.ref)."""
    columns = data.series
    assert columns is not None
    train = read_series(data_file(data.train_path), columns, source_name="data.train")
    validation = None
    if data.validation is not None:
        validation = read_series(data_file(data.validation), columns, split="test",
                                 source_name="data.validation")  # fmt: skip
    elif data.val_ratio > 0:
        entities = np.unique(train.entity)
        count = max(1, round(len(entities) * data.val_ratio))
        if count >= len(entities):
            raise LmforgeError(f"data.val_ratio: {data.val_ratio} of {len(entities)} entities "
                               "leaves none to train on; lower it")  # fmt: skip
        held = np.random.default_rng(data.seed).choice(entities, count, replace=False)
        validation = cut_before_failure(train.take_entities(held), data.seed)
        train = train.take_entities(np.setdiff1d(entities, held))
    if not processor.fitted:
        processor.fit(train)
    options = EncodeOptions(max_length=1)
    windows = processor.windows(train)
    if data.max_samples is not None and data.max_samples < len(windows):
        keep = np.sort(np.random.default_rng(data.seed).choice(len(windows), data.max_samples,
                                                               replace=False))  # fmt: skip
        windows = windows.take(keep)
    examples, _ = task.encode(windows, processor, options)
    valid: list[Example] = []
    if validation is not None:
        valid, _ = task.encode(processor.windows(validation, last_only=True), processor, options)
    metrics = {"data/train/windows": float(len(examples)),
               "data/train/entities": float(len(np.unique(train.entity))),
               "data/validation/entities": float(len(valid))}  # fmt: skip
    return TrainingData(examples, valid, [], metrics)
