"""Statistics shared below the stages: which way each metric is better, the Wilson
interval of a proportion, text-image retrieval ranks and the Fréchet distance between two
sets of features. The evaluator, the registry's promotion gate, the guard's report and the
clip task use them."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from statistics import NormalDist
from typing import Any

import numpy as np

# Which way each metric improves (a metric not listed: higher is better).
HIGHER_IS_BETTER = {
    "exact_match": True,
    "token_f1": True,
    "rouge_l": True,
    "keyword_accuracy": True,
    "citation_precision": True,
    "generated_citation_precision": True,
    "accuracy": True,
    "macro_f1": True,
    "pass@1": True,
    "perplexity": False,
    "rmse": False,
    "mae": False,
    "unsafe_answer_rate": False,
    "unsafe_prompt_block_rate": True,
    "safe_prompt_pass_rate": True,
    "text_to_image_mean_rank": False,
    "text_to_image_median_rank": False,
    "image_to_text_mean_rank": False,
    "image_to_text_median_rank": False,
    "frechet_distance": False,
    "frechet_floor": False,
    "cost_per_row": False,
    "cost_at_saved_threshold": False,
    "nasa_score": False,
}


def wilson_interval(
    successes: float, total: int, *, confidence: float = 0.95
) -> tuple[float, float]:
    """The Wilson score interval for a proportion ``successes / total``.

    Unlike the normal approximation (and the bootstrap, which collapses to a point when
    every example scored the same), it stays inside [0, 1] and keeps a sensible width at
    small ``total`` and at proportions near 0 or 1: 25 of 33 gives 0.590 to 0.872.

    Returns:
        (low, high); (nan, nan) when ``total`` is 0.
    """
    if total <= 0:
        return float("nan"), float("nan")
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    share = successes / total
    denominator = 1 + z * z / total
    centre = (share + z * z / (2 * total)) / denominator
    half = z * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total)) / denominator
    low = 0.0 if successes <= 0 else max(0.0, centre - half)  # exact at the ends
    high = 1.0 if successes >= total else min(1.0, centre + half)
    return low, high


# --- text-image retrieval -------------------------------------------------------------

RETRIEVAL_DIRECTIONS = ("text_to_image", "image_to_text")
RETRIEVAL_KS = (1, 5, 10)
_RECALL = re.compile(r"^(text_to_image|image_to_text)(_attribute)?_R@(\d+)$")
_RANK = re.compile(r"^(text_to_image|image_to_text)_(mean|median)_rank$")


def retrieval_metric_names() -> tuple[str, ...]:
    """open_clip's retrieval metrics (``text_to_image_R@1`` ... ``image_to_text_median_rank``),
    then the same recalls counting a same-caption item as a hit (``..._attribute_R@k``)."""
    names = []
    for direction in RETRIEVAL_DIRECTIONS:
        names += [f"{direction}_mean_rank", f"{direction}_median_rank"]
        names += [f"{direction}_R@{k}" for k in RETRIEVAL_KS]
    for direction in RETRIEVAL_DIRECTIONS:
        names += [f"{direction}_attribute_R@{k}" for k in RETRIEVAL_KS]
    return tuple(names)


def retrieval_ranks(similarity: np.ndarray, caption_ids: np.ndarray) -> dict[str, np.ndarray]:
    """1-based ranks of each pair's match, both ways, as open_clip's ``get_clip_metrics``
    ranks them: caption i's image is image i (``similarity``: ``(N, N)``, captions x
    images). ``*_attribute_rank``: the best rank of any item whose caption equals the
    query's (``caption_ids`` equal), so a repeated caption's other images count as hits.

    Returns:
        ``{"text_to_image_rank": (N,), "text_to_image_attribute_rank": (N,), ...}``
    """
    count = similarity.shape[0]
    same = caption_ids[:, None] == caption_ids[None, :]  # (N, N), symmetric
    rows = np.arange(count)
    ranks = {}
    for direction, scores in zip(RETRIEVAL_DIRECTIONS, (similarity, similarity.T), strict=True):
        order = np.argsort(-scores, axis=1, kind="stable")  # (N, N): items, best first
        position = np.empty_like(order)
        position[rows[:, None], order] = rows[None, :]  # position[q, item]: 0-based rank
        ranks[f"{direction}_rank"] = position[rows, rows] + 1
        ranks[f"{direction}_attribute_rank"] = np.where(same, position, count).min(axis=1) + 1
    return ranks


def retrieval_value(metric: str, ranks: Sequence[float]) -> float:
    """One retrieval metric from the 1-based ranks it reads: R@k is the share of ranks
    <= k; the median rank is open_clip's floor(median(rank - 1)) + 1."""
    values = np.asarray(ranks, dtype=np.float64)
    recall = _RECALL.match(metric)
    if recall:
        return float(np.mean(values <= int(recall.group(3))))
    if metric.endswith("_median_rank"):
        return float(np.floor(np.median(values - 1)) + 1)
    return float(np.mean(values))


