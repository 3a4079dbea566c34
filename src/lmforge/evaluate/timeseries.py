"""The ``rul`` evaluation: a remaining-useful-life model (task ``timeseries`` or a baseline)
scoring the last window of every entity in a C-MAPSS folder's test files (or a long table
with a RUL column), as the C-MAPSS literature scores.

Each row of the per-example table holds the entity (``id``), the true RUL capped as in
training (``rul``), the prediction, its error terms and, for the Transformer, the
predicted probability of failure within the horizon beside whether it happened. Run-level
metrics: RMSE, MAE and the NASA score (their bootstrap intervals resample entities), and a
plot of predicted against true RUL per entity (``rul.png`` in the run).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lmforge.data.timeseries import read_series
from lmforge.hub.timeseries import load_series_model, resolve_series
from lmforge.progress import ProgressFn
from lmforge.stats import nasa_penalties

RUL_METRICS = ("rmse", "mae", "nasa_score")


def rul_rows(ref: str, data: Path, progress: ProgressFn | None) -> list[dict[str, Any]]:
    """One row per entity of ``data``: its last window's true and predicted RUL."""
    model = load_series_model(resolve_series(ref).path)
    series = read_series(data, model.processor.columns, split="test", source_name="data")
    windows = model.processor.windows(series, last_only=True)
    predicted, probability = model.predict(windows.inputs)
    if progress is not None:
        progress(len(windows), len(windows), "entities")
    penalties = nasa_penalties(windows.rul, predicted)
    rows = []
    for i in range(len(windows)):
        error = float(predicted[i] - windows.rul[i])
        row = {"id": str(windows.entity[i]), "rul": float(windows.rul[i]),
               "predicted": float(predicted[i]), "error": error, "squared_error": error**2,
               "absolute_error": abs(error), "nasa_penalty": float(penalties[i]),
               "failure": int(windows.failure[i])}  # fmt: skip
        if probability is not None:
            row["failure_probability"] = float(probability[i])
        rows.append(row)
    return rows


def rul_plot(rows: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    """Predicted against true RUL per entity, entities ordered by true RUL, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    order = np.argsort([row["rul"] for row in rows], kind="stable")
    truth = np.array([rows[i]["rul"] for i in order])
    predicted = np.array([rows[i]["predicted"] for i in order])
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    x = np.arange(len(rows))
    left.plot(x, truth, color="black", label="true RUL")
    left.scatter(x, predicted, s=12, color="tab:blue", label="predicted")
    left.set(xlabel="test unit (by true RUL)", ylabel="RUL (cycles)")
    left.legend()
    top = max(float(truth.max(initial=1)), float(predicted.max(initial=1))) * 1.05
    right.plot([0, top], [0, top], color="grey", linewidth=1)
    right.scatter(truth, predicted, s=12, color="tab:blue")
    right.set(xlabel="true RUL", ylabel="predicted RUL", xlim=(0, top), ylim=(0, top))
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
