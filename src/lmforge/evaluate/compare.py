"""``lmforge eval compare``: two evaluation runs side by side, differences with bootstrap
confidence intervals.

Both runs' per-example tables are read back from MLflow. When the two runs scored the same
examples (same ids), the difference is a paired bootstrap over examples; otherwise each
run is resampled on its own and the interval is wider.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmforge.errors import LmforgeError
from lmforge.evaluate import metrics as m
from lmforge.evaluate.runner import EXAMPLES_ARTIFACT
from lmforge.evaluate.tasks import eval_task
from lmforge.stats import HIGHER_IS_BETTER
from lmforge.track.mlflow_store import get_client, get_run


@dataclass(frozen=True)
class MetricDiff:
    """One metric of run A and run B, and ``B - A`` with its interval."""

    metric: str
    a: float
    b: float
    diff: float
    low: float
    high: float
    paired: bool

    @property
    def better(self) -> str:
        """``"B"``/``"A"`` when the interval excludes 0 in that run's favour, else ``"-"``."""
        if math.isnan(self.low) or math.isnan(self.high) or self.low <= 0 <= self.high:
            return "-"
        b_higher = self.low > 0
        return "B" if b_higher == HIGHER_IS_BETTER.get(self.metric, True) else "A"


def compare_examples(
    rows_a: list[dict[str, Any]], rows_b: list[dict[str, Any]], metrics: list[str]
) -> list[MetricDiff]:
    """Compare two per-example tables on ``metrics`` (paired when the ids match)."""
    ids_a = [str(row.get("id")) for row in rows_a]
    ids_b = {str(row.get("id")): row for row in rows_b}
    paired = len(ids_a) == len(ids_b) and set(ids_a) == set(ids_b)
    if paired:
        rows_b = [ids_b[i] for i in ids_a]
    diffs = []
    for metric in metrics:
        diff, low, high = m.paired_bootstrap_diff(metric, rows_a, rows_b, paired=paired)
        a, b = m.aggregate(metric, rows_a), m.aggregate(metric, rows_b)
        diffs.append(MetricDiff(metric, a, b, diff, low, high, paired))
    return diffs


def run_examples(run_id: str) -> tuple[str, list[dict[str, Any]]]:
    """The task and per-example table of an ``lmforge eval`` run.

    Raises:
        LmforgeError: an unknown run, or a run without the table (not an eval run).
    """
    client = get_client()
    run = get_run(client, run_id)
    task = run.data.tags.get("lmforge.eval.task")
    names = {info.path for info in client.list_artifacts(run_id)}
    if task is None or EXAMPLES_ARTIFACT not in names:
        raise LmforgeError(
            f"run {run_id} is not an evaluation run (no lmforge.eval.task tag or "
            f"{EXAMPLES_ARTIFACT} artifact); compare runs made by `lmforge eval`."
        )
    with tempfile.TemporaryDirectory(prefix="lmforge-compare-") as tmp:
        path = Path(client.download_artifacts(run_id, EXAMPLES_ARTIFACT, tmp))
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return task, rows


def compare_runs(run_a: str, run_b: str) -> tuple[str, list[MetricDiff]]:
    """Compare two ``lmforge eval`` runs of the same task; returns (task, differences).

    Raises:
        LmforgeError: either run is not an eval run, or the tasks differ.
    """
    task_a, rows_a = run_examples(run_a)
    task_b, rows_b = run_examples(run_b)
    if task_a != task_b:
        raise LmforgeError(
            f"run {run_a} evaluated task {task_a!r} and run {run_b} task {task_b!r}; compare "
            "runs of the same task."
        )
    # any: some metrics score a subset of the examples (safety: the unsafe prompts only)
    metrics = [n for n in eval_task(task_a).metrics if any(_has(n, row) for row in rows_a + rows_b)]
    return task_a, compare_examples(rows_a, rows_b, metrics)


def _has(metric: str, row: dict[str, Any]) -> bool:
    column = {"perplexity": "nll_sum", "rmse": "squared_error", "mae": "absolute_error",
              "macro_f1": "predicted"}.get(metric, metric)  # fmt: skip
    return column in row
