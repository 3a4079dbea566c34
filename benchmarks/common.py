"""Shared benchmark plumbing: machine description, appending rows to RESULTS.md, and an
open-loop load against a scoring server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import os
import platform
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).with_name("RESULTS.md")


def machine() -> str:
    """One line describing this machine and the software that matters for speed."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    threads = torch.get_num_threads()
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {threads} threads"


def append_result(benchmark: str, row: dict[str, str]) -> None:
    """Append a dated row for ``benchmark`` to RESULTS.md (the header is written once)."""
    command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    row = {"date": dt.date.today().isoformat(), **row, "machine": machine(), "command": command}
    header = f"## {benchmark}"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if header not in text:
        columns = " | ".join(row)
        text += f"\n{header}\n\n| {columns} |\n|{'---|' * len(row)}\n"
    lines = text.rstrip("\n").split("\n")
    # Insert after the last row of this benchmark's table (the section's first table), so
    # notes and other tables written below it stay below it.
    start = lines.index(header)
    end = start + 1
    while end < len(lines) and not lines[end].startswith("## "):
        end += 1
    table = next((i for i in range(start + 1, end) if lines[i].startswith("|")), None)
    if table is not None:
        end = table
        while end < len(lines) and lines[end].startswith("|"):
            end += 1
    else:
        while lines[end - 1] == "":
            end -= 1
    lines.insert(end, "| " + " | ".join(row.values()) + " |")
    RESULTS.write_text("\n".join(lines) + "\n")


def llama_build(kind: str = "portable") -> tuple[str, str, Path]:
    """The Makefile's llama.cpp build ``kind`` (``portable`` or ``native``): its GGML CMake
    flags, llama-cpp-python's full CMAKE_ARGS, and the folder its wheel is cached in.

    Read from the Makefile, so the benchmarks build exactly what `make setup` installs.
    """
    import subprocess

    rule = "print-llama:\n\t@echo '$(LLAMA_CMAKE_$(LLAMA_CPU))'\n\t@echo '$(LLAMA_CMAKE_ARGS)'"
    rule += "\n\t@echo '$(LLAMA_WHEELS)'"
    root = Path(__file__).resolve().parents[1]
    command = ["make", "-s", "-C", str(root), "--eval", rule, "print-llama", f"LLAMA_CPU={kind}"]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    ggml, cmake_args, wheels = out.stdout.strip().splitlines()[-3:]
    return ggml, cmake_args, Path(wheels)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def explained(body: dict[str, Any]) -> bool:
    """A /v1/score answer whose first item came with its reasons."""
    return bool(body["data"][0]["reasons"])


async def open_loop(url: str, bodies: list[dict[str, Any]], rate: float, seconds: float,
                    ok: Callable[[dict[str, Any]], bool]) -> dict[str, float]:  # fmt: skip
    """One POST every 1/rate s for ``seconds``, each body in turn, whether or not earlier
    ones have come back; every latency of an answer with status 200 that ``ok`` accepts.

    What this process holds already (a benchmark may have trained a model in it) is frozen
    out of the cycle collector's sight while the load runs, as `lmforge serve` freezes what
    loading made: otherwise a full collection over it pauses this client's event loop, and
    the pause is measured as the server's latency."""
    gc.collect()
    gc.freeze()
    try:
        return await _open_loop(url, bodies, rate, seconds, ok)
    finally:
        gc.unfreeze()


async def _open_loop(url: str, bodies: list[dict[str, Any]], rate: float, seconds: float,
                     ok: Callable[[dict[str, Any]], bool]) -> dict[str, float]:  # fmt: skip
    import aiohttp
    import numpy as np

    total = int(rate * seconds)
    latencies: list[float] = []
    failures = 0
    connector = aiohttp.TCPConnector(limit=64)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:

        async def one(i: int) -> None:
            nonlocal failures
            started = time.perf_counter()
            try:
                async with client.post(url, json=bodies[i % len(bodies)]) as response:
                    body = await response.json()
                good = response.status == 200 and ok(body)
            except (aiohttp.ClientError, TimeoutError):
                good = False
            if good:
                latencies.append(time.perf_counter() - started)
            else:
                failures += 1

        tasks = []
        start = time.perf_counter()
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        achieved = total / (time.perf_counter() - start)
    ms = np.array(latencies) * 1000
    return {"requests": total, "failures": failures, "achieved_rps": achieved,
            "p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)),
            "max": float(ms.max())}  # fmt: skip


def latency_columns(load: dict[str, float], rate: float, seconds: float,
                    in_process: float) -> dict[str, str]:  # fmt: skip
    """A serving row's columns from ``open_loop``'s result and the in-process baseline (ms)."""
    return {
        "load": f"{rate:.0f} req/s x {seconds:.0f} s (achieved {load['achieved_rps']:.0f})",
        "p50 ms": f"{load['p50']:.2f}",
        "p99 ms": f"{load['p99']:.2f}",
        "max ms": f"{load['max']:.1f}",
        "lost": f"{load['failures']:.0f} of {load['requests']:.0f}",
        "in-process ms (baseline)": f"{in_process:.2f}",
        "p50 / in-process": f"{load['p50'] / in_process:.1f}x",
    }


@contextlib.contextmanager
def scoring_server(args: list[str]) -> Iterator[str]:
    """`lmforge serve ARGS` on a free loopback port, without its access log; yields the
    base URL once it is ready, stops it afterwards."""
    port = free_port()
    command = [sys.executable, "-m", "lmforge.cli.main", "serve", *args, "--port", str(port),
               "--no-access-log"]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(base + "/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                assert server.stderr is not None
                raise RuntimeError(f"the server did not start: {server.stderr.read()[-2000:]}")
            time.sleep(0.2)
        yield base
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
