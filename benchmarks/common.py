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
    # Insert after the last row of this benchmark's table.
    start = lines.index(header)
    end = start + 1
    while end < len(lines) and not lines[end].startswith("## "):
        end += 1
    while lines[end - 1] == "":
        end -= 1
    lines.insert(end, "| " + " | ".join(row.values()) + " |")
    RESULTS.write_text("\n".join(lines) + "\n")
