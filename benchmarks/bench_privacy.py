"""Privacy benchmark: what differential privacy costs in accuracy and speed, and what it
buys against memorisation, each measured beside the same training without it.

1. sentiment: the bundled reviews (1,863 to train), all-MiniLM-L6-v2 with LoRA adapters
   and a classification head (``examples/train/classify_sentiment.yaml`` with LoRA, batch
   128, lr 2e-3, 5 epochs), trained without privacy and with DP-SGD at epsilon 8, 3 and 1
   (delta 1e-4, the default for 1,863 examples); accuracy on the 237 held-out test reviews
   with bootstrap intervals, and training throughput (real tokens per second) of each
   private run against the run without. Targets: at epsilon <= 3 at most 5 points below
   the run without privacy; private throughput >= 0.5x.
2. tabular: the fraud FT-Transformer (``examples/train/fraud_ft_transformer.yaml``) on the
   real credit-card transactions, the same four ways; AUPRC on the test period (the
   task's metric: 0.17% of transactions are fraud, so plain accuracy says nothing). The
   run without privacy is the example as shipped (AdamW, lr 1e-3, 3 epochs); the private
   runs step with SGD (momentum 0.9, lr 0.2) for 6 epochs: SGD keeps weights whose
   gradient is mostly noise nearly still where AdamW moves each by about lr (with AdamW
   they scored AUPRC 0.05-0.08). The private recipe was chosen on the validation rows.
3. memorization: SmolLM2-135M-Instruct with LoRA on the bundled support dialogs
   (``examples/train/sft_customer_service.yaml``, 3 epochs) with 5 canaries inserted 10
   times each and 20 references; trained without privacy and at epsilon 8; the
   exposure of the canaries against the references' (the random baseline) by `lmforge
   audit memorization`. Target: with DP the canaries within 2 bits of the baseline.
4. federated: ``examples/federated/sentiment_sites.yaml``: the bundled reviews split among
   10 sites by label with Dirichlet(0.5), 20 rounds of the site config's local epochs
   (MiniLM LoRA, lr 5e-3), FedAvg and FedProx (mu 0.01), against centralised training of
   the same site config on all the reviews for as many passes over the data (rounds x
   local epochs) at lr 2e-3 (``CENTRAL_LR``: at the sites' 5e-3 it diverges; both rates
   were chosen on the validation reviews). Accuracy on the 237 held-out test reviews.
   Target: FedAvg within 3 points of centralised after 20 rounds.

Run: python benchmarks/bench_privacy.py [--only sentiment|tabular|memorization|federated]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from common import append_result

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "train"
SENTIMENT_TEST = ROOT / "src" / "lmforge" / "assets" / "datasets" / "sentiment" / "test.jsonl"
EPSILONS = (None, 8.0, 3.0, 1.0)  # None: without privacy, the baseline
MODEL_NAMES = {"sentiment": "MiniLM-L6 + LoRA r8", "tabular": "FT-Transformer (full)"}
# What the private runs change from the run without privacy, and how the rows say it.
PRIVATE_OVERRIDES = {
    "sentiment": [],
    "tabular": ["train.optimizer=sgd", "train.lr=0.2", "train.epochs=6"],
}
PRIVATE_NAMES = {"sentiment": "", "tabular": ", SGD lr 0.2, 6 epochs"}
# Centralised training's rate in the federated comparison: the sites' 5e-3 diverges on all
# 1,863 reviews (validation 0.477 after 40 epochs); 2e-3 converges near 0.88.
CENTRAL_LR = 2e-3


def _train(config_path: Path, overrides: list[str], epsilon: float | None) -> Any:
    from lmforge.config import load_config
    from lmforge.train.loop import train

    private = [f"privacy.target_epsilon={epsilon}"] if epsilon is not None else []
    config = load_config(config_path, [*overrides, *private])
    started = time.perf_counter()
    result = train(config, track=False)
    seconds, speed = time.perf_counter() - started, result.tokens_per_second
    print(f"  epsilon {epsilon}: {result.steps} steps in {seconds:.0f} s, {speed:.0f} tokens/s, "
          f"privacy {result.privacy}", flush=True)  # fmt: skip
    return result


def _shown(value: float, interval: tuple[float, float], digits: int = 3) -> str:
    return f"{value:.{digits}f} [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"


def bench_accuracy(kind: str, work: Path) -> None:
    """Train without privacy and at each epsilon; score each on the held-out data."""
    from lmforge.data.fetch import fetch_dataset
    from lmforge.evaluate.runner import evaluate_model

    if kind == "sentiment":
        config, metric, task, data = (EXAMPLES / "classify_sentiment.yaml", "accuracy",
                                      "classification", str(SENTIMENT_TEST))  # fmt: skip
        overrides = ["method.name=lora", "method.lora_r=8", "train.batch_size=128",
                     "train.lr=2e-3", "train.epochs=5", "eval.every=null",
                     "output.register_as=null"]  # fmt: skip
    else:
        fetch_dataset("creditcard")
        config, metric = EXAMPLES / "fraud_ft_transformer.yaml", "auprc"
        task, data = "tabular-classification", "dataset:creditcard/test"
        overrides = []
    private = PRIVATE_OVERRIDES[kind]
    results = []
    for epsilon in EPSILONS:
        name = "none" if epsilon is None else f"eps{epsilon:g}"
        chosen = [*overrides, *(private if epsilon is not None else [])]
        trained = _train(config, [*chosen, f"output.dir={work / kind / name}"], epsilon)
        scored = evaluate_model(str(trained.model_dir), data, task, track=False)
        print(f"  {metric} {scored.metrics[metric]:.4f} {scored.intervals[metric]}", flush=True)
        results.append((epsilon, trained, scored))
    _, plain, plain_scored = results[0]
    for epsilon, trained, scored in results:
        gap = (scored.metrics[metric] - plain_scored.metrics[metric]) * 100
        speed = trained.tokens_per_second / plain.tokens_per_second
        append_result(f"privacy: DP-SGD {kind} ({metric}, held-out)", {
            "model": MODEL_NAMES[kind] + ("" if epsilon is None else PRIVATE_NAMES[kind]),
            "epsilon (delta)": "none" if epsilon is None
            else f"{trained.privacy['epsilon']:.2f} ({trained.privacy['delta']:g})",
            "noise multiplier": "-" if epsilon is None
            else f"{trained.privacy['noise_multiplier']:.2f}",
            metric: _shown(scored.metrics[metric], scored.intervals[metric]),
            "vs no DP": "-" if epsilon is None else f"{gap:+.1f} pt",
            "tokens/s (vs no DP)": f"{trained.tokens_per_second:.0f} ({speed:.2f}x)",
            "steps": str(trained.steps),
            "train s": f"{trained.train_seconds:.0f}",
        })  # fmt: skip


def bench_memorization(work: Path) -> None:
    """Canaries in the support dialogs, SmolLM2 with LoRA, without DP and at epsilon 8."""
    from lmforge.evaluate.memorization import audit_memorization

    overrides = ["train.epochs=3", "eval.every=null", "output.register_as=null",
                 "audit.canaries=5", "audit.repeats=10", "audit.references=20"]  # fmt: skip
    for epsilon in (None, 8.0):
        name = "none" if epsilon is None else f"eps{epsilon:g}"
        out = f"output.dir={work / 'memorization' / name}"
        trained = _train(EXAMPLES / "sft_customer_service.yaml", [*overrides, out], epsilon)
        started = time.perf_counter()
        report = audit_memorization(str(trained.model_dir), candidates=4000)
        summary = report.summary()
        print(f"  audit in {time.perf_counter() - started:.0f} s: "
              f"{json.dumps(summary)}", flush=True)  # fmt: skip
        canaries, references = summary["canaries"], summary["references"]
        spent = trained.privacy
        append_result("privacy: memorisation (SmolLM2 LoRA SFT, canaries)", {
            "training": "no DP" if epsilon is None
            else f"DP epsilon {spent['epsilon']:.2f} (delta {spent['delta']:g})",
            "canaries x repeats": f"{canaries['count']} x {report.repeats}",
            "canary exposure mean / max (bits)": f"{canaries['mean']:.2f} / {canaries['max']:.2f}",
            "exact ranks": f"{canaries['exact']} of {canaries['count']}",
            "reference exposure mean (baseline)": f"{references['mean']:.2f} "
            f"({references['count']} references)",
            "canaries - baseline": f"{summary['excess_bits']:+.2f} bits",
            "most possible": f"{math.log2(report.space):.1f} bits",
            "final loss": f"{trained.final_loss:.3f}",
            "train s": f"{trained.train_seconds:.0f}",
        })  # fmt: skip


def bench_federated(work: Path) -> None:
    """Centralised training, then FedAvg and FedProx over 10 non-IID sites."""
    from lmforge.config import load_config
    from lmforge.config.load import load_settings
    from lmforge.evaluate.runner import evaluate_model
    from lmforge.federated.config import FederatedConfig
    from lmforge.federated.simulation import run_federated

    example = ROOT / "examples" / "federated" / "sentiment_sites.yaml"
    shipped = load_settings(example, FederatedConfig)
    local = load_config(shipped.run).train.epochs  # one round's training at a site
    passes = shipped.rounds * local  # centralised makes as many passes over the data
    central = _train(shipped.run, [f"train.epochs={passes}", f"train.lr={CENTRAL_LR}",
                                   f"output.dir={work / 'central'}"], None)  # fmt: skip
    scored = evaluate_model(str(central.model_dir), str(SENTIMENT_TEST), "classification",
                            track=False)  # fmt: skip
    accuracy = scored.metrics["accuracy"]
    print(f"  centralised accuracy {accuracy:.4f} {scored.intervals['accuracy']}", flush=True)
    table = "privacy: federated sentiment (10 sites, Dirichlet 0.5, accuracy held-out)"
    append_result(table, {
        "training": f"centralised, {passes:g} epochs on all 1,863 reviews, lr {CENTRAL_LR:g}",
        "accuracy": _shown(accuracy, scored.intervals["accuracy"]),
        "vs centralised": "-", "accuracy after rounds 5 / 10 / 15": "-",
        "seconds": f"{central.train_seconds:.0f}",
    })  # fmt: skip
    for strategy in ("fedavg", "fedprox"):
        overrides = [f"strategy={strategy}", "output.register_as=null",
                     f"output.dir={work / strategy}"]  # fmt: skip
        config = load_settings(example, FederatedConfig, overrides)
        started = time.perf_counter()
        result = run_federated(
            config,
            track=False,
            progress=lambda n, total, text: print(f"  round {n}/{total}: {text}", flush=True),
        )
        seconds = time.perf_counter() - started
        final = evaluate_model(str(result.model_dir), str(SENTIMENT_TEST), "classification",
                               track=False)  # fmt: skip
        ours = final.metrics["accuracy"]
        curve = " / ".join(f"{result.rounds[n - 1]['eval/accuracy']:.3f}" for n in (5, 10, 15))
        name = strategy + (f" (mu {config.proximal_mu:g})" if strategy == "fedprox" else "")
        name += f", lr {load_config(config.run).train.lr:g}"
        if config.server_momentum:
            name += f", server momentum {config.server_momentum:g}"
        append_result(table, {
            "training": f"{name}, {config.rounds} rounds x {local:g} local epoch"
            + ("s" if local > 1 else "") + ", sites hold " + ", ".join(map(str, result.site_sizes)),
            "accuracy": _shown(ours, final.intervals["accuracy"]),
            "vs centralised": f"{(ours - accuracy) * 100:+.1f} pt",
            "accuracy after rounds 5 / 10 / 15": curve,
            "seconds": f"{seconds:.0f}",
        })  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["sentiment", "tabular", "memorization", "federated"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-privacy-") as folder:
        work = Path(folder)
        for kind in ("sentiment", "tabular"):
            if args.only in (None, kind):
                bench_accuracy(kind, work)
        if args.only in (None, "memorization"):
            bench_memorization(work)
        if args.only in (None, "federated"):
            bench_federated(work)


if __name__ == "__main__":
    main()
