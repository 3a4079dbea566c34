"""Alignment benchmark: preference tuning (DPO) on the bundled support pairs, measured
against the SFT model it starts from, and its step throughput against TRL's DPOTrainer.

1. dpo: SmolLM2-135M-Instruct is fine-tuned on the support dialogs with LoRA
   (``examples/train/sft_customer_service.yaml``), then tuned on the bundled preference
   pairs from that SFT adapter (``examples/train/dpo_customer_service.yaml``; the
   reference is the SFT model, its scores precomputed). On the held-out test pairs (the
   same facts asked in wording training never saw): the reward accuracy, the share of pairs
   whose chosen answer gains more log-likelihood over the SFT model than the rejected one
   (target >= 0.90). On the held-out questions (``preference/test_questions.jsonl``): the
   keyword accuracy of greedy answers of the SFT model and of the DPO model (target: DPO
   improves on SFT). Intervals: Wilson 95%.
2. dpo-speed: steps of DPO with LoRA (r 16, alpha 32, no dropout, q/k/v/o) on the same
   pairs, batch 8, max length 256, fp32, reference = the adapter switched off, in
   lmforge's training loop and in TRL 1.16's DPOTrainer, one after the other in this
   process; the mean step time after the first two steps, and their ratio (target:
   lmforge's throughput >= 1.0x TRL's). lmforge batches in the data's order here
   (``group_by_length: false``), as TRL does.

3. grpo: SmolLM2-135M-Instruct with LoRA trained by GRPO on the bundled code problems'
   train split (``examples/train/grpo_code.yaml``: 8 answers to each of 2 problems a step,
   reward 1 when the answer's code passes the problem's tests, 30 steps), bounded by steps
   (about 30 minutes here); greedy pass@1 on the 33 held-out test problems before and after
   (Wilson 95%), and the mean training reward of each step (the curve).

4. continual: SmolLM2-135M-Instruct with a class head learns the guard categories in three stages
   (``examples/train/continual_guard.yaml``: violence and hate with safe, then self-harm,
   harassment and sexual, then illicit and prompt injection), as plain sequential fine-tuning
   and with replay (80% of each later stage's data from a 300-record-per-stage buffer,
   chosen on challenge_dev);
   each stage's model scored on each stage's hand-written challenge prompts (the
   accuracy matrix), its average forgetting, backward transfer and final average accuracy
   (target: replay cuts average forgetting by >= 50% against plain).

Run: python benchmarks/bench_alignment.py [--only dpo|dpo-speed|grpo|continual]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from common import append_result

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "train"
PAIRS = ROOT / "src" / "lmforge" / "assets" / "datasets" / "preference"
CODE = ROOT / "src" / "lmforge" / "assets" / "datasets" / "code_problems"
GRPO_EVAL_TOKENS = 256  # longest answer when scoring pass@1 (training samples 192)
SPEED_STEPS = 12  # timed steps of each trainer; the first two are left out of the mean
SPEED_LORA = {"r": 16, "alpha": 32, "targets": ["q_proj", "k_proj", "v_proj", "o_proj"]}


def _shown(value: float, interval: tuple[float, float], digits: int = 3) -> str:
    return f"{value:.{digits}f} [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"


def _reward_accuracy(policy_dir: Path, reference_dir: Path, pairs: Path) -> tuple[float, int]:
    """The share of ``pairs`` whose chosen answer the policy raised over the reference more
    than the rejected one (DPO's reward accuracy), and the number of pairs."""
    import torch

    from lmforge.data.records import read_records
    from lmforge.hub import resolve
    from lmforge.hub.load import load_causal_lm
    from lmforge.tasks import get_task
    from lmforge.tasks.base import EncodeOptions

    task = get_task("dpo")
    task.precompute = True
    records, _ = read_records(pairs)
    reference, tokenizer = load_causal_lm(resolve(str(reference_dir)))
    examples, _ = task.encode(records, tokenizer, EncodeOptions(max_length=256))
    task.prepare(reference, examples, tokenizer, torch.device("cpu"), batch_size=16)
    del reference
    policy, _ = load_causal_lm(resolve(str(policy_dir)))
    batches = (task.collate(examples[i : i + 16], tokenizer, seed=0)
               for i in range(0, len(examples), 16))  # fmt: skip
    metrics = task.evaluate(policy, batches)
    return metrics["reward_accuracy"], len(examples)


def bench_dpo(work: Path) -> None:
    """SFT, then DPO from it; held-out reward accuracy and keyword accuracy of both."""
    from lmforge.config import load_config
    from lmforge.evaluate.runner import evaluate_model
    from lmforge.stats import wilson_interval
    from lmforge.train.loop import train

    quiet = ["output.register_as=null"]
    sft = train(load_config(EXAMPLES / "sft_customer_service.yaml",
                            [*quiet, f"output.dir={work / 'sft'}"]), track=False)  # fmt: skip
    print(f"  sft: {sft.steps} steps in {sft.train_seconds:.0f} s", flush=True)
    dpo = train(load_config(EXAMPLES / "dpo_customer_service.yaml",
                            [f"model.init_from={sft.model_dir}", f"output.dir={work / 'dpo'}"]),
                track=False)  # fmt: skip
    print(f"  dpo: {dpo.steps} steps in {dpo.train_seconds:.0f} s, validation "
          f"{json.dumps(dpo.eval_metrics)}", flush=True)  # fmt: skip
    accuracy, pairs = _reward_accuracy(dpo.model_dir, sft.model_dir, PAIRS / "test.jsonl")
    print(f"  held-out reward accuracy {accuracy:.3f} of {pairs} pairs", flush=True)
    system = json.loads((PAIRS / "test.jsonl").read_text().splitlines()[0])["messages"][0]
    keyword = {}
    for name, model_dir in (("sft", sft.model_dir), ("dpo", dpo.model_dir)):
        scored = evaluate_model(str(model_dir), str(PAIRS / "test_questions.jsonl"), "qa",
                                track=False, max_tokens=48, system=system["content"])  # fmt: skip
        keyword[name] = (scored.metrics["keyword_accuracy"], scored.intervals["keyword_accuracy"])
        print(f"  {name} keyword accuracy {keyword[name]}", flush=True)
    table = "alignment: DPO on the support preference pairs (SmolLM2-135M-Instruct, LoRA)"
    questions = len((PAIRS / "test_questions.jsonl").read_text().splitlines())
    for name, result in (("SFT (the start and the reference)", sft), ("DPO from SFT", dpo)):
        is_dpo = result is dpo
        append_result(table, {
            "model": name,
            "held-out reward accuracy": _shown(accuracy, wilson_interval(accuracy * pairs, pairs))
            + f" ({pairs} pairs)" if is_dpo else "-",
            "keyword accuracy, held-out questions": _shown(*keyword["dpo" if is_dpo else "sft"])
            + f" ({questions})",
            "steps": str(result.steps),
            "train s": f"{result.train_seconds:.0f}",
        })  # fmt: skip


def _trl_pairs() -> list[dict[str, Any]]:
    """The bundled train pairs in TRL's conversational layout."""
    rows = []
    for line in (PAIRS / "train.jsonl").read_text().splitlines():
        row = json.loads(line)
        rows.append({"prompt": row["messages"],
                     "chosen": [{"role": "assistant", "content": row["chosen"]}],
                     "rejected": [{"role": "assistant", "content": row["rejected"]}]})  # fmt: skip
    return rows


def _lmforge_step_seconds(work: Path) -> list[float]:
    from lmforge.config import load_config_dict
    from lmforge.train.loop import train

    config = load_config_dict({
        "model": {"ref": "smollm2-135m-instruct"},
        "task": {"name": "dpo", "max_length": 256, "beta": 0.1, "reference": "adapter_off"},
        "data": {"train": str(PAIRS / "train.jsonl")},
        "method": {"name": "lora", "lora_r": SPEED_LORA["r"], "lora_alpha": SPEED_LORA["alpha"],
                   "lora_dropout": 0.0, "target_modules": SPEED_LORA["targets"]},
        "train": {"max_steps": SPEED_STEPS, "batch_size": 8, "lr": 5e-4, "scheduler": "constant",
                  "group_by_length": False, "log_every": 1},
        "output": {"dir": str(work / "speed-lmforge")},
    })  # fmt: skip
    stamps = [time.perf_counter()]
    train(config, track=False, progress=lambda *_: stamps.append(time.perf_counter()))
    return [b - a for a, b in itertools.pairwise(stamps)]


def _trl_step_seconds(work: Path) -> list[float]:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from lmforge.hub import resolve

    path = str(resolve("smollm2-135m-instruct").path)
    stamps: list[float] = []

    class Stamps(TrainerCallback):  # type: ignore[misc]
        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if not stamps:
                stamps.append(time.perf_counter())

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            stamps.append(time.perf_counter())

    args = DPOConfig(output_dir=str(work / "speed-trl"), beta=0.1, max_length=256,
                     per_device_train_batch_size=8, max_steps=SPEED_STEPS, learning_rate=5e-4,
                     lr_scheduler_type="constant", logging_steps=1, save_strategy="no",
                     report_to="none", use_cpu=True, dataloader_num_workers=0,
                     gradient_checkpointing=False, bf16=False)  # fmt: skip
    # TRL's DPOConfig turns on gradient checkpointing and bf16 by default; both off, as in
    # lmforge's run (bf16 on this CPU, without native bf16, made TRL's steps minutes long)
    lora = LoraConfig(r=SPEED_LORA["r"], lora_alpha=SPEED_LORA["alpha"], lora_dropout=0.0,
                      target_modules=SPEED_LORA["targets"], task_type="CAUSAL_LM")  # fmt: skip
    trainer = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(path), args=args,
                         train_dataset=Dataset.from_list(_trl_pairs()), peft_config=lora,
                         processing_class=AutoTokenizer.from_pretrained(path),
                         callbacks=[Stamps()])  # fmt: skip
    trainer.train()
    return [b - a for a, b in itertools.pairwise(stamps)]


