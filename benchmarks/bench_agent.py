"""The support agent before and after tool-use fine-tuning (docs/serving.md, The support
agent).

1. SmolLM2-135M-Instruct as the agent (``lmforge.agent``: the four order tools,
   ``tool_choice: "auto"``, greedy answers, at most 4 model calls per turn) on the 30
   hand-written conversations of ``bundled:tool_dialogs/agent_test``, each on a fresh
   copy of the order database: the ``agent`` evaluation's tool-call accuracy, argument
   exact match, argument validity and task success (Wilson 95% intervals).
2. The same model with a LoRA adapter trained on ``bundled:tool_dialogs/train``
   (``examples/train/sft_tool_dialogs.yaml``: 240 generated dialogs, 2 epochs, about 40
   minutes on 2 CPU cores), scored
   the same way. The conversations were written by hand, in wording the dialog generator
   does not use.

Run: python benchmarks/bench_agent.py [--keep DIR]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from common import append_result

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "train" / "sft_tool_dialogs.yaml"
CONVERSATIONS = "bundled:tool_dialogs/agent_test"
TABLE = "agent: the support agent on 30 hand-written conversations (SmolLM2-135M-Instruct)"


def scored(ref: str) -> tuple[dict[str, str], float]:
    """Each agent metric with its interval, and the seconds the evaluation took."""
    from lmforge.data.bundled import bundled_path
    from lmforge.evaluate.agent import AGENT_METRICS
    from lmforge.evaluate.runner import evaluate_model

    started = time.perf_counter()
    result = evaluate_model(
        ref, bundled_path(CONVERSATIONS), "agent", track=False, progress=progress
    )
    seconds = time.perf_counter() - started
    shown = {}
    for metric in AGENT_METRICS:
        low, high = result.intervals[metric]
        shown[metric] = f"{result.metrics[metric]:.3f} [{low:.3f}, {high:.3f}]"
        print(f"  {metric}: {shown[metric]}", flush=True)
    return shown, seconds


def progress(done: int, total: int, detail: str) -> None:
    if done % 10 == 0 or done == total:
        print(f"  step {done}/{total}: {detail}", flush=True)


def main() -> None:
    import argparse

    from lmforge.config import load_config
    from lmforge.train.loop import train

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", type=Path, help="keep the trained LoRA in this folder")
    args = parser.parse_args()
    print("base model", flush=True)
    base, base_seconds = scored("smollm2-135m-instruct")
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as folder:
        output = args.keep or Path(folder) / "lora"
        config = load_config(EXAMPLE, ["output.register_as=null", f"output.dir={output}"])
        trained = train(config, track=False, progress=progress)
        print(f"  LoRA: {trained.steps} steps in {trained.train_seconds:.0f} s, validation "
              f"{trained.eval_metrics}", flush=True)  # fmt: skip
        print("with the tool-use LoRA", flush=True)
        tuned, tuned_seconds = scored(str(trained.model_dir))
    for name, shown, seconds, train_s in (
        ("smollm2-135m-instruct", base, base_seconds, "-"),
        ("+ LoRA on tool_dialogs/train (2 epochs)", tuned, tuned_seconds,
         f"{trained.train_seconds:.0f}"),
    ):  # fmt: skip
        append_result(TABLE, {"model": name, **shown, "eval s": f"{seconds:.0f}",
                              "train s": train_s})  # fmt: skip


if __name__ == "__main__":
    main()
