"""Serving beyond one machine: the shared PostgreSQL store against SQLite, and two replicas
behind HAProxy with one killed and restarted under load (run through ``python
benchmarks/bench_serve.py --replicas 2``; docs/serving.md, "Scale out").

1. Store cost, one replica: `lmforge serve smollm2-135m-instruct` with its store in
   SQLite, then in PostgreSQL (Debian's server on loopback, as the tests start it), each
   under the same session-heavy load: 16 clients at once, each continuing its own stored
   session for 16 turns (greedy, max_tokens 16), so every request loads and saves a
   session. Requests/s and output tokens/s (PostgreSQL / SQLite), client latency p50/p99,
   and the store's own time from the server's `lmforge_store_operation_seconds` histogram:
   the p99 of loading plus the p99 of saving a session (the histogram keeps no pairs;
   the sum is a cautious stand-in for the p99 of a request's total), each interpolated
   within its buckets as Prometheus' histogram_quantile does. Each store runs twice:
   the model threads at the HTTP loop's CPU priority (the default), then lowered by
   ``--compute-niceness 10`` (what ``lmforge deploy k8s`` sets); the four runs are
   made twice, in turn, since the machine's speed drifts between runs.
2. Correctness under load: two replicas of the same server sharing one PostgreSQL store
   behind HAProxy (round-robin, health checks on /ready every 200 ms); 16 clients send
   2,000 session turns (100 sessions of 20 turns, max_tokens 2); after 1,000 turns one
   replica is killed (SIGKILL) and started again. A client whose request fails reads its
   session: if the turn is there (stored, the answer lost in transit) it goes on, else it
   sends the turn again. At the end every session must hold exactly its 20 questions, in
   order: lost and duplicated turns are counted.

Both replicas share this machine's 2 cores, so their throughput is CPU-bound and reported
as measured, not as a scaling figure.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from common import append_result

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.servers import (  # noqa: E402
    haproxy,
    lmforge_process,
    new_database,
    postgres_server,
    request,
)

MODEL = "smollm2-135m-instruct"
CLIENTS = 16
STORE_TURNS = 16  # turns per client in the store comparison: 256 loads and saves
ROUNDS = 2  # the store comparison alternates the stores this many times (the load varies)
SESSIONS, SESSION_TURNS = 100, 20  # the correctness run: 2,000 turns
NICENESS = (0, 10)  # the model threads' compute_niceness in the store comparison


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def histogram_quantile(metrics: str, name: str, operations: set[str], q: float) -> float:
    """The ``q`` quantile of histogram ``name`` summed over ``operations`` (labels), by
    linear interpolation within the bucket that holds it (Prometheus' method)."""
    buckets: dict[float, float] = {}
    for line in metrics.splitlines():
        if not line.startswith(name + "_bucket{"):
            continue
        labels, value = line[len(name) + 8 :].rsplit("} ", 1)
        fields = dict(part.split("=", 1) for part in labels.split(","))
        if fields["operation"].strip('"') in operations:
            bound = float(fields["le"].strip('"'))
            buckets[bound] = buckets.get(bound, 0.0) + float(value)
    bounds = sorted(buckets)
    rank, lower, below = q * buckets[bounds[-1]], 0.0, 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            if bound == float("inf"):
                return lower
            share = (rank - below) / max(buckets[bound] - below, 1e-12)
            return lower + (bound - lower) * share
        lower, below = bound, buckets[bound]
    return lower


async def session_load(base: str, turns: int) -> dict[str, float]:
    """``CLIENTS`` clients at once, each continuing its own new session ``turns`` times."""
    import openai

    client = openai.AsyncOpenAI(base_url=base + "/v1", api_key="unused", max_retries=3,
                                timeout=600)  # fmt: skip
    latencies: list[float] = []
    tokens = 0

    async def one(index: int) -> None:
        nonlocal tokens
        text = (await asyncio.to_thread(request, base + "/v1/sessions", {}))[1]
        session_id = json.loads(text)["id"]
        for turn in range(turns):
            started = time.perf_counter()
            answer = await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": f"Customer {index}, "
                                        f"question {turn}: where is my order?"}],
                max_tokens=16, temperature=0, extra_body={"session_id": session_id},
            )  # fmt: skip
            latencies.append(time.perf_counter() - started)
            tokens += answer.usage.completion_tokens

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(CLIENTS)))
    wall = time.perf_counter() - started
    await client.close()
    return {"requests_s": len(latencies) / wall, "tok_s": tokens / wall,
            "p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99)}  # fmt: skip


def store_cost(folder: Path) -> dict[tuple[str, int, int], dict[str, float]]:
    """Part 1: the session load on one replica with each store, its model threads at the
    HTTP loop's priority and lowered (``--compute-niceness``), in ``ROUNDS`` rounds."""
    results = {}
    with postgres_server() as server:
        for round_ in range(1, ROUNDS + 1):
            for niceness in NICENESS:
                for name in ("sqlite", "postgresql"):
                    store = (str(folder / f"serve-{round_}-{niceness}.db") if name == "sqlite"
                             else new_database(server))  # fmt: skip
                    measured = store_load(store, niceness)
                    print(f"  round {round_}, {name}, compute_niceness {niceness}: {measured}",
                          flush=True)  # fmt: skip
                    results[name, niceness, round_] = measured
    return results


def store_load(store: str, niceness: int) -> dict[str, float]:
    """The session load on one server over ``store``, and its store's time per request."""
    flags = ["--store", store, "--no-access-log", "--compute-niceness", str(niceness)]
    with lmforge_process(MODEL, *flags) as (_, base):
        asyncio.run(session_load(base, 1))  # warm up: first requests, first pages
        measured = asyncio.run(session_load(base, STORE_TURNS))
        metrics = request(base + "/metrics")[1]
    for q, label in ((0.99, "store_p99_ms"), (0.5, "store_p50_ms")):
        measured[label] = 1000 * sum(
            histogram_quantile(metrics, "lmforge_store_operation_seconds", {op}, q)
            for op in ("get_session", "save_messages")
        )
    return measured


def replicas_under_kill() -> dict[str, Any]:
    """Part 2: 2,000 turns over two replicas, one killed and restarted halfway."""
    import threading

    import openai

    with ExitStack() as stack:
        store = new_database(stack.enter_context(postgres_server()))
        args = (MODEL, "--store", store, "--no-access-log")
        replicas = [stack.enter_context(lmforge_process(*args)) for _ in range(2)]
        balancer = stack.enter_context(haproxy(*(base for _, base in replicas)))
        client = openai.OpenAI(base_url=balancer + "/v1", api_key="unused", max_retries=0,
                               timeout=120)  # fmt: skip
        sessions = [json.loads(request(balancer + "/v1/sessions", {})[1])["id"]
                    for _ in range(SESSIONS)]  # fmt: skip
        counts = {"done": 0, "failures": 0, "resent": 0}
        lock, halfway = threading.Lock(), threading.Event()

        def stored_questions(session_id: str) -> list[str]:
            deadline = time.monotonic() + 60  # the balancer may route to the dead one once
            while True:
                status, text = request(balancer + f"/v1/sessions/{session_id}")
                if status == 200:
                    return [m["content"] for m in json.loads(text)["messages"]
                            if m["role"] == "user"]  # fmt: skip
                assert time.monotonic() < deadline, f"session {session_id}: HTTP {status}"
                time.sleep(0.2)

        def turn(session_id: str, question: str) -> None:
            while True:
                try:
                    client.chat.completions.create(
                        model=MODEL, messages=[{"role": "user", "content": question}],
                        max_tokens=2, temperature=0, extra_body={"session_id": session_id},
                    )  # fmt: skip
                    return
                except openai.APIError:
                    with lock:
                        counts["failures"] += 1
                    if question in stored_questions(session_id):
                        return  # stored before the answer was lost
                    with lock:
                        counts["resent"] += 1
                    time.sleep(0.1)

        def converse(worker: int) -> None:
            for index in range(worker, SESSIONS, CLIENTS):
                for number in range(SESSION_TURNS):
                    turn(sessions[index], f"s{index} t{number}")
                    with lock:
                        counts["done"] += 1
                        if counts["done"] == SESSIONS * SESSION_TURNS // 2:
                            halfway.set()

        workers = [threading.Thread(target=converse, args=(w,)) for w in range(CLIENTS)]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        halfway.wait()
        process, base = replicas[0]
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed, killed_at = time.perf_counter(), counts["done"]
        stack.enter_context(lmforge_process(*args, port=int(base.rsplit(":", 1)[1])))
        restart_seconds = time.perf_counter() - killed
        print(f"  replica 1 killed after {killed_at} turns, ready again in "
              f"{restart_seconds:.1f} s ({counts['done']} turns by then)", flush=True)  # fmt: skip
        for worker in workers:
            worker.join()
        wall = time.perf_counter() - started
        lost = duplicated = 0
        for index, session_id in enumerate(sessions):
            questions = stored_questions(session_id)
            expected = [f"s{index} t{n}" for n in range(SESSION_TURNS)]
            lost += sum(1 for q in expected if q not in questions)
            duplicated += len(questions) - len(set(questions))
        return {"turns": SESSIONS * SESSION_TURNS, "wall": wall, **counts,
                "lost": lost, "duplicated": duplicated, "restart_s": restart_seconds}  # fmt: skip


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as folder:
        print("1. the session load on one replica, SQLite then PostgreSQL, twice", flush=True)
        cost = store_cost(Path(folder))
        print("2. 2,000 turns over two replicas, one killed and restarted", flush=True)
        kill = replicas_under_kill()
        print(f"  {kill}", flush=True)
    for (name, niceness, round_), r in cost.items():
        sqlite = cost["sqlite", niceness, round_]
        append_result(
            f"serve --replicas: session-heavy load on one replica ({CLIENTS} clients x "
            f"{STORE_TURNS} turns, SmolLM2-135M, max_tokens 16)",
            {"round": str(round_), "store": name, "compute_niceness": str(niceness),
             "requests/s": f"{r['requests_s']:.2f}", "output tok/s": f"{r['tok_s']:.1f}",
             "x SQLite": f"{r['requests_s'] / sqlite['requests_s']:.2f}x",
             "latency p50 s": f"{r['p50']:.2f}", "latency p99 s": f"{r['p99']:.2f}",
             "store p50 ms": f"{r['store_p50_ms']:.2f}",
             "store p99 ms": f"{r['store_p99_ms']:.2f}"},
        )  # fmt: skip
    append_result(
        "serve --replicas 2: 2,000 session turns through HAProxy, one replica killed "
        "(SIGKILL) and restarted halfway (SmolLM2-135M, PostgreSQL store)",
        {"turns": str(kill["turns"]), "seconds": f"{kill['wall']:.0f}",
         "turns/s": f"{kill['turns'] / kill['wall']:.1f}",
         "failed requests": str(kill["failures"]), "turns resent": str(kill["resent"]),
         "restart s": f"{kill['restart_s']:.1f}", "lost turns": str(kill["lost"]),
         "duplicated turns": str(kill["duplicated"])},
    )  # fmt: skip


if __name__ == "__main__":
    main()
