"""Binary classification of table rows: an FT-Transformer trained by the one training loop
(``tabular``), and LightGBM's gradient-boosted trees fitted on the same rows (``lightgbm``).

Both read the table that ``data.columns`` describes (``lmforge.data.tabular``), through a
``TabularProcessor`` fitted on the training split only and saved with the model. Class
imbalance: each positive row weighs ``task.positive_weight`` in the loss (by default
negatives / positives of the training rows), with plain or focal cross-entropy.

Validation reports AUPRC (the primary metric when positives are rare), ROC AUC, recall at
``task.at_fpr``, precision at ``task.at_recall``, and the threshold that minimises
``missed_cost`` x misses + ``false_alarm_cost`` x false alarms; that threshold is kept in
the processor's decision, so it is saved with the model and serving decides with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lmforge.config import RunConfig
from lmforge.config.tasks import LightGBMSettings, TabularSettings, TabularTaskSettings
from lmforge.data.tabular import Decision, TabularProcessor
from lmforge.errors import LmforgeError
from lmforge.hub.resolve import TABULAR
from lmforge.hub.tabular import (
    FTShape,
    FTTransformer,
    LightGBMModel,
    import_lightgbm,
    tree_inputs,
)
from lmforge.progress import ProgressFn
from lmforge.stats import binary_scores, cost_optimal_threshold
from lmforge.tasks.base import Batch, EncodeOptions, EncodeStats, Example


class _TableTask:
    """What both tabular tasks share: the processor, encoding, batching and metrics."""

    formats = TabularTaskSettings.formats
    label_kind = "class"
    model_kinds = (TABULAR,)
    packable = False
    peft_task_type = None
    head_modules: tuple[str, ...] = ()
    frozen_modules: tuple[str, ...] = ()
    merge_on_save = False
    weights_subfolder = ""
    scaling = "none"

    def __init__(self, options: TabularTaskSettings) -> None:
        self.options = options
        self.columns: Any = None
        self.processor: TabularProcessor | None = None

    def _configure(self, config: RunConfig) -> None:
        self.columns = config.data.columns
        if config.method.name != "full":
            raise LmforgeError(
                f"method.name: {config.method.name}: task {self.options.name} trains every "
                "weight of a small model; use method.name full"
            )
        if config.train.strategy in {"fsdp", "deepspeed"}:
            raise LmforgeError(
                f"train.strategy: {config.train.strategy} shards large models; a tabular "
                "model fits every process whole, so use strategy ddp (or auto)"
            )

    def load_processor(self, path: str | Path | None) -> TabularProcessor:
        """A new processor for ``data.columns`` (fitted on the training split when the data
        is read), or the fitted one saved with ``model.ref``."""
        if path is None:
            o = self.options
            decision = Decision(0.5, o.missed_cost, o.false_alarm_cost, "default", o.at_fpr,
                                o.at_recall)  # until validation chooses one  # fmt: skip
            self.processor = TabularProcessor(self.columns, scaling=self.scaling,
                                              decision=decision)  # fmt: skip
            return self.processor
        processor = TabularProcessor.from_pretrained(path)
        if processor.scaling != self.scaling:
            raise LmforgeError(
                f"task.scaling: {self.scaling!r}, but model.ref {path} was trained with "
                f"{processor.scaling!r} scaling, which it keeps; set {processor.scaling!r}"
            )
        if self.columns is not None and processor.columns != self.columns:
            raise LmforgeError(
                f"data.columns: {self.columns.model_dump()} differs from the columns model.ref "
                f"{path} was trained on ({processor.columns.model_dump()}); use those"
            )
        self.processor = processor
        return processor

    @property
    def positive_weight(self) -> float:
        """``task.positive_weight``, or negatives / positives of the training rows."""
        if self.options.positive_weight is not None:
            return self.options.positive_weight
        negatives, positives = self._processor().class_counts
        return negatives / max(positives, 1)

    def _processor(self) -> TabularProcessor:
        if self.processor is None or not self.processor.fitted:
            raise LmforgeError(f"task {self.options.name}: the processor is fitted when the "
                               "training data is read, before the model is built")  # fmt: skip
        return self.processor

    # --- data ----------------------------------------------------------------------

    def encode(
        self, records: Any, tokenizer: Any, options: EncodeOptions
    ) -> tuple[list[Example], EncodeStats]:
        """One example per row of the table ``records``."""
        processor: TabularProcessor = tokenizer
        numeric = processor.numeric_matrix(records)  # (N, Fn)
        codes = processor.category_codes(records)  # (N, Fc)
        labels, weights = processor.labels(records), processor.weights(records)
        examples: list[Example] = [
            {"input_ids": codes[i], "numeric": numeric[i], "label": int(labels[i]),
             "weight": float(weights[i])}
            for i in range(len(labels))
        ]  # fmt: skip
        return examples, EncodeStats(examples=len(examples))

    def collate(self, examples: Sequence[Example], tokenizer: Any, seed: int) -> Batch:
        numeric = torch.from_numpy(np.stack([ex["numeric"] for ex in examples]))  # (B, Fn)
        codes = torch.from_numpy(np.stack([ex["input_ids"] for ex in examples]))  # (B, Fc)
        features = numeric.shape[1] + codes.shape[1]
        return {
            "numeric": numeric,
            "input_ids": codes,
            "label": torch.tensor([ex["label"] for ex in examples], dtype=torch.float32),
            "weight": torch.tensor([ex["weight"] for ex in examples], dtype=torch.float32),
            # the tokens the Transformer reads: one per feature, plus [CLS]
            "token_mask": torch.ones(len(examples), features + 1, dtype=torch.long),
        }

    def target_count(self, batch: Batch) -> int:
        return len(batch["label"])

    # --- metrics -------------------------------------------------------------------

    def scores(self, truths: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
        """The validation metrics, and the cost-optimal threshold kept for saving."""
        o = self.options
        metrics: dict[str, Any] = binary_scores(truths, probabilities, at_fpr=o.at_fpr,
                                                at_recall=o.at_recall)  # fmt: skip
        threshold, cost = cost_optimal_threshold(
            truths, probabilities, missed_cost=o.missed_cost, false_alarm_cost=o.false_alarm_cost
        )
        metrics |= {"threshold": threshold, "cost_per_row": cost,
                    "positives": float(truths.sum()), "rows": float(len(truths))}  # fmt: skip
        if self.processor is not None:
            self.processor.decision = Decision(threshold, o.missed_cost, o.false_alarm_cost,
                                               "validation", o.at_fpr, o.at_recall)  # fmt: skip
        return metrics


class TabularTask(_TableTask):
    """The ``tabular`` task: an FT-Transformer trained by the one loop."""

    name = "tabular"
    settings = TabularSettings

    def __init__(self) -> None:
        super().__init__(TabularSettings(name="tabular"))
        self.options: TabularSettings

    def configured(self, config: RunConfig) -> TabularTask:
        assert isinstance(config.task, TabularSettings)
        self.options = config.task
        self.scaling = config.task.scaling
        self._configure(config)
        return self

    def build_model(
        self, path: str, *, labels: Sequence[str], dtype: torch.dtype, pretrained: bool = True
    ) -> Any:
        if path and pretrained:
            return FTTransformer.from_pretrained(path).to(dtype).train()
        processor = self._processor()
        o = self.options
        shape = FTShape(
            numeric=len(processor.numeric),
            cardinalities=tuple(processor.cardinalities),
            d_token=o.d_token,
            layers=o.layers,
            heads=o.heads,
            ffn_factor=o.ffn_factor,
            attention_dropout=o.dropout,
            ffn_dropout=o.dropout,
        )
        return FTTransformer(shape).to(dtype)

    def loss(self, model: Any, batch: Batch) -> torch.Tensor:
        """Weighted (or focal) binary cross-entropy, summed over the batch's rows."""
        logits = model(batch["numeric"], batch["input_ids"]).float()  # (B,)
        truth = batch["label"]
        weight = batch["weight"] * torch.where(truth > 0, self.positive_weight, 1.0)
        losses = F.binary_cross_entropy_with_logits(logits, truth, reduction="none")
        if self.options.loss == "focal":
            right = torch.exp(-losses)  # the probability given to the true class
            losses = losses * (1 - right) ** self.options.focal_gamma
        return (losses * weight).sum()

    def evaluate(self, model: Any, batches: Iterable[Batch]) -> dict[str, Any]:
        truths, probabilities, total = [], [], 0.0
        with torch.no_grad():
            for batch in batches:
                logits = model(batch["numeric"], batch["input_ids"]).float()
                total += float(F.binary_cross_entropy_with_logits(
                    logits, batch["label"], reduction="sum"))  # fmt: skip
                probabilities.append(torch.sigmoid(logits).cpu().numpy())
                truths.append(batch["label"].cpu().numpy())
        truth, probability = np.concatenate(truths), np.concatenate(probabilities)
        return {"loss": total / max(len(truth), 1), **self.scores(truth, probability)}


