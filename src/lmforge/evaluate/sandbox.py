"""Run model-written Python against its tests in a separate, limited process.

``run_python_tests(program, tests)`` writes ``program`` and ``tests`` into one file in a
fresh temporary directory and runs it with ``python -I`` (isolated mode) in a new session.
A pass is exit status 0: every top-level ``assert`` of the tests held. What the child gets:

- **Time**: a wall-clock limit (``timeout_s``), after which the whole process group is
  killed with SIGKILL, and a CPU-time limit (RLIMIT_CPU) that also stops threaded work.
  Background processes still running in the group when the program ends are killed too.
- **Memory**: an address-space limit (RLIMIT_AS, ``memory_mb``); an allocation over it
  raises MemoryError.
- **Files**: the working directory, HOME and TMPDIR are the temporary directory, which is
  removed afterwards; no file (the program's output included) may grow past 10 MiB.
- **Environment**: nothing of the caller's environment but PATH, so API keys and tokens
  in it are not visible.
- **Network**: on Linux the child moves into new user and network namespaces
  (``unshare(CLONE_NEWUSER | CLONE_NEWNET)``, allowed without privileges on most
  distributions), where no interface but a downed loopback exists, so nothing, not even
  127.0.0.1, can be reached. Whether or not that worked, ``socket.socket`` (except Unix
  domain sockets), ``socket.create_connection`` and the name lookups raise
  ``OSError("network access is disabled in the lmforge sandbox")``.

What it does not protect against: this is best-effort isolation for scoring model-written
code on your own machine, not a security boundary against a determined attacker. The
program runs as your user and can read every file your user can read, and write any such
file outside the temporary directory (the user namespace removes root's power to override
file permissions, nothing more). Without namespaces (macOS, or a kernel that forbids them)
the socket guard is plain Python that ``import _socket`` or ``ctypes`` walks around. There
is no limit on the number of processes (RLIMIT_NPROC counts every process of your user,
so a tight one breaks the caller), so a fork bomb can exhaust them before the timeout, and
a process that calls ``setsid()`` leaves the group that is killed. To run untrusted code,
or many programs at scale, run the evaluation inside a container or VM with no network
and a read-only view of your files.

The file runs as a module named ``__sandbox__``, as HumanEval's harness runs completions:
code under ``if __name__ == "__main__":`` (a demo that reads ``input()``, say) does not
run, so it cannot fail a correct function. ``sys.exit()`` anywhere counts as a failure,
because the tests after it did not run. POSIX only (``resource``).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

SandboxStatus = Literal["passed", "failed", "timeout", "memory", "error"]

NETWORK_DISABLED = "network access is disabled in the lmforge sandbox"
MAX_OUTPUT_CHARS = 2000
MAX_FILE_BYTES = 10 * 2**20  # RLIMIT_FSIZE: any file the program writes, its output included
SETUP_FAILED = 125  # the bootstrap's exit status when it could not apply the limits
# extract_code: a fence's language tag and body, up to the closing fence or the end.
_FENCE = re.compile(r"```[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_PYTHON_TAGS = {"python", "python3", "py", "py3"}
_CODE_START = re.compile(r"^(?:def |async def |class |import |from \S+ import |@)", re.MULTILINE)

# Runs in the child before the program. The limits are applied here, after exec, rather
# than in a preexec_fn: preexec_fn is unsafe when the caller has threads (run_many does),
# and this way the interpreter's own start-up is not squeezed by RLIMIT_AS.
_BOOTSTRAP = r"""
import sys


def apply_limits(memory_bytes, cpu_seconds, file_bytes):
    import resource

    def lower(which, soft, hard):
        _, current = resource.getrlimit(which)
        if current != resource.RLIM_INFINITY:
            soft, hard = min(soft, current), min(hard, current)
        resource.setrlimit(which, (soft, hard))

    lower(resource.RLIMIT_AS, memory_bytes, memory_bytes)
    # The soft limit sends SIGXCPU; the hard one, a second later, SIGKILL.
    lower(resource.RLIMIT_CPU, cpu_seconds, cpu_seconds + 1)
    lower(resource.RLIMIT_FSIZE, file_bytes, file_bytes)
    lower(resource.RLIMIT_CORE, 0, 0)


def leave_network():
    # A new user namespace lets an unprivileged user create the network namespace; in it
    # only a downed loopback exists. Python 3.11 has no os.unshare, hence ctypes.
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).unshare(0x10000000 | 0x40000000)
    except (OSError, AttributeError):
        pass


