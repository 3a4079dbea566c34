"""Shared benchmark plumbing: machine description and appending rows to RESULTS.md."""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
from pathlib import Path

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
