"""Benchmark the main job: `lmforge quickstart` on a fresh LMFORGE_HOME (the first run
converts SmolLM2, trains, compresses, evaluates, registers, builds the knowledge base and
serves), then again with every step cached; and the pipeline's cache against its
baseline, the same pipeline with every step forced to run (`--force`).

Targets (issue 7): the first quickstart under 10 minutes on 2 CPU cores, the second under
one minute.

    python benchmarks/bench_pipeline.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import append_result

ROOT = Path(__file__).parents[1]
PIPELINE = ROOT / "examples" / "pipelines" / "quickstart.yaml"
LMFORGE = [sys.executable, "-m", "lmforge.cli.main"]


def timed(command: list[str], env: dict[str, str]) -> float:
    """Seconds ``command`` took; raises if it failed (its output tail in the message)."""
    started = time.perf_counter()
    done = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True)  # fmt: skip
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    return seconds


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as home:
        env = {**os.environ, "LMFORGE_HOME": home, "HF_HUB_OFFLINE": "1"}
        env.pop("LMFORGE_TRACKING_URI", None)
        first = timed([*LMFORGE, "quickstart"], env)
        print(f"quickstart, fresh home: {first:.0f} s")
        second = timed([*LMFORGE, "quickstart"], env)
        print(f"quickstart, all steps cached: {second:.0f} s")
        forced = timed([*LMFORGE, "pipeline", "run", str(PIPELINE), "--force", "--quiet"], env)
        print(f"pipeline, every step forced: {forced:.0f} s")
        cached = timed([*LMFORGE, "pipeline", "run", str(PIPELINE), "--quiet"], env)
        print(f"pipeline, cached: {cached:.1f} s")
    append_result(
        "pipeline: the quickstart pipeline on the embedded models, cached vs forced",
        {
            "quickstart first run s (target < 600)": f"{first:.0f}",
            "quickstart second run s (target < 60)": f"{second:.0f}",
            "pipeline --force s": f"{forced:.0f}",
            "pipeline cached s": f"{cached:.1f}",
            "cached speedup": f"{forced / cached:.1f}x",
        },
    )


if __name__ == "__main__":
    main()
