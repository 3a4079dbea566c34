"""Will llama.cpp run on this machine? The build's instruction sets, and a first decode in
a child process.

llama-cpp-python compiles llama.cpp on install, and ggml's default (``GGML_NATIVE``) is to
compile for the build machine's own CPU. A build made on a Sapphire Rapids host then holds
AMX tile instructions; a virtual machine that forbids AMX tile state kills the process with
a general protection fault on the first matrix multiply, and a CPU without AVX-512 stops
with an illegal instruction. ``make setup`` builds portably (AVX2, no AVX-512 or AMX; see
docs/serving.md), but a user may have installed llama-cpp-python any other way.

A signal cannot be caught inside the process that receives it, so the first time a build
runs on a machine, ``ensure_llama_cpp_runs`` loads a GGUF file and decodes a few tokens in a
child process. A crash there becomes an ``LmforgeError`` that names the CPU's features, the
build's, and the fix, before a server takes its first request. A passing verdict is kept in
``$LMFORGE_HOME/cache/llamacpp-probe.json`` under a key made of the library files and the
CPU's flags, so a rebuilt library or another CPU is probed again.

``instruction_sets`` disassembles the installed libraries (``objdump``) and names the
extensions their code uses: the build test and ``lmforge doctor`` compare them with what a
portable build may use and with what this CPU reports.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from lmforge.errors import LmforgeError
from lmforge.hardware import cpu_flags, cpu_name
from lmforge.home import atomic_write_text, lmforge_home
from lmforge.hub.load import import_llama_cpp

# Extensions a portable build may use: the x86-64 baseline up to AVX2 (Haswell, 2013).
PORTABLE_SETS = frozenset({"sse4_2", "avx", "avx2", "fma", "f16c", "bmi2"})

# Mnemonics and registers that only a given extension has, as objdump prints them. AVX-512
# code is recognised by its registers (zmm, the k masks); the VNNI and BF16 dot products by
# mnemonic, with objdump's "{vex}" prefix telling AVX-VNNI from AVX512-VNNI.
_SIGNATURES: dict[str, re.Pattern[str]] = {
    "amx": re.compile(
        r"\b(ldtilecfg|sttilecfg|tileloadd\w*|tilestored|tilezero|tilerelease|"
        r"tdpb[su][su]d|tdpbf16ps|tdpfp16ps)\b"
    ),
    "avx512": re.compile(r"%zmm\d|%k[1-7]\b"),
    "avx512_vnni": re.compile(r"(?<!\{vex\} )\bvpdp(bu|ws)sds?\b.*%zmm"),
    "avx_vnni": re.compile(r"\{vex\} vpdp(bu|ws)sds?\b"),
    "avx512_bf16": re.compile(r"\b(vdpbf16ps|vcvtne2ps2bf16|vcvtneps2bf16)\b"),
}
_ANY_SIGNATURE = re.compile(r"zmm|%k[1-7]|tile|tdp|vpdp|bf16")
# The /proc/cpuinfo flag that says the CPU and the kernel allow each extension.
_CPU_FLAG = {
    "amx": "amx_tile",
    "avx512": "avx512f",
    "avx512_vnni": "avx512_vnni",
    "avx_vnni": "avx_vnni",
    "avx512_bf16": "avx512_bf16",
}
# The CPU flags worth showing a user choosing a build.
SHOWN_CPU_FLAGS = (
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
)

PORTABLE_FIX = (
    "reinstall llama-cpp-python built portably: `make llama-cpp` in an lmforge checkout, or "
    "CMAKE_ARGS='-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON' "
    "pip install --force-reinstall --no-cache-dir --no-deps llama-cpp-python==0.3.36"
)
PROBE_TIMEOUT_S = 300
_PROBE_SCRIPT = Path(__file__).with_name("_llamacpp_probe.py")


def llama_libraries() -> list[Path]:
    """The shared libraries of the installed llama-cpp-python (empty when not installed)."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return []
    lib = Path(next(iter(spec.submodule_search_locations))) / "lib"
    # One file per library: wheels hold libggml.so, .so.0 and .so.0.25.3 as three copies.
    by_name = {p.name.split(".so")[0]: p for p in sorted(lib.glob("lib*.so*"), reverse=True)}
    return sorted(p.resolve() for p in by_name.values())


