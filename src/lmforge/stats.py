"""Statistics shared below the stages: which way each metric is better, and the Wilson
interval of a proportion. The evaluator, the registry's promotion gate and the guard's
report all use them."""

from __future__ import annotations

import math
from statistics import NormalDist

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
