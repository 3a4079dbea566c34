"""What lmforge reads about the machine (lmforge/hardware.py): CPU flags from
/proc/cpuinfo, and the thread count the native runtimes (llama.cpp, onnxruntime) get."""

from __future__ import annotations

import os

import pytest

from lmforge import hardware
from lmforge.hardware import native_threads

XEON = """processor\t: 0
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse4_2 avx2 avx512f avx512_vnni amx_tile
"""
OLD_CPU = """processor\t: 0
model name\t: AMD Opteron(tm) Processor 6274
flags\t\t: fpu sse4_2 avx
"""


@pytest.mark.parametrize(
    ("cpuinfo", "name", "int8_dot", "bf16"),
    [(XEON, "Intel(R) Xeon(R) Processor", True, False),
     (OLD_CPU, "AMD Opteron(tm) Processor 6274", False, False),
     ("", os.uname().machine, False, False)],  # no /proc/cpuinfo (macOS): every answer no
)  # fmt: skip
def test_cpu_flags_name_and_features_come_from_cpuinfo(
    monkeypatch: pytest.MonkeyPatch, cpuinfo: str, name: str, int8_dot: bool, bf16: bool
) -> None:
    monkeypatch.setattr(hardware, "_cpuinfo", lambda: cpuinfo)
    assert hardware.cpu_name() == name
    assert ("avx512_vnni" in hardware.cpu_flags()) is int8_dot
    assert hardware.has_int8_dot() is int8_dot
    assert hardware.has_bf16() is bf16


def test_native_runtimes_follow_omp_num_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert native_threads() == 3
    for unset in ("", "0", "two"):  # not a positive count: every core
        monkeypatch.setenv("OMP_NUM_THREADS", unset)
        assert native_threads() == (os.cpu_count() or 1)
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert native_threads() == (os.cpu_count() or 1)
