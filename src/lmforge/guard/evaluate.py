"""How well the guard's input check separates unsafe from safe messages on a labeled file.

Each message counts as flagged for a category when the guard's moderation (classifier
score against the policy's threshold) flags it. Reported, each with a 95 % Wilson
interval: per category, precision and recall; unsafe recall (an unsafe message flagged for
any category, the right one or not: it is blocked either way) and the benign false-positive
rate (a safe message flagged for anything). The confusion counts each message once, under
its most probable flagged category (``safe`` when nothing is flagged).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lmforge.data.bundled import BUNDLED_PREFIX, bundled_path
from lmforge.errors import LmforgeError
from lmforge.guard.classifier import CATEGORIES, LABELS, read_labeled
from lmforge.guard.policy import Guard
from lmforge.stats import wilson_interval


def resolve_data(spec: str) -> Path:
    """A guard jsonl file: a path, or ``bundled:guard/SPLIT`` (e.g. ``challenge_test``).

    Raises:
        LmforgeError: no such file or bundled split (naming the bundled ones).
    """
    if spec.startswith(BUNDLED_PREFIX):
        return bundled_path(spec, default_split="test")
    path = Path(spec)
    if not path.is_file():
        raise LmforgeError(
            f"guard eval data: no such file {spec!r} (looked in {Path.cwd()}); pass a jsonl of "
            "{'text', 'label'} or bundled:guard/challenge_test"
        )
    return path


def proportion(hits: int, total: int) -> dict[str, Any]:
    """``hits / total`` with its 95 % Wilson interval (value and bounds None when empty)."""
    if total == 0:
        return {"value": None, "low": None, "high": None, "hits": 0, "total": 0}
    low, high = wilson_interval(hits, total)
    return {"value": hits / total, "low": low, "high": high, "hits": hits, "total": total}


def evaluate_guard(
    guard: Guard, texts: Sequence[str], labels: Sequence[int], *, batch_size: int = 32
) -> dict[str, Any]:
    """Score labeled messages with ``guard`` (input direction: every category counts).

    Args:
        labels: indices into ``LABELS`` (0 is ``safe``), as ``read_labeled`` returns them.

    Returns:
        ``{"examples", "unsafe_recall", "benign_fpr", "categories": {c: {"precision",
        "recall"}}, "confusion": {true label: {predicted: count}}, "seconds"}``; each rate
        is ``proportion()``'s dict.
    """
    if not texts:
        raise LmforgeError("guard eval: the data file holds no messages")
    start = time.perf_counter()
    results: list[dict[str, Any]] = []
    for offset in range(0, len(texts), batch_size):
        results += guard.moderate(list(texts[offset : offset + batch_size]))
    seconds = time.perf_counter() - start
    truth = [LABELS[i] for i in labels]
    flagged = [{c for c, on in r["categories"].items() if on} for r in results]
    predicted = [
        max(f, key=lambda c: r["category_scores"][c]) if f else "safe"
        for f, r in zip(flagged, results, strict=True)
    ]
    unsafe = [i for i, t in enumerate(truth) if t != "safe"]
    safe = [i for i, t in enumerate(truth) if t == "safe"]
    categories = {}
    for category in CATEGORIES:
        claimed = [i for i, f in enumerate(flagged) if category in f]
        actual = [i for i, t in enumerate(truth) if t == category]
        categories[category] = {
            "precision": proportion(sum(truth[i] == category for i in claimed), len(claimed)),
            "recall": proportion(sum(category in flagged[i] for i in actual), len(actual)),
        }
    confusion = {t: {p: 0 for p in LABELS} for t in LABELS}
    for t, p in zip(truth, predicted, strict=True):
        confusion[t][p] += 1
    return {
        "examples": len(texts),
        "unsafe_recall": proportion(sum(bool(flagged[i]) for i in unsafe), len(unsafe)),
        "benign_fpr": proportion(sum(bool(flagged[i]) for i in safe), len(safe)),
        "categories": categories,
        "confusion": confusion,
        "seconds": seconds,
    }


def evaluate_file(guard: Guard, data: str) -> dict[str, Any]:
    """``evaluate_guard`` on a file or ``bundled:guard/SPLIT``, with the file's path."""
    path = resolve_data(data)
    texts, labels = read_labeled(path)
    return {"data": str(path), **evaluate_guard(guard, texts, labels)}


def format_rate(rate: dict[str, Any]) -> str:
    """``0.91 [0.83, 0.95] (75/82)``, or ``-`` for an empty rate."""
    if rate["value"] is None:
        return "-"
    return (f"{rate['value']:.2f} [{rate['low']:.2f}, {rate['high']:.2f}] "
            f"({rate['hits']}/{rate['total']})")  # fmt: skip
