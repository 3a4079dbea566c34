"""Constrained decoding in the engine (serve/grammar.py): sampled outputs always match
their JSON Schema, regex, choice or grammar, per sequence inside one batch; logit_bias;
log-probabilities of the constrained distribution; compile errors that name the feature.

The tiny random model (tests/conftest.py) samples near-uniform tokens at temperature 1.0,
the hardest case for a grammar: every string and number is bounded in the schemas here so
that an answer always completes within max_tokens (an unbounded string would run to the
limit, as it would in OpenAI's API, with finish_reason "length")."""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import torch

from lmforge.data.tools import json_position
from lmforge.errors import LmforgeError
from lmforge.serve.engine import Engine
from lmforge.serve.requests import Event, Grammar, Request, RequestParams

SCHEMAS: list[dict[str, Any]] = [
    {"type": "object",
     "properties": {"name": {"type": "string", "maxLength": 8},
                    "age": {"type": "integer", "minimum": 0, "maximum": 120}},
     "required": ["name", "age"], "additionalProperties": False},
    {"type": "object",
     "properties": {"status": {"enum": ["open", "shipped", "returned"]},
                    "items": {"type": "array", "maxItems": 3,
                              "items": {"type": "integer", "minimum": 1, "maximum": 9}},
                    "gift": {"type": "boolean"}},
     "required": ["status", "items", "gift"], "additionalProperties": False},
    {"type": "object",
     "properties": {"order": {"type": "string", "pattern": "^BN-[0-9]{4}$"},
                    "refund": {"type": "number", "minimum": 0, "maximum": 500},
                    "note": {"anyOf": [{"type": "null"},
                                       {"type": "string", "maxLength": 6}]}},
     "required": ["order", "refund", "note"], "additionalProperties": False},
]  # fmt: skip


@pytest.fixture(scope="module")
def engine(tiny_causal_lm: Path) -> Iterator[Engine]:
    from lmforge.hub import load_causal_lm, resolve

    model, tokenizer = load_causal_lm(resolve(str(tiny_causal_lm)))
    engine = Engine(model, tokenizer, max_batch=8, kept_slots=0)
    engine.start()
    yield engine
    engine.stop()


def generate(engine: Engine, params: list[RequestParams], prompt: str = "Reply") -> list[Event]:
    """Each request's final event, with the whole answer's text and log-probabilities."""
    ids = engine.tokenizer(prompt)["input_ids"]
    texts, finals = [""] * len(params), [Event()] * len(params)
    logprobs: list[list[Any]] = [[] for _ in params]
    done = threading.Semaphore(0)
    for index, options in enumerate(params):

        def emit(event: Event, index: int = index) -> None:
            texts[index] += event.text
            logprobs[index] += event.logprobs
            if event.finish_reason:
                finals[index] = event
                done.release()

        engine.submit(Request(ids, options, emit))
    for _ in params:
        assert done.acquire(timeout=120)
    return [Event(text=text, logprobs=lps, finish_reason=f.finish_reason, error=f.error,
                  token_ids=f.token_ids)
            for text, lps, f in zip(texts, logprobs, finals, strict=True)]  # fmt: skip


@pytest.mark.parametrize("schema", SCHEMAS, ids=["person", "order", "refund"])
def test_every_sampled_answer_validates_against_its_schema(engine: Engine, schema: dict) -> None:
    grammar = Grammar.json_schema(schema)
    params = [RequestParams(max_tokens=120, temperature=1.0, seed=seed, grammar=grammar)
              for seed in range(16)]  # fmt: skip
    answers = generate(engine, params)
    for answer in answers:
        assert answer.finish_reason == "stop", answer
        jsonschema.validate(json.loads(answer.text), schema)
    assert len({a.text for a in answers}) > 4  # sampled, not one answer forced


UNBOUNDED = {"type": "object",
             "properties": {"title": {"type": "string"},
                            "tags": {"type": "array", "items": {"type": "string"}},
                            "score": {"type": "number"}},
             "required": ["title", "tags", "score"]}  # fmt: skip


def test_unbounded_answers_close_before_max_tokens(engine: Engine) -> None:
    """Unbounded strings, arrays and extra keys: near-uniform sampling rambles until the
    budget's last tokens, where decoding steers to close the object (grammar.steer)."""
    params = [RequestParams(max_tokens=120, temperature=1.0, seed=seed,
                            grammar=Grammar.json_schema(UNBOUNDED))
              for seed in range(12)]  # fmt: skip
    answers = generate(engine, params)
    for answer in answers:
        assert answer.finish_reason == "stop", answer
        jsonschema.validate(json.loads(answer.text), UNBOUNDED)
    assert max(len(a.token_ids) for a in answers) > 90  # they did ramble into the reserve
    # the same seeds with room to spare: sampled alike until steering, some ran past 120
    longer = generate(engine, [dataclasses.replace(p, max_tokens=400) for p in params])
    assert any(len(a.token_ids) > 120 for a in longer)


@pytest.mark.parametrize(
    ("text", "position"),
    [('{"a": "x', (1, 1, False)), ('{"a', (1, 1, False)), ('{"', (1, 0, False)),
     ('{"a": [1, 2', (2, None, True)), ('{"a": "x\\"', (1, 2, False)),
     ('<tool_call>\n{"name": "f", "arguments": {}}', (0, None, True)),
     ('{"a": {"b": 1}, ', (1, None, False)), ('{"a": {"b": true}', (1, None, True))],
)  # fmt: skip
def test_json_position(text: str, position: tuple) -> None:
    assert json_position(text) == position


