"""Faithfulness of a word ranking: does removing the words it ranks first change the
prediction? (ERASER, DeYoung et al. 2020; AOPC, Samek et al. 2017.)

Words are ranked by weight, most supporting the explained label ``y`` first. With
``p(t)`` the model's probability of ``y`` on text ``t`` and ``top_k`` the first
``max(1, floor(k * n / 100))`` of the ``n`` distinct words, for ``k`` in
``BINS = (1, 5, 10, 20, 50)`` percent:

- comprehensiveness = mean_k [ p(x) - p(x without top_k) ]. Higher is more faithful:
  the words the explanation calls important carry the prediction.
- sufficiency = mean_k [ p(x) - p(only top_k) ]. Lower is more faithful: those words
  alone keep the prediction (it can be negative: they alone are even surer).
- aopc_deletion = mean_s [ p(x) - p(x without the first m_s words) ] over the deletion
  steps ``m_1 < m_2 < ... = n`` (one word at a time up to ``MAX_DELETION_STEPS`` words,
  evenly spaced steps beyond). Higher is more faithful: the probability falls fast.

"Removing" a word deletes every occurrence, as LIME's perturbations do (``words.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lmforge.errors import LmforgeError
from lmforge.explain.words import index_words, only_words, without_words

BINS: tuple[int, ...] = (1, 5, 10, 20, 50)
"""Percentages of the words removed (comprehensiveness) or kept (sufficiency)."""
MAX_DELETION_STEPS = 20
"""Texts with more distinct words are deleted in this many evenly spaced steps."""

PredictProba = Callable[[list[str]], np.ndarray]
"""``texts -> (N, L)`` probabilities, e.g. ``TextClassifier.predict_proba``."""


def faithfulness(
    predict_proba: PredictProba,
    text: str,
    weights: Sequence[tuple[str, float]],
    label_index: int,
) -> dict[str, Any]:
    """Comprehensiveness, sufficiency and the deletion curve of one explanation.

    Every perturbed text goes through ``predict_proba`` in one call.

    Args:
        predict_proba: The classifier, ``texts -> (N, L)`` probabilities.
        text: The explained text.
        weights: ``(word, weight)`` for every distinct word of ``text`` (see ``words_of``).
        label_index: Column of the explained label in ``predict_proba``'s output.

    Returns:
        ``{"comprehensiveness": float (higher = more faithful), "sufficiency": float
        (lower = more faithful), "aopc_deletion": float (higher = more faithful),
        "deletion_curve": [{"removed": m, "probability": p}, ...]}``; the curve starts
        at ``removed`` 0 (the full text) and ends with every word removed.

    Raises:
        LmforgeError: the text has no words, or ``weights`` misses some of them.
    """
    indexed = index_words(text)
    ranking = rank_words([str(word) for word in indexed.inverse_vocab], weights)
    sizes = [bin_size(percent, len(ranking)) for percent in BINS]
    steps = deletion_steps(len(ranking))
    texts = [text]
    texts += [without_words(indexed, ranking[:size]) for size in sizes]
    texts += [only_words(indexed, ranking[:size]) for size in sizes]
    texts += [without_words(indexed, ranking[:removed]) for removed in steps]
    p = np.asarray(predict_proba(texts), dtype=np.float64)[:, label_index]  # (1 + 2*bins + steps,)
    full = p[0]
    without_top = p[1 : 1 + len(sizes)]  # (bins,)
    only_top = p[1 + len(sizes) : 1 + 2 * len(sizes)]  # (bins,)
    curve = p[1 + 2 * len(sizes) :]  # (steps,)
    return {
        "comprehensiveness": float(np.mean(full - without_top)),
        "sufficiency": float(np.mean(full - only_top)),
        "aopc_deletion": float(np.mean(full - curve)),
        "deletion_curve": [
            {"removed": removed, "probability": float(prob)}
            for removed, prob in zip([0, *steps], [full, *curve], strict=True)
        ],
    }


def rank_words(words: list[str], weights: Sequence[tuple[str, float]]) -> list[int]:
    """Indexes into ``words``, highest weight first; ties keep the order of the text.

    Raises:
        LmforgeError: ``words`` is empty, or a word has no weight.
    """
    if not words:
        raise LmforgeError(
            "faithfulness: the text has no words (runs of letters or digits) to remove; "
            "explain a text with at least one word."
        )
    weight_of = dict(weights)
    missing = [word for word in words if word not in weight_of]
    if missing:
        raise LmforgeError(
            f"faithfulness: no weight for the words {missing[:5]} of the text; pass one "
            "(word, weight) per distinct word, as lmforge.explain.words_of(text) lists them."
        )
    return sorted(range(len(words)), key=lambda i: -weight_of[words[i]])


def bin_size(percent: int, n_words: int) -> int:
    """How many words ``percent``% of ``n_words`` is, at least one."""
    return max(1, percent * n_words // 100)


def deletion_steps(n_words: int) -> list[int]:
    """How many top words are removed at each step of the deletion curve (ends at all)."""
    if n_words <= MAX_DELETION_STEPS:
        return list(range(1, n_words + 1))
    return sorted({round(float(x)) for x in np.linspace(1, n_words, MAX_DELETION_STEPS)})
