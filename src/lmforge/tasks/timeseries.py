"""Remaining useful life from sensor windows: a Transformer trained by the one training loop
(``timeseries``), and the two baselines fitted in one call on the same windows: ridge
regression on the flattened window (``timeseries-ridge``) and LightGBM on window statistics
(``timeseries-lightgbm``).

All three read ``data.series`` through a ``SeriesProcessor`` fitted on the training rows
only and saved with the model (``lmforge.data.timeseries``). The Transformer learns the
capped RUL (squared error, in units of the cap) and, beside it, whether the unit fails
within ``data.series.horizon`` cycles (cross-entropy, weighted by ``task.failure_weight``).
Validation scores each validation entity's last window: RMSE, MAE and the NASA score
(``lmforge.stats.rul_scores``) against the capped true RUL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lmforge.config import RunConfig
from lmforge.config.tasks import (
    SeriesLightGBMSettings,
    SeriesRidgeSettings,
    SeriesTaskSettings,
    TimeseriesSettings,
)
from lmforge.data.timeseries import SeriesProcessor, Windows
from lmforge.errors import LmforgeError
from lmforge.hub.resolve import TIMESERIES
from lmforge.hub.tabular import import_lightgbm
from lmforge.hub.timeseries import (
    LightGBMRUL,
    RidgeRUL,
    RULTransformer,
    SeriesShape,
    window_statistics,
)
from lmforge.progress import ProgressFn
from lmforge.stats import binary_scores, rul_scores
from lmforge.tasks.base import Batch, EncodeOptions, EncodeStats, Example


class _SeriesTask:
    """What the three RUL tasks share: the processor, encoding, batching and metrics."""

    formats = SeriesTaskSettings.formats
    label_kind = None
    model_kinds = (TIMESERIES,)
    packable = False
    peft_task_type = None
    head_modules: tuple[str, ...] = ()
    frozen_modules: tuple[str, ...] = ()
    merge_on_save = False
    weights_subfolder = ""

    def __init__(self) -> None:
        self.columns: Any = None
        self.processor: SeriesProcessor | None = None

    def _configure(self, config: RunConfig, name: str) -> None:
        self.columns = config.data.series
        if config.method.name != "full":
            raise LmforgeError(f"method.name: {config.method.name}: task {name} trains every "
                               "weight of a small model; use method.name full")  # fmt: skip
        if config.train.strategy in {"fsdp", "deepspeed"}:
            raise LmforgeError(f"train.strategy: {config.train.strategy} shards large models; "
                               "a RUL model fits every process whole, so use ddp")  # fmt: skip

    def load_processor(self, path: str | Path | None) -> SeriesProcessor:
        """A new processor for ``data.series`` (fitted when the training rows are read), or
        the fitted one saved with ``model.ref``."""
        if path is None:
            self.processor = SeriesProcessor(self.columns)
            return self.processor
        processor = SeriesProcessor.from_pretrained(path)
        if self.columns is not None and processor.columns != self.columns:
            raise LmforgeError(f"data.series: {self.columns.model_dump()} differs from the "
                               f"series model.ref {path} was trained on "
                               f"({processor.columns.model_dump()}); use those")  # fmt: skip
        self.processor = processor
        return processor

    def encode(
        self, records: Any, tokenizer: Any, options: EncodeOptions
    ) -> tuple[list[Example], EncodeStats]:
        """One example per window of ``records`` (``Windows``)."""
        windows: Windows = records
        examples: list[Example] = [
            {"inputs": windows.inputs[i], "rul": float(windows.rul[i]),
             "failure": int(windows.failure[i])}
            for i in range(len(windows))
        ]  # fmt: skip
        return examples, EncodeStats(examples=len(examples))

    def collate(self, examples: Sequence[Example], tokenizer: Any, seed: int) -> Batch:
        return {
            "inputs": torch.from_numpy(np.stack([ex["inputs"] for ex in examples])),  # (B, W, K)
            "rul": torch.tensor([ex["rul"] for ex in examples], dtype=torch.float32),
            "failure": torch.tensor([ex["failure"] for ex in examples], dtype=torch.float32),
            # what the loop counts as tokens (its throughput): one per time step
            "token_mask": torch.ones(len(examples), len(examples[0]["inputs"]), dtype=torch.long),
        }

    def target_count(self, batch: Batch) -> int:
        return len(batch["rul"])

    def scores(self, rul: np.ndarray, predicted: np.ndarray,
               failure: np.ndarray, probability: np.ndarray | None) -> dict[str, Any]:  # fmt: skip
        """The validation metrics; failure AUPRC when the model predicts failure and both
        outcomes occur."""
        metrics: dict[str, Any] = {**rul_scores(rul, predicted), "units": float(len(rul))}
        if probability is not None and 0 < failure.sum() < len(failure):
            binary = binary_scores(failure, probability, at_fpr=0.1, at_recall=0.8)
            metrics |= {"failure_auprc": binary["auprc"], "failure_roc_auc": binary["roc_auc"]}
        return metrics


class TimeseriesTask(_SeriesTask):
    """The ``timeseries`` task: a Transformer over sensor windows, trained by the one loop."""

    name = "timeseries"
    settings = TimeseriesSettings

    def __init__(self) -> None:
        super().__init__()
        self.options = TimeseriesSettings(name="timeseries")

    def configured(self, config: RunConfig) -> TimeseriesTask:
        assert isinstance(config.task, TimeseriesSettings)
        self.options = config.task
        self._configure(config, self.name)
        return self

    def build_model(
        self, path: str, *, labels: Sequence[str], dtype: torch.dtype, pretrained: bool = True
    ) -> Any:
        if path and pretrained:
            return RULTransformer.from_pretrained(path).to(dtype).train()
        if self.processor is None or not self.processor.fitted:
            raise LmforgeError("task timeseries: the processor is fitted when the training "
                               "data is read, before the model is built")  # fmt: skip
        o, series = self.options, self.processor.columns
        shape = SeriesShape(features=len(self.processor.sensors), window=series.window,
                            d_token=o.d_model, tokens=o.tokens, layers=o.layers, heads=o.heads,
                            ffn_factor=o.ffn_factor, attention_dropout=o.dropout,
                            ffn_dropout=o.dropout, positions=o.positions, pooling=o.pooling,
                            patch=o.patch, rul_cap=float(series.rul_cap))  # fmt: skip
        return RULTransformer(shape).to(dtype)

    def loss(self, model: Any, batch: Batch) -> torch.Tensor:
        """Squared RUL error in units of the cap, plus the weighted failure cross-entropy,
        summed over the batch's windows (readings jittered by ``task.jitter``)."""
        inputs = batch["inputs"]
        if self.options.jitter > 0:
            inputs = inputs + self.options.jitter * torch.randn_like(inputs)
        rul, logits = model(inputs)
        cap = float(self.columns.rul_cap) if self.columns is not None else 1.0
        squared = ((rul.float() - batch["rul"]) / cap) ** 2
        failure = F.binary_cross_entropy_with_logits(logits.float(), batch["failure"],
                                                     reduction="none")  # fmt: skip
        return (squared + self.options.failure_weight * failure).sum()

    def evaluate(self, model: Any, batches: Iterable[Batch]) -> dict[str, Any]:
        truths, predictions, failures, probabilities = [], [], [], []
        with torch.no_grad():
            for batch in batches:
                rul, logits = model(batch["inputs"])
                cap = float(self.columns.rul_cap) if self.columns is not None else np.inf
                predictions.append(rul.float().clamp(0, cap).cpu().numpy())
                probabilities.append(torch.sigmoid(logits.float()).cpu().numpy())
                truths.append(batch["rul"].numpy())
                failures.append(batch["failure"].numpy())
        return self.scores(np.concatenate(truths), np.concatenate(predictions),
                           np.concatenate(failures), np.concatenate(probabilities))  # fmt: skip