class LightGBMTask(_TableTask):
    """The ``lightgbm`` task: gradient-boosted trees, fitted in one call (``fit``) instead
    of the training loop's steps."""

    name = "lightgbm"
    settings = LightGBMSettings

    def __init__(self) -> None:
        super().__init__(LightGBMSettings(name="lightgbm"))
        self.options: LightGBMSettings
        self.seed = 0

    def configured(self, config: RunConfig) -> LightGBMTask:
        assert isinstance(config.task, LightGBMSettings)
        self.options = config.task
        self.seed = config.train.seed
        self._configure(config)
        if config.model.ref is not None:
            raise LmforgeError(
                "model.ref: task lightgbm grows its trees from the data; remove model.ref"
            )
        return self

    def build_model(self, path: str, **_: Any) -> Any:
        raise LmforgeError("task lightgbm is fitted with fit(), not built for the training loop")

    def fit(
        self, train: Sequence[Example], validation: Sequence[Example], progress: ProgressFn | None
    ) -> LightGBMModel:
        """Grow the trees on ``train``, stopping early on ``validation``'s AUPRC."""
        lightgbm = import_lightgbm()
        o = self.options
        params: dict[str, Any] = {
            "objective": "binary",
            "learning_rate": o.learning_rate,
            "num_leaves": o.num_leaves,
            "min_child_samples": o.min_child_samples,
            "feature_fraction": o.feature_fraction,
            "metric": "average_precision",
            "num_threads": o.threads or torch.get_num_threads(),
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        }
        processor = self._processor()
        categorical = list(range(len(processor.numeric), len(processor.features)))

        def dataset(examples: Sequence[Example], reference: Any = None) -> Any:
            truth = np.array([ex["label"] for ex in examples])
            weight = np.array([ex["weight"] for ex in examples])
            if reference is None:  # training rows; validation scores rows as they come
                weight = weight * np.where(truth > 0, self.positive_weight, 1.0)
            return lightgbm.Dataset(_tree_matrix(examples), truth, weight=weight,
                                    categorical_feature=categorical, reference=reference,
                                    free_raw_data=False)  # fmt: skip

        train_set = dataset(train)
        callbacks = []
        valid_sets = []
        if validation:
            valid_sets = [dataset(validation, reference=train_set)]
            if o.early_stopping:
                callbacks.append(lightgbm.early_stopping(o.early_stopping, verbose=False))
        if progress is not None:
            callbacks.append(lambda env: progress(env.iteration + 1, o.trees, _last_score(env)))
        booster = lightgbm.train(params, train_set, num_boost_round=o.trees,
                                 valid_sets=valid_sets, callbacks=callbacks)  # fmt: skip
        if booster.best_iteration > 0:
            booster = booster.model_from_string(booster.model_to_string(
                num_iteration=booster.best_iteration))  # fmt: skip
        return LightGBMModel(booster, {k: v for k, v in params.items() if k != "verbosity"})

    def evaluate(self, model: Any, batches: Iterable[Batch]) -> dict[str, Any]:
        truths, probabilities = [], []
        for batch in batches:
            inputs = tree_inputs(batch["numeric"].numpy(), batch["input_ids"].numpy())
            probabilities.append(np.asarray(model.booster.predict(inputs)))
            truths.append(batch["label"].numpy())
        truth, probability = np.concatenate(truths), np.concatenate(probabilities)
        clipped = np.clip(probability, 1e-7, 1 - 1e-7)
        loss = -np.mean(truth * np.log(clipped) + (1 - truth) * np.log(1 - clipped))
        return {"loss": float(loss), "trees": float(model.booster.num_trees()),
                **self.scores(truth, probability)}  # fmt: skip


def _tree_matrix(examples: Sequence[Example]) -> np.ndarray:
    return tree_inputs(np.stack([ex["numeric"] for ex in examples]),
                       np.stack([ex["input_ids"] for ex in examples]))  # fmt: skip


def _last_score(env: Any) -> str:
    results = env.evaluation_result_list
    return f"validation AUPRC {results[-1][2]:.4f}" if results else ""
