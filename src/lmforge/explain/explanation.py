"""``Explanation``: what one explainer said about one prediction, ready for JSON and HTML."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lmforge.errors import LmforgeError
from lmforge.explain.render import render_html


@dataclass
class Explanation:
    """Per-word (or per-feature) weights for one predicted label, with their faithfulness.

    A positive weight supports ``label``, a negative one argues against it. LIME weights
    are the coefficients of its local linear model of ``p(label)``; integrated-gradients
    weights are attributions to ``p(label)``, so both are in probability units.

    Attributes:
        text: The explained text (for tabular rows, ``name=value`` pairs).
        method: ``lime`` or ``ig``.
        label: The label explained.
        probabilities: The model's probability for every label on ``text``.
        weights: ``(word, weight)`` in the order words first appear in the text; one
            entry per distinct word (LIME's bag of words: a repeated word is one feature).
        faithfulness: ``comprehensiveness``, ``sufficiency``, ``aopc_deletion`` and
            ``deletion_curve`` (see ``lmforge.explain.faithfulness``); empty for tabular.
        seconds: Wall time of the explainer itself (faithfulness not included).
        model: The model reference, shown in the HTML header.
        unit: ``word`` for text, ``feature`` for tabular rows.
        details: Method facts: LIME's ``num_samples`` and ``local_r2``; integrated
            gradients' ``steps``, ``convergence_delta`` and ``baseline_probability``.
    """

    text: str
    method: str
    label: str
    probabilities: dict[str, float]
    weights: list[tuple[str, float]]
    faithfulness: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    model: str = ""
    unit: str = "word"
    details: dict[str, Any] = field(default_factory=dict)

    def top(self, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` words with the largest ``|weight|``, largest first."""
        return sorted(self.weights, key=lambda pair: -abs(pair[1]))[:k]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"method", "label", "probabilities", "tokens": [{"token", "weight"}],
        "faithfulness", "seconds", "details"}``; the HTTP server returns this shape."""
        return {
            "method": self.method,
            "label": self.label,
            "probabilities": {name: float(p) for name, p in self.probabilities.items()},
            "tokens": [{"token": word, "weight": float(w)} for word, w in self.weights],
            "faithfulness": self.faithfulness,
            "seconds": round(float(self.seconds), 4),
            "details": self.details,
        }

    def to_html(self) -> str:
        """One self-contained HTML page: highlighted text, header and faithfulness numbers."""
        return render_html([self])


def pick_label(labels: list[str], label: str | None, probabilities: np.ndarray) -> int:
    """The column of ``label`` in ``labels``, or of the most probable label when ``None``.

    Raises:
        LmforgeError: ``label`` is not one of ``labels``.
    """
    if label is None:
        return int(np.argmax(probabilities))
    if label not in labels:
        raise LmforgeError(
            f"label: {label!r} is not one of the model's labels ({', '.join(labels)}); pass "
            "one of them, or leave it out to explain the predicted label."
        )
    return labels.index(label)
