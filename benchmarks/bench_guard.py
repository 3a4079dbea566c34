"""Guard benchmark: the content-safety classifier on hand-written messages, and its latency.

1. quality: the shipped guard (``--guard default``: its classifier and calibrated
   thresholds) on ``challenge_test.jsonl``, messages written by hand apart from the
   training data: per-category precision and recall, unsafe recall (an unsafe message
   flagged for any category) and the benign false-positive rate, with 95 % Wilson
   intervals. Target (lmforge issue 16): unsafe recall at least 0.90 at a benign
   false-positive rate at most 0.05.
2. ablation: the same figures as each part is added, every other part held fixed:
   base (frozen MiniLM + linear head on the template messages, thresholds 0.5, the guard
   before issue 16), + data (the hand-written training messages too), + adapter (LoRA
   fine-tuning instead of a frozen encoder, thresholds still 0.5), + calibrated thresholds
   (chosen on the validation split: the shipped guard). The base and + data heads are refit
   here the way the old ``guard train`` did (L-BFGS, balanced classes); the last two rows
   score the shipped weights. (Round 1 also had a "+ profanity-check feature" row: it
   lowered recall and cost about 5 ms a message, so the feature was removed in round 2;
   its measured rows stay in benchmarks/RESULTS.md, labelled "before round 2".)
3. latency: ``Guard.blocked(text, "input")`` on one message at a time (PII scan, tokenize,
   MiniLM forward, head), torch on 2 threads, every challenge_test message in turn after
   a warm-up: p50 and p99 ms. Target: p99 under 15 ms on 2 cores.

Run: python benchmarks/bench_guard.py [--only quality|ablation|latency]   (~2 min on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import append_result

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from lmforge.guard.classifier import (  # noqa: E402
    EMBED_MODEL,
    LABELS,
    SafetyClassifier,
    dataset_dir,
    read_labeled,
    shipped_dir,
)
from lmforge.guard.evaluate import evaluate_guard, format_rate, resolve_data  # noqa: E402
from lmforge.guard.policy import Guard, GuardPolicy  # noqa: E402

CHALLENGE = "bundled:guard/challenge_test"
FIXED = GuardPolicy(default_threshold=0.5)  # every category at 0.5: no calibration


def frozen_head(out_dir: Path, files: list[str]) -> Path:
    """The pre-issue-16 classifier: a linear head on frozen MiniLM embeddings, fit with
    L-BFGS on ``files`` with balanced classes, saved where ``SafetyClassifier`` reads it."""
    import torch
    from safetensors.numpy import save_file

    from lmforge.retrieve.embed import SentenceEmbedder

    texts: list[str] = []
    labels: list[int] = []
    for name in files:
        more_texts, more_labels = read_labeled(dataset_dir() / name)
        texts, labels = texts + more_texts, labels + more_labels
    features = torch.from_numpy(SentenceEmbedder(EMBED_MODEL).encode(texts))  # (N, D)
    targets = torch.tensor(labels)
    counts = torch.bincount(targets, minlength=len(LABELS)).clamp(min=1).float()
    class_weights = counts.sum() / (len(LABELS) * counts)
    torch.manual_seed(0)
    head = torch.nn.Linear(features.shape[1], len(LABELS))
    optimizer = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=500)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(head(features), targets, weight=class_weights)
        loss = loss + 1e-3 * head.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    out_dir.mkdir(parents=True)
    save_file({"weight": head.weight.detach().numpy(), "bias": head.bias.detach().numpy()},
              str(out_dir / "classifier.safetensors"))  # fmt: skip
    meta = {"labels": list(LABELS), "embed_model": EMBED_MODEL, "features": ["embedding"]}
    (out_dir / "classifier.json").write_text(json.dumps(meta))
    return out_dir


def quality_row(name: str, report: dict[str, Any]) -> dict[str, str]:
    return {
        "guard": name,
        "unsafe recall [95% CI]": format_rate(report["unsafe_recall"]),
        "benign FPR [95% CI]": format_rate(report["benign_fpr"]),
        "data": "challenge_test",
    }


def run_quality(guard: Guard) -> None:
    texts, labels = read_labeled(resolve_data(CHALLENGE))
    report = evaluate_guard(guard, texts, labels)
    for category, row in report["categories"].items():
        threshold = guard.threshold(category)
        print(f"{category:>17}: precision {format_rate(row['precision'])}, "
              f"recall {format_rate(row['recall'])}, threshold {threshold:.2f}")  # fmt: skip
    print(f"unsafe recall {format_rate(report['unsafe_recall'])}; "
          f"benign FPR {format_rate(report['benign_fpr'])}")  # fmt: skip
    append_result("guard: challenge_test per category (shipped guard, --guard default)", {
        **{c: f"P {format_rate(r['precision'])} R {format_rate(r['recall'])}"
           for c, r in report["categories"].items()},
        "unsafe recall": format_rate(report["unsafe_recall"]),
        "benign FPR": format_rate(report["benign_fpr"]),
    })  # fmt: skip


def run_ablation(shipped: SafetyClassifier) -> None:
    texts, labels = read_labeled(resolve_data(CHALLENGE))
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        base = SafetyClassifier(frozen_head(work / "base", ["train.jsonl"]))
        data = SafetyClassifier(
            frozen_head(work / "data", ["train.jsonl", "train_handwritten.jsonl"])
        )
        steps = [
            ("base: frozen MiniLM + head, template data, thresholds 0.5", Guard(FIXED, base)),
            ("+ data: hand-written training messages", Guard(FIXED, data)),
            ("+ adapter: LoRA fine-tuned MiniLM", Guard(FIXED, shipped)),
            ("+ calibrated thresholds (shipped guard)", Guard(GuardPolicy(), shipped)),
        ]
        for name, guard in steps:
            report = evaluate_guard(guard, texts, labels)
            row = quality_row(name, report)
            print(" | ".join(row.values()))
            append_result("guard: ablation on challenge_test", row)


def run_latency(guard: Guard, repeats: int) -> None:
    import torch

    torch.set_num_threads(2)
    texts, _ = read_labeled(resolve_data(CHALLENGE))
    for text in texts[:10]:
        guard.blocked(text, "input")
    times = []
    for _ in range(repeats):
        for text in texts:
            start = time.perf_counter()
            guard.blocked(text, "input")
            times.append((time.perf_counter() - start) * 1000)
    p50, p99 = np.percentile(times, [50, 99])
    words = np.mean([len(t.split()) for t in texts])
    print(f"latency per message: p50 {p50:.1f} ms, p99 {p99:.1f} ms ({len(times)} calls)")
    append_result("guard: latency per message (Guard.blocked, input direction)", {
        "messages": f"{len(times)} (challenge_test, mean {words:.0f} words)",
        "torch threads": "2",
        "p50 ms": f"{p50:.1f}",
        "p99 ms": f"{p99:.1f}",
        "target": "p99 < 15 ms",
    })  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--only", choices=("quality", "ablation", "latency"))
    parser.add_argument("--repeats", type=int, default=3, help="latency passes over the set")
    args = parser.parse_args()
    shipped = SafetyClassifier(shipped_dir())
    if args.only in (None, "quality"):
        run_quality(Guard(GuardPolicy(), shipped))
    if args.only in (None, "ablation"):
        run_ablation(shipped)
    if args.only in (None, "latency"):
        run_latency(Guard(GuardPolicy(), shipped), args.repeats)


if __name__ == "__main__":
    main()
