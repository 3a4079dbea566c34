"""Compression benchmark: how much smaller, how much faster, how much worse.

Two models, each against its fp32 self in the same run (``lmforge compress`` and
``lmforge export`` measure both sides the same way, see ``compress/measure.py``):

1. The MiniLM sentiment classifier (all-MiniLM-L6-v2 fine-tuned on the bundled reviews
   with ``examples/train/classify_sentiment.yaml``; trained once per version of that
   config and data, and cached): INT8 alone, a 3-layer distilled student, then its
   vocabulary pruned to the reviews', then INT8; and the teacher through onnxruntime
   (fp32 and INT8). Accuracy on the held-out test split (templated like the training
   reviews) and on the hand-written challenge split (sentiment/challenge.jsonl, with a
   95% Wilson interval), latency per batch of 32 reviews. Targets: at least 90% smaller,
   at most 1.0 point accuracy lost, at least 2x faster per batch; on challenge, the
   teacher at least 85% and the compressed copy within 2 points of it.
2. SmolLM2-135M: dynamic INT8, weight-only INT8 and INT4 in torch, and GGUF q8_0, q4_1,
   q4_0 and q4_0_m (q4_0 with the most sensitive tensors in q4_1) through llama.cpp.
   Held-out perplexity on the bundled dialogs, batch-1 decode speed; then served output
   tokens/s (streaming chat, concurrency 1 and 16) of the fp32 torch backend, INT8 and
   the q4_0_m GGUF. Target for 4-bit GGUF: at least 85% smaller than the fp32
   safetensors with perplexity within 10%.
3. ``--only agreement``: how closely SmolLM2's INT8 paths (``lmforge serve --quantize
   int8``, a ``lmforge compress --method int8-dynamic`` directory, and the ``torch.ao``
   path serve used before 2026-12-02) follow fp32, each model built as ``lmforge serve``
   builds it: greedy answers (chat template, 64 tokens, through the serving engine) to
   the held-out questions plus "What is the capital of France?" -- the share identical
   to fp32's and the mean share of leading tokens in common -- alone on a fresh engine,
   one after another (the engine reuses the cached system prompt), and 8 at a time; and
   the teacher-forced top-1 agreement over the held-out dialogs' assistant tokens
   (``compress/measure.py``). About 12 minutes on 2 cores.

Run: python benchmarks/bench_compress.py [--skip-serve]   (about 15 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import threading
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
SENTIMENT_CONFIG = ROOT / "examples" / "train" / "classify_sentiment.yaml"


def teacher() -> Path:
    """The fp32 MiniLM sentiment classifier, trained once per version of its config and
    data (the cache folder is named by their hash) and kept in the cache."""
    from lmforge.config.load import load_config
    from lmforge.train.loop import train

    inputs = (SENTIMENT_CONFIG, SENTIMENT / "train.jsonl", SENTIMENT / "validation.jsonl")
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in inputs)).hexdigest()[:12]
    model = WORK / f"sentiment-teacher-{digest}" / "model"
    if not (model / "config.json").is_file():
        config = load_config(SENTIMENT_CONFIG,
                             [f"output.dir={model.parent}", "output.register_as=null"])  # fmt: skip
        train(config, track=False)
    return model


def compressed_dir(ref: Path | str, methods: str) -> Path:
    """Where ``compress_rows`` writes ``ref`` compressed with ``methods``."""
    return WORK / f"{Path(str(ref)).name}-{methods.replace(',', '+')}"


def compress_rows(ref: Path | str, methods: str, **options: Any) -> list[dict[str, str]]:
    from lmforge.compress.config import CompressConfig
    from lmforge.compress.run import compress_model, parse_methods

    out = compressed_dir(ref, methods)
    config = CompressConfig(model=str(ref), methods=parse_methods(methods), **options)
    result = compress_model(config, out, track=False)
    return result.rows


def onnx_rows(model: Path, reference: dict[str, str]) -> list[dict[str, str]]:
    """The teacher exported to ONNX and run by onnxruntime, measured like the torch rows."""
    from lmforge.compress.measure import BATCH, size_change
    from lmforge.compress.onnx import export_onnx
    from lmforge.data.records import read_records
    from lmforge.hub import resolve
    from lmforge.runtime.onnx import OnnxModel

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
    from lmforge.compress.run import classifier_accuracy
    from lmforge.data.records import read_records
    from lmforge.stats import wilson_interval

    model = teacher()
    data = {"data": SENTIMENT / "train.jsonl", "eval_data": SENTIMENT / "test.jsonl"}
    chains = ("distill", "distill,prune-vocab", "distill,prune-vocab,int8-dynamic")
    rows = compress_rows(model, "int8-dynamic", **data)
    reference = rows[0]
    for methods in chains:
        rows += compress_rows(model, methods, **data)[1:]
    rows += onnx_rows(model, reference)
    dirs = [model, *(compressed_dir(model, m) for m in ("int8-dynamic", *chains)),
            WORK / "sentiment-onnx-none", WORK / "sentiment-onnx-int8"]  # fmt: skip
    challenge, _ = read_records(SENTIMENT / "challenge.jsonl", format="labeled")
    tests, _ = read_records(SENTIMENT / "test.jsonl", format="labeled")
    title = (f"compress: MiniLM sentiment classifier, held-out test split ({len(tests)} "
             f"reviews) and hand-written challenge split ({len(challenge)})")  # fmt: skip
    n = len(challenge)
    # scored as `lmforge compress` and `lmforge eval` score a classifier (torch or ONNX)
    rights = [round(classifier_accuracy(path, challenge) * n) for path in dirs]
    for row, right in zip(rows, rights, strict=True):
        share, (low, high) = right / n, wilson_interval(right, n)
        row["model"] = "fp32 (MiniLM-L6 fine-tuned)" if row is reference else row["model"]
        row |= {"challenge accuracy": f"{100 * share:.1f}%",
                "challenge 95% Wilson": f"{100 * low:.1f}-{100 * high:.1f}%",
                "challenge change": f"{100 * (right - rights[0]) / n:+.1f} pt"}  # fmt: skip
        append_result(title, row)
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
    """Output tokens/s through ``lmforge serve``: fp32 torch vs INT8 torch (``--quantize
    int8`` and a compressed directory) vs q4_0_m llama.cpp. A system whose file a
    ``--only smollm2`` run writes is skipped when that file is missing."""
    from bench_serve import bench_lmforge, bench_lmforge_gguf

    levels = [1, 16]
    int8_dir, gguf = WORK / f"{SMOLLM2}-int8-dynamic", WORK / "smollm2-q4_0_m.gguf"
    runs: dict[str, tuple[Path | None, Any]] = {
        "fp32 (torch backend)": (None, lambda: bench_lmforge(levels, "none")),
        "--quantize int8 (torch backend)": (None, lambda: bench_lmforge(levels, "int8")),
        "int8-dynamic dir (torch backend)": (
            int8_dir, lambda: bench_lmforge(levels, "none", str(int8_dir))
        ),
        "gguf q4_0_m (llamacpp backend)": (gguf, lambda: bench_lmforge_gguf(levels, gguf)),
    }  # fmt: skip
    systems = {}
    for name, (needed, run) in runs.items():
        if needed is not None and not needed.exists():
            print(f"skipped {name}: no {needed} (run --only smollm2 first)")
            continue
        systems[name] = run()
    for concurrency in levels:
        fp32 = systems["fp32 (torch backend)"][concurrency]["tok_s"]
        for name, by_level in systems.items():
            r = by_level[concurrency]
            row = {"system": name, "concurrency": str(concurrency),
                   "output tok/s": f"{r['tok_s']:.1f}", "TTFT p50 s": f"{r['ttft_p50']:.2f}",
                   "x fp32 torch": f"{r['tok_s'] / fp32:.2f}x"}  # fmt: skip
            append_result("compress: SmolLM2-135M served, streaming chat, max_tokens 64", row)
            print(row)


FRANCE = "What is the capital of France?"
ANSWER_TOKENS = 64
# How the engine meets the prompts. A fresh engine per prompt prefills it whole; one
# engine answering them one after another reuses the cached system prompt of the one
# before (a running server does), so only the rest of a prompt is prefilled; 8 at a time
# decode in one batch. fp32 answers the same in all three.
REGIMES = ("alone, fresh server", "one after another", "8 at a time")


def agreement_prompts() -> list[str]:
    from lmforge.data.bundled import dataset_path

    path = dataset_path("customer_service", "test_questions")
    return [json.loads(line)["question"] for line in path.read_text().splitlines() if line] + [
        FRANCE
    ]


def served_answers(model: Any, tokenizer: Any, prompts: list[str], regime: str) -> list[Any]:
    """Greedy answers through the serving engine: per prompt, its tokens (with logprobs
    and the top 2) and its text."""
    if regime == "alone, fresh server":
        return [engine_answers(model, tokenizer, [prompt], 1)[0] for prompt in prompts]
    return engine_answers(model, tokenizer, prompts, 8 if regime == "8 at a time" else 1)


def engine_answers(model: Any, tokenizer: Any, prompts: list[str], max_batch: int) -> list[Any]:
    from lmforge.data.chat import render_chat
    from lmforge.serve.engine import Engine
    from lmforge.serve.requests import Event, Request, RequestParams

    engine = Engine(model, tokenizer, max_batch=max_batch)  # kept slots as in a server
    params = RequestParams(max_tokens=ANSWER_TOKENS, temperature=0.0, logprobs=True,
                           top_logprobs=2)  # fmt: skip
    answers: list[tuple[list[Any], str]] = [([], "") for _ in prompts]
    finished = threading.Semaphore(0)

    def emit_for(index: int) -> Any:
        def emit(event: Event) -> None:
            tokens, text = answers[index]
            answers[index] = (tokens + event.logprobs, text + event.text)
            if event.finish_reason is not None:
                finished.release()

        return emit

    engine.start()
    try:
        for index, prompt in enumerate(prompts):
            ids = render_chat(tokenizer, [{"role": "user", "content": prompt}])
            engine.submit(Request(ids, params, emit_for(index)))
        for _ in prompts:
            finished.acquire()
    finally:
        engine.stop()
    return answers


def fork_gap(answer: list[Any], reference: list[Any]) -> float | None:
    """fp32's top-1 minus top-2 log-probability where ``answer`` first leaves it (None:
    no fork): a small gap is a near-tie that any rounding can flip."""
    for mine, theirs in zip(answer, reference, strict=False):
        if mine.token != theirs.token:
            return theirs.top[0][1] - theirs.top[1][1]
    return None


def served_model(ref: str, quantize: str) -> tuple[Any, Any]:
    """The model and tokenizer ``lmforge serve REF --quantize QUANTIZE`` runs."""
    from lmforge.serve.config import ServeConfig
    from lmforge.serve.server import build_handler

    config = ServeConfig(model=ref, served_name=SMOLLM2, quantize=quantize, max_batch=8)
    engine = build_handler(config).engine
    return engine.runner.model, engine.tokenizer


def torch_ao_int8() -> tuple[Any, Any]:
    """SmolLM2 as ``serve --quantize int8`` quantized it until 2026-12-02, kept to measure
    against: the same SmoothQuant and fused projections, then ``torch.ao``'s
    ``quantize_dynamic`` (weights scaled to absmax / 127.5, the embedding left fp32), with
    8-bit activations on VNNI. ``hub/smoothquant.py`` now builds ``compress``'s layers."""
    import warnings

    import torch
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    from lmforge.data.calibration import calibration_texts
    from lmforge.hub import load_causal_lm, resolve
    from lmforge.hub.quantized import fuse_projections
    from lmforge.hub.smoothquant import smooth

    model, tokenizer = load_causal_lm(resolve(SMOLLM2))
    smooth(model, calibration_texts(tokenizer))
    fuse_projections(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        names = {name: per_channel_dynamic_qconfig for name, module in model.named_modules()
                 if isinstance(module, torch.nn.Linear)}  # fmt: skip
        model = quantize_dynamic(model, names, dtype=torch.qint8)

    class AoLinear8(DynamicLinear):
        """8-bit activations over one range per input (fbgemm's own op), as lmforge's
        INT8 layer ran until 2026-12-04."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            packed = self._packed_params._packed_params
            return torch.ops.quantized.linear_dynamic(x, packed, False).to(x.dtype)

    for module in model.modules():
        if type(module) is DynamicLinear:
            module.__class__ = AoLinear8
    return model, tokenizer


def bench_agreement() -> None:
    """fp32 against the INT8 paths, each built as ``lmforge serve`` builds it (and the
    one serve used before); rows per path and regime (see the module docstring)."""
    import shutil

    from lmforge.compress.config import CompressConfig
    from lmforge.compress.measure import answer_agreement, next_token_predictions
    from lmforge.compress.run import compress_model

    int8_dir = WORK / f"{SMOLLM2}-agreement-int8-dynamic"  # written now, by this code
    shutil.rmtree(int8_dir, ignore_errors=True)
    config = CompressConfig(model=SMOLLM2, methods=["int8-dynamic"], measure=False)
    compress_model(config, int8_dir, track=False)
    systems = {
        "fp32": lambda: served_model(SMOLLM2, "none"),
        "serve --quantize int8": lambda: served_model(SMOLLM2, "int8"),
        "compress --method int8-dynamic": lambda: served_model(str(int8_dir), "none"),
        "serve --quantize int8 before 2026-12-02 (torch.ao)": torch_ao_int8,
    }
    prompts = agreement_prompts()
    reference: list[Any] = []
    reference_tokens: list[list[str]] = []
    reference_predictions = None
    for system, build in systems.items():
        model, tokenizer = build()
        predictions = next_token_predictions(model, tokenizer)
        if reference_predictions is None:
            reference_predictions = predictions
        next_token = float((predictions == reference_predictions).float().mean())
        for regime in REGIMES:
            answers = served_answers(model, tokenizer, prompts, regime)
            tokens = [[t.token for t in answer] for answer, _ in answers]
            if not reference:
                reference, reference_tokens = answers, tokens
            exact, prefix = answer_agreement(tokens, reference_tokens)
            gaps = [fork_gap(a, r) for (a, _), (r, _) in zip(answers, reference, strict=True)]
            gaps = [g for g in gaps if g is not None]
            row = {
                "system": system, "answers": regime,
                "same answer as fp32": f"{round(exact * len(prompts))}/{len(prompts)}",
                "leading tokens in common": f"{100 * prefix:.1f}%",
                "fp32 top-2 gap at the fork, median": (
                    f"{statistics.median(gaps):.2f}" if gaps else "-"
                ),
                "teacher-forced top-1 agreement": f"{100 * next_token:.1f}%",
                "France answer": json.dumps(answers[-1][1][:48], ensure_ascii=False),
            }  # fmt: skip
            append_result("compress: SmolLM2-135M INT8 agreement with fp32 (greedy, "
                          "33 held-out questions + France, 64 tokens)", row)  # fmt: skip
            print(row, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-serve", action="store_true", help="no served tokens/s rows")
    parser.add_argument("--only", choices=["sentiment", "smollm2", "served", "agreement"],
                        default=None, help="one part (served: the served rows, after a "
                        "smollm2 run; agreement: fp32 vs the two INT8 paths)")  # fmt: skip
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "sentiment"):
        bench_sentiment()
    if args.only in (None, "smollm2"):
        bench_smollm2(serve=not args.skip_serve)
    if args.only == "served":
        bench_served()
    if args.only in (None, "agreement"):
        bench_agreement()


if __name__ == "__main__":
    main()
