"""The OpenAI-compatible server, driven by the official ``openai`` client over loopback.

A real ``lmforge serve`` process (uvicorn) serves the tiny 2-layer model, once through
each backend: ``torch`` (the transformers directory) and ``llamacpp`` (the same weights
exported to GGUF, run by llama.cpp). Greedy output of a random tiny model is mostly one
repeated token, so tests that compare texts use seeded sampling, which the engine makes
independent of batching.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.servers import lmforge_server, request

NAME = "tiny"
CONTEXT = 96
HELLO, OPEN_BRACE, CLOSE_BRACE = 28120, 107, 109  # "hello", "{", "}" in SmolLM2's vocabulary


@pytest.fixture(scope="module")
def server(tiny_served: tuple[str, Path]) -> Iterator[str]:
    backend, model = tiny_served
    with lmforge_server(
        str(model), "--served-name", NAME, "--max-model-len", str(CONTEXT),
        "--max-batch", "8", "--max-tokens-limit", "64", "--backend", backend,
    ) as base:  # fmt: skip
        yield base


@pytest.fixture
def client(server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server + "/v1", api_key="unused", max_retries=0)


def ask(client: openai.OpenAI, text: str = "Hello there", **options: object) -> object:
    options = {"max_tokens": 12, "temperature": 1.0, "seed": 7, **options}
    return client.chat.completions.create(
        model=NAME, messages=[{"role": "user", "content": text}], **options
    )


def test_models_health_and_ready(server: str, client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list().data] == [NAME]
    assert request(server + "/health") == (200, '{"status":"ok"}')
    assert request(server + "/ready")[0] == 200


def test_chat_completion_counts_tokens_and_stops_at_max_tokens(client: openai.OpenAI) -> None:
    response = ask(client, max_tokens=5)
    choice = response.choices[0]
    assert response.object == "chat.completion" and response.model == NAME
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason == "length"
    assert response.usage.completion_tokens == 5
    assert response.usage.total_tokens == response.usage.prompt_tokens + 5


def test_same_seed_same_answer_and_other_seed_differs(client: openai.OpenAI) -> None:
    first = ask(client).choices[0].message.content
    assert ask(client).choices[0].message.content == first
    assert ask(client, seed=8).choices[0].message.content != first


def test_stream_matches_the_whole_answer_and_reports_usage(client: openai.OpenAI) -> None:
    whole = ask(client)
    stream = ask(client, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert not chunks[-1].choices and chunks[-1].usage.completion_tokens == 12


def test_stream_ends_with_done(server: str) -> None:
    body = {"model": NAME, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3,
            "stream": True}  # fmt: skip
    status, text = request(server + "/v1/chat/completions", body)
    lines = text.strip().split("\n\n")
    assert status == 200
    assert lines[-1] == "data: [DONE]"
    assert all(line.startswith("data: {") for line in lines[:-1])


def test_stop_string_cuts_the_answer(client: openai.OpenAI) -> None:
    full = ask(client, max_tokens=20).choices[0].message.content
    stop = full[len(full) // 2 : len(full) // 2 + 2]
    cut = ask(client, max_tokens=20, stop=[stop]).choices[0]
    assert cut.finish_reason == "stop"
    assert cut.message.content == full[: full.find(stop)]
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in ask(client, max_tokens=20, stop=stop, stream=True)
        if c.choices
    )
    assert streamed == cut.message.content  # a stop string is never streamed


def test_n_choices_differ_and_repeat_with_the_seed(client: openai.OpenAI) -> None:
    response = ask(client, n=3)
    texts = [c.message.content for c in response.choices]
    assert [c.index for c in response.choices] == [0, 1, 2]
    assert len(set(texts)) == 3
    assert [c.message.content for c in ask(client, n=3).choices] == texts
    assert response.usage.completion_tokens == 36
    assert response.usage.prompt_tokens == ask(client).usage.prompt_tokens  # counted once


def test_logprobs_rank_the_chosen_token(client: openai.OpenAI) -> None:
    response = ask(client, temperature=0, max_tokens=4, logprobs=True, top_logprobs=3)
    content = response.choices[0].logprobs.content
    assert len(content) == 4
    for token in content:
        assert len(token.top_logprobs) == 3
        assert token.logprob == pytest.approx(token.top_logprobs[0].logprob)  # greedy: the top
        assert token.token == token.top_logprobs[0].token
        assert token.logprob <= 0


def test_penalties_change_a_greedy_answer(client: openai.OpenAI) -> None:
    plain = ask(client, temperature=0, max_tokens=12).choices[0].message.content
    penalized = ask(client, temperature=0, max_tokens=12, frequency_penalty=2.0)
    assert penalized.choices[0].message.content != plain


def test_text_completions_with_echo_logprobs_and_a_batch(client: openai.OpenAI) -> None:
    response = client.completions.create(
        model=NAME, prompt="Once upon a time", max_tokens=4, temperature=0, echo=True, logprobs=2
    )
    choice = response.choices[0]
    assert choice.text.startswith("Once upon a time")
    assert len(choice.logprobs.tokens) == 4
    assert choice.logprobs.text_offset[0] == len("Once upon a time")
    batch = client.completions.create(model=NAME, prompt=["one", "two"], max_tokens=3, n=2, seed=1)
    assert [c.index for c in batch.choices] == [0, 1, 2, 3]
    assert batch.usage.completion_tokens == 12


def test_a_long_conversation_reuses_the_cached_prefix(client: openai.OpenAI) -> None:
    history = [{"role": "user", "content": "My dog is called Biscuit."}]
    first = client.chat.completions.create(
        model=NAME, messages=history, max_tokens=4, temperature=0
    )
    history += [
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "What is my dog called?"},
    ]
    second = client.chat.completions.create(
        model=NAME, messages=history, max_tokens=4, temperature=0
    )
    # The whole first prompt is reused, but for its last token ("assistant\n") when the
    # tokenizer merges it with the start of the answer once the answer is in the history.
    assert second.usage.prompt_tokens_details.cached_tokens >= first.usage.prompt_tokens - 1


async def _concurrent(server: str, count: int) -> list[str]:
    client = openai.AsyncOpenAI(base_url=server + "/v1", api_key="unused", max_retries=0)

    async def one(i: int) -> str:
        stream = await client.chat.completions.create(
            model=NAME, messages=[{"role": "user", "content": f"Question number {i}"}],
            max_tokens=16, temperature=1.0, seed=i, stream=True,
        )  # fmt: skip
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    try:
        return await asyncio.gather(*(one(i) for i in range(count)))
    finally:
        await client.close()


def test_concurrent_streams_equal_the_same_requests_served_alone(
    server: str, client: openai.OpenAI
) -> None:
    together = asyncio.run(_concurrent(server, 12))  # more than --max-batch 8: some wait
    alone = [ask(client, f"Question number {i}", max_tokens=16, seed=i) for i in range(12)]
    assert together == [r.choices[0].message.content for r in alone]


def test_errors_have_the_openai_shape(server: str, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as too_long:
        ask(client, "word " * 200)
    assert too_long.value.code == "context_length_exceeded"
    assert f"maximum context length is {CONTEXT} tokens" in str(too_long.value)
    with pytest.raises(openai.BadRequestError) as bad:
        ask(client, temperature=3)
    assert bad.value.param == "temperature"
    with pytest.raises(openai.BadRequestError) as greedy_limit:
        ask(client, max_tokens=65)
    assert "at most 64" in str(greedy_limit.value)
    status, text = request(server + "/v1/completions", raw=b"{not json")
    assert status == 400
    assert set(json.loads(text)["error"]) == {"message", "type", "param", "code"}
    status, text = request(server + "/v1/nothing-here")
    assert status == 404 and json.loads(text)["error"]["type"] == "not_found_error"


def test_metrics_report_latencies_queue_and_tokens(server: str, client: openai.OpenAI) -> None:
    ask(client, max_tokens=6)
    status, text = request(server + "/metrics")
    assert status == 200
    metrics = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    for name in ("time_to_first_token", "inter_token_latency", "e2e_request_latency",
                 "request_queue_time"):  # fmt: skip
        assert metrics[f"lmforge_{name}_seconds_count"] >= 1, name
    assert metrics["lmforge_num_requests_running"] == 0
    assert metrics["lmforge_num_requests_waiting"] == 0
    assert metrics["lmforge_generation_tokens_total"] >= 6
    assert metrics["lmforge_prompt_tokens_total"] > 0


# --- structured outputs (constrained decoding, serve/grammar.py) ------------------------

ORDER_SCHEMA = {
    "type": "object",
    "properties": {"order": {"type": "string", "pattern": "^BN-[0-9]{4}$"},
                   "action": {"enum": ["refund", "replace"]},
                   "items": {"type": "integer", "minimum": 1, "maximum": 5}},
    "required": ["order", "action", "items"], "additionalProperties": False,
}  # fmt: skip


def test_json_schema_answers_validate_streamed_or_not(client: openai.OpenAI) -> None:
    import jsonschema

    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "order", "schema": ORDER_SCHEMA, "strict": True},
    }
    answers = ask(client, "Which order?", max_tokens=40, n=4,
                  response_format=response_format).choices  # fmt: skip
    for choice in answers:
        assert choice.finish_reason == "stop"
        jsonschema.validate(json.loads(choice.message.content), ORDER_SCHEMA)
    stream = ask(client, "Which order?", max_tokens=40, seed=3, stream=True,
                 response_format=response_format)  # fmt: skip
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    jsonschema.validate(json.loads(streamed), ORDER_SCHEMA)
    whole = ask(client, "Which order?", max_tokens=40, seed=3, response_format=response_format)
    assert whole.choices[0].message.content == streamed


def test_json_object_regex_choice_and_logit_bias(client: openai.OpenAI) -> None:
    # '{' then '}' made likely, so that the random model's object closes within max_tokens
    json_mode = ask(client, max_tokens=60, temperature=0, response_format={"type": "json_object"},
                    logit_bias={str(OPEN_BRACE): 30, str(CLOSE_BRACE): 20})  # fmt: skip
    assert isinstance(json.loads(json_mode.choices[0].message.content), dict)
    picked = ask(client, extra_body={"structured_outputs": {"choice": ["yes", "no"]}})
    assert picked.choices[0].message.content in {"yes", "no"}
    completion = client.completions.create(
        model=NAME, prompt="Order number:", max_tokens=10, temperature=1.0,
        extra_body={"structured_outputs": {"regex": "BN-[0-9]{4}"}},
    )  # fmt: skip
    assert re.fullmatch(r"BN-[0-9]{4}", completion.choices[0].text)
    forced = ask(client, max_tokens=3, logit_bias={str(HELLO): 100})
    assert forced.choices[0].message.content == "hello" * 3
    banned = ask(client, max_tokens=3, temperature=0, logit_bias={str(HELLO): -100})
    assert "hello" not in banned.choices[0].message.content


def test_structured_output_mistakes_are_400s_that_name_them(client: openai.OpenAI) -> None:
    unsupported = {"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "string", "format": "weird-format"}}}  # fmt: skip
    with pytest.raises(openai.BadRequestError) as error:
        ask(client, response_format=unsupported)
    assert error.value.param == "response_format" and "weird-format" in str(error.value)
    with pytest.raises(openai.BadRequestError) as error:
        ask(client, response_format={"type": "json_schema"})
    assert error.value.param == "response_format.json_schema"
    with pytest.raises(openai.BadRequestError) as error:
        ask(client, extra_body={"structured_outputs": {"regex": "a", "choice": ["b"]}})
    assert "exactly one of json, regex, choice, grammar" in str(error.value)
    with pytest.raises(openai.BadRequestError) as error:
        ask(client, logit_bias={"999999": 1})
    assert error.value.param == "logit_bias" and "999999" in str(error.value)
    with pytest.raises(openai.BadRequestError) as error:
        ask(client, logit_bias={"5": 101})
    assert error.value.param and error.value.param.startswith("logit_bias")


def test_every_completion_carries_the_system_fingerprint(client: openai.OpenAI) -> None:
    chat = ask(client)
    assert re.fullmatch(r"fp_[0-9a-f]{10}", chat.system_fingerprint)
    chunks = list(ask(client, stream=True))
    assert {c.system_fingerprint for c in chunks} == {chat.system_fingerprint}
    text = client.completions.create(model=NAME, prompt="Hi", max_tokens=2)
    assert text.system_fingerprint == chat.system_fingerprint


def test_the_pre_1_0_openai_library_engine_route(server: str) -> None:
    """Exactly what openai 0.28's ``openai.Completion.create(engine=NAME, prompt=...,
    max_tokens=...)`` sends (api_base http://host/v1): the engine in the path, no model."""
    import urllib.request

    body = json.dumps({"prompt": "def add(a, b):", "max_tokens": 5}).encode()
    headers = {"Content-Type": "application/json", "Authorization": "Bearer unused",
               "User-Agent": "OpenAI/v1 PythonBindings/0.28.1",
               "X-OpenAI-Client-User-Agent": json.dumps(
                   {"bindings_version": "0.28.1", "httplib": "requests", "lang": "python",
                    "lang_version": "3.11.9", "platform": "Linux", "publisher": "openai",
                    "uname": "Linux"})}  # fmt: skip
    sent = urllib.request.Request(f"{server}/v1/engines/{NAME}/completions", data=body,
                                  headers=headers, method="POST")  # fmt: skip
    with urllib.request.urlopen(sent, timeout=60) as response:
        answer = json.loads(response.read())
    assert answer["object"] == "text_completion" and answer["model"] == NAME
    assert answer["usage"]["completion_tokens"] == 5 and answer["choices"][0]["text"]
    status, text = request(f"{server}/v1/engines/gpt-9/completions", {"prompt": "x"})
    assert status == 404 and json.loads(text)["error"]["code"] == "model_not_found"
