"""Operating the server: a client that leaves, a full queue, and SIGTERM.

Long generations come from the tiny model with a large ``max_tokens`` (it never emits
its end token under these seeds), so there is time to act while they run.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import openai
import pytest

from tests.servers import http_status, lmforge_process, lmforge_server, request

LONG = 4000  # tokens: several seconds on the tiny model


@pytest.fixture(scope="module")
def long_context_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lmforge.hub import build_tiny_causal_lm

    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-8k") / "lm", context=8192)


def metric(base: str, name: str) -> float:
    text = request(base + "/metrics")[1]
    return sum(
        float(line.split(" ")[1]) for line in text.splitlines() if line.startswith(name + " ")
    )


def long_stream(client: openai.OpenAI, **options: object) -> object:
    return client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "Tell me everything."}],
        max_tokens=LONG, temperature=1.0, seed=3, stream=True, **options,
    )  # fmt: skip


@pytest.fixture(scope="module")
def server(long_context_lm: Path) -> object:
    with lmforge_server(
        str(long_context_lm), "--served-name", "tiny", "--max-model-len", "8192",
        "--max-tokens-limit", str(LONG), "--max-batch", "1", "--max-queue", "1",
    ) as base:  # fmt: skip
        yield base


def test_a_client_that_disconnects_stops_its_generation(server: str) -> None:
    client = openai.OpenAI(base_url=server + "/v1", api_key="unused", max_retries=0)
    before = metric(server, "lmforge_generation_tokens_total")
    stream = long_stream(client)
    for _, _chunk in zip(range(3), stream, strict=False):
        pass
    stream.close()
    deadline = time.monotonic() + 20
    while metric(server, "lmforge_num_requests_running") > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert metric(server, "lmforge_num_requests_running") == 0
    assert metric(server, "lmforge_generation_tokens_total") - before < LONG / 2


def test_a_client_that_gives_up_on_a_whole_answer_stops_its_generation(server: str) -> None:
    """Not streamed: the server notices the closed connection while it generates (the
    answer could never be delivered) and frees the slot, instead of finishing it."""
    impatient = openai.OpenAI(base_url=server + "/v1", api_key="unused", max_retries=0,
                              timeout=1.0)  # fmt: skip
    before = metric(server, "lmforge_generation_tokens_total")
    with pytest.raises(openai.APITimeoutError):
        impatient.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "Tell me everything."}],
            max_tokens=LONG, temperature=1.0, seed=3,
        )  # fmt: skip
    deadline = time.monotonic() + 20
    while metric(server, "lmforge_num_requests_running") > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert metric(server, "lmforge_num_requests_running") == 0
    stopped_at = metric(server, "lmforge_generation_tokens_total")
    assert stopped_at - before < LONG / 2
    time.sleep(0.5)
    assert metric(server, "lmforge_generation_tokens_total") == stopped_at  # nothing after


def test_a_full_queue_answers_503_with_retry_after(server: str) -> None:
    client = openai.OpenAI(base_url=server + "/v1", api_key="unused", max_retries=0)
    running, waiting = long_stream(client), None
    next(iter(running))  # admitted: the one batch slot is busy
    done = threading.Event()

    def wait_in_queue() -> None:
        nonlocal waiting
        waiting = request(
            server + "/v1/chat/completions",
            {"model": "tiny", "messages": [{"role": "user", "content": "x"}], "max_tokens": 2},
        )
        done.set()

    threading.Thread(target=wait_in_queue, daemon=True).start()
    deadline = time.monotonic() + 10
    while metric(server, "lmforge_num_requests_waiting") < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    with pytest.raises(openai.APIStatusError) as full:
        client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "y"}], max_tokens=2
        )
    assert full.value.status_code == 503
    assert full.value.response.headers["retry-after"] == "1"
    assert full.value.code == "queue_full"
    running.close()
    assert done.wait(30) and waiting is not None and waiting[0] == 200


def test_sigterm_finishes_the_running_stream_then_exits(long_context_lm: Path) -> None:
    limits = ("--max-model-len", "4096", "--max-tokens-limit", "600")
    with lmforge_process(str(long_context_lm), "--served-name", "tiny", *limits) as (
        process,
        base,
    ):
        client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
        stream = client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "Tell me everything."}],
            max_tokens=600, temperature=1.0, seed=3, stream=True,
            stream_options={"include_usage": True},
        )  # fmt: skip
        chunks = iter(stream)
        next(chunks)
        process.send_signal(signal.SIGTERM)
        refused = time.monotonic() + 5  # draining: no new connection (a balancer's check fails)
        while http_status(base + "/health") is not None:
            assert time.monotonic() < refused, "still accepting connections after SIGTERM"
            time.sleep(0.05)
        rest = list(chunks)
        assert rest[-1].usage.completion_tokens == 600  # the in-flight answer completed
        # uvicorn re-raises the signal after its graceful shutdown, as service managers expect
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)


def test_sigterm_cuts_a_stream_that_outlasts_the_drain_timeout(long_context_lm: Path) -> None:
    limits = ("--max-model-len", "8192", "--max-tokens-limit", str(LONG), "--drain-seconds", "1")
    with lmforge_process(str(long_context_lm), "--served-name", "tiny", *limits) as (
        process,
        base,
    ):
        client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
        chunks, received = iter(long_stream(client)), 0
        next(chunks)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        with pytest.raises(openai.APIError):  # the server closes the stream mid-answer
            for _ in chunks:
                received += 1
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)
        assert time.monotonic() - signalled < 10 and received < LONG


def test_the_model_list_is_json(server: str) -> None:
    status, text = request(server + "/v1/models")
    assert status == 200 and json.loads(text)["data"][0]["max_model_len"] == 8192