def block_sockets(message):
    import socket

    def refuse(*args, **kwargs):
        raise OSError(message)

    unix = getattr(socket, "AF_UNIX", None)

    class GuardedSocket(socket.socket):
        # A subclass, not a function, so modules that subclass socket.socket (ssl) still
        # import; Unix sockets stay usable because asyncio's event loop needs a socketpair.
        def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
            if family != unix:
                raise OSError(message)
            super().__init__(family, type, proto, fileno)

    socket.socket = GuardedSocket
    for name in ("create_connection", "getaddrinfo", "gethostbyname", "gethostbyname_ex",
                 "gethostbyaddr", "getnameinfo"):
        setattr(socket, name, refuse)


def run(path):
    import runpy

    try:
        runpy.run_path(path, run_name="__sandbox__")
    except SystemExit as stop:
        sys.stderr.write(f"the program called sys.exit({stop.code!r}) before its tests ran\n")
        sys.exit(1)
    except BaseException as error:
        import traceback

        # Start the traceback at the program: the frames of this bootstrap and runpy are
        # noise in the output tail. A SyntaxError has no program frame and prints alone.
        frame = error.__traceback__
        while frame is not None and frame.tb_frame.f_code.co_filename != path:
            frame = frame.tb_next
        traceback.print_exception(type(error), error, frame)
        sys.exit(1)


path, memory_bytes, cpu_seconds, file_bytes, message = sys.argv[1:]
try:
    apply_limits(int(memory_bytes), int(cpu_seconds), int(file_bytes))
except Exception as error:
    sys.stderr.write(f"lmforge sandbox: could not apply resource limits: {error!r}\n")
    sys.exit(125)  # SETUP_FAILED
