"""Explain a tabular classifier's prediction on one row: lmforge's tabular models with
their own attributions (``explain_model_row``), any other model with LIME.

``explain_model_row`` gives a model trained with task ``tabular`` or ``lightgbm`` each
feature's share of the row's log-odds: integrated gradients for the FT-Transformer,
LightGBM's own contributions (TreeSHAP) for the trees, as the scoring endpoint does.

For LIME (``explain_tabular``) any model works: it is reached only through
``predict_proba`` (rows -> class probabilities), so scikit-learn pipelines and torch
models alike can be explained.
Faithfulness is not computed for tabular rows: removing a feature has no single
meaning (zero? the training mean?), so the scores are left empty.

Example:
    explanation = explain_tabular(model.predict_proba, X_train, ["temp", "load"], X_test[0])
    explanation.top(1)  # [("temp", 0.31)]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from lime.lime_tabular import LimeTabularExplainer

from lmforge.errors import LmforgeError
from lmforge.explain.explanation import Explanation, pick_label
from lmforge.hub.tabular import FT_TRANSFORMER, TabularModel

RANDOM_STATE = 0


def explain_tabular(
    predict_proba: Callable[[np.ndarray], np.ndarray],
    training_data: np.ndarray,
    feature_names: list[str],
    row: np.ndarray,
    *,
    class_names: Sequence[str] | None = None,
    label: str | None = None,
    num_samples: int = 1000,
    categorical_features: Sequence[int] | None = None,
) -> Explanation:
    """LIME's weight for every feature of ``row`` (``LimeTabularExplainer``, quartile bins).

    A weight belongs to the condition the row meets, e.g. ``temp > 0.67``; the
    conditions are in ``details["rules"]``.

    Args:
        predict_proba: ``(N, F) -> (N, C)`` class probabilities.
        training_data: ``(M, F)`` rows LIME samples feature statistics from.
        feature_names: ``F`` names, in column order.
        row: ``(F,)`` the row to explain.
        class_names: ``C`` names in ``predict_proba``'s column order (default "0", "1", ...).
        label: The class to explain (default: the predicted one).
        num_samples: Perturbed rows (reproducible: fixed random state).
        categorical_features: Column indexes holding categories, not numbers.

    Returns:
        An explanation with ``unit="feature"``: ``weights`` holds ``(feature, weight)``
        in column order; ``faithfulness`` is empty.

    Raises:
        LmforgeError: shapes that disagree with ``feature_names``, or an unknown label.
    """
    training_data = np.asarray(training_data, dtype=np.float64)
    row = np.asarray(row, dtype=np.float64)
    _check_shapes(training_data, feature_names, row)
    probabilities = np.asarray(predict_proba(row[None]))[0]  # (C,)
    names = [str(name) for name in class_names] if class_names else []
    names = names or [str(i) for i in range(len(probabilities))]
    label_index = pick_label(names, label, probabilities)
    started = time.perf_counter()
    explainer = LimeTabularExplainer(
        training_data,
        feature_names=feature_names,
        class_names=names,
        categorical_features=list(categorical_features or []),
        random_state=RANDOM_STATE,
    )
    result = explainer.explain_instance(
        row,
        predict_proba,
        labels=(label_index,),
        num_features=len(feature_names),
        num_samples=num_samples,
    )
    seconds = time.perf_counter() - started
    weight_of = dict(result.as_map()[label_index])
    rule_of = dict(
        zip(
            [i for i, _ in result.as_map()[label_index]],
            [rule for rule, _ in result.as_list(label_index)],
            strict=True,
        )
    )
    return Explanation(
        text=", ".join(f"{name}={value:g}" for name, value in zip(feature_names, row, strict=True)),
        method="lime",
        label=names[label_index],
        probabilities=dict(zip(names, probabilities.tolist(), strict=True)),
        weights=[(name, float(weight_of.get(i, 0.0))) for i, name in enumerate(feature_names)],
        seconds=seconds,
        unit="feature",
        details={
            "num_samples": num_samples,
            "local_r2": float(result.score),
            "rules": {feature_names[i]: rule for i, rule in rule_of.items()},
        },
    )


def explain_model_row(
    model: TabularModel, row: dict[str, Any], *, steps: int = 64, ref: str = ""
) -> Explanation:
    """Each feature's contribution to ``row``'s log-odds of the positive class, with the
    model's decision at its saved threshold.

    Args:
        model: a loaded tabular model (``lmforge.hub.tabular.load_tabular``).
        row: the feature values by column name (extra keys are ignored).
        steps: integrated gradients' interpolation steps (FT-Transformer only).

    Returns:
        An explanation with ``unit="feature"`` and ``method`` ``ig`` or ``tree_shap``;
        ``details`` holds the threshold, whether the row is flagged, and for integrated
        gradients the baseline's logit (the weights add up to logit - baseline).

    Raises:
        LmforgeError: a feature is missing or not a number (naming it).
    """
    processor = model.processor
    table = processor.rows_table([row], where="row")
    numeric, codes = model.inputs(table)
    started = time.perf_counter()
    probabilities, contributions = model.explain(numeric, codes, steps=steps)
    probability, weights = float(probabilities[0]), contributions[0]
    seconds = time.perf_counter() - started
    negative, positive = processor.classes
    flagged = probability >= processor.decision.threshold
    values = [row[name] for name in processor.features]
    return Explanation(
        text=", ".join(
            f"{name}={value}" for name, value in zip(processor.features, values, strict=True)
        ),
        method="ig" if model.kind == FT_TRANSFORMER else "tree_shap",
        label=positive,  # the weights are log-odds of the positive class
        probabilities={negative: 1 - probability, positive: probability},
        weights=[(name, float(w)) for name, w in zip(processor.features, weights, strict=True)],
        seconds=seconds,
        model=ref,
        unit="feature",
        details={
            "threshold": processor.decision.threshold,
            "flagged": bool(flagged),
            "decision": positive if flagged else negative,
            "steps": steps,
        },
    )


def _check_shapes(training_data: np.ndarray, feature_names: list[str], row: np.ndarray) -> None:
    n_features = len(feature_names)
    if training_data.ndim != 2 or training_data.shape[1] != n_features:
        raise LmforgeError(
            f"training_data: shape {training_data.shape}, but feature_names lists "
            f"{n_features} features; pass a (rows, {n_features}) array."
        )
    if row.shape != (n_features,):
        raise LmforgeError(
            f"row: shape {row.shape}, but feature_names lists {n_features} features; "
            f"pass one row of {n_features} values."
        )
