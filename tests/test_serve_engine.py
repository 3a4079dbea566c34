"""The engine in process: the slot runner's decode against the model's own forward, and
one thread owning every torch computation of the server (``Engine.call``)."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from lmforge.errors import LmforgeError
from lmforge.guard.policy import Guard, GuardPolicy
from lmforge.serve.api.base import OpenAIHandler
from lmforge.serve.api.completions import Completions
from lmforge.serve.api.moderations import Moderations
from lmforge.serve.engine import Engine
from lmforge.serve.protocol import ModerationRequest
from lmforge.serve.runner import SlotRunner


def load(path: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(path)


def last_logits(model: Any, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return model(torch.tensor([ids])).logits[0, -1]


def test_decode_matches_the_model_at_shared_and_at_ragged_positions(
    tiny_causal_lm: Path,
) -> None:
    model, _ = load(tiny_causal_lm)
    runner = SlotRunner(model, slots=3, max_len=64)
    sequences = [[5, 17, 99, 3, 42, 7, 250, 1000], [8, 8, 300, 12, 6, 71, 2, 19], [40, 41, 42]]
    for slot, ids in enumerate(sequences):
        runner.prefill(slot, ids)
    # Rows 0 and 1 both hold 8 tokens: one shared position, written through a slice.
    shared = runner.decode([33, 55])
    sequences[0].append(33)
    sequences[1].append(55)
    # Now 9, 9 and 3 tokens: ragged positions, written per row, attention masked.
    ragged = runner.decode([44, 66, 77])
    for row, token in enumerate([44, 66, 77]):
        sequences[row].append(token)
    for row in range(2):
        expected = last_logits(model, sequences[row][:-1])
        torch.testing.assert_close(shared[row], expected, atol=1e-4, rtol=1e-4)
    for row in range(3):
        expected = last_logits(model, sequences[row])
        torch.testing.assert_close(ragged[row], expected, atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def engine(tiny_causal_lm: Path) -> Iterator[Engine]:
    model, tokenizer = load(tiny_causal_lm)
    running = Engine(model, tokenizer, max_batch=2)
    running.start()
    yield running
    running.stop()


def test_call_runs_on_the_engine_thread_and_returns_or_raises(engine: Engine) -> None:
    assert engine.call(lambda: threading.current_thread().name).result(10) == "lmforge-engine"
    with pytest.raises(ZeroDivisionError):
        engine.call(lambda: 1 / 0).result(10)


def test_a_stopped_engine_refuses_calls(tiny_causal_lm: Path) -> None:
    model, tokenizer = load(tiny_causal_lm)
    stopped = Engine(model, tokenizer, max_batch=1)
    stopped.start()
    stopped.stop()
    with pytest.raises(LmforgeError, match="stopping"):
        stopped.call(print)


def test_a_lowered_engine_runs_its_thread_and_its_torch_workers_below_the_server(
    tiny_causal_lm: Path,
) -> None:
    """``compute_niceness``: the engine thread and the OpenMP workers it starts run below
    the rest of the process, and the GIL changes hands every 0.5 ms until it stops."""
    model, tokenizer = load(tiny_causal_lm)
    switch = sys.getswitchinterval()
    lowered = Engine(model, tokenizer, max_batch=1, niceness=5)
    lowered.start()
    try:
        # an op big enough to be split over the engine thread's OpenMP team
        workers = lowered.call(lambda: (torch.ones(1 << 22).exp().sum(), torch.get_num_threads()))
        team = workers.result(30)[1]
        server = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        assert lowered._thread.native_id is not None
        assert os.getpriority(os.PRIO_PROCESS, lowered._thread.native_id) == server + 5
        threads = [int(tid) for tid in os.listdir("/proc/self/task")]
        lowered_threads = [t for t in threads if os.getpriority(os.PRIO_PROCESS, t) == server + 5]
        assert len(lowered_threads) >= team  # the engine thread and its workers
        assert sys.getswitchinterval() == pytest.approx(0.0005)
    finally:
        lowered.stop()
    assert sys.getswitchinterval() == switch


def test_lowering_the_engine_off_linux_is_refused(
    tiny_causal_lm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, tokenizer = load(tiny_causal_lm)
    monkeypatch.setattr(sys, "platform", "darwin")
    with pytest.raises(LmforgeError, match=r"compute_niceness.*Linux"):
        Engine(model, tokenizer, max_batch=1, niceness=5)


def test_the_guard_classifier_runs_on_the_engine_thread(engine: Engine) -> None:
    """Input screening and /v1/moderations run the real classifier where decoding runs:
    a second thread doing torch work halves decode speed (see ``Engine.call``)."""
    guard = Guard(GuardPolicy(input_block=("illicit",)))
    threads: list[str] = []
    scores = guard.classifier.scores

    def recording(texts: list[str]) -> list[dict[str, float]]:
        threads.append(threading.current_thread().name)
        return scores(texts)

    guard.classifier.scores = recording  # type: ignore[method-assign]
    handler = OpenAIHandler(engine, "tiny", guard=guard)
    moderation = asyncio.run(
        handler.family(Moderations).create(ModerationRequest(input="hello there"))
    )
    assert len(moderation["results"]) == 1
    asyncio.run(handler.screen_text("When does my thermostat ship?", "messages"))
    assert threads == ["lmforge-engine", "lmforge-engine"]


def test_a_prompt_that_grows_the_cache_does_not_break_the_next_request(
    tiny_causal_lm: Path,
) -> None:
    """A prompt over 256 tokens grows the cache inside a step (inference mode); the next
    request with another prompt moves slots. That move once raised on the grown cache
    outside inference mode and the request was lost: its client waited forever. Grounded
    chat (passages in the prompt) made such prompts the usual case."""
    from lmforge.serve.protocol import CompletionRequest

    model, tokenizer = load(tiny_causal_lm)
    engine = Engine(model, tokenizer, max_batch=2)
    engine.start()
    try:
        handler = OpenAIHandler(engine, "tiny")

        async def complete(prompt: str) -> dict[str, Any]:
            body = CompletionRequest(model="tiny", prompt=prompt, max_tokens=2, temperature=0)
            result = await asyncio.wait_for(handler.family(Completions).create(body), timeout=60)
            assert isinstance(result, dict)
            return result

        long_prompt = "The Keystone Smart Lock costs $219. " * 35  # about 400 tokens
        assert asyncio.run(complete(long_prompt))["usage"]["prompt_tokens"] > 256
        # No shared beginning: the new request takes the least recently used slot (a move).
        second = asyncio.run(complete("Different and short."))
        assert second["choices"][0]["finish_reason"] in {"stop", "length"}
    finally:
        engine.stop()
