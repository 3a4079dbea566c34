"""Streaming generation: seeded, correct against transformers, stops where asked."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lmforge.errors import LmforgeError
from lmforge.hub import load_causal_lm, resolve
from lmforge.serve.chat import ChatSession
from lmforge.serve.generate import SamplingParams, TextGeneration


@pytest.fixture(scope="module")
def tiny(tiny_causal_lm: Path):  # type: ignore[no-untyped-def]
    return load_causal_lm(resolve(str(tiny_causal_lm)))


PROMPT = "The quick brown fox"


def _ids(tokenizer) -> list[int]:  # type: ignore[no-untyped-def]
    return tokenizer(PROMPT)["input_ids"]


def _run(tiny, **params):  # type: ignore[no-untyped-def]
    model, tokenizer = tiny
    return TextGeneration(model, tokenizer, _ids(tokenizer), SamplingParams(**params)).run()


def test_same_seed_same_output_and_different_seed_differs(tiny) -> None:  # type: ignore[no-untyped-def]
    first = _run(tiny, max_tokens=20, temperature=1.0, seed=3)
    again = _run(tiny, max_tokens=20, temperature=1.0, seed=3)
    other = _run(tiny, max_tokens=20, temperature=1.0, seed=4)
    assert first.text == again.text
    assert first.text != other.text


def test_greedy_matches_transformers_generate(tiny) -> None:  # type: ignore[no-untyped-def]
    model, tokenizer = tiny
    ids = _ids(tokenizer)
    ours = _run(tiny, max_tokens=12, temperature=0.0)
    with torch.no_grad():
        reference = model.generate(
            torch.tensor([ids]), max_new_tokens=12, do_sample=False, eos_token_id=None
        )
    expected = tokenizer.decode(reference[0, len(ids) :], skip_special_tokens=True)
    assert ours.text == expected


def test_max_tokens_ends_with_length(tiny) -> None:  # type: ignore[no-untyped-def]
    result = _run(tiny, max_tokens=7, temperature=0.0)
    assert result.finish_reason == "length"
    assert result.completion_tokens == 7
    assert result.prompt_tokens == len(_ids(tiny[1]))


def test_stop_string_truncates_and_is_never_streamed(tiny) -> None:  # type: ignore[no-untyped-def]
    model, tokenizer = tiny
    full = _run(tiny, max_tokens=20, temperature=0.0).text
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    assert stop.strip(), f"pick a visible stop string from {full!r}"
    generation = TextGeneration(
        model,
        tokenizer,
        _ids(tokenizer),
        SamplingParams(max_tokens=20, temperature=0.0, stop=(stop,)),
    )
    streamed = "".join(generation)
    assert generation.completion is not None
    assert generation.completion.finish_reason == "stop"
    assert streamed == generation.completion.text == full[: full.find(stop)]


def test_tiny_top_p_is_greedy(tiny) -> None:  # type: ignore[no-untyped-def]
    greedy = _run(tiny, max_tokens=10, temperature=0.0)
    nucleus = _run(tiny, max_tokens=10, temperature=1.0, top_p=1e-6, seed=0)
    assert nucleus.text == greedy.text


def test_prompt_longer_than_context_is_refused(tiny) -> None:  # type: ignore[no-untyped-def]
    model, tokenizer = tiny
    too_long = [1] * model.config.max_position_embeddings
    with pytest.raises(LmforgeError, match="context is 512"):
        TextGeneration(model, tokenizer, too_long, SamplingParams())


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": -1}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"stop": ("",)}, "stop"),
    ],
)
def test_bad_sampling_options_name_the_field(options: dict, field: str) -> None:
    with pytest.raises(LmforgeError, match=field):
        SamplingParams(**options)


def test_chat_session_keeps_history_and_saves(tiny, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import json

    model, tokenizer = tiny
    session = ChatSession(model, tokenizer, model_ref="tiny", system="Be brief.")
    params = SamplingParams(max_tokens=5, temperature=0.0)
    first = "".join(session.ask("Hello", params))
    second_prompt_tokens = None
    generation = session.ask("And again", params)
    "".join(generation)
    assert generation.completion is not None
    second_prompt_tokens = generation.completion.prompt_tokens
    rendered = tokenizer.apply_chat_template(session.messages()[:3], tokenize=False)
    assert "Hello" in rendered and "Be brief." in rendered
    assert second_prompt_tokens > len(tokenizer("Hello")["input_ids"]) + 5
    assert [turn["role"] for turn in session.turns] == ["user", "assistant"] * 2
    assert session.turns[1]["content"] == first

    session.save(tmp_path / "chat.json")
    saved = json.loads((tmp_path / "chat.json").read_text())
    assert saved["messages"][0] == {"role": "system", "content": "Be brief."}
    assert len(saved["messages"]) == 5
    session.reset()
    assert session.turns == []


@pytest.mark.parametrize("prompt", ["", ["Hello", ""]])
def test_the_api_refuses_an_empty_completion_prompt_as_the_cli_does(
    tiny_causal_lm: Path, prompt: str | list[str]
) -> None:
    """``/v1/completions`` with an empty prompt is HTTP 400 in the OpenAI error shape,
    naming ``prompt``: nothing is generated from nothing, in the API as in the CLI."""
    import asyncio

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lmforge.serve.api.base import OpenAIHandler
    from lmforge.serve.api.completions import Completions
    from lmforge.serve.engine import Engine
    from lmforge.serve.errors import ApiError
    from lmforge.serve.protocol import CompletionRequest

    model = AutoModelForCausalLM.from_pretrained(tiny_causal_lm).eval()
    engine = Engine(model, AutoTokenizer.from_pretrained(tiny_causal_lm), max_batch=1)
    engine.start()
    try:
        handler = OpenAIHandler(engine, "tiny")
        body = CompletionRequest(model="tiny", prompt=prompt, max_tokens=2)
        with pytest.raises(ApiError) as refused:
            asyncio.run(handler.family(Completions).create(body))
    finally:
        engine.stop()
    assert refused.value.status == 400
    error = refused.value.body()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "prompt"
    assert "empty" in error["message"]
