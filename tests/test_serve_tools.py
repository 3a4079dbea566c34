"""Tool calling through the official ``openai`` client: ``tools``, ``tool_choice``,
streamed ``tool_calls`` deltas and tool results in the history, against a real ``lmforge
serve`` of the tiny model on each backend (its context is 512 tokens here: the tools'
definitions take about 300). The random tiny model never calls a tool on its own, so the
calls come from ``required`` or a named function, where the grammar writes them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import openai
import pytest

from tests.servers import lmforge_server

NAME = "tiny"


@pytest.fixture(scope="module")
def client(tiny_served: tuple[str, Path]) -> Iterator[openai.OpenAI]:
    backend, model = tiny_served
    with lmforge_server(
        str(model), "--served-name", NAME, "--max-model-len", "512", "--max-batch", "8",
        "--max-tokens-limit", "256", "--backend", backend,
    ) as base:  # fmt: skip
        yield openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)


def ask(client: openai.OpenAI, text: str = "Hello there", **options: object) -> object:
    options = {"max_tokens": 12, "temperature": 1.0, "seed": 7, **options}
    return client.chat.completions.create(
        model=NAME, messages=[{"role": "user", "content": text}], **options
    )


TOOLS = [
    {"type": "function", "function": {
        "name": "lookup_order", "description": "Status of an order",
        "parameters": {"type": "object", "additionalProperties": False,
                       "properties": {"order_id": {"type": "string", "pattern": "^BN-[0-9]{4}$"}},
                       "required": ["order_id"]}}},
    {"type": "function", "function": {
        "name": "start_return", "description": "Open a return",
        "parameters": {"type": "object", "additionalProperties": False,
                       "properties": {"order_id": {"type": "string", "pattern": "^BN-[0-9]{4}$"},
                                      "reason": {"enum": ["broken", "unwanted"]}},
                       "required": ["order_id", "reason"]}}},
]  # fmt: skip


def _check_calls(message: object, names: set[str]) -> list[object]:
    import jsonschema

    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
    assert message.tool_calls, message
    for call in message.tool_calls:
        assert call.type == "function" and call.id.startswith("call_")
        assert call.function.name in names
        jsonschema.validate(json.loads(call.function.arguments), schemas[call.function.name])
    return message.tool_calls


def assembled(pieces: list[Any]) -> list[Any]:
    """Streamed ``tool_calls`` deltas put together as a client does: a call's first delta
    has its id, type and name (empty arguments), the later ones add to its arguments."""
    calls: dict[int, Any] = {}
    for piece in pieces:
        if piece.id is not None:
            assert piece.type == "function" and piece.function.arguments == ""
            calls[piece.index] = SimpleNamespace(id=piece.id, type="function",
                function=SimpleNamespace(name=piece.function.name, arguments=""))  # fmt: skip
        else:
            assert piece.function.name is None
            calls[piece.index].function.arguments += piece.function.arguments
    return list(calls.values())


def test_tool_choice_required_and_named_give_valid_calls(client: openai.OpenAI) -> None:
    required = ask(client, "Return BN-1042, it broke", max_tokens=200, n=4, tools=TOOLS,
                   tool_choice="required", parallel_tool_calls=False)  # fmt: skip
    for choice in required.choices:
        assert choice.finish_reason == "tool_calls" and choice.message.content is None
        assert len(_check_calls(choice.message, {"lookup_order", "start_return"})) == 1
    named = ask(client, "Where is BN-1042?", max_tokens=200, tools=TOOLS,
                tool_choice={"type": "function", "function": {"name": "start_return"}})  # fmt: skip
    _check_calls(named.choices[0].message, {"start_return"})
    none = ask(client, max_tokens=5, tools=TOOLS, tool_choice="none")
    assert none.choices[0].message.tool_calls is None
    assert none.choices[0].finish_reason == "length"


def test_streamed_tool_calls_and_the_results_in_the_history(client: openai.OpenAI) -> None:
    options = {"max_tokens": 200, "seed": 11, "tools": TOOLS, "tool_choice": "required"}
    whole = ask(client, "Where is BN-1042?", **options).choices[0]
    chunks = list(ask(client, "Where is BN-1042?", stream=True, **options))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    pieces = [call for d in deltas for call in d.tool_calls or []]
    calls = assembled(pieces)
    assert [(c.function.name, c.function.arguments) for c in calls] == [
        (c.function.name, c.function.arguments) for c in whole.message.tool_calls
    ]
    assert len(pieces) > 2 * len(calls)  # the arguments came in several deltas
    assert not any(d.content for d in deltas)  # the call's text is never content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    call = whole.message.tool_calls[0]
    history = [
        {"role": "user", "content": "Where is BN-1042?"},
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": '{"status": "shipped"}'},
    ]
    answer = client.chat.completions.create(model=NAME, messages=history, tools=TOOLS,
                                            tool_choice="none", max_tokens=5)  # fmt: skip
    assert answer.choices[0].message.content


def test_tool_mistakes_are_400s(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        ask(client, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "x"}})
    assert error.value.param == "tool_choice" and "lookup_order" in str(error.value)
    with pytest.raises(openai.BadRequestError) as error:
        ask(client, tool_choice="required")
    assert "give tools" in str(error.value)
    with pytest.raises(openai.BadRequestError) as error:
        ask(client, tools=TOOLS, tool_choice="required", response_format={"type": "json_object"})
    assert error.value.param == "tool_choice"


def test_tool_calls_in_a_session_and_through_the_async_client(client: openai.OpenAI) -> None:
    import asyncio

    session = client.post("/sessions", body={"system": "You are Nessa."}, cast_to=object)
    options = {"max_tokens": 200, "tools": TOOLS, "tool_choice": "required",
               "extra_body": {"session_id": session["id"]}}  # fmt: skip
    first = ask(client, "Where is BN-1042?", **options).choices[0].message
    call = first.tool_calls[0]
    stored = client.get(f"/sessions/{session['id']}", cast_to=object)["messages"]
    assert stored[-1]["content"].startswith("<tool_call>\n")  # the call, as the model wrote it
    result = {"role": "tool", "tool_call_id": call.id, "content": '{"status": "shipped"}'}
    second = client.chat.completions.create(model=NAME, messages=[result], max_tokens=4,
                                            tools=TOOLS, tool_choice="none",
                                            extra_body={"session_id": session["id"]})  # fmt: skip
    assert second.choices[0].finish_reason == "length"
    stored = client.get(f"/sessions/{session['id']}", cast_to=object)["messages"]
    assert stored[-2]["content"] == '<tool_response>\n{"status": "shipped"}\n</tool_response>'

    async def streamed() -> list[object]:
        async_client = openai.AsyncOpenAI(base_url=str(client.base_url), api_key="unused",
                                          max_retries=0)  # fmt: skip
        stream = await async_client.chat.completions.create(
            model=NAME,
            messages=[{"role": "user", "content": "Return BN-1042"}],
            max_tokens=200,
            seed=5,
            tools=TOOLS,
            tool_choice="required",
            stream=True,
        )
        calls = [call async for chunk in stream if chunk.choices
                 for call in chunk.choices[0].delta.tool_calls or []]  # fmt: skip
        await async_client.close()
        return calls

    calls = assembled(asyncio.run(streamed()))
    _check_calls(type("M", (), {"tool_calls": calls})(), {"lookup_order", "start_return"})


def test_a_model_whose_template_renders_tools_is_served_in_its_own_format(
    tiny_causal_lm: Path, tmp_path: Path
) -> None:
    """The prompt is the template's own rendering of the tools, calls and results (its
    token count says so), and the answer's call is parsed and constrained the same way."""
    from transformers import AutoTokenizer

    from lmforge.data.chat import chat_text
    from lmforge.data.tools import plain_messages
    from tests.models import with_native_tools_template

    native = with_native_tools_template(tiny_causal_lm, tmp_path / "native")
    history = [
        {"role": "user", "content": "Where is BN-1042?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type":
            "function", "function": {"name": "lookup_order",
                                     "arguments": '{"order_id": "BN-1042"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"status": "shipped"}'},
        {"role": "user", "content": "Then return it, it broke"},
    ]  # fmt: skip
    plain = plain_messages(history, TOOLS)
    counts = {}
    for name, model in (("native", native), ("default", tiny_causal_lm)):
        tokenizer = AutoTokenizer.from_pretrained(model)
        text = chat_text(tokenizer, plain, add_generation_prompt=True)
        counts[name] = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    assert counts["native"] != counts["default"]
    with lmforge_server(str(native), "--served-name", NAME, "--max-model-len", "512",
                        "--max-tokens-limit", "128") as base:  # fmt: skip
        client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
        answer = client.chat.completions.create(
            model=NAME, messages=history, tools=TOOLS, tool_choice="required",
            parallel_tool_calls=False, max_tokens=120, temperature=1.0, seed=3,
        )  # fmt: skip
    assert answer.usage.prompt_tokens == counts["native"]
    assert answer.choices[0].finish_reason == "tool_calls"
    _check_calls(answer.choices[0].message, {"lookup_order", "start_return"})
