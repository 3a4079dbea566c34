"""Per-example scores and their aggregates, plus bootstrap confidence intervals.

Every metric here scores one example at a time (``token_f1(prediction, reference)``), so
the evaluation runner can store a per-example table and ``eval compare`` can resample it.
Text answers are normalized the SQuAD way before matching: lower case, no punctuation,
no articles (a/an/the), single spaces.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from lmforge.stats import (
    TABLE_METRICS,
    frechet_metric,
    retrieval_rank_column,
    retrieval_value,
    table_columns,
    table_metric,
)

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation and articles, collapse whitespace (SQuAD v1.1)."""
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalized answers are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    """F1 of the normalized answers' word bags (SQuAD's token-level F1)."""
    predicted = normalize_answer(prediction).split()
    expected = normalize_answer(reference).split()
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure: the longest common subsequence of words (lower-cased, no
    punctuation), as precision/recall against the reference."""
    predicted = prediction.lower().translate(_PUNCTUATION).split()
    expected = reference.lower().translate(_PUNCTUATION).split()
    if not predicted or not expected:
        return float(predicted == expected)
    lcs = _lcs_length(predicted, expected)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(predicted), lcs / len(expected)
    return 2 * precision * recall / (precision + recall)


def contains_all(prediction: str, keywords: Sequence[str]) -> float:
    """1.0 when every keyword appears in the prediction (case-insensitive)."""
    lowered = prediction.lower()
    return float(all(keyword.lower() in lowered for keyword in keywords))


def cites_keywords(cited_passages: Sequence[str], keywords: Sequence[str]) -> float:
    """1.0 when one of the passages an answer cites holds every keyword (case-insensitive,
    runs of whitespace as one space: passages wrap lines), else 0.0 (also when it cites
    none). The per-example score behind ``citation_precision``."""
    wanted = [" ".join(keyword.lower().split()) for keyword in keywords]
    for passage in cited_passages:
        text = " ".join(passage.lower().split())
        if all(keyword in text for keyword in wanted):
            return 1.0
    return 0.0


def macro_f1(predictions: Sequence[str], references: Sequence[str]) -> float:
    """The unweighted mean of each reference label's F1 (labels never predicted count 0)."""
    labels = sorted(set(references))
    scores = []
    for label in labels:
        tp = sum(p == label and r == label for p, r in zip(predictions, references, strict=True))
        fp = sum(p == label and r != label for p, r in zip(predictions, references, strict=True))
        fn = sum(p != label and r == label for p, r in zip(predictions, references, strict=True))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    row = [0] * (len(b) + 1)
    for word in a:
        previous = 0  # row[j - 1] of the previous row
        for j, other in enumerate(b, start=1):
            current = row[j]
            row[j] = previous + 1 if word == other else max(row[j], row[j - 1])
            previous = current
    return row[-1]


# --- aggregates ---------------------------------------------------------------------------


# How each metric's per-example values become the run's number. "mean" is the default;
# perplexity is exp of the token-weighted mean loss and RMSE the root of the mean square,
# so those two keep (sum, count) columns in the per-example table instead. Which way each
# metric is better, and the Wilson interval, live in ``lmforge.stats`` (the registry's
# promotion gate and the guard's report use them too).
BIASED_METRICS = frozenset({"frechet_distance", "frechet_floor"})  # see bootstrap_ci


def aggregate(metric: str, rows: Sequence[dict[str, Any]]) -> float:
    """The run-level value of ``metric`` from per-example rows (see ``example_columns``).

    Raises:
        KeyError: a row lacks the column the metric needs.
    """
    column = retrieval_rank_column(metric)
    if column is not None:
        return retrieval_value(metric, [row[column] for row in rows])
    if metric in BIASED_METRICS:
        return frechet_metric(metric, rows)
    if metric in TABLE_METRICS:
        return table_metric(metric, table_columns(rows))
    if metric == "perplexity":
        nll = sum(row["nll_sum"] for row in rows)
        tokens = sum(row["tokens"] for row in rows)
        return math.exp(nll / tokens) if tokens else float("nan")
    if metric == "rmse":
        return math.sqrt(float(np.mean([row["squared_error"] for row in rows])))
    if metric == "mae":
        return float(np.mean([row["absolute_error"] for row in rows]))
    if metric == "nasa_score":  # a sum over units, as the PHM 2008 challenge scored
        return float(sum(row["nasa_penalty"] for row in rows))
    if metric == "macro_f1":
        return macro_f1(
            [str(row["predicted"]) for row in rows], [str(row["label"]) for row in rows]
        )
    # Some metrics score a subset (safety: unsafe prompts only); rows without it are skipped.
    values = [row[metric] for row in rows if metric in row]
    return float(np.mean(values)) if values else float("nan")


def bootstrap_ci(
    metric: str,
    rows: Sequence[dict[str, Any]],
    *,
    samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """A percentile bootstrap interval for ``aggregate(metric, rows)``.

    A Fréchet distance is biased upwards, the more so the fewer distinct samples, and a
    resample repeats rows (about 63% distinct): its resamples sit above the estimate. Its
    interval is therefore shifted down by that bias (the resamples' mean minus the
    estimate), the bootstrap's own bias correction.
    """
    if not rows:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    if metric in TABLE_METRICS:  # resample indexes into arrays, not lists of rows
        columns = table_columns(rows)
        values = [table_metric(metric, columns, rng.integers(0, len(rows), len(rows)))
                  for _ in range(samples)]  # fmt: skip
    else:
        values = [
            aggregate(metric, [rows[i] for i in rng.integers(0, len(rows), len(rows))])
            for _ in range(samples)
        ]
    tail = (1 - confidence) / 2 * 100
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    if metric in BIASED_METRICS:
        bias = float(np.nanmean(values)) - aggregate(metric, rows)
        low, high = low - bias, high - bias
    return float(low), float(high)


def paired_bootstrap_diff(
    metric: str,
    rows_a: Sequence[dict[str, Any]],
    rows_b: Sequence[dict[str, Any]],
    *,
    paired: bool,
    samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``B - A`` for ``metric`` with a bootstrap interval.

    Args:
        paired: the two lists are the same examples in the same order; they are then
            resampled together, which takes the spread between examples out of the
            interval. Otherwise each side is resampled on its own.

    Returns:
        (difference, low, high).
    """
    rng = np.random.default_rng(seed)
    if paired and len(rows_a) != len(rows_b):
        raise ValueError(f"paired rows differ in length: {len(rows_a)} vs {len(rows_b)}")
    diff = aggregate(metric, rows_b) - aggregate(metric, rows_a)
    values = []
    for _ in range(samples):
        picks_a = rng.integers(0, len(rows_a), len(rows_a))
        picks_b = picks_a if paired else rng.integers(0, len(rows_b), len(rows_b))
        values.append(
            aggregate(metric, [rows_b[i] for i in picks_b])
            - aggregate(metric, [rows_a[i] for i in picks_a])
        )
    tail = (1 - confidence) / 2 * 100
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return diff, float(low), float(high)
