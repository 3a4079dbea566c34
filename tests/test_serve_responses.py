"""The Responses API (``POST /v1/responses``) through the official ``openai`` client's
``responses.create``, ``responses.stream``, ``responses.parse``, ``retrieve`` and
``delete``, against a real ``lmforge serve`` of the tiny model (torch backend: the
endpoint is the same above either backend, which tests/test_serve_tools.py covers).

The random tiny model rarely ends an answer by itself, so answers that must complete
(the stream helper and ``parse`` need ``response.completed``) are constrained by a JSON
Schema or tools, whose grammars end them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field

from tests.servers import lmforge_server

NAME = "tiny"
LOOKUP = {
    "type": "function", "name": "lookup_order", "description": "Status of an order",
    "parameters": {"type": "object", "additionalProperties": False,
                   "properties": {"order_id": {"type": "string", "pattern": "^BN-[0-9]{4}$"}},
                   "required": ["order_id"]},
}  # fmt: skip
RETURN = {
    "type": "function", "name": "start_return", "description": "Open a return",
    "parameters": {"type": "object", "additionalProperties": False,
                   "properties": {"order_id": {"type": "string", "pattern": "^BN-[0-9]{4}$"},
                                  "reason": {"enum": ["broken", "unwanted"]}},
                   "required": ["order_id", "reason"]},
}  # fmt: skip
URGENCY = {"type": "object", "properties": {"urgency": {"enum": ["low", "high"]}},
           "required": ["urgency"], "additionalProperties": False}  # fmt: skip


@pytest.fixture(scope="module")
def client(tiny_causal_lm: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    home = tmp_path_factory.mktemp("responses-home")
    with lmforge_server(
        str(tiny_causal_lm), "--served-name", NAME, "--max-model-len", "512",
        "--max-tokens-limit", "256", env={"LMFORGE_HOME": str(home)},
    ) as base:  # fmt: skip
        yield openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)


def create(client: Any, **options: Any) -> Any:
    return client.responses.create(model=NAME, **{"temperature": 0, **options})


def test_a_response_continues_by_previous_response_id(client: Any) -> None:
    first = create(client, input="Hello", instructions="Be brief.", max_output_tokens=6)
    assert first.id.startswith("resp_") and first.object == "response"
    assert first.status == "incomplete" and first.incomplete_details.reason == "max_output_tokens"
    assert first.output_text and first.usage.output_tokens == 6
    assert first.instructions == "Be brief." and first.store is True
    second = create(client, input="And then?", previous_response_id=first.id, max_output_tokens=6)
    assert second.previous_response_id == first.id
    # the same prompt written out: the earlier turn, no instructions (they do not carry over)
    spelled = create(client, max_output_tokens=6, input=[
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": [{"type": "output_text", "text": first.output_text}]},
        {"role": "user", "content": "And then?"}])  # fmt: skip
    assert second.usage.input_tokens == spelled.usage.input_tokens
    assert second.output_text == spelled.output_text  # greedy: the same answer
    assert client.responses.retrieve(first.id).output_text == first.output_text


def test_stored_responses_can_be_deleted_and_unknown_ones_are_404s(client: Any) -> None:
    kept = create(client, input="Hi", max_output_tokens=3)
    client.responses.delete(kept.id)
    with pytest.raises(openai.NotFoundError, match=kept.id):
        client.responses.retrieve(kept.id)
    with pytest.raises(openai.NotFoundError) as error:
        create(client, input="Hi", previous_response_id=kept.id, max_output_tokens=3)
    assert error.value.body["param"] == "previous_response_id"
    unstored = create(client, input="Hi", max_output_tokens=3, store=False)
    assert unstored.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)


def test_text_format_json_schema_and_parse(client: Any) -> None:
    answer = create(client, input="How urgent?", temperature=1.0, max_output_tokens=40,
                    text={"format": {"type": "json_schema", "name": "urgency",
                                     "schema": URGENCY, "strict": True}})  # fmt: skip
    assert answer.status == "completed"
    jsonschema.validate(json.loads(answer.output_text), URGENCY)

    class Ticket(BaseModel):
        urgency: Literal["low", "high"]
        items: int = Field(ge=0, le=9)

    parsed = client.responses.parse(model=NAME, input="A ticket", text_format=Ticket,
                                    temperature=1.0, max_output_tokens=60)  # fmt: skip
    assert isinstance(parsed.output_parsed, Ticket)
    with pytest.raises(openai.BadRequestError) as error:
        create(client, input="x", text={"format": {"type": "json_schema", "name": "x",
               "schema": {"type": "string", "format": "weird-format"}}})  # fmt: skip
    assert error.value.body["param"] == "text.format" and "weird-format" in str(error.value)


def test_the_stream_helper_accumulates_the_events(client: Any) -> None:
    options = {
        "input": "How urgent?",
        "max_output_tokens": 40,
        "temperature": 0,
        "text": {"format": {"type": "json_schema", "name": "u", "schema": URGENCY}},
    }
    kinds, deltas = [], []
    with client.responses.stream(model=NAME, **options) as stream:
        for event in stream:
            kinds.append(event.type)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.completed"]  # fmt: skip
    assert len(deltas) > 1 and "".join(deltas) == final.output_text
    assert final.output_text == create(client, **options).output_text
    assert final.usage.output_tokens > 0
    raw = list(create(client, stream=True, **options))  # create(stream=True): the same events
    assert [e.sequence_number for e in raw] == list(range(len(raw)))


def test_function_tools_and_their_outputs(client: Any) -> None:
    asked = "Return BN-1042, it broke"
    called = create(client, input=asked, tools=[LOOKUP, RETURN], tool_choice="required",
                    parallel_tool_calls=False, temperature=1.0, max_output_tokens=120)  # fmt: skip
    calls = [item for item in called.output if item.type == "function_call"]
    assert called.status == "completed" and len(calls) == 1 and called.output_text == ""
    for call in calls:
        schema = {"lookup_order": LOOKUP, "start_return": RETURN}[call.name]["parameters"]
        jsonschema.validate(json.loads(call.arguments), schema)
        assert call.call_id.startswith("call_")
    named = create(client, input=asked, tools=[LOOKUP, RETURN], max_output_tokens=120,
                   tool_choice={"type": "function", "name": "start_return"})  # fmt: skip
    assert {item.name for item in named.output} == {"start_return"}

    result = {"type": "function_call_output", "call_id": calls[0].call_id, "output": "shipped"}
    later = create(client, previous_response_id=called.id, input=[result], tools=[LOOKUP, RETURN],
                   max_output_tokens=4)  # fmt: skip
    spelled = create(client, tools=[LOOKUP, RETURN], max_output_tokens=4, input=[
        {"role": "user", "content": asked},
        *[{"type": "function_call", "call_id": c.call_id, "name": c.name,
           "arguments": c.arguments} for c in calls], result])  # fmt: skip
    assert later.usage.input_tokens == spelled.usage.input_tokens
    assert later.output_text == spelled.output_text

    kinds, argument_deltas = [], []
    with client.responses.stream(model=NAME, input=asked, tools=[LOOKUP], tool_choice="required",
                                 parallel_tool_calls=False,
                                 max_output_tokens=120) as stream:  # fmt: skip
        for event in stream:
            kinds.append(event.type)
            if event.type == "response.function_call_arguments.delta":
                argument_deltas.append(event.delta)
        final = stream.get_final_response()
    assert "response.function_call_arguments.done" in kinds
    assert len(argument_deltas) > 1  # streamed as they were generated
    assert "".join(argument_deltas) == final.output[0].arguments
    assert [item.type for item in final.output] == ["function_call"]  # one: not parallel
    jsonschema.validate(json.loads(final.output[0].arguments), LOOKUP["parameters"])
    with pytest.raises(openai.BadRequestError, match="no tool named"):
        create(client, input="x", tools=[LOOKUP], tool_choice={"type": "function", "name": "nope"})


def test_truncation_auto_drops_the_oldest_turns(client: Any) -> None:
    """A conversation longer than the context: a 400 by default, as OpenAI's
    ``truncation: "disabled"``; with ``"auto"`` the oldest exchanges go."""
    long_turns = []
    for index in range(12):
        long_turns += [{"role": "user", "content": f"Question {index}: " + "word " * 40},
                       {"role": "assistant", "content": "Answer " * 10}]  # fmt: skip
    turns = [*long_turns, {"role": "user", "content": "Last question"}]
    with pytest.raises(openai.BadRequestError, match="context"):
        create(client, input=turns, max_output_tokens=8)
    cut = create(client, input=turns, max_output_tokens=8, truncation="auto")
    assert 0 < cut.usage.input_tokens <= 512 - 8