def retrieval_rank_column(metric: str) -> str | None:
    """The per-example rank column a retrieval metric reads, or None for other metrics."""
    recall, rank = _RECALL.match(metric), _RANK.match(metric)
    if recall:
        return f"{recall.group(1)}{recall.group(2) or ''}_rank"
    return f"{rank.group(1)}_rank" if rank else None


def retrieval_summary(ranks: dict[str, np.ndarray]) -> dict[str, float]:
    """Every retrieval metric from ``retrieval_ranks``' arrays."""
    summary = {}
    for name in retrieval_metric_names():
        column = retrieval_rank_column(name)
        assert column is not None
        summary[name] = retrieval_value(name, ranks[column].tolist())
    return summary


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """The Fréchet distance between Gaussians fitted to feature rows ``a`` and ``b``:
    |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2), with symmetric
    eigendecompositions only (no scipy)."""
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    cross = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_root = float(np.sqrt(np.clip(cross, 0, None)).sum())
    mean_term = float(((mu_a - mu_b) ** 2).sum())
    return mean_term + float(np.trace(cov_a) + np.trace(cov_b)) - 2 * trace_root


def frechet_metric(metric: str, rows: Sequence[dict[str, Any]]) -> float:
    """``frechet_distance`` (first half's generated images vs the second half's real
    ones) or ``frechet_floor`` (real vs real) from per-example rows."""
    first = [row for row in rows if row["half"] == 0]
    second = np.array([row["real_features"] for row in rows if row["half"] == 1])
    column = "generated_features" if metric == "frechet_distance" else "real_features"
    if len(first) < 2 or len(second) < 2:
        return float("nan")
    return frechet_distance(np.array([row[column] for row in first]), second)


# --- binary scores (fraud detection and other rare-positive problems) ------------------

BINARY_METRICS = ("auprc", "roc_auc", "recall_at_fpr", "precision_at_recall")


def binary_scores(
    truths: np.ndarray, scores: np.ndarray, *, at_fpr: float = 0.001, at_recall: float = 0.8
) -> dict[str, float]:
    """Threshold-free quality of ``scores`` (higher: more likely positive) for 0/1 ``truths``.

    - ``auprc``: average precision, sum over positives of precision at their rank (as
      scikit-learn's ``average_precision_score``; ties share one threshold);
    - ``roc_auc``: the chance a random positive outscores a random negative (ties count
      half);
    - ``recall_at_fpr``: the most positives found while flagging at most ``at_fpr`` of the
      negatives;
    - ``precision_at_recall``: the best precision among thresholds that find at least
      ``at_recall`` of the positives.
    NaN for a metric that needs both classes when one is absent.
    """
    curve = _threshold_curve(truths, scores)
    positives, negatives = curve["positives"], curve["negatives"]
    if positives == 0 or negatives == 0:
        return dict.fromkeys(BINARY_METRICS, float("nan"))
    tp, fp = curve["tp"], curve["fp"]
    precision, recall = tp / (tp + fp), tp / positives
    auprc = float(np.sum(np.diff(recall, prepend=0.0) * precision))
    ranks = _average_ranks(scores)
    positive_ranks = ranks[truths == 1].sum()
    roc_auc = (positive_ranks - positives * (positives + 1) / 2) / (positives * negatives)
    within = fp / negatives <= at_fpr
    reached = recall >= at_recall
    return {
        "auprc": auprc,
        "roc_auc": float(roc_auc),
        "recall_at_fpr": float(recall[within].max()) if within.any() else 0.0,
        "precision_at_recall": float(precision[reached].max()) if reached.any() else 0.0,
    }


def cost_optimal_threshold(
    truths: np.ndarray, scores: np.ndarray, *, missed_cost: float, false_alarm_cost: float
) -> tuple[float, float]:
    """``(threshold, cost per row)``: flag a row when its score >= threshold, choosing the
    threshold that makes ``missed_cost`` x misses + ``false_alarm_cost`` x false alarms
    smallest on these rows (flagging nothing is a candidate too: threshold above 1)."""
    curve = _threshold_curve(truths, scores)
    missed = curve["positives"] - curve["tp"]
    costs = missed_cost * missed + false_alarm_cost * curve["fp"]
    nothing = missed_cost * curve["positives"]
    best = int(np.argmin(costs)) if len(costs) else -1
    rows = max(len(truths), 1)
    if best < 0 or costs[best] >= nothing:
        return float(np.nextafter(1.0, 2.0)), nothing / rows
    return float(curve["thresholds"][best]), float(costs[best]) / rows


