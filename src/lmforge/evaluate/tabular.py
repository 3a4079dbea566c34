"""The ``tabular-classification`` evaluation: a tabular model (task ``tabular`` or
``lightgbm``) scoring every row of a CSV or Parquet file with the columns it was trained on.

Each row of the per-example table holds the true class (``label``, 1 for the positive
one), the model's ``score`` (the positive class's probability), whether the threshold saved
with the model flags it, and the two costs that threshold was chosen with. The run-level
metrics are set-level ones (AUPRC, ROC AUC, recall at a false-positive rate, precision at
a recall: ``lmforge.stats.binary_scores``), the mean cost per row at the saved threshold,
and the threshold that would have been cheapest on these rows (``--save-threshold`` saves it
with the model).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from lmforge.data.fetch import data_file
from lmforge.data.tabular import Decision, read_table
from lmforge.errors import LmforgeError
from lmforge.hub.tabular import TabularModel, load_tabular, resolve_tabular
from lmforge.progress import ProgressFn

_BATCH = 4096


def tabular_rows(ref: str, data: Path, progress: ProgressFn | None) -> list[dict[str, Any]]:
    """One row per table row: true class, score, the saved threshold's decision, costs."""
    model = load_tabular(resolve_tabular(ref).path)
    processor = model.processor
    table = read_table(data, processor.trained_columns, source_name="data")
    truths = processor.labels(table)
    numeric, codes = model.inputs(table)
    scores = np.empty(len(table))
    for start in range(0, len(table), _BATCH):
        end = start + _BATCH
        scores[start:end] = model.probabilities(numeric[start:end], codes[start:end])
        if progress is not None:
            progress(min(end, len(table)), len(table), "rows")
    decision = processor.decision
    return [
        {"id": str(i), "label": int(truth), "score": float(score),
         "flagged": bool(score >= decision.threshold), "missed_cost": decision.missed_cost,
         "false_alarm_cost": decision.false_alarm_cost, "at_fpr": decision.at_fpr,
         "at_recall": decision.at_recall}
        for i, (truth, score) in enumerate(zip(truths, scores, strict=True))
    ]  # fmt: skip


def table_row(model: TabularModel, data: str | Path, index: int) -> dict[str, Any]:
    """Row ``index`` of a table file (or ``dataset:NAME/SPLIT``) as feature values.

    Raises:
        LmforgeError: no such row (naming the file and how many rows it has).
    """
    path = data_file(data)
    table = read_table(path, model.processor.trained_columns, source_name="data")
    if not 0 <= index < len(table):
        raise LmforgeError(f"index: {index}, but {path} has {len(table)} rows (0 to "
                           f"{len(table) - 1})")  # fmt: skip
    return {name: (float(table.columns[name][index]) if name in model.processor.numeric
                   else str(table.columns[name][index]))
            for name in model.processor.features}  # fmt: skip


def save_threshold(ref: str, threshold: float, chosen_on: str) -> Decision:
    """Keep ``threshold`` as the model's decision threshold (serving flags scores at or
    above it); the processor file is rewritten atomically.

    Raises:
        LmforgeError: ``ref`` is not a tabular model, or a registered version (those stay
            as registered: save into the run's folder and register a new version).
    """
    resolved = resolve_tabular(ref)
    if resolved.source == "registry":
        raise LmforgeError(
            f"'{ref}' is a registered version, which stays as it was registered; save the "
            "threshold into the run's model folder (run:RUN_ID or its path) and register "
            "that as a new version"
        )
    processor = load_tabular(resolved.path).processor
    processor.decision = dataclasses.replace(processor.decision, threshold=threshold,
                                             chosen_on=chosen_on)  # fmt: skip
    processor.save_pretrained(resolved.path)
    return processor.decision
