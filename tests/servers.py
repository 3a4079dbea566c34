"""Start real servers on loopback for tests: a free port, a subprocess, wait until ready."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def share_guard_exports(home: Path, session_home: Path, *, export_now: bool = False) -> None:
    """Let ``home`` use the session home's cached ONNX exports of the guard's encoder: the
    first export in a home takes 15-30 s (guard/encoder.py), longer than a client's read
    timeout when a server makes it on its first /v1/moderations request. ``export_now``
    makes the shipped guard's export first (the test process's home is the session's)."""
    if export_now:
        from lmforge.guard.classifier import ADAPTER_DIR, EMBED_MODEL, shipped_dir
        from lmforge.guard.encoder import onnx_export

        onnx_export(EMBED_MODEL, shipped_dir() / ADAPTER_DIR)
    shared = session_home / "cache" / "guard-onnx"
    shared.mkdir(parents=True, exist_ok=True)
    (home / "cache").mkdir(parents=True, exist_ok=True)
    (home / "cache" / "guard-onnx").symlink_to(shared, target_is_directory=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


@contextmanager
def lmforge_server(
    *args: str,
    ready_timeout: float = 120,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    python: str = sys.executable,
) -> Iterator[str]:
    """Run ``lmforge serve ARGS`` on a free loopback port; yields the base URL.

    Waits for ``GET /ready`` to return 200; stops the server with SIGTERM afterwards.
    ``env`` adds environment variables; ``log`` receives the server's output; ``python``
    is the interpreter (another environment's).
    """
    port = free_port()
    command = [python, "-m", "lmforge.cli.main", "serve", *args, "--port", str(port)]
    output = log.open("w") if log is not None else subprocess.PIPE
    process = subprocess.Popen(
        command, stdout=output, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout
        while http_status(base + "/ready") != 200:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                text = log.read_text() if log is not None else process.communicate()[0]
                raise RuntimeError(f"lmforge serve did not become ready:\n{text[-3000:]}")
            time.sleep(0.2)
        yield base
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()
        if log is not None:
            output.close()


def request(
    url: str,
    body: object = None,
    *,
    raw: bytes | None = None,
    method: str | None = None,
    key: str | None = None,
) -> tuple[int, str]:
    """(status, text) of a GET, or of a POST with a JSON ``body`` or ``raw`` bytes."""
    import json

    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    headers = {"Content-Type": "application/json"} if data is not None else {}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, data=data, headers=headers, method=method), timeout=60
        ) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
