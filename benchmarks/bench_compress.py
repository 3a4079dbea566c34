"""Compression benchmark: how much smaller, how much faster, how much worse.

Two models, each against its fp32 self in the same run (``lmforge compress`` and
``lmforge export`` measure both sides the same way, see ``compress/measure.py``):

1. The MiniLM sentiment classifier (all-MiniLM-L6-v2 fine-tuned on the bundled reviews
   with ``examples/train/classify_sentiment.yaml``; trained once and cached): INT8
   alone, a 3-layer distilled student, then its vocabulary pruned to the reviews', then
   INT8; and the teacher through onnxruntime (fp32 and INT8). Accuracy on the held-out
   test split, latency per batch of 32 reviews. Targets: at least 90% smaller, at most
   1.0 point accuracy lost, at least 2x faster per batch.
2. SmolLM2-135M: dynamic INT8, weight-only INT8 and INT4 in torch, and GGUF q8_0, q4_1,
   q4_0 and q4_0_m (q4_0 with the most sensitive tensors in q4_1) through llama.cpp.
   Held-out perplexity on the bundled dialogs, batch-1 decode speed; then served output
   tokens/s (streaming chat, concurrency 1 and 16) of the fp32 torch backend, INT8 and
   the q4_0_m GGUF. Target for 4-bit GGUF: at least 85% smaller than the fp32
   safetensors with perplexity within 10%.

Run: python benchmarks/bench_compress.py [--skip-serve]   (about 15 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from common import append_result

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
CACHE = Path.home() / ".cache" / "lmforge-bench"
WORK = CACHE / "compress"
SMOLLM2 = "smollm2-135m-instruct"
SENTIMENT = ROOT / "src" / "lmforge" / "assets" / "datasets" / "sentiment"


def teacher() -> Path:
    """The fp32 MiniLM sentiment classifier, trained once and kept in the cache."""
    from lmforge.config.load import load_config
    from lmforge.train.loop import train

    model = WORK / "sentiment-teacher" / "model"
    if not (model / "config.json").is_file():
        config = load_config(
            ROOT / "examples" / "train" / "classify_sentiment.yaml",
            [f"output.dir={model.parent}", "output.register_as=null"],
        )
        train(config, track=False)
    return model


def compress_rows(ref: Path | str, methods: str, **options: Any) -> list[dict[str, str]]:
    from lmforge.compress.run import CompressOptions, compress_model, parse_methods

    out = WORK / f"{Path(str(ref)).name}-{methods.replace(',', '+')}"
    result = compress_model(str(ref), parse_methods(methods), out,
                            options=CompressOptions(**options), track=False)  # fmt: skip
    return result.rows


def onnx_rows(model: Path, reference: dict[str, str]) -> list[dict[str, str]]:
    """The teacher exported to ONNX and run by onnxruntime, measured like the torch rows."""
    from lmforge.compress.measure import BATCH, size_change
    from lmforge.compress.onnx import OnnxModel, export_onnx
    from lmforge.data.records import read_records
    from lmforge.hub import resolve

    records, _ = read_records(SENTIMENT / "test.jsonl", format="labeled")
    texts, truth = [r["text"] for r in records], [r["label"] for r in records]
    rows = []
    fp32_ms = float(reference[f"ms/batch of {BATCH} p50"])
    fp32_bytes = float(reference["size MB"]) * 1e6
    fp32_accuracy = float(reference["accuracy"].rstrip("%")) / 100
    for quant in ("none", "int8"):
        out = WORK / f"sentiment-onnx-{quant}"
        export_onnx(resolve(str(model)), out, quant=quant)
        runner = OnnxModel(out)
        times, predictions = [], []
        for start in range(0, len(texts), BATCH):
            started = time.perf_counter()
            scores = runner.classify(texts[start : start + BATCH])
            times.append(time.perf_counter() - started)
            predictions += [max(s, key=s.__getitem__) for s in scores]
        accuracy = sum(p == t for p, t in zip(predictions, truth, strict=True)) / len(truth)
        latency = 1000 * statistics.median(times[:-1] or times)
        size = (out / "model.onnx").stat().st_size
        rows.append({
            "model": f"onnxruntime {'fp32' if quant == 'none' else 'int8'}",
            "parameters": reference["parameters"],
            "size MB": f"{size / 1e6:.1f}",
            "size vs fp32": size_change(size, fp32_bytes),
            f"ms/batch of {BATCH} p50": f"{latency:.1f}",
            "speedup": f"{fp32_ms / latency:.2f}x",
            "texts/s": f"{len(texts) / sum(times):.1f}",
            "accuracy": f"{100 * accuracy:.1f}%",
            "change": f"{100 * (accuracy - fp32_accuracy):+.1f} pt",
        })  # fmt: skip
    return rows


def bench_sentiment() -> None:
    model = teacher()
    data = {"data": SENTIMENT / "train.jsonl", "eval_data": SENTIMENT / "test.jsonl"}
    rows = compress_rows(model, "int8-dynamic", **data)
    reference = rows[0]
    rows += compress_rows(model, "distill", **data)[1:]
    rows += compress_rows(model, "distill,prune-vocab", **data)[1:]
    rows += compress_rows(model, "distill,prune-vocab,int8-dynamic", **data)[1:]
    rows += onnx_rows(model, reference)
    for row in rows:
        row["model"] = "fp32 (MiniLM-L6 fine-tuned)" if row is reference else row["model"]
        append_result("compress: MiniLM sentiment classifier, held-out test split (90 reviews)",
                      row)  # fmt: skip
        print(row)


def bench_smollm2(serve: bool) -> None:
    from lmforge.compress.export import export_model

    rows = compress_rows(SMOLLM2, "int8-dynamic")
    rows += compress_rows(SMOLLM2, "int8")[1:]
    rows += compress_rows(SMOLLM2, "int4")[1:]
    for quant in ("q8_0", "q4_1", "q4_0", "q4_0_m"):
        exported = export_model(SMOLLM2, "gguf", WORK / f"smollm2-{quant}.gguf", quant=quant,
                                track=False)  # fmt: skip
        rows.append(exported.rows[1])
    rows[0]["model"] = "fp32 (torch)"
    for row in rows:
        append_result("compress: SmolLM2-135M, held-out dialogs, batch-1 decode", row)
        print(row)
    if serve:
        bench_served()


def bench_served() -> None:
    """Output tokens/s through ``lmforge serve``: fp32 torch vs INT8 torch vs q4_0 llama.cpp."""
    from bench_serve import bench_lmforge, bench_lmforge_gguf

    levels = [1, 16]
    systems = {
        "fp32 (torch backend)": bench_lmforge(levels, "none"),
        "int8-dynamic dir (torch backend)": bench_lmforge(
            levels, "none", str(WORK / f"{SMOLLM2}-int8-dynamic")
        ),
        "gguf q4_0_m (llamacpp backend)": bench_lmforge_gguf(levels, WORK / "smollm2-q4_0_m.gguf"),
    }
    for concurrency in levels:
        fp32 = systems["fp32 (torch backend)"][concurrency]["tok_s"]
        for name, by_level in systems.items():
            r = by_level[concurrency]
            row = {"system": name, "concurrency": str(concurrency),
                   "output tok/s": f"{r['tok_s']:.1f}", "TTFT p50 s": f"{r['ttft_p50']:.2f}",
                   "x fp32 torch": f"{r['tok_s'] / fp32:.2f}x"}  # fmt: skip
            append_result("compress: SmolLM2-135M served, streaming chat, max_tokens 64", row)
            print(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-serve", action="store_true", help="no served tokens/s rows")
    parser.add_argument("--only", choices=["sentiment", "smollm2", "served"], default=None,
                        help="one part (served: the served rows, after a smollm2 run)")  # fmt: skip
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "sentiment"):
        bench_sentiment()
    if args.only in (None, "smollm2"):
        bench_smollm2(serve=not args.skip_serve)
    if args.only == "served":
        bench_served()


if __name__ == "__main__":
    main()
