"""The server on the real SmolLM2: 32 simultaneous streaming clients under greedy decoding
get, token for token, the answers each request gets alone."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from lmforge.data.bundled import dataset_path
from tests.servers import lmforge_server

pytestmark = pytest.mark.integration

MODEL = "smollm2-135m-instruct"
CLIENTS = 32
MAX_TOKENS = 16
NEAR_TIE = 1e-3  # top-2 logit gap under which batched and solo float sums may pick differently


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with lmforge_server(MODEL, "--max-batch", str(CLIENTS), "--no-access-log") as base:
        yield base


def questions() -> list[str]:
    path = dataset_path("customer_service", "test_questions")
    rows = [json.loads(line)["question"] for line in path.read_text().splitlines() if line]
    return [rows[i % len(rows)] + ("" if i < len(rows) else " Thanks!") for i in range(CLIENTS)]


def request(question: str) -> dict[str, Any]:
    return {
        "model": MODEL, "messages": [{"role": "user", "content": question}],
        "max_tokens": MAX_TOKENS, "temperature": 0, "logprobs": True, "top_logprobs": 2,
    }  # fmt: skip


async def together(base: str) -> list[list[Any]]:
    client = openai.AsyncOpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)

    async def one(question: str) -> list[Any]:
        stream = await client.chat.completions.create(**request(question), stream=True)
        return [t async for c in stream if c.choices and c.choices[0].logprobs
                for t in c.choices[0].logprobs.content]  # fmt: skip

    try:
        return await asyncio.gather(*(one(q) for q in questions()))
    finally:
        await client.close()


def gap(token: Any) -> float:
    first, second = token.top_logprobs[0].logprob, token.top_logprobs[1].logprob
    return first - second


def test_32_concurrent_streams_equal_the_requests_served_alone(server: str) -> None:
    batched = asyncio.run(together(server))
    client = openai.OpenAI(base_url=server + "/v1", api_key="unused", max_retries=0)
    alone = [
        client.chat.completions.create(**request(q)).choices[0].logprobs.content
        for q in questions()
    ]
    exact, near_ties = 0, 0
    for mine, solo in zip(batched, alone, strict=True):
        assert mine, "every stream completes with tokens"
        tokens_mine, tokens_solo = [t.token for t in mine], [t.token for t in solo]
        if tokens_mine == tokens_solo:
            exact += 1
            continue
        pairs = zip(tokens_mine, tokens_solo, strict=False)
        first = next((i for i, (a, b) in enumerate(pairs) if a != b), None)
        assert first is not None, f"one answer stopped early: {tokens_mine} vs {tokens_solo}"
        assert min(gap(mine[first]), gap(solo[first])) < NEAR_TIE, (
            f"answers differ at token {first} without a near-tie: {tokens_mine} vs {tokens_solo}"
        )
        near_ties += 1
    assert exact + near_ties == CLIENTS
    assert exact >= CLIENTS - 2, f"only {exact} identical; {near_ties} explained by near-ties"


def test_a_session_through_the_openai_client(server: str) -> None:
    client = openai.OpenAI(base_url=server + "/v1", api_key="unused", max_retries=0)
    session = client.post("/sessions", body={"system": "You are Brightnest support."},
                          cast_to=dict)  # fmt: skip
    first = client.chat.completions.create(
        model=MODEL, max_tokens=24, temperature=0, extra_body={"session_id": session["id"]},
        messages=[{"role": "user", "content": "Hi, my name is Biscuit Jones."}],
    )  # fmt: skip
    second = client.chat.completions.create(
        model=MODEL, max_tokens=24, temperature=0, extra_body={"session_id": session["id"]},
        messages=[{"role": "user", "content": "What is my name?"}],
    )  # fmt: skip
    assert first.model_extra["session_id"] == session["id"]
    assert "Biscuit" in (second.choices[0].message.content or "")
    stored = client.get(f"/sessions/{session['id']}", cast_to=dict)
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant"] * 2