class _FittedSeriesTask(_SeriesTask):
    """A baseline fitted in one call on all the training windows (``fit``), not trained
    step by step; it encodes, collates and evaluates as the Transformer's task does."""

    name: str
    options: SeriesTaskSettings

    def configured(self, config: RunConfig) -> Any:
        assert isinstance(config.task, type(self.options))
        self.options = config.task
        self.seed = config.train.seed
        self._configure(config, self.name)
        if config.model.ref is not None:
            raise LmforgeError(f"model.ref: task {self.name} is fitted from the data; remove "
                               "model.ref")  # fmt: skip
        return self

    def build_model(self, path: str, **_: Any) -> Any:
        raise LmforgeError(f"task {self.name} is fitted with fit(), not built for the loop")

    def evaluate(self, model: Any, batches: Iterable[Batch]) -> dict[str, Any]:
        truths, predictions, failures = [], [], []
        cap = float(self.columns.rul_cap) if self.columns is not None else np.inf
        for batch in batches:
            predictions.append(np.clip(model.predict(batch["inputs"].numpy()), 0, cap))
            truths.append(batch["rul"].numpy())
            failures.append(batch["failure"].numpy())
        return self.scores(np.concatenate(truths), np.concatenate(predictions),
                           np.concatenate(failures), None)  # fmt: skip


