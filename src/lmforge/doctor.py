"""``lmforge doctor``: the checks that tell whether this machine can run lmforge, in one list.

Each check returns a ``Check`` with a status (``ok``, ``warn``, ``fail``) and one line a
user can act on: the CPU's features, the llama.cpp build and a real decode through it, the
torch threads, the embedded models, the MLflow store and Chromium.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from lmforge.errors import LmforgeError
from lmforge.hardware import cpu_flags, cpu_name
from lmforge.hub import llamacpp_check as llamacpp
from lmforge.hub.zoo import ZOO, cached_dir, package_source
from lmforge.track import get_client, tracking_uri

CHROMIUM = Path("/usr/bin/chromium")
PROBE_MODEL = "smollm2-135m-instruct"  # its package ships a Q4_1 GGUF file


@dataclass(frozen=True)
class Check:
    """One line of the doctor's table."""

    name: str
    status: str  # ok | warn | fail
    detail: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def run_checks() -> list[Check]:
    """Run every check; one that raises becomes a ``fail`` line, not a crash."""
    checks: list[Check] = []
    for check in CHECKS:
        try:
            checks.extend(check())
        except Exception as error:  # a broken check is itself a finding
            checks.append(Check(check.__name__.removeprefix("check_"), "fail", str(error)))
    return checks


def check_cpu() -> list[Check]:
    flags = cpu_flags()
    shown = " ".join(f for f in llamacpp.SHOWN_CPU_FLAGS if f in flags)
    status = "ok" if "avx2" in flags else "warn"
    detail = f"{cpu_name()}, {os.cpu_count()} cores; {shown or 'no AVX2'}"
    if status == "warn":
        detail += " (llama.cpp's portable build needs AVX2)"
    return [Check("cpu", status, detail)]


def check_llama_cpp() -> list[Check]:
    libraries = llamacpp.llama_libraries()
    if not libraries:
        return [
            Check(
                "llama.cpp build",
                "warn",
                "llama-cpp-python not installed: GGUF serving and export measurements "
                "need it (pip install 'lmforge[edge]', or make setup)",
            )
        ]
    used: set[str] = set()
    for library in libraries:
        used |= llamacpp.instruction_sets(library)
    forbidden = llamacpp.unsupported_sets(used, cpu_flags())
    kind = "portable (AVX2)" if not used else f"uses {', '.join(sorted(used))}"
    if forbidden:
        build = Check(
            "llama.cpp build",
            "fail",
            f"{kind}; this CPU or OS does not allow {', '.join(sorted(forbidden))}: "
            f"{llamacpp.PORTABLE_FIX}",
        )
    else:
        status = "ok" if not used else "warn"
        note = "" if not used else " (built for this CPU: copies to other machines may crash)"
        build = Check("llama.cpp build", status, f"{kind}{note}; {libraries[0].parent}")
    return [build, _decode_check()]


def _decode_check() -> Check:
    try:
        gguf = package_source(ZOO[PROBE_MODEL])
    except LmforgeError as error:
        return Check("llama.cpp decode", "warn", f"no GGUF file to try: {error}")
    started = time.perf_counter()
    result = llamacpp.probe_llama_cpp(gguf, use_cache=False)
    took = f"{time.perf_counter() - started:.1f} s"
    if result.ok:
        return Check(
            "llama.cpp decode", "ok", f"{gguf.name} in a child process: {result.detail} ({took})"
        )
    return Check(
        "llama.cpp decode", "fail", f"{gguf.name}: {result.detail}. Fix: {llamacpp.PORTABLE_FIX}"
    )


def check_torch() -> list[Check]:
    threads, cores = torch.get_num_threads(), os.cpu_count() or 1
    status = "ok" if threads <= cores else "warn"
    detail = f"torch {torch.__version__}, {threads} threads on {cores} cores"
    if torch.cuda.is_available():
        detail += f", CUDA: {torch.cuda.get_device_name(0)}"
    if status == "warn":
        detail += " (more threads than cores slows every kernel: set OMP_NUM_THREADS)"
    return [Check("torch", status, detail)]


def check_models() -> list[Check]:
    checks = []
    for entry in ZOO.values():
        try:
            source = package_source(entry)
        except LmforgeError as error:
            checks.append(Check(f"model {entry.name}", "fail", str(error)))
            continue
        converted = cached_dir(entry.name)
        state = f"converted in {converted}" if converted.exists() else "converted on first use"
        detail = f"{entry.package}: {source}" + (f"; {state}" if source.is_file() else "")
        checks.append(Check(f"model {entry.name}", "ok", detail))
    return checks


def check_mlflow() -> list[Check]:
    uri = tracking_uri()
    started = time.perf_counter()
    experiments = get_client().search_experiments(max_results=1000)
    return [
        Check(
            "mlflow store",
            "ok",
            f"{uri}: {len(experiments)} experiments ({time.perf_counter() - started:.1f} s)",
        )
    ]


def check_chromium() -> list[Check]:
    browser = CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")
    if not browser:
        return [
            Check(
                "chromium",
                "warn",
                "not installed: only the web-page test needs it (apt-get install chromium)",
            )
        ]
    version = subprocess.run(
        [str(browser), "--version"], capture_output=True, text=True, timeout=30
    ).stdout.strip()
    return [Check("chromium", "ok", f"{version} ({browser})")]


CHECKS: list[Callable[[], list[Check]]] = [
    check_cpu,
    check_llama_cpp,
    check_torch,
    check_models,
    check_mlflow,
    check_chromium,
]
