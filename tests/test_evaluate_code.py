"""The code sandbox and the bundled NL-to-Python problems (no models; about 10 s)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lmforge.data.bundled import dataset_path
from lmforge.evaluate.sandbox import (
    MAX_OUTPUT_CHARS,
    NETWORK_DISABLED,
    extract_code,
    run_many,
    run_python_tests,
)

ROOT = Path(__file__).resolve().parents[1]
PROBLEMS = [
    json.loads(line)
    for line in dataset_path("code_problems", "test").read_text(encoding="utf-8").splitlines()
]


def code(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


def alive(pid: int) -> bool:
    """Whether a process still runs; a zombie waiting for init to reap it has ended."""
    try:
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (ProcessLookupError, FileNotFoundError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until_gone(pid: int, seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# --- the bundled problems --------------------------------------------------------------


def test_problems_are_well_formed_with_unique_ids_and_prompts_that_name_the_function() -> None:
    assert len(PROBLEMS) >= 30
    ids = [p["id"] for p in PROBLEMS]
    assert len(set(ids)) == len(ids)
    assert len({p["entry_point"] for p in PROBLEMS}) == len(PROBLEMS)
    for p in PROBLEMS:
        assert sorted(p) == ["entry_point", "id", "prompt", "solution", "tests"], p["id"]
        assert f"`{p['entry_point']}(" in p["prompt"], p["id"]
        assert f"def {p['entry_point']}(" in p["solution"], p["id"]
        assert p["entry_point"] in p["tests"], p["id"]


def test_every_reference_solution_passes_its_tests() -> None:
    results = run_many([(p["solution"], p["tests"]) for p in PROBLEMS], timeout_s=10)

    failures = {p["id"]: r.output for p, r in zip(PROBLEMS, results, strict=True) if not r.passed}
    assert not failures


def test_a_function_that_returns_none_fails_every_problem() -> None:
    wrong = [
        (f"def {p['entry_point']}(*args, **kwargs):\n    return None\n", p["tests"])
        for p in PROBLEMS
    ]
    results = run_many(wrong, timeout_s=10)

    passed = [p["id"] for p, r in zip(PROBLEMS, results, strict=True) if r.status != "failed"]
    assert not passed


def test_the_script_writes_the_committed_file_byte_for_byte(tmp_path: Path) -> None:
    script = ROOT / "scripts" / "make_code_problems.py"
    subprocess.run(
        [sys.executable, str(script), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=60,
    )

    written = (tmp_path / "test.jsonl").read_bytes()
    assert written == dataset_path("code_problems", "test").read_bytes(), (
        "rerun `python scripts/make_code_problems.py`"
    )


# --- the sandbox -----------------------------------------------------------------------


def test_a_passing_program_passes() -> None:
    result = run_python_tests("def add(a, b):\n    return a + b", "assert add(2, 3) == 5")

    assert result.status == "passed"
    assert result.passed
    assert result.seconds < 5


def test_a_failing_assert_fails_with_the_traceback_in_the_output() -> None:
    result = run_python_tests("def add(a, b):\n    return a - b", "assert add(2, 3) == 5")

    assert result.status == "failed"
    assert not result.passed
    assert "AssertionError" in result.output


def test_a_syntax_error_fails() -> None:
    result = run_python_tests("def add(a, b:\n    return a + b", "assert add(2, 3) == 5")

    assert result.status == "failed"
    assert "SyntaxError" in result.output


def test_sys_exit_before_the_tests_is_a_failure_not_a_pass() -> None:
    result = run_python_tests("import sys\nsys.exit(0)", "assert False")

    assert result.status == "failed"
    assert "sys.exit(0)" in result.output


def test_an_endless_loop_times_out_and_its_child_process_is_killed() -> None:
    program = code("""
        import subprocess
        child = subprocess.Popen(["sleep", "60"])
        print(child.pid, flush=True)
        while True:
            pass
    """)
    started = time.monotonic()
    result = run_python_tests(program, "", timeout_s=1)

    assert result.status == "timeout"
    assert time.monotonic() - started < 5
    assert wait_until_gone(int(result.output.split()[0]))


def test_a_background_process_left_by_a_finished_program_is_killed() -> None:
    program = code("""
        import subprocess
        print(subprocess.Popen(["sleep", "60"]).pid, flush=True)
    """)
    result = run_python_tests(program, "", timeout_s=5)

    assert result.status == "passed"
    assert wait_until_gone(int(result.output.split()[0]))


def test_the_cpu_time_limit_signal_counts_as_a_timeout() -> None:
    # RLIMIT_CPU sends SIGXCPU; sending it directly checks the mapping without burning CPU.
    result = run_python_tests("import os, signal\nos.kill(os.getpid(), signal.SIGXCPU)", "")

    assert result.status == "timeout"


def test_allocating_past_the_memory_limit_is_a_memory_result() -> None:
    result = run_python_tests("data = bytearray(2 * 1024**3)", "", memory_mb=256)

    assert result.status == "memory"
    assert "MemoryError" in result.output


def test_a_socket_to_a_listening_local_port_never_connects() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        program = code(f"""
            import socket
            socket.create_connection(("127.0.0.1", {port}), timeout=2)
        """)
        result = run_python_tests(program, "", timeout_s=5)

        listener.settimeout(0.2)
        with pytest.raises(TimeoutError):
            listener.accept()
    assert result.status == "failed"
    assert NETWORK_DISABLED in result.output


def namespaces_allowed() -> bool:
    """Whether this kernel lets this user create user and network namespaces."""
    if not sys.platform.startswith("linux"):
        return False
    unshare = "import ctypes, sys; sys.exit(ctypes.CDLL(None).unshare(0x50000000) != 0)"
    return subprocess.run([sys.executable, "-c", unshare], check=False).returncode == 0


@pytest.mark.skipif(not namespaces_allowed(), reason="no user+network namespaces here")
def test_the_network_namespace_also_stops_raw_sockets_where_the_kernel_allows_it() -> None:
    probe = run_python_tests("import os\nprint(os.readlink('/proc/self/ns/net'))", "")
    assert probe.output.strip() != os.readlink("/proc/self/ns/net")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        # _socket is the C module under socket, which the Python-level guard cannot cover.
        program = code(f"""
            import _socket
            raw = _socket.socket()
            raw.settimeout(2)
            print("connect:", raw.connect_ex(("127.0.0.1", {port})))
        """)
        result = run_python_tests(program, "", timeout_s=5)

        listener.settimeout(0.2)
        with pytest.raises(TimeoutError):
            listener.accept()
    assert "connect: 0" not in result.output


def test_files_land_in_a_temporary_directory_that_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    program = code("""
        import os, pathlib, tempfile
        pathlib.Path("notes.txt").write_text("written by the program")
        print(os.getcwd())
        print(os.path.abspath("notes.txt"))
        print(os.path.expanduser("~"))
        print(tempfile.gettempdir())
    """)
    result = run_python_tests(program, "")

    assert result.status == "passed", result.output
    workdir, notes, home, temp = result.output.splitlines()
    assert Path(notes).parent == Path(workdir) == Path(home) == Path(temp)
    assert Path(workdir) != tmp_path
    assert not Path(workdir).exists()
    assert list(tmp_path.iterdir()) == []


def test_the_callers_environment_is_not_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMFORGE_SANDBOX_MARKER", "secret-token-123")
    program = (
        "import os\nprint(sorted(os.environ))\nprint(os.environ.get('LMFORGE_SANDBOX_MARKER'))"
    )
    result = run_python_tests(program, "")

    assert result.status == "passed"
    assert "LMFORGE_SANDBOX_MARKER" not in result.output
    assert "secret-token-123" not in result.output


def test_the_output_is_a_bounded_tail() -> None:
    result = run_python_tests("print('x' * 50_000)\nprint('the end')", "")

    assert result.status == "passed"
    assert len(result.output) <= MAX_OUTPUT_CHARS
    assert result.output.rstrip().endswith("the end")


def test_a_python_that_cannot_start_is_an_error_result(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", "/nonexistent/python3")

    result = run_python_tests("pass", "")

    assert result.status == "error"
    assert "/nonexistent/python3" in result.output


@pytest.mark.parametrize(("keyword", "value"), [("timeout_s", 0), ("memory_mb", -1)])
def test_limits_must_be_positive(keyword: str, value: float) -> None:
    with pytest.raises(ValueError, match=keyword):
        run_python_tests("pass", "", **{keyword: value})  # type: ignore[arg-type]


# --- extract_code ----------------------------------------------------------------------

FUNCTION = "def double(x):\n    return 2 * x"


def test_extract_code_takes_a_fenced_python_block_out_of_prose() -> None:
    completion = f"Sure! Here it is:\n\n```python\n{FUNCTION}\n```\n\nThis doubles x."

    assert extract_code(completion) == FUNCTION


def test_extract_code_takes_a_fence_without_a_language() -> None:
    assert extract_code(f"Here:\n```\n{FUNCTION}\n```\nDone.") == FUNCTION


def test_extract_code_keeps_unfenced_code_as_it_is() -> None:
    assert extract_code(FUNCTION + "\n") == FUNCTION


def test_extract_code_drops_prose_before_an_unfenced_def_or_import() -> None:
    assert extract_code(f"The function below doubles.\nIt is short.\n{FUNCTION}") == FUNCTION
    with_import = f"Use math:\nimport math\n\n{FUNCTION}"
    assert extract_code(with_import) == f"import math\n\n{FUNCTION}"


def test_extract_code_drops_prose_or_a_cut_off_line_after_unfenced_code() -> None:
    assert extract_code(f"{FUNCTION}\n\nThis function returns twice x.") == FUNCTION
    assert extract_code(f"{FUNCTION}\n\nprint(double(") == FUNCTION


def test_extract_code_prefers_python_and_the_block_that_defines_the_entry_point() -> None:
    completion = (
        "Run it with:\n```bash\npython double.py\n```\n"
        "A helper:\n```python\ndef helper():\n    pass\n```\n"
        f"And the answer:\n```python\n{FUNCTION}\n```\n"
    )

    assert extract_code(completion) == "def helper():\n    pass"
    assert extract_code(completion, entry_point="double") == FUNCTION


def test_extract_code_reads_an_unclosed_fence_to_the_end() -> None:
    assert extract_code(f"```python\n{FUNCTION}\n") == FUNCTION


def test_extract_code_returns_text_without_code_unchanged() -> None:
    assert extract_code("I cannot help with that.") == "I cannot help with that."


def test_extracted_code_from_a_chatty_completion_passes_a_problem() -> None:
    problem = next(p for p in PROBLEMS if p["entry_point"] == "sum_list")
    completion = f"Here is my solution:\n\n```python\n{problem['solution']}```\nHope it helps!"

    result = run_python_tests(extract_code(completion, problem["entry_point"]), problem["tests"])

    assert result.passed, result.output