def bench_dpo_speed(work: Path) -> None:
    """The same DPO steps in lmforge's loop and in TRL's DPOTrainer."""
    ours = _lmforge_step_seconds(work)
    theirs = _trl_step_seconds(work)
    print(f"  lmforge steps {[round(s, 2) for s in ours]}", flush=True)
    print(f"  trl steps {[round(s, 2) for s in theirs]}", flush=True)
    ours_mean, theirs_mean = statistics.mean(ours[2:]), statistics.mean(theirs[2:])
    for name, mean, steps in (("lmforge", ours_mean, ours), ("TRL 1.16 DPOTrainer", theirs_mean,
                                                             theirs)):  # fmt: skip
        append_result("alignment: DPO step throughput (SmolLM2-135M, LoRA r16, batch 8, CPU)", {
            "trainer": name,
            "mean step s (steps 3-12)": f"{mean:.2f}",
            "pairs/s": f"{8 / mean:.2f}",
            "vs TRL": f"{theirs_mean / mean:.2f}x",
            "timed steps": str(len(steps)),
        })  # fmt: skip


def bench_grpo(work: Path) -> None:
    """GRPO on the code problems: held-out greedy pass@1 before and after, reward curve."""
    from lmforge.config import load_config
    from lmforge.evaluate.runner import evaluate_model
    from lmforge.stats import wilson_interval
    from lmforge.track import get_client
    from lmforge.train.loop import train

    test = str(CODE / "test.jsonl")
    problems = len((CODE / "test.jsonl").read_text().splitlines())
    before = evaluate_model("smollm2-135m-instruct", test, "code", track=False,
                            max_tokens=GRPO_EVAL_TOKENS)  # fmt: skip
    print(f"  before: pass@1 {before.metrics['pass@1']:.3f}", flush=True)

    def progress(step: int, total: int, message: str) -> None:
        print(f"  step {step}/{total}: {message}", flush=True)

    config = load_config(EXAMPLES / "grpo_code.yaml", [f"output.dir={work / 'grpo'}"])
    result = train(config, progress=progress)
    curve = [m.value for m in get_client().get_metric_history(result.run_id, "train/reward")]
    after = evaluate_model(str(result.model_dir), test, "code", track=False,
                           max_tokens=GRPO_EVAL_TOKENS)  # fmt: skip
    print(f"  after: pass@1 {after.metrics['pass@1']:.3f}; rewards {curve}", flush=True)
    table = "alignment: GRPO on the code problems (SmolLM2-135M-Instruct, LoRA, code_tests reward)"
    for name, scored, trained in (("instruct model (the start)", before, None),
                                  ("GRPO, 30 steps", after, result)):  # fmt: skip
        passes = scored.metrics["pass@1"] * problems
        append_result(table, {
            "model": name,
            "held-out pass@1 (greedy)": _shown(scored.metrics["pass@1"],
                                               wilson_interval(passes, problems))
            + f" ({round(passes)}/{problems})",
            "train reward, steps 1-5 / last 5": "-" if trained is None else
            f"{statistics.mean(curve[:5]):.3f} / {statistics.mean(curve[-5:]):.3f}",
            "steps": "-" if trained is None else str(trained.steps),
            "train s": "-" if trained is None else f"{trained.train_seconds:.0f}",
        })  # fmt: skip
    append_result("alignment: GRPO mean training reward per step (the curve)", {
        "steps": str(len(curve)),
        "mean reward of each step's 16 answers": " ".join(f"{r:.2f}" for r in curve),
    })  # fmt: skip


