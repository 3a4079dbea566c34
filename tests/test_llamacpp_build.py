"""The installed llama.cpp runs on any x86-64 CPU with AVX2, and a build that cannot run here
is reported before it crashes a server.

The instruction-set audit catches a non-portable build on every machine, including one
whose CPU could run it (an AVX-512 build made on this AMD EPYC): a decode test alone would
pass here and crash on the next machine. The decode runs in a child process, so a crash is
a failure with its reason, not the end of pytest.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lmforge import hardware
from lmforge.cli.main import app
from lmforge.errors import LmforgeError
from lmforge.hub import llamacpp_check
from lmforge.hub.llamacpp_check import (
    PORTABLE_SETS,
    build_features,
    ensure_llama_cpp_runs,
    instruction_sets,
    llama_libraries,
    probe_llama_cpp,
    unsupported_sets,
)

x86_only = pytest.mark.skipif(platform.machine() != "x86_64", reason="x86-64 builds only")


@x86_only
def test_the_installed_build_uses_no_instruction_beyond_avx2() -> None:
    # `make test LLAMA_CPU=native` (the opt-in build) checks instead that every
    # extension it uses is one this CPU and OS allow.
    libraries = llama_libraries()
    assert libraries, "llama-cpp-python is not installed: make setup installs it"
    used = {lib.name: instruction_sets(lib) for lib in libraries}
    if os.environ.get("LMFORGE_LLAMA_CPU") == "native":
        flags = hardware.cpu_flags()
        assert not any(unsupported_sets(sets, flags) for sets in used.values()), used
        return
    assert not any(used.values()), (
        f"llama.cpp was compiled for a specific CPU: {used}; {llamacpp_check.PORTABLE_FIX}"
    )
    compiled = build_features()
    assert compiled.get("AVX2") and compiled.get("FMA"), compiled
    beyond = [k for k, on in compiled.items() if on and k.startswith(("AVX512", "AMX", "AVX_VNNI"))]
    assert not beyond, f"compiled with {beyond}"


AVX512_AND_AMX = r"""
#include <immintrin.h>
__m512 add16(__m512 a, __m512 b) { return _mm512_add_ps(a, b); }
void tiles(const void *config, const void *data) {
    _tile_loadconfig(config);
    _tile_loadd(0, data, 64);
    _tile_loadd(1, data, 64);
    _tile_loadd(2, data, 64);
    _tile_dpbssd(0, 1, 2);
    _tile_release();
}
__m256i vnni(__m256i acc, __m256i a, __m256i b) { return _mm256_dpbusd_avx_epi32(acc, a, b); }
"""


@x86_only
def test_the_audit_finds_avx512_amx_and_vnni_in_real_machine_code(tmp_path: Path) -> None:
    # Compiled here, never run: the audit must recognise what a native build would hold.
    compiler = shutil.which("gcc") or shutil.which("cc")
    assert compiler, "gcc builds llama-cpp-python, so make setup needs it"
    source = tmp_path / "isa.c"
    source.write_text(AVX512_AND_AMX)
    library = tmp_path / "libisa.so"
    subprocess.run(
        [
            compiler,
            "-O2",
            "-shared",
            "-fPIC",
            "-mavx512f",
            "-mamx-tile",
            "-mamx-int8",
            "-mavxvnni",
            str(source),
            "-o",
            str(library),
        ],
        check=True,
    )
    used = instruction_sets(library)
    assert used == {"avx512", "amx", "avx_vnni"}
    # A VM that hides AMX (the reported crash) and an AVX2-only CPU: both refused.
    assert unsupported_sets(used, {"avx2", "avx512f", "avx_vnni"}) == {"amx"}
    assert unsupported_sets(used, {"avx2"}) == {"avx512", "amx", "avx_vnni"}
    assert {"avx2", "fma", "f16c"} <= PORTABLE_SETS


@pytest.mark.integration
def test_a_real_decode_runs_in_a_child_process_and_is_remembered(
    llama_cpp_runs: None, home: Path
) -> None:
    from lmforge.hub.zoo import ZOO, package_source

    gguf = package_source(ZOO["smollm2-135m-instruct"])
    first = probe_llama_cpp(gguf)
    assert first.ok and not first.cached, first.detail
    assert "decoded" in first.detail
    again = probe_llama_cpp(gguf)
    assert again.ok and again.cached
    verdicts = json.loads((home / "cache" / "llamacpp-probe.json").read_text())
    assert list(verdicts.values()) == ["ok"]


# This CPU runs the installed build, so no real crash can be had here: the child below
# really dies of SIGILL, as a native build does on a CPU without its instructions.
CRASHING_CHILD = (
    "import os, signal; print('CPU : SSE3 = 1 | AVX2 = 1 | AMX_INT8 = 1', flush=True); "
    "os.kill(os.getpid(), signal.SIGILL)"
)


@pytest.fixture
def crashing_probe(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setattr(
        llamacpp_check, "_probe_command", lambda gguf: [sys.executable, "-c", CRASHING_CHILD]
    )


def test_a_crash_becomes_an_error_naming_the_cpu_the_build_and_the_fix(
    crashing_probe: None, tmp_path: Path
) -> None:
    gguf = tmp_path / "model.gguf"
    with pytest.raises(LmforgeError) as caught:
        ensure_llama_cpp_runs(gguf)
    message = str(caught.value)
    assert "killed by SIGILL" in message
    assert "AMX_INT8 = 1" in message  # the child's last output
    assert "This CPU (" in message and "allow: " in message
    assert "make llama-cpp" in message and "GGML_NATIVE=OFF" in message
    assert not (Path(os.environ["LMFORGE_HOME"]) / "cache" / "llamacpp-probe.json").exists()


def test_serve_refuses_a_gguf_before_listening_when_llama_cpp_crashes(
    crashing_probe: None, tiny_gguf: Path
) -> None:
    result = CliRunner().invoke(app, ["serve", str(tiny_gguf), "--port", "1"])
    assert result.exit_code == 2
    assert "llama.cpp cannot run on this machine" in result.stderr
    assert "killed by SIGILL" in result.stderr


def test_export_keeps_the_file_and_says_why_it_cannot_measure(
    crashing_probe: None, tiny_causal_lm: Path, tmp_path: Path
) -> None:
    out = tmp_path / "tiny.gguf"
    result = CliRunner().invoke(
        app,
        ["export", str(tiny_causal_lm), "--format", "gguf", "--quant", "q8_0", "--out", str(out)],
    )
    assert result.exit_code == 2
    assert "is written and complete" in result.stderr and "--no-measure" in result.stderr
    assert out.stat().st_size > 0


@pytest.mark.integration
def test_doctor_lists_every_check(llama_cpp_runs: None, home: Path) -> None:
    result = CliRunner().invoke(app, ["doctor", "--json"])
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert {
        "cpu",
        "llama.cpp build",
        "llama.cpp decode",
        "torch",
        "mlflow store",
        "chromium",
        "model smollm2-135m-instruct",
        "model all-minilm-l6-v2",
    } <= set(checks)
    assert checks["llama.cpp build"]["status"] == "ok", checks["llama.cpp build"]
    assert checks["llama.cpp build"]["detail"].startswith("portable (AVX2)")
    assert checks["llama.cpp decode"]["status"] == "ok"
    assert "decoded" in checks["llama.cpp decode"]["detail"]
    assert result.exit_code == (1 if any(c["status"] == "fail" for c in checks.values()) else 0)


def test_doctor_fails_with_the_reason_when_the_decode_crashes(crashing_probe: None) -> None:
    result = CliRunner().invoke(app, ["doctor", "--json"])
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert result.exit_code == 1
    assert checks["llama.cpp decode"]["status"] == "fail"
    assert "SIGILL" in checks["llama.cpp decode"]["detail"]
