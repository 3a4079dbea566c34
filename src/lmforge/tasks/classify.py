"""Sequence classification and regression on an encoder or decoder backbone."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from lmforge.config import RunConfig
from lmforge.config.tasks import ClassifySettings, RegressSettings
from lmforge.errors import LmforgeError
from lmforge.tasks.base import (
    Batch,
    EncodeOptions,
    EncodeStats,
    Example,
    fit_length,
    load_weights,
    pad,
    text_tokenizer,
)


def _tokenize(
    records: Iterable[dict], tokenizer: Any, options: EncodeOptions, label: Any
) -> tuple[list[Example], EncodeStats]:
    stats = EncodeStats()
    examples = []
    for record in records:
        ids = fit_length(list(tokenizer(record["text"])["input_ids"]), options, stats)
        if ids is not None:
            examples.append({"input_ids": ids, "label": label(record["label"])})
    stats.examples = len(examples)
    return examples, stats


def _collate(examples: Sequence[Example], tokenizer: Any, dtype: torch.dtype) -> Batch:
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return {
        "input_ids": pad([ex["input_ids"] for ex in examples], pad_id),
        "attention_mask": pad([[1] * len(ex["input_ids"]) for ex in examples], 0),
        "label": torch.tensor([ex["label"] for ex in examples], dtype=dtype),
    }


def _logits(model: Any, batch: Batch) -> torch.Tensor:
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


def _build(path: str, dtype: torch.dtype, pretrained: bool, **config: Any) -> Any:
    model_config = AutoConfig.from_pretrained(path, **config)
    if model_config.pad_token_id is None:  # decoder backbones: find the last real token
        tokenizer = AutoTokenizer.from_pretrained(path)
        model_config.pad_token_id = tokenizer.pad_token_id or tokenizer.eos_token_id
    return load_weights(
        AutoModelForSequenceClassification,
        path,
        dtype=dtype,
        pretrained=pretrained,
        config=model_config,
    )


class SequenceHeadTask:
    """What classify and regress share: labeled text and a head on the sequence."""

    formats = ClassifySettings.formats
    model_kinds = ("encoder", "causal-lm", "classifier")
    packable = False
    peft_task_type = "SEQ_CLS"  # peft keeps the classifier head trainable
    head_modules: tuple[str, ...] = ()
    frozen_modules: tuple[str, ...] = ()
    merge_on_save = False
    weights_subfolder = ""
    load_processor = staticmethod(text_tokenizer)


class ClassifyTask(SequenceHeadTask):
    """Text classification: labels come from the data (or data.labels); reports
    accuracy, macro-F1 and the confusion matrix (rows: true label, columns: predicted)."""

    name = "classify"
    settings = ClassifySettings
    label_kind = "class"
    num_labels: int | None = None

    def configured(self, config: RunConfig) -> ClassifyTask:
        assert isinstance(config.task, ClassifySettings)
        self.num_labels = config.task.num_labels
        return self

    def build_model(
        self, path: str, *, labels: Sequence[str], dtype: torch.dtype, pretrained: bool = True
    ) -> Any:
        if self.num_labels is not None and len(labels) != self.num_labels:
            raise LmforgeError(
                f"task.num_labels: {self.num_labels}, but the training data has "
                f"{len(labels)} labels ({', '.join(labels)}); set it to {len(labels)}, "
                "or leave it out to take the labels from the data"
            )
        return _build(
            path,
            dtype,
            pretrained,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: index for index, label in enumerate(labels)},
        )

    def encode(
        self, records: Iterable[dict], tokenizer: Any, options: EncodeOptions
    ) -> tuple[list[Example], EncodeStats]:
        index = {label: i for i, label in enumerate(options.labels)}
        return _tokenize(records, tokenizer, options, index.__getitem__)

    def collate(self, examples: Sequence[Example], tokenizer: Any, seed: int) -> Batch:
        return _collate(examples, tokenizer, torch.long)

    def target_count(self, batch: Batch) -> int:
        return len(batch["label"])

    def loss(self, model: Any, batch: Batch) -> torch.Tensor:
        return F.cross_entropy(_logits(model, batch).float(), batch["label"], reduction="sum")

    def evaluate(self, model: Any, batches: Iterable[Batch]) -> dict[str, Any]:
        total, truths, predictions = 0.0, [], []
        with torch.no_grad():
            for batch in batches:
                logits = _logits(model, batch).float()
                total += float(F.cross_entropy(logits, batch["label"], reduction="sum"))
                truths += batch["label"].tolist()
                predictions += logits.argmax(-1).tolist()
        classes = int(getattr(getattr(model, "config", None), "num_labels", 0)) or (
            max(truths + predictions) + 1
        )
        return {
            "loss": total / max(len(truths), 1),
            **classification_metrics(truths, predictions, classes),
        }


def classification_metrics(
    truths: list[int], predictions: list[int], classes: int
) -> dict[str, Any]:
    """Accuracy, macro-F1 and the confusion matrix (rows: true, columns: predicted)."""
    confusion = [[0] * classes for _ in range(classes)]
    for truth, prediction in zip(truths, predictions, strict=True):
        confusion[truth][prediction] += 1
    f1s = []
    for k in range(classes):
        true_positive = confusion[k][k]
        predicted = sum(row[k] for row in confusion)
        actual = sum(confusion[k])
        precision = true_positive / predicted if predicted else 0.0
        recall = true_positive / actual if actual else 0.0
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    correct = sum(confusion[k][k] for k in range(classes))
    return {
        "accuracy": correct / max(len(truths), 1),
        "macro_f1": sum(f1s) / classes,
        "confusion_matrix": confusion,
    }


class RegressTask(SequenceHeadTask):
    """Scalar regression (property prediction): MSE loss; RMSE, MAE and R2."""

    name = "regress"
    settings = RegressSettings
    label_kind = "float"

    def configured(self, config: RunConfig) -> RegressTask:
        return self

    def build_model(
        self, path: str, *, labels: Sequence[str], dtype: torch.dtype, pretrained: bool = True
    ) -> Any:
        return _build(path, dtype, pretrained, num_labels=1, problem_type="regression")

    def encode(
        self, records: Iterable[dict], tokenizer: Any, options: EncodeOptions
    ) -> tuple[list[Example], EncodeStats]:
        return _tokenize(records, tokenizer, options, float)

    def collate(self, examples: Sequence[Example], tokenizer: Any, seed: int) -> Batch:
        return _collate(examples, tokenizer, torch.float32)

    def target_count(self, batch: Batch) -> int:
        return len(batch["label"])

    def loss(self, model: Any, batch: Batch) -> torch.Tensor:
        predictions = _logits(model, batch).float().squeeze(-1)  # (B,)
        return F.mse_loss(predictions, batch["label"], reduction="sum")

    def evaluate(self, model: Any, batches: Iterable[Batch]) -> dict[str, Any]:
        truths, predictions = [], []
        with torch.no_grad():
            for batch in batches:
                predictions += _logits(model, batch).float().squeeze(-1).tolist()
                truths += batch["label"].tolist()
        return regression_metrics(truths, predictions)


def regression_metrics(truths: list[float], predictions: list[float]) -> dict[str, float]:
    """RMSE, MAE and R2 (1 - residual / total sum of squares)."""
    count = max(len(truths), 1)
    errors = [p - t for p, t in zip(predictions, truths, strict=True)]
    mean = sum(truths) / count
    total = sum((t - mean) ** 2 for t in truths)
    residual = sum(e * e for e in errors)
    return {
        "loss": residual / count,
        "rmse": math.sqrt(residual / count),
        "mae": sum(abs(e) for e in errors) / count,
        "r2": 1.0 - residual / total if total > 0 else 0.0,
    }
