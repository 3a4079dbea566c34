"""The real MiniLM sentiment classifier (``sentiment_run``, trained once per test run from
``examples/train/classify_sentiment.yaml``, tests/integration/conftest.py): it learns,
its explanations put the sentiment-bearing words of a clearly negative review first
(both methods beating a random ranking), and served, /v1/classify labels held-out
reviews and a conversation that turns angry gets the escalate flag.

Every test of the classifier lives in this one file so that a single pytest-xdist
process trains it while the other runs other files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lmforge.explain import explain_text
from lmforge.explain.evaluate import random_explanation
from lmforge.hub.classifier import TextClassifier
from lmforge.train.loop import TrainResult
from tests.servers import lmforge_server, request

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
    assert explanation.probabilities["negative"] > 0.8  # measured 0.92 (2 epochs)
    top_word = explanation.top(1)[0][0]
    assert top_word in SENTIMENT_WORDS, explanation.top(5)
    supporting = sorted(explanation.weights, key=lambda pair: -pair[1])[:3]
    assert len({word for word, _ in supporting} & SENTIMENT_WORDS) >= 2, supporting
    random = [
        random_explanation(sentiment_classifier, REVIEW, seed).faithfulness["comprehensiveness"]
        for seed in range(RANDOM_SEEDS)
    ]
    assert explanation.faithfulness["comprehensiveness"] > float(np.mean(random)) + 0.05


def test_minilm_sentiment_classifier_learns_something(sentiment_run: TrainResult) -> None:
    # The example's classifier after 2 of its 5 epochs (tests/integration/conftest.py),
    # scored on the bundled validation split (237 reviews, 147 of them hand-written): 0.85.
    metrics = sentiment_run.eval_metrics
    assert len(metrics["confusion_matrix"]) == 3
    assert metrics["accuracy"] > 0.75, metrics  # three balanced classes: chance is 0.33


@pytest.fixture(scope="module")
def server(
    tiny_causal_lm: Path, sentiment_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A chat server (the tiny LLaMA: the answers do not matter here) with the real
    sentiment classifier as 'reviews' scoring every user turn."""
    env = {"LMFORGE_HOME": str(tmp_path_factory.mktemp("home"))}
    args = (str(tiny_causal_lm), "--served-name", "tiny",
            "--classifier", f"reviews={sentiment_model_dir}", "--sentiment", "reviews")  # fmt: skip
    with lmforge_server(*args, env=env) as base:
        yield base


def test_held_out_reviews_are_classified(server: str) -> None:
    lines = Path(__file__).resolve().parents[2].joinpath(
        "src/lmforge/assets/datasets/sentiment/test.jsonl").read_text().splitlines()  # fmt: skip
    records = [json.loads(line) for line in lines]
    status, text = request(server + "/v1/classify",
                           {"model": "reviews", "input": [r["text"] for r in records]})  # fmt: skip
    assert status == 200, text
    predicted = [row["label"] for row in json.loads(text)["data"]]
    accuracy = sum(p == r["label"] for p, r in zip(predicted, records, strict=True)) / len(records)
    # The fixture's 2-epoch classifier; measured 0.87 on these 237 (147 hand-written).
    assert accuracy >= 0.75, accuracy


def test_a_conversation_that_turns_angry_is_escalated(server: str) -> None:
    session_id = json.loads(request(server + "/v1/sessions", {})[1])["id"]
    turns = [
        ("Thanks, the new Keystone lock works perfectly and setup was easy.", False),
        ("This is the worst support ever, the lock broke after two days.", False),
        ("Useless. Nobody answers and I am furious, I want my money back now.", True),
    ]
    for text, escalate in turns:
        body = {"model": "tiny", "session_id": session_id, "max_tokens": 2,
                "messages": [{"role": "user", "content": text}]}  # fmt: skip
        status, reply = request(server + "/v1/chat/completions", body)
        assert status == 200, reply
        assert json.loads(reply)["escalate"] is escalate, reply
    trend = json.loads(request(server + f"/v1/sessions/{session_id}")[1])["metadata"]["sentiment"]
    assert [t["label"] for t in trend["turns"]] == ["positive", "negative", "negative"]
