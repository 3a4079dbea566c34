"""JSON mode: the state machine accepts exactly JSON-object prefixes, and the engine keeps
every answer inside them."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch

from lmforge.serve.engine import Engine
from lmforge.serve.json_mode import JsonPrefix
from lmforge.serve.requests import Event, Request, RequestParams

VALID = [
    '{"a": 1}',
    '{ "name": "Ana", "age": 31, "tags": ["x", "y"], "ok": true, "none": null }',
    '{"nested": {"deep": [1, -2.5, 3e4, {"k": "v\\n\\"q\\" \\u00e9"}]}, "empty": {}, "e": []}',
]
INVALID = ['["top-level array"]', '{"a" 1}', '{"a": tru}', '{a: 1}', '{"a": 1,}', '{"a": 01}',
           '{"a": "x"}}', '{"a": [1 2]}']  # fmt: skip


def accepts(text: str) -> tuple[bool, bool]:
    state = JsonPrefix()
    return state.feed_text(text), state.done


@pytest.mark.parametrize("text", VALID)
def test_valid_objects_are_accepted_and_every_prefix_too(text: str) -> None:
    assert accepts(text) == (True, True)
    for end in range(len(text)):
        ok, done = accepts(text[:end])
        assert ok and not done, text[:end]
    json.loads(text)  # the fixtures are real JSON


@pytest.mark.parametrize("text", INVALID)
def test_invalid_text_is_rejected(text: str) -> None:
    assert accepts(text) != (True, True)


def test_the_engine_never_leaves_a_json_prefix(tiny_causal_lm: Path) -> None:
    from lmforge.hub import load_causal_lm, resolve

    model, tokenizer = load_causal_lm(resolve(str(tiny_causal_lm)))
    engine = Engine(model, tokenizer, max_batch=4)
    engine.start()
    texts: dict[int, str] = {}
    done = threading.Semaphore(0)
    try:
        for seed in range(4):

            def emit(event: Event, seed: int = seed) -> None:
                texts[seed] = texts.get(seed, "") + event.text
                if event.finish_reason:
                    done.release()

            params = RequestParams(max_tokens=40, temperature=1.0, seed=seed, json_object=True)
            engine.submit(Request(tokenizer("Reply in JSON")["input_ids"], params, emit))
        for _ in range(4):
            assert done.acquire(timeout=60)
    finally:
        engine.stop()
    for text in texts.values():
        assert text.lstrip().startswith("{")
        assert JsonPrefix().feed_text(text), text


def test_json_mode_closes_the_object_and_then_ends(tiny_causal_lm: Path) -> None:
    """With the model pushed towards tokens that close JSON, the engine picks valid ones,
    then the end token once the object is complete."""
    from lmforge.hub import load_causal_lm, resolve

    model, tokenizer = load_causal_lm(resolve(str(tiny_causal_lm)))
    engine = Engine(model, tokenizer, max_batch=1)
    preferred = [tokenizer.convert_tokens_to_ids(t) for t in ["}", '"', ":", "{", "1"]]
    original = engine.runner.lm_head

    class Biased(torch.nn.Module):
        def forward(self, hidden: torch.Tensor) -> torch.Tensor:
            logits = original(hidden)
            for rank, token in enumerate(preferred):  # "}" most likely, then '"', ...
                logits[..., token] += 100.0 - rank
            return logits

    engine.runner.lm_head = Biased()
    events: list[Event] = []
    finished = threading.Event()

    def emit(event: Event) -> None:
        events.append(event)
        if event.finish_reason:
            finished.set()

    engine.start()
    try:
        params = RequestParams(max_tokens=30, temperature=0, json_object=True)
        engine.submit(Request(tokenizer("JSON please")["input_ids"], params, emit))
        assert finished.wait(60)
    finally:
        engine.stop()
    text = "".join(e.text for e in events)
    assert isinstance(json.loads(text), dict)  # a complete, valid JSON object
    assert events[-1].finish_reason == "stop"
