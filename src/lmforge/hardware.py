"""What this machine's CPU can do, as the operating system reports it (``/proc/cpuinfo``),
and how many threads the native runtimes get (``native_threads``).

The kernel lists an extension only when the CPU has it and the kernel enabled its register
state, so these are the operating system's word, not only the CPU's: a VM that forbids AMX
tile state does not list ``amx_tile``. Where there is no ``/proc/cpuinfo`` (macOS,
Windows) every question answers "no", and the callers fall back to their portable path.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


@functools.cache
def _cpuinfo() -> str:
    try:
        return CPUINFO.read_text()
    except OSError:
        return ""


def cpu_flags() -> set[str]:
    """The CPU flags the kernel reports (empty where there is no ``/proc/cpuinfo``)."""
    match = re.search(r"^flags\s*:\s*(.*)$", _cpuinfo(), re.MULTILINE)
    return set(match.group(1).split()) if match else set()


def cpu_name() -> str:
    """The CPU's model name, or the platform's word for it."""
    match = re.search(r"^model name\s*:\s*(.*)$", _cpuinfo(), re.MULTILINE)
    return match.group(1).strip() if match else (os.uname().machine or "unknown")


def has_int8_dot() -> bool:
    """VNNI INT8 dot products (AVX512-VNNI or AVX-VNNI): 32-bit sums of u8 x s8 products."""
    return bool(cpu_flags() & {"avx512_vnni", "avx_vnni"})


def has_bf16() -> bool:
    """Native bf16 arithmetic (AVX512-BF16 or AMX-BF16)."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def native_threads() -> int:
    """Threads for the native runtimes (llama.cpp, onnxruntime): ``OMP_NUM_THREADS`` when
    set, the variable torch also reads, so one setting bounds every kernel; otherwise
    the CPU's cores."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    return os.cpu_count() or 1