leave_network()
block_sockets(message)
run(path)
"""


@dataclass(frozen=True)
class SandboxResult:
    """How one sandboxed run ended.

    ``status`` is ``"passed"`` (exit 0), ``"failed"`` (an assertion or another exception,
    a syntax error, ``sys.exit``), ``"timeout"`` (wall-clock or CPU limit), ``"memory"``
    (over ``memory_mb``) or ``"error"`` (the sandbox itself could not run the program).
    ``output`` is the tail of stdout and stderr together, with a note when a limit
    stopped the program.
    """

    status: SandboxStatus
    seconds: float
    output: str

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def run_python_tests(
    program: str, tests: str, *, timeout_s: float = 10.0, memory_mb: int = 512
) -> SandboxResult:
    """Run ``program`` followed by ``tests`` in a limited subprocess (see the module docs).

    Args:
        program: the Python source under test, e.g. a function a model wrote.
        tests: Python source appended after it, usually ``assert`` statements.
        timeout_s: wall-clock seconds before the process group is killed; the CPU-time
            limit is this rounded up.
        memory_mb: the address-space limit of the child, in MiB.

    Returns:
        A ``SandboxResult``; a program that fails, hangs or blows its memory is a result,
        never an exception.

    Raises:
        ValueError: ``timeout_s`` or ``memory_mb`` is not positive.
    """
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
    if memory_mb <= 0:
        raise ValueError(f"memory_mb must be a positive number of MiB, got {memory_mb!r}")
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="lmforge-sandbox-") as workdir,
        tempfile.TemporaryFile() as output,
    ):
        path = Path(workdir) / "program.py"
        path.write_text(program + "\n\n" + tests, encoding="utf-8")
        command = [
            sys.executable,
            "-I",  # no PYTHON* variables, no user site-packages, no cwd on sys.path
            "-B",  # -I ignores PYTHONDONTWRITEBYTECODE, so ask for no .pyc here
            "-c",
            _BOOTSTRAP,
            str(path),
            str(memory_mb * 2**20),
            str(math.ceil(timeout_s)),
            str(MAX_FILE_BYTES),
            NETWORK_DISABLED,
        ]
        try:
            process = subprocess.Popen(
                command,
                cwd=workdir,
                env=_sandbox_env(workdir),
                stdin=subprocess.DEVNULL,
                stdout=output,  # a file, not a pipe: a print loop cannot fill our memory
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed as a whole
            )
        except OSError as error:
            return SandboxResult(
                "error", time.monotonic() - started, f"could not start {sys.executable}: {error}"
            )
        timed_out = False
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            _kill_group(process.pid)
            process.wait()
        seconds = time.monotonic() - started
        output_bytes = output.seek(0, os.SEEK_END)
        text = _tail(output)
    status = _status(process.returncode, timed_out, text)
    note = _note(process.returncode, timed_out, timeout_s, output_bytes)
    if note:
        text = f"{text.rstrip()}\n{note}".lstrip()
    return SandboxResult(status, seconds, text)


def run_many(
    jobs: Iterable[tuple[str, str]],
    *,
    timeout_s: float = 10.0,
    memory_mb: int = 512,
    workers: int = 2,
) -> list[SandboxResult]:
    """``run_python_tests`` over ``(program, tests)`` pairs, ``workers`` at a time.

    Returns:
        One result per job, in the order of ``jobs``.
    """
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(
            pool.map(
                lambda job: run_python_tests(*job, timeout_s=timeout_s, memory_mb=memory_mb),
                jobs,
            )
        )


def extract_code(completion: str, entry_point: str | None = None) -> str:
    """The Python source in a model's completion.

    A fenced block wins: the first ```` ```python ```` block (or ``py``/``python3``), else
    the first fenced block of any language; with ``entry_point``, the first of those that
    defines it. An unclosed fence (generation cut off) runs to the end. Without a fence,
    prose lines before the first ``def``/``class``/``import``/``from ... import``/``@``
    line are dropped. Last, trailing lines that keep the code from compiling (prose after
    it, or a line cut off by the token limit) are dropped.

    Args:
        completion: the text the model generated.
        entry_point: the function the tests call, to choose among several blocks.

    Returns:
        The code, dedented, without surrounding blank lines; the completion itself when
        nothing in it looks like code.
    """
    blocks = [(language.lower(), body) for language, body in _FENCE.findall(completion)]
    if blocks:
        python = [body for language, body in blocks if language in _PYTHON_TAGS]
        ranked = python + [body for language, body in blocks if language not in _PYTHON_TAGS]
        defines = re.compile(rf"\bdef\s+{re.escape(entry_point)}\s*\(") if entry_point else None
        code = next((b for b in ranked if defines and defines.search(b)), ranked[0])
    else:
        start = _CODE_START.search(completion)
        code = completion[start.start() :] if start else completion
    return _drop_uncompilable_tail(textwrap.dedent(code).strip("\n"))


def _drop_uncompilable_tail(code: str) -> str:
    lines = code.splitlines()
    for end in range(len(lines), 0, -1):
        candidate = "\n".join(lines[:end]).rstrip()
        if candidate and _compiles(candidate):
            return candidate
    return code  # broken in the middle: let the sandbox report the SyntaxError


def _compiles(code: str) -> bool:
    try:
        compile(code, "<completion>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _sandbox_env(workdir: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": workdir,
        "TMPDIR": workdir,
        "PYTHONDONTWRITEBYTECODE": "1",  # for Pythons the program itself starts
    }


def _kill_group(pgid: int) -> None:
    # ProcessLookupError: the group is already empty.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _tail(output: IO[bytes]) -> str:
    size = output.seek(0, os.SEEK_END)
    output.seek(max(0, size - 4 * MAX_OUTPUT_CHARS))  # UTF-8 is at most 4 bytes a char
    return output.read().decode("utf-8", errors="replace")[-MAX_OUTPUT_CHARS:]


def _status(returncode: int, timed_out: bool, output: str) -> SandboxStatus:
    if timed_out or returncode == -signal.SIGXCPU:
        return "timeout"
    if returncode == 0:
        return "passed"
    if returncode == SETUP_FAILED and "lmforge sandbox: could not apply" in output:
        return "error"
    lines = output.rstrip().splitlines()
    if lines and lines[-1].startswith("MemoryError"):
        return "memory"
    return "failed"


def _note(returncode: int, timed_out: bool, timeout_s: float, output_bytes: int) -> str:
    if timed_out:
        return f"[sandbox] killed after {timeout_s:g} s (timeout_s)"
    if returncode == -signal.SIGXCPU:
        return f"[sandbox] stopped at {math.ceil(timeout_s)} s of CPU time (timeout_s)"
    # Python ignores SIGXFSZ, so a write past the limit usually raises OSError instead.
    if returncode == -signal.SIGXFSZ or output_bytes >= MAX_FILE_BYTES:
        return f"[sandbox] the output or a file reached the {MAX_FILE_BYTES}-byte limit"
    if returncode < 0:
        try:
            return f"[sandbox] killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"[sandbox] killed by signal {-returncode}"
    return ""
