"""Explanations of the real MiniLM sentiment classifier (``sentiment_model_dir``, trained
once per test run from ``examples/train/classify_sentiment.yaml``): both methods put
the sentiment-bearing words of a clearly negative review first, and both rankings are
more comprehensive than a random one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lmforge.explain import explain_text
from lmforge.explain.evaluate import random_explanation
from lmforge.hub.classifier import TextClassifier

pytestmark = pytest.mark.integration
REVIEW = (
    "Terrible thermostat: it broke after two days, the app is useless and support never answered."
)
SENTIMENT_WORDS = {"Terrible", "broke", "useless", "never"}
RANDOM_SEEDS = 10


@pytest.fixture(scope="module")
def sentiment_classifier(sentiment_model_dir: Path) -> TextClassifier:
    """The session's trained sentiment classifier (tests/integration/conftest.py), loaded."""
    return TextClassifier(str(sentiment_model_dir))


@pytest.mark.parametrize("method", ["lime", "ig"])
def test_the_sentiment_words_weigh_most_and_beat_a_random_ranking(
    sentiment_classifier: TextClassifier, method: str
) -> None:
    explanation = explain_text(sentiment_classifier, REVIEW, method)
    assert explanation.label == "negative"
    assert explanation.probabilities["negative"] > 0.8  # measured 0.90 (2 epochs)
    top_word = explanation.top(1)[0][0]
    assert top_word in SENTIMENT_WORDS, explanation.top(5)
    supporting = sorted(explanation.weights, key=lambda pair: -pair[1])[:3]
    assert len({word for word, _ in supporting} & SENTIMENT_WORDS) >= 2, supporting
    random = [
        random_explanation(sentiment_classifier, REVIEW, seed).faithfulness["comprehensiveness"]
        for seed in range(RANDOM_SEEDS)
    ]
    assert explanation.faithfulness["comprehensiveness"] > float(np.mean(random)) + 0.05
