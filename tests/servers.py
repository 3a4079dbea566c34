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
    with lmforge_process(*args, ready_timeout=ready_timeout, env=env, log=log,
                         python=python) as (_, base):  # fmt: skip
        yield base


@contextmanager
def lmforge_process(
    *args: str,
    ready_timeout: float = 120,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    python: str = sys.executable,
    port: int | None = None,
) -> Iterator[tuple[subprocess.Popen, str]]:
    """``lmforge_server``, yielding the server's process too (for a test that signals or
    kills it) with the base URL; on ``port`` when given (a restarted replica's)."""
    port = port or free_port()
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
        yield process, base
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


def postgres_bin() -> Path:
    """The folder of Debian's PostgreSQL server programs (``make setup`` installs them)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name))  # fmt: skip
    if not found:
        raise RuntimeError("no PostgreSQL server here: `make setup` installs Debian's postgresql")
    return found[-1].parent


@contextmanager
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL server on a free loopback port with its data in a new temporary
    folder, stopped and removed afterwards; yields the URL of its ``postgres`` database
    (user ``lmforge``, no password). PostgreSQL refuses to run as root, so as root it runs
    as Debian's ``postgres`` user."""
    import shutil
    import tempfile

    programs = postgres_bin()
    folder = Path(tempfile.mkdtemp(prefix="lmforge-pg-"))  # not under pytest's 0700 tmp
    data, port = folder / "data", free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]

    def run(*command: str) -> None:
        subprocess.run([*as_user, *command], check=True, capture_output=True, timeout=120)

    try:
        run(str(programs / "initdb"), "-D", str(data), "-U", "lmforge", "--auth=trust",
            "--encoding=UTF8", "--no-sync")  # fmt: skip
        settings = (f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                    "-c synchronous_commit=off -c full_page_writes=off")  # fmt: skip
        run(str(programs / "pg_ctl"), "-D", str(data), "-o", settings, "-l",
            str(folder / "log.txt"), "-w", "-t", "60", "start")  # fmt: skip
        try:
            yield f"postgresql://lmforge@127.0.0.1:{port}/postgres"
        finally:
            run(str(programs / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def new_database(url: str) -> str:
    """A new, empty database on the PostgreSQL server of ``url``; its URL."""
    import uuid

    import psycopg

    name = f"db_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return url.rsplit("/", 1)[0] + "/" + name


@contextmanager
def haproxy(*backends: str, check_ms: int = 200) -> Iterator[str]:
    """HAProxy (Debian's package) on a free loopback port, balancing requests round-robin
    over the ``backends`` (base URLs), each health-checked with ``GET /ready`` every
    ``check_ms`` (two failures take it out); yields its base URL, stopped afterwards."""
    import tempfile

    port = free_port()
    servers = "\n".join(
        f"    server r{index} {url.removeprefix('http://')} check inter {check_ms}ms fall 2 rise 2"
        for index, url in enumerate(backends)
    )
    config = f"""global
    maxconn 512
defaults
    mode http
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    retries 3
    option redispatch
frontend lmforge
    bind 127.0.0.1:{port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /ready
    http-check expect status 200
{servers}
"""
    with tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False) as file:
        file.write(config)
    process = subprocess.Popen(["haproxy", "-db", "-f", file.name],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while http_status(base + "/health") != 200:
            assert process.poll() is None and time.monotonic() < deadline, "haproxy did not start"
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)
        Path(file.name).unlink()