def test_unconstrained_answers_do_not_validate(engine: Engine) -> None:
    """The baseline the constraint is measured against: the same sampling, no grammar."""
    params = [RequestParams(max_tokens=60, temperature=1.0, seed=seed) for seed in range(8)]
    for answer in generate(engine, params):
        with pytest.raises(ValueError):
            json.loads(answer.text)


def test_regex_choice_and_lark_grammars(engine: Engine) -> None:
    rules = {
        Grammar("regex", r"BN-[0-9]{4}"): lambda t: re.fullmatch(r"BN-[0-9]{4}", t),
        Grammar.choice(["refund", "replace", "escalate"]): lambda t: t in
        {"refund", "replace", "escalate"},
        Grammar("lark", 'start: "yes" | "no" " because " /[a-z]{2,5}/'): lambda t: re.fullmatch(
            r"yes|no because [a-z]{2,5}", t),
    }  # fmt: skip
    for grammar, matches in rules.items():
        params = [RequestParams(max_tokens=20, temperature=1.0, seed=s, grammar=grammar)
                  for s in range(6)]  # fmt: skip
        for answer in generate(engine, params):
            assert answer.finish_reason == "stop" and matches(answer.text), (grammar, answer)


def test_a_constrained_sequence_leaves_its_batch_neighbours_alone(engine: Engine) -> None:
    greedy = RequestParams(max_tokens=12, temperature=0)
    alone = generate(engine, [greedy])[0].text
    constrained = RequestParams(max_tokens=40, temperature=1.0, seed=1,
                                grammar=Grammar.json_schema(SCHEMAS[0]))  # fmt: skip
    together = generate(engine, [constrained, greedy, constrained])
    assert together[1].text == alone
    jsonschema.validate(json.loads(together[0].text), SCHEMAS[0])


def test_logit_bias_bans_and_forces_tokens(engine: Engine) -> None:
    greedy = generate(engine, [RequestParams(max_tokens=8, temperature=0)])[0]
    first = greedy.token_ids[0]
    banned = generate(engine, [RequestParams(max_tokens=8, temperature=0,
                                             logit_bias=((first, -100.0),))])[0]  # fmt: skip
    assert first not in banned.token_ids
    forced_token = engine.tokenizer.convert_tokens_to_ids("hello")
    forced = generate(engine, [RequestParams(max_tokens=4, temperature=1.0, seed=0,
                                             logit_bias=((forced_token, 100.0),))])[0]  # fmt: skip
    assert set(forced.token_ids) == {forced_token}


def test_logprobs_are_those_of_the_constrained_distribution(engine: Engine) -> None:
    choices = ["refund", "replace"]
    params = RequestParams(max_tokens=8, temperature=0, logprobs=True, top_logprobs=20,
                           grammar=Grammar.choice(choices))  # fmt: skip
    answer = generate(engine, [params])[0]
    assert answer.text in choices
    first = answer.logprobs[0]
    # the grammar allows only tokens that begin one of the words ("r", "re", "rep", ...,
    # any tokenization): the alternatives are those, and their probabilities add up to 1
    assert all(any(c.startswith(token) for c in choices) for token, _ in first.top), first
    assert len(first.top) < 20
    assert sum(torch.tensor([lp for _, lp in first.top]).exp()) == pytest.approx(1.0, abs=1e-4)


def test_the_object_closes_and_then_the_sequence_ends(engine: Engine) -> None:
    """With the model pushed towards tokens that close JSON, the grammar still gives a
    complete object, and the end token once it is complete."""
    tokenizer = engine.tokenizer
    preferred = [tokenizer.convert_tokens_to_ids(t) for t in ["}", '"', ":", "{", "1"]]
    bias = tuple((token, 30.0 - rank) for rank, token in enumerate(preferred))
    params = RequestParams(max_tokens=30, temperature=0, logit_bias=bias,
                           grammar=Grammar.json_schema({"type": "object"}))  # fmt: skip
    answer = generate(engine, [params])[0]
    assert isinstance(json.loads(answer.text), dict)
    assert answer.finish_reason == "stop"


def test_unsupported_schema_features_are_named(engine: Engine) -> None:
    with pytest.raises(LmforgeError, match="weird-format"):
        engine.grammars.check(Grammar.json_schema({"type": "string", "format": "weird-format"}))
    with pytest.raises(LmforgeError, match="regular expression"):
        engine.grammars.check(Grammar("regex", "(unclosed"))
    schema = Grammar.json_schema(SCHEMAS[1])
    assert engine.grammars.check(schema) is engine.grammars.check(schema)  # compiled once


def test_ignore_eos_generates_exactly_max_tokens(engine: Engine) -> None:
    end = min(engine.decoder.end_ids)
    eager = RequestParams(max_tokens=6, temperature=0, logit_bias=((end, 100.0),))
    assert generate(engine, [eager])[0].token_ids == (end,)  # it would end at once
    kept = dataclasses.replace(eager, ignore_eos=True)
    answer = generate(engine, [kept])[0]
    assert answer.finish_reason == "length" and len(answer.token_ids) == 6
    assert end not in answer.token_ids


def test_a_grammar_starts_once_the_output_reaches_its_trigger(engine: Engine) -> None:
    """tool_choice "auto": free text first, constrained after the model opens a call.
    The trigger here is what the model writes greedily anyway."""
    free = generate(engine, [RequestParams(max_tokens=8, temperature=0)])[0]
    trigger = engine.tokenizer.decode(free.token_ids[:2])
    after = (trigger, Grammar.choice([" refund"]))
    answer = generate(engine, [RequestParams(max_tokens=20, temperature=0,
                                             grammar_after=after)])[0]  # fmt: skip
    assert answer.text == trigger + " refund" and answer.finish_reason == "stop"
