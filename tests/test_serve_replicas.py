"""Two ``lmforge serve`` replicas on loopback sharing one PostgreSQL store behind HAProxy
(round-robin, health-checked on ``/ready``): Debian's packages, started for real.

One module-wide setup (two tiny-model servers, a database, the balancer); the tests run in
order, the last one killing a replica."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from typer.testing import CliRunner

from lmforge.cli.main import app
from tests.servers import haproxy, lmforge_process, new_database, postgres_server, request

RATE_LIMIT = 30  # requests a minute per key, shared by both replicas


@pytest.fixture(scope="module")
def cluster(tiny_causal_lm: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """(balancer URL, [(process, URL, access log)] of each replica, store URL, keys)."""
    from contextlib import ExitStack

    folder = tmp_path_factory.mktemp("replicas")
    with ExitStack() as stack:
        store = new_database(stack.enter_context(postgres_server()))
        keys = {}
        for name in ("talk", "limit", "revoked"):
            made = CliRunner().invoke(app, ["keys", "create", name, "--store", store])
            assert made.exit_code == 0, made.output
            keys[name] = made.stdout.strip()
        replicas = []
        for index in range(2):
            log = folder / f"replica{index}.log"
            process, base = stack.enter_context(lmforge_process(
                str(tiny_causal_lm), "--served-name", "tiny", "--store", store,
                "--rate-limit", str(RATE_LIMIT),
                env={"LMFORGE_HOME": str(folder / f"home{index}")}, log=log,
            ))  # fmt: skip
            replicas.append((process, base, log))
        balancer = stack.enter_context(haproxy(*(base for _, base, _ in replicas)))
        yield balancer, replicas, store, keys


def served_requests(log: Path, path: str) -> int:
    """How many requests to ``path`` a replica's access log records."""
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return sum(1 for line in lines if line.get("path") == path)


def continue_session(client: openai.OpenAI, session_id: str, question: str) -> None:
    """One short turn of the stored session ``session_id``."""
    client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": question}], max_tokens=3,
        extra_body={"session_id": session_id},
    )  # fmt: skip


def running(base: str) -> float:
    """The sequences a replica is generating now (its /metrics)."""
    text = request(base + "/metrics")[1]
    name = "lmforge_num_requests_running "
    return sum(float(line.split(" ")[1]) for line in text.splitlines() if line.startswith(name))


def test_a_conversation_continues_across_replicas_turn_by_turn(cluster: Any) -> None:
    balancer, replicas, _, keys = cluster
    client = openai.OpenAI(base_url=balancer + "/v1", api_key=keys["talk"], max_retries=0)
    status, text = request(balancer + "/v1/sessions", {"system": "Be brief."}, key=keys["talk"])
    assert status == 200
    session_id = json.loads(text)["id"]
    for turn in range(4):
        continue_session(client, session_id, f"Question {turn}?")
    # round-robin: each replica answered every other turn (its access-log line is written
    # once the response has gone, so the last one may come a moment after the answer)
    deadline = time.monotonic() + 10
    while True:
        served = [served_requests(log, "/v1/chat/completions") for _, _, log in replicas]
        if sum(served) == 4 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert served == [2, 2]
    status, text = request(balancer + f"/v1/sessions/{session_id}", key=keys["talk"])
    assert status == 200
    messages = json.loads(text)["messages"]
    assert [m["content"] for m in messages[::2]] == [f"Question {t}?" for t in range(4)]
    assert [m["role"] for m in messages] == ["user", "assistant"] * 4
    saves = [request(base + "/metrics")[1] for _, base, _ in replicas]  # the store's timings
    assert all('lmforge_store_operation_seconds_count{operation="save_messages"} 2.0' in text
               for text in saves)  # fmt: skip


def test_the_rate_limit_holds_across_both_replicas(cluster: Any) -> None:
    balancer, _, _, keys = cluster
    client = openai.OpenAI(base_url=balancer + "/v1", api_key=keys["limit"], max_retries=0)
    for _ in range(RATE_LIMIT):  # a burst of the whole minute's requests, over both
        client.models.list()
    with pytest.raises(openai.RateLimitError):
        client.models.list()


def test_a_key_revoked_through_the_store_is_refused_by_every_replica_within_a_second(
    cluster: Any,
) -> None:
    _, replicas, store, keys = cluster
    for _, base, _ in replicas:
        assert request(base + "/v1/models", key=keys["revoked"])[0] == 200
    revoke = CliRunner().invoke(app, ["keys", "revoke", "revoked", "--store", store])
    assert revoke.exit_code == 0, revoke.output
    revoked = time.monotonic()
    for _, base, _ in replicas:
        while request(base + "/v1/models", key=keys["revoked"])[0] != 401:
            assert time.monotonic() - revoked < 1.0, f"{base} still takes the revoked key"
            time.sleep(0.05)


def test_killing_a_replica_mid_stream_loses_no_stored_turn(cluster: Any) -> None:
    """A replica dies while it streams an answer: the turns stored before stay, the cut
    turn is not stored half-written, and the balancer's health check takes the dead
    replica out, so the conversation goes on on the other."""
    balancer, replicas, _, keys = cluster
    client = openai.OpenAI(base_url=balancer + "/v1", api_key=keys["talk"], max_retries=0)
    status, text = request(balancer + "/v1/sessions", {}, key=keys["talk"])
    assert status == 200
    session_id = json.loads(text)["id"]
    for turn in range(2):
        continue_session(client, session_id, f"Before {turn}?")
    stream = iter(client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "Tell me everything."}],
        max_tokens=450, temperature=1.0, seed=3, stream=True,
        extra_body={"session_id": session_id, "ignore_eos": True},
    ))  # fmt: skip
    next(stream)
    process = next(p for p, base, _ in replicas if running(base) == 1)  # the one streaming
    alive = next(p for p, _, _ in replicas if p is not process)
    process.send_signal(signal.SIGKILL)
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass
    for turn in range(3):  # all to the live replica: the dead one failed its checks
        continue_session(client, session_id, f"After {turn}?")
    assert alive.poll() is None
    status, text = request(balancer + f"/v1/sessions/{session_id}", key=keys["talk"])
    assert status == 200
    questions = [m["content"] for m in json.loads(text)["messages"] if m["role"] == "user"]
    assert questions == ["Before 0?", "Before 1?", "After 0?", "After 1?", "After 2?"]
