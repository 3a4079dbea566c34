"""``lmforge serve --quantize int8`` on the real SmolLM2 follows fp32 token by token.

The measure is teacher-forced top-1 agreement over the assistant tokens of the bundled
held-out dialogs (1840 positions): greedy answers are too noisy to assert on, since an
answer forks for good at its first flipped near-tie. "What is the capital of France?"
is such a tie: fp32 starts "The" (then "... is Paris.") at 0.08 nats above "L", and
INT8 answers it "The capital of France is Paris.", "L'Étoile, la Cité, ...", "Est-..."
or "La femme, ..." depending on the rounding and on how the prompt reached the engine
(whole, after a cached system prompt, in a batch of 8), so no test asserts "Paris".
Figures: benchmarks/RESULTS.md, ``bench_compress.py --only agreement``.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

MODEL = "smollm2-135m-instruct"
# Measured with torch 2.13: 87.3% on an AMD EPYC with VNNI (8-bit activations), 81.3%
# on one with AVX2 only, where a smoothed model's activations use 7 bits (86.3% there
# with 8 bits, which saturate on other models: hub/quantized.py). Regressions land below
# the bounds: SmoothQuant at alpha 0.5 instead of 0.9 gives 78.3% (VNNI), none at all
# 59.4%. The bounds leave about 2.5 points for other CPUs' and torch versions' rounding.
AGREEMENT_VNNI = 0.85
AGREEMENT_NO_VNNI = 0.78


def test_served_int8_predicts_the_fp32_next_token_on_held_out_dialogs() -> None:
    from lmforge.compress.measure import next_token_predictions
    from lmforge.hardware import has_int8_dot
    from lmforge.hub import load_causal_lm, resolve
    from lmforge.serve.config import ServeConfig
    from lmforge.serve.server import build_handler

    fp32, tokenizer = load_causal_lm(resolve(MODEL))
    expected = next_token_predictions(fp32, tokenizer)
    del fp32
    engine = build_handler(ServeConfig(model=MODEL, quantize="int8")).engine
    got = next_token_predictions(engine.runner.model, engine.tokenizer)
    assert len(got) == len(expected) > 1000
    agreement = float((got == expected).float().mean())
    floor = AGREEMENT_VNNI if has_int8_dot() else AGREEMENT_NO_VNNI
    assert agreement >= floor, f"top-1 agreement with fp32 {agreement:.3f} < {floor}"