def bench_continual(work: Path) -> None:
    """The guard categories in three stages: plain, replay and EWC, each scored."""
    from lmforge.config import load_config
    from lmforge.evaluate.continual import score_sequence
    from lmforge.train.continual import train_sequence

    variants = (("plain sequential", ["train.continual.replay=0"]), ("replay 0.8", []))
    plain_forgetting = None
    for index, (name, overrides) in enumerate(variants):
        config = load_config(EXAMPLES / "continual_guard.yaml",
                             [*overrides, f"output.dir={work / f'continual-{index}'}"])  # fmt: skip
        started = time.perf_counter()
        result = train_sequence(config, track=False)
        seconds = time.perf_counter() - started
        scores = score_sequence(str(result.sequence_dir), track=False)
        print(f"  {name}: {scores.summary()} {scores.matrix}", flush=True)
        if plain_forgetting is None:
            plain_forgetting = scores.average_forgetting
        cut = 1 - scores.average_forgetting / plain_forgetting if plain_forgetting else 0.0
        append_result("alignment: continual fine-tuning, guard categories in 3 stages "
                      "(SmolLM2-135M, accuracy on each stage's challenge prompts)", {
            "method": name,
            "final average accuracy": f"{scores.average_accuracy:.3f}",
            "average forgetting": f"{scores.average_forgetting:.3f}",
            "backward transfer": f"{scores.backward_transfer:+.3f}",
            "forgetting cut vs plain": "-" if index == 0 else f"{cut:.0%}",
            "matrix (rows: after stage 1, 2, 3)": " / ".join(
                " ".join(f"{v:.2f}" for v in row) for row in scores.matrix),
            "train s": f"{seconds:.0f}",
        })  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["dpo", "dpo-speed", "grpo", "continual"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-alignment-") as folder:
        work = Path(folder)
        if args.only in (None, "dpo"):
            bench_dpo(work)
        if args.only in (None, "dpo-speed"):
            bench_dpo_speed(work)
        if args.only in (None, "grpo"):
            bench_grpo(work)
        if args.only in (None, "continual"):
            bench_continual(work)


if __name__ == "__main__":
    main()
