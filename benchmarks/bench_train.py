"""Training throughput: lmforge vs a plain Hugging Face Trainer + peft baseline.

Same model (SmolLM2-135M-Instruct), same LoRA (r 16, alpha 32, dropout 0.05, q/k/v/o),
same data (the bundled support dialogs, assistant-only labels), same optimizer
(AdamW, lr 1e-3, linear decay, no warmup), batch size 8, same number of steps, fp32.
Each side runs in its own process so peak RSS (read right after training) is its own.
Both final models are scored on the bundled validation dialogs with the same loss
function, each adapter on the fp32 base.

lmforge runs once per variant (``--variants``), each in its own process: ``fp32`` (the
fused LoRA path), ``int8`` (``method.base_precision: int8``: the frozen base on INT8
kernels, CPUs with VNNI only), ``fp32-top15`` and ``int8-top15`` (LoRA on the top 15
layers only, ``method.lora_layers: 15``, as the quickstart trains). Every variant's val
loss is also given relative to the fp32 variant's.

    python benchmarks/bench_train.py [--steps 10] [--variants fp32,int8]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import append_result

HERE = Path(__file__).parent
MODEL = "smollm2-135m-instruct"
BATCH = 8
LR = 1e-3
MAX_LENGTH = 512
LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


def dataset(split: str) -> Path:
    from lmforge.data.bundled import dataset_path

    return dataset_path("customer_service", split)


def encoded(split: str, tokenizer: Any) -> list[dict[str, list[int]]]:
    """Both sides train on exactly these token ids and labels."""
    from lmforge.data.records import read_records
    from lmforge.tasks.sft import encode_conversation

    records, _ = read_records(dataset(split), format="messages")
    return [encode_conversation(tokenizer, r["messages"]) for r in records]


def eval_loss(model: Any, tokenizer: Any) -> float:
    """Mean token loss on the validation dialogs (the same function for both sides)."""
    from lmforge.tasks.causal_lm import collate_lm, lm_loss, lm_target_count

    model.eval()
    total, count = 0.0, 0
    import torch

    examples = encoded("validation", tokenizer)
    with torch.no_grad():
        for start in range(0, len(examples), BATCH):
            batch = collate_lm(examples[start : start + BATCH], tokenizer.pad_token_id)
            total += float(lm_loss(model, batch))
            count += lm_target_count(batch)
    return total / count


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


VARIANTS: dict[str, dict[str, Any]] = {
    "fp32": {},
    "int8": {"method": {"base_precision": "int8"}},
    # LoRA on the top 15 of the 30 layers only (the quickstart's setting): the backward
    # pass stops there. Less arithmetic, a different adapter: its val loss says what it costs.
    "fp32-top15": {"method": {"lora_layers": 15}},
    "int8-top15": {"method": {"base_precision": "int8", "lora_layers": 15}},
}


def run_lmforge(steps: int, variant: str = "fp32") -> dict[str, float]:
    from lmforge.config import load_config_dict
    from lmforge.hub import load_causal_lm, resolve
    from lmforge.train.loop import train

    raw: dict[str, dict[str, Any]] = {
            "model": {"ref": MODEL},
            "task": {"name": "sft", "max_length": MAX_LENGTH},
            "data": {"train": str(dataset("train"))},
            "method": {"name": "lora", "lora_r": LORA["r"], "lora_alpha": LORA["lora_alpha"],
                       "lora_dropout": LORA["lora_dropout"], "target_modules": TARGETS},
            "train": {"max_steps": steps, "batch_size": BATCH, "lr": LR, "scheduler": "linear",
                      "log_every": 1, "max_grad_norm": 1.0, "seed": 42},
            "output": {"dir": str(HERE / f".bench-train-lmforge-{variant}")},
    }  # fmt: skip
    for section, values in VARIANTS[variant].items():
        raw[section] = {**raw[section], **values}
    config = load_config_dict(raw)
    losses: list[float] = []

    def record(step: int, total: int, message: str) -> None:  # "loss 2.3202, 213 tok/s"
        losses.append(float(message.split(",")[0].removeprefix("loss ")))

    result = train(config, track=False, progress=record)
    peak = peak_rss_mb()  # before the evaluation below loads a second copy of the model
    from peft import PeftModel

    base, tokenizer = load_causal_lm(resolve(MODEL))
    tuned = PeftModel.from_pretrained(base, result.model_dir)
    return {
        "seconds": result.train_seconds,
        "tokens_per_second": result.tokens_per_second,
        "final_loss": sum(losses[-3:]) / len(losses[-3:]),
        "eval_loss": eval_loss(tuned, tokenizer),
        "peak_rss_mb": peak,
    }


def run_baseline(steps: int) -> dict[str, float]:
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from lmforge.hub import resolve

    path = resolve(MODEL).path
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    rows = [
        {**ex, "input_ids": ex["input_ids"][:MAX_LENGTH], "labels": ex["labels"][:MAX_LENGTH]}
        for ex in encoded("train", tokenizer)
    ]
    torch.manual_seed(42)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(**LORA, target_modules=TARGETS, task_type="CAUSAL_LM"))
    losses: list[float] = []
    tokens = [0]

    class Record(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)

    def counting_collator(features: list[dict[str, Any]]) -> Any:
        batch = collator(features)
        tokens[0] += int(batch["attention_mask"].sum())
        return batch

    args = TrainingArguments(
        output_dir=str(HERE / ".bench-train-baseline"),
        per_device_train_batch_size=BATCH,
        max_steps=steps,
        learning_rate=LR,
        lr_scheduler_type="linear",
        warmup_steps=0,
        max_grad_norm=1.0,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=42,
        use_cpu=True,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        data_collator=counting_collator,
        callbacks=[Record()],
    )
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    peak = peak_rss_mb()
    return {
        "seconds": seconds,
        "tokens_per_second": tokens[0] / seconds,
        "final_loss": sum(losses[-3:]) / len(losses[-3:]),
        "eval_loss": eval_loss(model, tokenizer),
        "peak_rss_mb": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument(
        "--variants",
        default="fp32,int8",
        help=f"lmforge variants to run, comma-separated: {', '.join(VARIANTS)}",
    )
    parser.add_argument("--side", help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args()
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        sys.exit(f"--variants: unknown {unknown}; choose from {', '.join(VARIANTS)}")
    if args.side:
        if args.side == "baseline":
            print(json.dumps(run_baseline(args.steps)))
        else:
            print(json.dumps(run_lmforge(args.steps, args.side.removeprefix("lmforge-"))))
        return
    results = {}
    for side in ["baseline", *(f"lmforge-{v}" for v in variants)]:
        done = subprocess.run(
            [sys.executable, __file__, "--side", side, "--steps", str(args.steps)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            sys.exit(f"{side} failed:\n{done.stderr[-3000:]}")
        results[side] = json.loads(done.stdout.strip().splitlines()[-1])
        print(side, results[side])
    base = results["baseline"]
    reference = results.get("lmforge-fp32")
    for side, ours in results.items():
        ratio = ours["tokens_per_second"] / base["tokens_per_second"]
        print(f"{side}: effective tokens/s ratio {ratio:.2f}x")
        versus = (
            f"{(ours['eval_loss'] / reference['eval_loss'] - 1) * 100:+.2f}%"
            if reference is not None and side.startswith("lmforge")
            else "-"
        )
        append_result(
            "train variants: SmolLM2-135M LoRA SFT on the bundled dialogs, batch 8, "
            "each vs Trainer+peft fp32 in the same run",
            {
                "steps": str(args.steps),
                "system": side.replace("baseline", "Trainer+peft fp32"),
                "tok/s": f"{ours['tokens_per_second']:.0f}",
                "x Trainer+peft": f"{ratio:.2f}x",
                "wall s": f"{ours['seconds']:.0f}",
                "peak RSS MB": f"{ours['peak_rss_mb']:.0f}",
                "peak RSS vs Trainer": f"{ours['peak_rss_mb'] / base['peak_rss_mb']:.2f}x",
                "val loss": f"{ours['eval_loss']:.4f}",
                "val loss vs lmforge fp32": versus,
            },
        )


if __name__ == "__main__":
    main()