def _arrays(examples: Sequence[Example]) -> tuple[np.ndarray, np.ndarray]:
    return (np.stack([ex["inputs"] for ex in examples]),
            np.array([ex["rul"] for ex in examples]))  # fmt: skip


class RidgeTask(_FittedSeriesTask):
    """The ``timeseries-ridge`` task: ridge regression on the flattened window."""

    name = "timeseries-ridge"
    settings = SeriesRidgeSettings

    def __init__(self) -> None:
        super().__init__()
        self.options: SeriesRidgeSettings = SeriesRidgeSettings(name="timeseries-ridge")
        self.seed = 0

    def fit(self, train: Sequence[Example], validation: Sequence[Example],
            progress: ProgressFn | None) -> RidgeRUL:  # fmt: skip
        inputs, rul = _arrays(train)
        model = RidgeRUL.fit(inputs, rul, self.options.alpha)
        if progress is not None:
            progress(1, 1, "fitted")
        return model


class LightGBMSeriesTask(_FittedSeriesTask):
    """The ``timeseries-lightgbm`` task: LightGBM on each sensor's window mean, slope and
    last value, stopping early on validation RMSE."""

    name = "timeseries-lightgbm"
    settings = SeriesLightGBMSettings

    def __init__(self) -> None:
        super().__init__()
        self.options: SeriesLightGBMSettings = SeriesLightGBMSettings(name="timeseries-lightgbm")
        self.seed = 0

    def fit(self, train: Sequence[Example], validation: Sequence[Example],
            progress: ProgressFn | None) -> LightGBMRUL:  # fmt: skip
        lightgbm = import_lightgbm()
        o = self.options
        params: dict[str, Any] = {
            "objective": "regression",
            "learning_rate": o.learning_rate,
            "num_leaves": o.num_leaves,
            "min_child_samples": o.min_child_samples,
            "metric": "rmse",
            "num_threads": o.threads or torch.get_num_threads(),
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        }
        inputs, rul = _arrays(train)
        train_set = lightgbm.Dataset(window_statistics(inputs), rul, free_raw_data=False)
        callbacks: list[Any] = []
        valid_sets = []
        if validation:
            valid_inputs, valid_rul = _arrays(validation)
            valid_sets = [lightgbm.Dataset(window_statistics(valid_inputs), valid_rul,
                                           reference=train_set)]  # fmt: skip
            if o.early_stopping:
                callbacks.append(lightgbm.early_stopping(o.early_stopping, verbose=False))
        if progress is not None:
            callbacks.append(lambda env: progress(env.iteration + 1, o.trees, ""))
        booster = lightgbm.train(params, train_set, num_boost_round=o.trees,
                                 valid_sets=valid_sets, callbacks=callbacks)  # fmt: skip
        if booster.best_iteration > 0:
            booster = booster.model_from_string(booster.model_to_string(
                num_iteration=booster.best_iteration))  # fmt: skip
        return LightGBMRUL(booster, {k: v for k, v in params.items() if k != "verbosity"})