def instruction_sets(library: Path) -> set[str]:
    """The extensions beyond AVX2 whose instructions appear in ``library``'s code.

    Raises:
        LmforgeError: objdump (binutils) is not installed.
    """
    objdump = shutil.which("objdump")
    if objdump is None:
        raise LmforgeError(
            "reading a library's instruction sets needs objdump: install binutils "
            "(`apt-get install binutils`)"
        )
    found: set[str] = set()
    with subprocess.Popen(
        [objdump, "-d", "--no-show-raw-insn", str(library)],
        stdout=subprocess.PIPE,
        text=True,
        errors="replace",
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if not _ANY_SIGNATURE.search(line):  # most lines: one search instead of five
                continue
            for name, pattern in _SIGNATURES.items():
                if name not in found and pattern.search(line):
                    found.add(name)
    return found


def unsupported_sets(used: set[str], flags: set[str]) -> set[str]:
    """The extensions in ``used`` that a CPU with ``flags`` does not allow."""
    return {name for name in used if _CPU_FLAG.get(name, name) not in flags}


def build_features() -> dict[str, bool]:
    """The CPU features llama.cpp was compiled with, from ``llama_print_system_info``.

    Reading them runs no kernel, so it is safe even with a build this CPU cannot run.
    """

    info = import_llama_cpp().llama_print_system_info().decode(errors="replace")
    return {name: value == "1" for name, value in re.findall(r"(\w+) = (\d)", info)}


@dataclass(frozen=True)
class ProbeResult:
    """What happened when a child process loaded a GGUF file and decoded with it."""

    ok: bool
    detail: str  # "decoded 4 tokens" or how the child died, with its last output
    cached: bool = False


def probe_llama_cpp(gguf: Path, *, use_cache: bool = True) -> ProbeResult:
    """Load ``gguf`` and decode a few tokens in a child process, once per build and CPU.

    Args:
        gguf: a GGUF model file (the one about to be served or measured).
        use_cache: skip the child when this build already ran on this CPU.
    """
    key = _probe_key()
    cache = lmforge_home() / "cache" / "llamacpp-probe.json"
    if use_cache and key and _read_json(cache).get(key) == "ok":
        return ProbeResult(True, "ran before on this CPU with this build", cached=True)
    try:
        child = subprocess.run(
            _probe_command(gguf), capture_output=True, text=True, timeout=PROBE_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        return ProbeResult(False, f"no answer in {PROBE_TIMEOUT_S} s (killed)")
    output = (child.stdout + child.stderr).strip()
    if child.returncode == 0:
        if key:
            atomic_write_text(cache, json.dumps({**_read_json(cache), key: "ok"}, indent=1))
        return ProbeResult(True, output.splitlines()[-1] if output else "decoded")
    if child.returncode < 0:
        name = signal.Signals(-child.returncode).name
        how = f"killed by {name}" + (
            " (an instruction this CPU or OS does not allow)"
            if name in ("SIGILL", "SIGSEGV", "SIGBUS")
            else ""
        )
    else:
        how = f"exit code {child.returncode}"
    tail = "\n".join(output.splitlines()[-5:])
    return ProbeResult(False, how + (f"; its last output:\n{tail}" if tail else ""))


def ensure_llama_cpp_runs(gguf: Path) -> None:
    """Raise a clear error, before a server or a measurement loads ``gguf``, when the
    installed llama.cpp cannot decode on this machine.

    Raises:
        LmforgeError: the child process crashed or failed, naming the CPU's features,
            the build's, and the fix.
    """
    result = probe_llama_cpp(gguf)
    if result.ok:
        return
    flags = cpu_flags()
    shown = " ".join(f for f in SHOWN_CPU_FLAGS if f in flags) or "unknown"
    try:
        compiled = " ".join(k for k, on in build_features().items() if on) or "unknown"
    except Exception as error:  # reading the build's features must not hide the crash
        compiled = f"unreadable ({error})"
    raise LmforgeError(
        f"llama.cpp cannot run on this machine: a test decode of {gguf.name} in a child "
        f"process was {result.detail}\nThis CPU ({cpu_name()}) and its OS allow: {shown}. "
        f"The installed llama.cpp was compiled with: {compiled}. A build compiled for "
        f"another CPU (ggml's GGML_NATIVE default) uses instructions this machine forbids. "
        f"Fix: {PORTABLE_FIX}. `lmforge doctor` shows the checks."
    )


def _probe_command(gguf: Path) -> list[str]:
    return [sys.executable, str(_PROBE_SCRIPT), str(gguf)]


def _probe_key() -> str:
    """Build and CPU fingerprint: the library files' sizes and times, and the CPU flags."""
    libraries = llama_libraries()
    if not libraries:
        return ""
    digest = hashlib.sha256()
    for lib in libraries:
        stat = lib.stat()
        digest.update(f"{lib}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    digest.update((cpu_name() + " ".join(sorted(cpu_flags()))).encode())
    return digest.hexdigest()[:32]


def _read_json(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
