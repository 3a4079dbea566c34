"""Fraud detection benchmark on the real credit-card transactions: an FT-Transformer against
LightGBM, trained and judged side by side, then both served for real-time scoring.

1. train: `lmforge data fetch creditcard` (the real data, time-ordered: the first 80% of
   transactions by Time to train, the last 20% to test), then
   ``examples/train/fraud_ft_transformer.yaml`` and ``examples/train/fraud_lightgbm.yaml``
   through `lmforge train` (each holds out the latest 10% of its training rows for
   validation, where the threshold is chosen and LightGBM stops early), and `lmforge eval
   --task tabular-classification` of both on the test rows, with bootstrap intervals.
   Targets: FT-Transformer AUPRC >= 0.75, matching or beating LightGBM; its training at
   most 10 minutes on 2 cores.
2. serve: both models behind one `lmforge serve` on loopback (the FT-Transformer served as
   ``fraud``, LightGBM as ``--scorer trees=...``); for each, one test transaction per request
   at a fixed 200 requests per second for 30 s (open loop: a request goes out on schedule
   whether or not earlier ones have come back), with explanations on. The baseline beside
   it is the model called in-process on the same rows (no HTTP, no batching; the
   FT-Transformer's explanation pass compiled, as the server runs it). Targets: p50
   < 5 ms and p99 < 20 ms for the FT-Transformer, p99 < 5 ms for LightGBM, no request lost.
3. drift: a fresh server scores every test transaction (the later 20%, unexplained), then
   reports each feature's population stability index against the training rows.

Run: python benchmarks/bench_tabular.py [--only train|serve|drift] [--models FILE]
     [--seconds 30] [--rate 200]   (serve and drift alone take --models, a JSON file of
     {"FT-Transformer": FOLDER, "LightGBM": FOLDER})
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from common import append_result, explained, latency_columns, open_loop, scoring_server

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {
    "FT-Transformer": ROOT / "examples" / "train" / "fraud_ft_transformer.yaml",
    "LightGBM": ROOT / "examples" / "train" / "fraud_lightgbm.yaml",
}
TEST = "dataset:creditcard/test"


def bench_train(folder: Path) -> dict[str, Path]:
    from lmforge.config import load_config
    from lmforge.data.fetch import fetch_dataset
    from lmforge.evaluate.runner import evaluate_model
    from lmforge.train.loop import train

    fetch_dataset("creditcard")
    models, results = {}, {}
    for name, path in CONFIGS.items():
        config = load_config(path, [f"output.dir={folder / name}"])
        started = time.perf_counter()
        trained = train(config, track=False)
        wall = time.perf_counter() - started
        scored = evaluate_model(str(trained.model_dir), TEST, "tabular-classification",
                                track=False)  # fmt: skip
        models[name] = trained.model_dir
        results[name] = (scored, wall, trained.eval_metrics)

    def shown(name: str, metric: str) -> str:
        scored = results[name][0]
        low, high = scored.intervals[metric]
        return f"{scored.metrics[metric]:.3f} [{low:.3f}, {high:.3f}]"

    ft, trees = (results[name][0].metrics for name in CONFIGS)
    row = {
        "test rows (frauds)": f"{len(results['LightGBM'][0].examples):,} "
        f"({sum(r['label'] for r in results['LightGBM'][0].examples)})",
        "FT-Transformer AUPRC": shown("FT-Transformer", "auprc"),
        "LightGBM AUPRC": shown("LightGBM", "auprc"),
        "AUPRC ratio": f"{ft['auprc'] / trees['auprc']:.2f}x",
        "ROC AUC (FT / LGBM)": f"{ft['roc_auc']:.3f} / {trees['roc_auc']:.3f}",
        "recall at 0.1% FPR (FT / LGBM)": f"{ft['recall_at_fpr']:.3f} / "
        f"{trees['recall_at_fpr']:.3f}",
        "train s (FT / LGBM)": f"{results['FT-Transformer'][1]:.0f} / {results['LightGBM'][1]:.0f}",
    }
    append_result("tabular: fraud detection on the real credit-card data", row)
    print(json.dumps(row, indent=2))
    return models


# --- serving -------------------------------------------------------------------------


def _test_rows(count: int) -> list[dict[str, float]]:
    import pyarrow.parquet as pq

    from lmforge.data.fetch import fetched_path

    table = pq.read_table(fetched_path(TEST)).to_pydict()
    features = [name for name in table if name not in {"Time", "Class"}]
    count = min(count, len(table["Class"]))
    return [{name: float(table[name][i]) for name in features} for i in range(count)]


def _in_process_ms(model_dir: Path, rows: list[dict[str, float]]) -> float:
    """Median ms to prepare, score and explain one row with the model in this process, as
    the server computes (one thread; an FT-Transformer's explanation pass compiled)."""
    import torch

    from lmforge.hub.tabular import compiled_attributions, load_tabular
    from lmforge.serve.scoring import SERVED_IG_STEPS

    model = load_tabular(model_dir)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    fast = compiled_attributions(model.network) if model.network is not None else None
    times = []
    for row in [rows[0], *rows[:500]]:  # the first call compiles: not timed
        started = time.perf_counter()
        numeric, codes = model.inputs(model.processor.rows_table([row]))
        model.explain(numeric, codes, steps=SERVED_IG_STEPS, compiled=fast)
        times.append(time.perf_counter() - started)
    times = times[1:]
    torch.set_num_threads(threads)
    return float(np.median(times) * 1000)


def _described(name: str, model_dir: Path) -> str:
    """The model's name with what sets its scoring cost."""
    from lmforge.hub.tabular import load_tabular
    from lmforge.serve.scoring import SERVED_IG_STEPS

    model = load_tabular(model_dir)
    if model.network is None:
        return f"{name} ({model.booster.booster.num_trees()} trees, TreeSHAP)"  # type: ignore[union-attr]
    shape = model.network.shape
    return (f"{name} (d_token {shape.d_token}, {shape.heads} heads, {shape.layers} layers, "
            f"IG {SERVED_IG_STEPS} steps compiled)")  # fmt: skip


def _drift_after_test_period(base: str, rows: list[dict[str, float]]) -> dict[str, str]:
    """Score every test transaction (the later 20%) without explanations, then read the
    drift the server measured against the training rows."""
    for start in range(0, len(rows), 1024):
        body = json.dumps({"input": rows[start : start + 1024], "explain": False}).encode()
        request = urllib.request.Request(f"{base}/v1/score/trees", data=body,
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 200
    with urllib.request.urlopen(f"{base}/v1/score/trees/drift", timeout=10) as response:
        report = json.loads(response.read())
    psi = sorted(report["psi"].items(), key=lambda item: -item[1])
    return {
        "rows scored": f"{report['rows']:,}",
        "highest PSI": ", ".join(f"{name} {value:.3f}" for name, value in psi[:5]),
        "median PSI": f"{float(np.median([v for _, v in psi])):.3f}",
        f"drifted (PSI > {report['threshold']})": ", ".join(report["drifted"]) or "none",
    }


def _server(models: dict[str, Path]) -> contextlib.AbstractContextManager[str]:
    """`lmforge serve` with the FT-Transformer as ``fraud`` and LightGBM as ``trees``."""
    return scoring_server([str(models["FT-Transformer"]), "--served-name", "fraud",
                           "--scorer", f"trees={models['LightGBM']}"])  # fmt: skip


def bench_serve(models: dict[str, Path], rate: float, seconds: float) -> None:
    rows = _test_rows(2_000)
    with _server(models) as base:
        for name, served in (("FT-Transformer", "fraud"), ("LightGBM", "trees")):
            url = f"{base}/v1/score/{served}"
            bodies = [{"input": row} for row in rows]
            asyncio.run(open_loop(url, bodies, rate, 3, explained))  # warm up
            load = asyncio.run(open_loop(url, bodies, rate, seconds, explained))
            in_process = _in_process_ms(models[name], rows)
            row = {
                "model": _described(name, models[name]),
                **latency_columns(load, rate, seconds, in_process),
            }
            append_result("tabular: real-time scoring over HTTP, one transaction per request",
                          row)  # fmt: skip
            print(json.dumps(row, indent=2))


def bench_drift(models: dict[str, Path]) -> None:
    """Every test transaction scored by a fresh server, then the drift it measured: the
    later period against the training rows, feature by feature."""
    rows = _test_rows(10**9)
    with _server(models) as base:
        row = _drift_after_test_period(base, rows)
    append_result("tabular: drift of the test period against the training rows", row)
    print(json.dumps(row, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["train", "serve", "drift"])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--models", help="serve only: a JSON file of {name: model folder}")
    args = parser.parse_args()
    if args.only in ("serve", "drift") and not args.models:
        parser.error(f"--only {args.only} scores trained models: give --models")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        if args.models:
            models = {k: Path(v) for k, v in json.loads(Path(args.models).read_text()).items()}
        else:
            models = bench_train(Path(tmp))
        if args.only in (None, "serve"):
            bench_serve(models, args.rate, args.seconds)
        if args.only in (None, "drift"):
            bench_drift(models)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
