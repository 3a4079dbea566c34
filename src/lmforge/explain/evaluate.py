"""Faithfulness of each explanation method over a dataset, as one MLflow run.

Every text is explained by every method; the table holds each method's mean
comprehensiveness, sufficiency, AOPC of deletion and seconds. ``random`` (a random word
ranking, seeded per text) is the floor a method must beat for its numbers to mean
anything. The run (experiment ``explain``) logs the params, the means as
``<method>/<metric>`` and every explanation as ``explanations.jsonl``.

Example:
    result = evaluate_explanations(classifier, load_records(Path("val.jsonl")), limit=30)
    result.rows  # [{"method": "lime", "comprehensiveness": 0.42, ...}, {"method": "ig", ...}]
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lmforge.data.records import DataError, read_records
from lmforge.errors import LmforgeError
from lmforge.explain.explanation import Explanation
from lmforge.explain.faithfulness import faithfulness
from lmforge.explain.text import (
    METHODS,
    batched_predict,
    check_differentiable,
    check_text,
    explain_text,
)
from lmforge.explain.words import words_of
from lmforge.progress import ProgressFn
from lmforge.track import start_run

if TYPE_CHECKING:
    from lmforge.hub.classifier import TextClassifier

EXPERIMENT = "explain"
BASELINES: tuple[str, ...] = ("random",)
METRICS: tuple[str, ...] = ("comprehensiveness", "sufficiency", "aopc_deletion", "seconds")


@dataclass
class EvaluationResult:
    """What ``evaluate_explanations`` measured.

    Attributes:
        rows: One row per method: ``method``, ``n`` and the mean of each of ``METRICS``.
        examples: Every explanation as ``to_dict()`` plus ``index``, ``text`` and
            ``gold_label`` (the record's ``label``, or ``None``).
        run_id: The MLflow run, or ``None`` when not tracked.
    """

    rows: list[dict[str, Any]]
    examples: list[dict[str, Any]]
    run_id: str | None


def evaluate_explanations(
    classifier: TextClassifier,
    records: Sequence[Mapping[str, Any]],
    methods: Sequence[str] = ("lime", "ig"),
    *,
    num_samples: int = 1000,
    steps: int = 50,
    limit: int | None = None,
    track: bool = True,
    progress: ProgressFn | None = None,
) -> EvaluationResult:
    """Explain every record's text with every method and average the faithfulness.

    Args:
        classifier: A loaded text classifier.
        records: Mappings with a ``text``; a ``label`` is kept in the per-example output
            (and gives an ``accuracy`` metric) but the predicted label is explained.
        methods: ``lime``, ``ig`` and/or ``random`` (a random word ranking, the floor).
        num_samples: LIME's perturbed texts per explanation.
        steps: Integrated gradients' interpolation steps.
        limit: Explain only the first ``limit`` records.
        track: Log an MLflow run in the ``explain`` experiment.
        progress: Called as ``progress(done, total, "explanations")`` after each one.

    Raises:
        LmforgeError: an unknown method, no records, a record without text, or ``ig``
            on a model without gradients (ONNX, quantized).
    """
    methods = _check_methods(methods)
    chosen = list(records)[:limit] if limit is not None else list(records)
    texts = _texts(chosen)
    if "ig" in methods:
        check_differentiable(classifier)  # before minutes of LIME, not after
    params = {
        "model": classifier.model_ref,
        "methods": list(methods),
        "num_samples": num_samples,
        "steps": steps,
        "n": len(texts),
    }
    name = f"{'+'.join(methods)} {Path(classifier.model_ref).name}"
    with start_run(
        EXPERIMENT, run_name=name, tags={"lmforge.model_ref": classifier.model_ref}, enabled=track
    ) as tracker:
        tracker.log_params(params)
        examples = []
        for index, (text, record) in enumerate(zip(texts, chosen, strict=True)):
            for method in methods:
                explanation = _explain(classifier, text, method, num_samples, steps, seed=index)
                gold = record.get("label")
                examples.append(
                    {"index": index, "text": text, "gold_label": gold, **explanation.to_dict()}
                )
                if progress is not None:
                    progress(len(examples), len(texts) * len(methods), "explanations")
        rows = summarize(examples, methods)
        tracker.log_metrics(_metrics(rows, examples))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "explanations.jsonl"
            path.write_text("".join(json.dumps(e) + "\n" for e in examples), encoding="utf-8")
            tracker.log_artifact(path)
    return EvaluationResult(rows=rows, examples=examples, run_id=tracker.run_id)


def summarize(examples: list[dict[str, Any]], methods: Sequence[str]) -> list[dict[str, Any]]:
    """One row per method: how many texts, and the mean of each of ``METRICS``."""
    rows = []
    for method in methods:
        mine = [e for e in examples if e["method"] == method]
        row: dict[str, Any] = {"method": method, "n": len(mine)}
        for metric in METRICS:
            values = [
                e["seconds"] if metric == "seconds" else e["faithfulness"][metric] for e in mine
            ]
            row[metric] = float(np.mean(values)) if values else float("nan")
        rows.append(row)
    return rows


def load_records(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL/JSON/CSV/Parquet file with a ``text`` column, read like
    training data. Gold labels are kept when every row has a ``label``; otherwise only
    the texts are read.

    Raises:
        LmforgeError: the file is missing, or a row has no ``text``.
    """

    try:
        records, _ = read_records(Path(path), source_name="DATA")
    except DataError:
        records, _ = read_records(Path(path), format="text", source_name="DATA")
    return records


def random_explanation(classifier: TextClassifier, text: str, seed: int) -> Explanation:
    """A random ranking of the words (normal weights, seeded) for the predicted label:
    the faithfulness a method must beat."""
    predict = batched_predict(classifier)
    probabilities = predict([text])[0]  # (L,)
    label_index = int(np.argmax(probabilities))
    words = words_of(text)
    noise = np.random.default_rng(seed).standard_normal(len(words))
    weights = [(word, float(w)) for word, w in zip(words, noise, strict=True)]
    return Explanation(
        text=text,
        method="random",
        label=classifier.labels[label_index],
        probabilities=dict(zip(classifier.labels, probabilities.tolist(), strict=True)),
        weights=weights,
        faithfulness=faithfulness(predict, text, weights, label_index),
        model=classifier.model_ref,
        details={"seed": seed},
    )


def _explain(
    classifier: TextClassifier, text: str, method: str, num_samples: int, steps: int, seed: int
) -> Explanation:
    if method == "random":
        started = time.perf_counter()
        explanation = random_explanation(classifier, text, seed)
        explanation.seconds = time.perf_counter() - started
        return explanation
    return explain_text(classifier, text, method, num_samples=num_samples, steps=steps)


def _metrics(rows: list[dict[str, Any]], examples: list[dict[str, Any]]) -> dict[str, float]:
    metrics = {f"{row['method']}/{metric}": row[metric] for row in rows for metric in METRICS}
    first = [e for e in examples if e["method"] == rows[0]["method"]] if rows else []
    if first and all(isinstance(e["gold_label"], str) for e in first):
        metrics["accuracy"] = float(np.mean([e["label"] == e["gold_label"] for e in first]))
    return metrics


def _check_methods(methods: Sequence[str]) -> list[str]:
    known = (*METHODS, *BASELINES)
    chosen = list(dict.fromkeys(methods))
    unknown = [m for m in chosen if m not in known]
    if unknown or not chosen:
        raise LmforgeError(
            f"methods: unknown explanation method(s) {unknown or chosen}; pick from "
            f"{', '.join(known)} (random is a random word ranking, the floor to beat)."
        )
    return chosen


def _texts(records: list[Mapping[str, Any]]) -> list[str]:
    if not records:
        raise LmforgeError("records: none to explain; pass at least one record with a 'text'.")
    texts = []
    for index, record in enumerate(records):
        text = record.get("text") if isinstance(record, Mapping) else None
        if not isinstance(text, str):
            raise LmforgeError(
                f"records[{index}]: no 'text' string (got {str(record)[:80]}); every record "
                'needs the text to explain, e.g. {"text": "Great lock."}.'
            )
        try:
            check_text(text)
        except LmforgeError as err:
            raise LmforgeError(f"records[{index}]: {err}") from None
        texts.append(text)
    return texts
