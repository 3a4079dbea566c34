"""Run every benchmarks/bench_*.py in turn (each appends its rows to RESULTS.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

if __name__ == "__main__":
    here = Path(__file__).parent
    scripts = sorted(here.glob("bench_*.py"))
    if not scripts:
        sys.exit("no benchmarks/bench_*.py found")
    failed = [s.name for s in scripts if subprocess.run([sys.executable, str(s)]).returncode]
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")
