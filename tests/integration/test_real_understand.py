"""The real MiniLM sentiment classifier served: /v1/classify on held-out reviews, and a
conversation that turns angry gets the escalate flag."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import lmforge_server, request

pytestmark = pytest.mark.integration


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
    # The fixture's 2-epoch classifier; measured 0.82 on these 204 (114 hand-written).
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