def decision_counts(truths: np.ndarray, flagged: np.ndarray) -> dict[str, int]:
    """True/false positives and negatives of 0/1 ``flagged`` decisions."""
    truths, flagged = truths.astype(bool), flagged.astype(bool)
    return {
        "true_positives": int((truths & flagged).sum()),
        "false_positives": int((~truths & flagged).sum()),
        "false_negatives": int((truths & ~flagged).sum()),
        "true_negatives": int((~truths & ~flagged).sum()),
    }


# Set-level metrics of a binary scorer's per-example rows (``lmforge.evaluate.tabular``):
# each row holds label (0/1), score, flagged (at the saved threshold) and the settings.
TABLE_METRICS = (*BINARY_METRICS, "cost_at_saved_threshold", "best_threshold")


def table_columns(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The arrays ``table_metric`` reads, taken from per-example rows once."""
    first = rows[0] if rows else {}
    return {
        "label": np.array([row["label"] for row in rows], dtype=np.int64),
        "score": np.array([row["score"] for row in rows], dtype=np.float64),
        "flagged": np.array([row["flagged"] for row in rows], dtype=bool),
        **{key: first.get(key) for key in ("missed_cost", "false_alarm_cost", "at_fpr",
                                           "at_recall")},
    }  # fmt: skip


def table_metric(metric: str, columns: dict[str, Any], rows: np.ndarray | None = None) -> float:
    """A ``TABLE_METRICS`` value over ``columns`` (``table_columns``), or over the rows at
    indexes ``rows`` of them (a bootstrap resample)."""
    pick = slice(None) if rows is None else rows
    truths, scores = columns["label"][pick], columns["score"][pick]
    if len(truths) == 0:
        return float("nan")
    if metric == "cost_at_saved_threshold":
        flagged = columns["flagged"][pick]
        positive = truths.astype(bool)
        cost = columns["missed_cost"] * (positive & ~flagged) + columns["false_alarm_cost"] * (
            ~positive & flagged)  # fmt: skip
        return float(cost.mean())
    if metric == "best_threshold":
        threshold, _ = cost_optimal_threshold(
            truths, scores, missed_cost=columns["missed_cost"],
            false_alarm_cost=columns["false_alarm_cost"],
        )  # fmt: skip
        return threshold
    return binary_scores(truths, scores, at_fpr=columns["at_fpr"],
                         at_recall=columns["at_recall"])[metric]  # fmt: skip


def _threshold_curve(truths: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """Cumulative true and false positives when flagging every row scoring >= each
    distinct score, highest first."""
    truths = np.asarray(truths).astype(np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    ordered, labels = scores[order], truths[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(ordered)), len(ordered) - 1] if len(ordered) else []
    tp = np.cumsum(labels)[last_of_tie].astype(np.float64)
    fp = (np.asarray(last_of_tie) + 1) - tp
    positives = int(truths.sum())
    return {"tp": tp, "fp": fp, "thresholds": ordered[last_of_tie],
            "positives": positives, "negatives": len(truths) - positives}  # fmt: skip


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values``, ties given their average rank."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - counts + 1 + ends) / 2)[inverse]


# --- remaining useful life ---------------------------------------------------------------


def nasa_penalties(truths: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Each unit's term of the NASA scoring function (Saxena et al., PHM 2008): with
    ``d = predicted - true`` RUL, ``exp(-d/13) - 1`` for an early prediction and
    ``exp(d/10) - 1`` for a late one, so predicting failure too late costs more."""
    d = np.asarray(predictions, dtype=np.float64) - np.asarray(truths, dtype=np.float64)
    return np.where(d < 0, np.exp(-d / 13) - 1, np.exp(d / 10) - 1)


def rul_scores(truths: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and the NASA score (the sum of ``nasa_penalties``) of RUL predictions."""
    error = np.asarray(predictions, dtype=np.float64) - np.asarray(truths, dtype=np.float64)
    return {"rmse": float(np.sqrt(np.mean(error**2))), "mae": float(np.mean(np.abs(error))),
            "nasa_score": float(nasa_penalties(truths, predictions).sum())}  # fmt: skip
