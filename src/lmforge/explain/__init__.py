"""Explanations of classifier predictions, and how faithful they are.

- ``explain_text``: LIME or integrated gradients, word by word, for a ``TextClassifier``;
- ``explain_tabular``: LIME for any ``predict_proba`` over table rows;
- ``explain_model_row``: a tabular model's own attributions for one row (integrated
  gradients for the FT-Transformer, TreeSHAP for LightGBM);
- ``faithfulness``: ERASER comprehensiveness and sufficiency, and the deletion curve;
- ``render_html``: one self-contained page for one or more explanations;
- ``evaluate_explanations``: mean faithfulness per method over a dataset, in MLflow.
"""

from lmforge.explain.evaluate import EvaluationResult, evaluate_explanations, load_records
from lmforge.explain.explanation import Explanation
from lmforge.explain.faithfulness import faithfulness
from lmforge.explain.render import render_html
from lmforge.explain.tabular import explain_model_row, explain_tabular
from lmforge.explain.text import METHODS, explain_text
from lmforge.explain.words import words_of

__all__ = [
    "METHODS",
    "EvaluationResult",
    "Explanation",
    "evaluate_explanations",
    "explain_model_row",
    "explain_tabular",
    "explain_text",
    "faithfulness",
    "load_records",
    "render_html",
    "words_of",
]
