"""Scoring a continual sequence: the accuracy matrix, forgetting and backward transfer.

``R[j][i]`` is the score (``train.continual.metric``, higher is better) on stage i's test
data of the model stage j saved. From it (Chaudhry et al., 2018; Lopez-Paz and Ranzato,
2017), with T stages:

    average accuracy   (1/T) sum_i R[T][i]                    (the final model, every stage)
    average forgetting (1/(T-1)) sum_{i<T} max_{l<T} R[l][i] - R[T][i]
                       (how far each earlier stage fell from its best)
    backward transfer  (1/(T-1)) sum_{i<T} R[T][i] - R[i][i]
                       (what later stages did to earlier ones; negative: forgetting)

The sequence's folder (``lmforge.train.continual``) holds ``sequence.json``, which names
each stage's model and test data. The matrix is logged to the sequence's MLflow run as
metrics, a table (``continual_matrix.json``) and a heat map (``continual_matrix.png``).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmforge.errors import LmforgeError
from lmforge.evaluate.runner import evaluate_model
from lmforge.progress import ProgressFn
from lmforge.track import CONTINUAL_SEQUENCE_FILE, OUTPUT_DIR_TAG, get_client, resume_run

MATRIX_ARTIFACT = "continual_matrix.json"
HEATMAP_ARTIFACT = "continual_matrix.png"


@dataclass
class ContinualScores:
    """The accuracy matrix of a sequence and what it sums up to."""

    stages: list[str]
    metric: str
    matrix: list[list[float]]  # matrix[j][i]: stage j's model on stage i's test data
    average_accuracy: float
    average_forgetting: float
    backward_transfer: float
    sequence_id: str

    def summary(self) -> dict[str, float]:
        return {"average_accuracy": self.average_accuracy,
                "average_forgetting": self.average_forgetting,
                "backward_transfer": self.backward_transfer}  # fmt: skip


def summarize(matrix: list[list[float]]) -> tuple[float, float, float]:
    """Average accuracy, average forgetting and backward transfer of a T x T matrix
    (see the module docs).

    Raises:
        ValueError: the matrix is not square or has fewer than 2 stages.
    """
    count = len(matrix)
    if count < 2 or any(len(row) != count for row in matrix):
        raise ValueError(f"a continual matrix is T x T with T >= 2, got {matrix}")
    last = matrix[-1]
    accuracy = sum(last) / count
    earlier = range(count - 1)
    forgetting = sum(max(matrix[j][i] for j in earlier) - last[i]
                     for i in earlier) / (count - 1)  # fmt: skip
    transfer = sum(last[i] - matrix[i][i] for i in earlier) / (count - 1)
    return accuracy, forgetting, transfer


def find_sequence(ref: str) -> Path:
    """The folder of sequence ``ref``: the folder itself, or the sequence's run id.

    Raises:
        LmforgeError: neither a folder with ``sequence.json`` nor a known sequence run.
    """
    path = Path(ref).expanduser()
    if (path / CONTINUAL_SEQUENCE_FILE).is_file():
        return path
    try:
        run = get_client().get_run(ref)
    except Exception:  # MLflow raises its own types for unknown ids
        run = None
    folder = run.data.tags.get(OUTPUT_DIR_TAG) if run is not None else None
    if folder and (Path(folder) / CONTINUAL_SEQUENCE_FILE).is_file():
        return Path(folder)
    raise LmforgeError(f"{ref}: not a continual sequence: give the folder `lmforge train` "
                       f"printed (it holds {CONTINUAL_SEQUENCE_FILE}) or the sequence's "
                       "run id")  # fmt: skip


def score_sequence(
    ref: str, *, track: bool = True, progress: ProgressFn | None = None, **eval_options: Any
) -> ContinualScores:
    """Score every stage's model on every stage's test data (``evaluate_model``, untracked
    one by one) and sum the matrix up; with ``track``, log it to the sequence's run.

    Raises:
        LmforgeError: not a sequence, a stage without test data, or what scoring raises.
    """
    folder = find_sequence(ref)
    sequence = json.loads((folder / CONTINUAL_SEQUENCE_FILE).read_text(encoding="utf-8"))
    stages = sequence["stages"]
    if len(stages) < len(sequence["stages_planned"]):
        planned = len(sequence["stages_planned"])
        raise LmforgeError(f"{folder}: only {len(stages)} of its {planned} stages finished "
                           "training")  # fmt: skip
    for stage in stages:
        if not stage["test"]:
            raise LmforgeError(f"stage {stage['name']}: has no test or validation data to "
                               "score; give train.continual.stages[].test")  # fmt: skip
    metric, task = sequence["metric"], sequence["eval_task"]
    matrix: list[list[float]] = []
    done, total = 0, len(stages) ** 2
    for model_stage in stages:
        row = []
        for data_stage in stages:
            result = evaluate_model(model_stage["model_dir"], data_stage["test"], task,
                                    track=False, **eval_options)  # fmt: skip
            if metric not in result.metrics:
                raise LmforgeError(f"train.continual.metric: task {task} gives "
                                   f"{', '.join(result.metrics)}, not {metric}")  # fmt: skip
            row.append(float(result.metrics[metric]))
            done += 1
            if progress is not None:
                progress(done, total, f"{model_stage['name']} on {data_stage['name']}")
        matrix.append(row)
    names = [stage["name"] for stage in stages]
    scores = ContinualScores(names, metric, matrix, *summarize(matrix),
                             sequence_id=sequence["sequence_id"])  # fmt: skip
    if track:
        _log(scores)
    return scores


def _log(scores: ContinualScores) -> None:
    """The matrix and its summary on the sequence's run (when it was tracked)."""
    try:
        tracker = resume_run(scores.sequence_id)
    except LmforgeError:
        return  # trained without tracking: nothing to log to
    try:
        tracker.log_metrics({f"continual/{k}": v for k, v in scores.summary().items()}, step=0)
        with tempfile.TemporaryDirectory(prefix="lmforge-continual-") as tmp:
            table = Path(tmp) / MATRIX_ARTIFACT
            table.write_text(json.dumps({"stages": scores.stages, "metric": scores.metric,
                                         "matrix": scores.matrix, **scores.summary()},
                                        indent=2) + "\n", encoding="utf-8")  # fmt: skip
            tracker.log_artifact(table)
            tracker.log_artifact(heat_map(scores, Path(tmp) / HEATMAP_ARTIFACT))
    finally:
        tracker.close("FINISHED")


def heat_map(scores: ContinualScores, path: Path) -> Path:
    """The matrix as a PNG heat map: rows the model after each stage, columns the stage
    whose test data it scored, each cell's value written in it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = len(scores.stages)
    figure, axes = plt.subplots(figsize=(1.6 * count + 2, 1.3 * count + 1.5))
    image = axes.imshow(scores.matrix, cmap="viridis", vmin=0.0, vmax=1.0)
    axes.set_xticks(range(count), scores.stages, rotation=30, ha="right")
    axes.set_yticks(range(count), [f"after {name}" for name in scores.stages])
    axes.set_xlabel(f"test data of stage ({scores.metric})")
    for j, row in enumerate(scores.matrix):
        for i, value in enumerate(row):
            axes.text(i, j, f"{value:.2f}", ha="center", va="center",
                      color="black" if value > 0.6 else "white")  # fmt: skip
    figure.colorbar(image, ax=axes)
    axes.set_title(f"forgetting {scores.average_forgetting:.3f}, "
                   f"final average {scores.average_accuracy:.3f}")  # fmt: skip
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
