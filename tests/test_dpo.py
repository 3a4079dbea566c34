"""Preference tuning (task dpo): reading preference data in its layouts, labels on the
answer only, the loss against TRL's DPOTrainer and against the paper's formula computed
example by example with a separate reference model, and runs of the one training loop
(LoRA with the adapter switched off, full fine-tuning with precomputed references) that
learn to prefer the chosen answers and log DPO's metrics to MLflow."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lmforge.config import RunConfig, load_config_dict
from lmforge.data.records import DataError, read_records
from lmforge.tasks import get_task
from lmforge.tasks.base import IGNORE_INDEX, EncodeOptions
from lmforge.tasks.dpo import DpoTask
from lmforge.train.loop import train
from tests.datafiles import write_jsonl
from tests.models import random_lora

# Support questions with a polite right answer and a wrong or rude one.
PAIRS = [
    ("How long do I have to return a thermostat?",
     "You have 30 days from delivery to return it.", "No returns. Figure it out."),
    ("Do smart plugs work without Wi-Fi?",
     "They need Wi-Fi for the app, but the button works without it.",
     "Yes, they run on Bluetooth only."),
    ("How do I reset my doorbell camera?",
     "Hold the reset button for 10 seconds until the light blinks.", "Why would I know?"),
    ("Can I cancel my order?",
     "Yes, until it ships: open the order and choose Cancel.", "Orders can never be cancelled."),
]  # fmt: skip


def _rows(layout: str = "prompt") -> list[dict[str, Any]]:
    rows = []
    for question, chosen, rejected in PAIRS:
        if layout == "prompt":
            rows.append({"prompt": question, "chosen": chosen, "rejected": rejected})
        else:  # TRL's conversational layout
            rows.append({"prompt": [{"role": "user", "content": question}],
                         "chosen": [{"role": "assistant", "content": chosen}],
                         "rejected": [{"role": "assistant", "content": rejected}]})  # fmt: skip
    return rows


def _task(beta: float = 0.1, loss: str = "sigmoid") -> DpoTask:
    task = get_task("dpo")
    assert isinstance(task, DpoTask)
    task.beta, task.loss_type = beta, loss
    return task


def test_preference_rows_read_from_every_layout(tmp_path: Path) -> None:
    plain, _ = read_records(write_jsonl(tmp_path / "a.jsonl", _rows()))
    conversational, report = read_records(write_jsonl(tmp_path / "b.jsonl", _rows("trl")))
    assert report.format == "preference"
    assert plain == conversational
    assert plain[0] == {"messages": [{"role": "user", "content": PAIRS[0][0]}],
                        "chosen": PAIRS[0][1], "rejected": PAIRS[0][2]}  # fmt: skip
    history = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Bye"},
    ]
    records, _ = read_records(write_jsonl(tmp_path / "c.jsonl", [
        {"messages": history, "chosen": "Goodbye!", "rejected": "Whatever."}]))  # fmt: skip
    assert records[0]["messages"] == history


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"chosen": "a", "rejected": "b"}, r"line 1: preference rows need field 'prompt'"),
        ({"prompt": "q", "chosen": "", "rejected": "b"}, r"'chosen': expected non-empty text"),
        ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
          "chosen": "a", "rejected": "b"}, r"expected the prompt to end with the user's"),
        ({"prompt": "q", "chosen": [{"role": "user", "content": "a"}], "rejected": "b"},
         r"'chosen': expected the answer as text or as one non-empty assistant message"),
    ],
)  # fmt: skip
def test_a_bad_preference_row_is_named(tmp_path: Path, row: dict[str, Any], message: str) -> None:
    with pytest.raises(DataError, match=message):
        read_records(write_jsonl(tmp_path / "bad.jsonl", [row]), format="preference")


def test_only_the_final_answer_is_labeled(tiny_causal_lm: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    prompt = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
              {"role": "user", "content": "Return policy?"}]  # fmt: skip
    record = {"messages": prompt, "chosen": "30 days.", "rejected": "None."}
    (example,), stats = _task().encode([record], tokenizer, EncodeOptions(max_length=512))
    assert stats.examples == 1
    for side in ("", "rejected_"):
        ids, labels = example[f"{side}ids" if side else "input_ids"], example[f"{side}labels"]
        answer = tokenizer.decode([t for t, label in zip(ids, labels, strict=True)
                                   if label != IGNORE_INDEX])  # fmt: skip
        expected = record["rejected"] if side else record["chosen"]
        assert answer == f"{expected}<|im_end|>\n"  # not "Hello!", an earlier assistant turn
    # Too long to keep any answer token: dropped and counted.
    _, stats = _task().encode([record], tokenizer, EncodeOptions(max_length=8))
    assert (stats.examples, stats.dropped_empty) == (0, 1)


def _answer_logp(model: Any, ids: list[int], labels: list[int]) -> float:
    """Log-probability of an example's labeled tokens, one unpadded sequence at a time."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, :-1].float()  # (T-1, V)
    logps = logits.log_softmax(-1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
    keep = torch.tensor(labels[1:]) != IGNORE_INDEX
    return float(logps[keep].sum()), int(keep.sum())


@pytest.mark.parametrize(("loss", "nll_weight"), [("sigmoid", 0.0), ("ipo", 0.0), ("sigmoid", 0.5)])
def test_the_loss_is_the_papers_formula_example_by_example(
    tiny_causal_lm: Path, tmp_path: Path, loss: str, nll_weight: float
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    policy = random_lora(tiny_causal_lm)
    reference = AutoModelForCausalLM.from_pretrained(tiny_causal_lm).eval()  # a second copy
    task = _task(beta=0.2, loss=loss)
    task.nll_weight = nll_weight
    records, _ = read_records(write_jsonl(tmp_path / "pairs.jsonl", _rows()))
    examples, _ = task.encode(records, tokenizer, EncodeOptions(max_length=512))
    expected, accuracy = 0.0, 0.0
    for example in examples:
        ratios, nlls = [], []
        for ids, labels in ((example["input_ids"], example["labels"]),
                            (example["rejected_ids"], example["rejected_labels"])):  # fmt: skip
            ours, count = _answer_logp(policy, ids, labels)
            theirs, _ = _answer_logp(reference, ids, labels)
            ratios.append((ours - theirs) / (count if loss == "ipo" else 1))
            nlls.append(-ours / count)
        margin = ratios[0] - ratios[1]
        if loss == "ipo":
            expected += (margin - 1 / (2 * 0.2)) ** 2
        else:
            expected += -math.log(1 / (1 + math.exp(-0.2 * margin)))
        expected += nll_weight * nlls[0]  # RPO: the chosen answer's mean token NLL
        accuracy += float(ratios[0] > ratios[1])
    batch = task.collate(examples, tokenizer, seed=0)  # padded: rows of different lengths
    with torch.no_grad():
        summed, sums = task.loss_and_metrics(policy, batch)  # reference: the adapter off
    assert float(summed) == pytest.approx(expected, rel=1e-5)
    assert float(sums["reward_accuracy"]) == accuracy
    assert 0 < accuracy < len(examples)  # the check can tell the two answers apart


@pytest.mark.parametrize("loss", ["sigmoid", "ipo"])
def test_the_loss_equals_trls_dpo_trainer(tiny_causal_lm: Path, tmp_path: Path, loss: str) -> None:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    model = random_lora(tiny_causal_lm)
    rows = _rows("trl")
    args = DPOConfig(output_dir=str(tmp_path / "trl"), beta=0.2, loss_type=[loss],
                     per_device_train_batch_size=len(rows), report_to="none", use_cpu=True,
                     max_length=None)  # fmt: skip
    # Given a peft model alone, TRL would copy its adapter as the reference; the base model
    # as the reference, given apart, is what lmforge's adapter_off computes.
    reference = AutoModelForCausalLM.from_pretrained(tiny_causal_lm).eval()
    trainer = DPOTrainer(model=model, ref_model=reference, args=args, processing_class=tokenizer,
                         train_dataset=Dataset.from_list(rows))  # fmt: skip
    batch = next(iter(trainer.get_train_dataloader()))  # every pair, in some order
    with torch.no_grad():
        theirs = float(trainer.compute_loss(trainer.model, batch))
    task = _task(beta=0.2, loss=loss)
    records, _ = read_records(write_jsonl(tmp_path / "pairs.jsonl", rows))
    examples, _ = task.encode(records, tokenizer, EncodeOptions(max_length=512))
    for tokenized, example in zip(trainer.train_dataset, examples, strict=True):
        assert tokenized["prompt_ids"] + tokenized["chosen_ids"] == example["input_ids"]
        assert tokenized["prompt_ids"] + tokenized["rejected_ids"] == example["rejected_ids"]
    with torch.no_grad():
        ours = float(task.loss(model, task.collate(examples, tokenizer, seed=0))) / len(examples)
    # The same tokens; TRL's fused vocabulary projection sums in another order (1e-4 apart).
    assert ours == pytest.approx(theirs, rel=5e-4)
    assert abs(ours - math.log(2)) > 50 * abs(ours - theirs)  # far from the untrained loss


def test_a_precomputed_reference_is_the_starting_model(
    tiny_causal_lm: Path, tmp_path: Path
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    model = random_lora(tiny_causal_lm)
    task = _task()
    task.precompute = True
    records, _ = read_records(write_jsonl(tmp_path / "pairs.jsonl", _rows()))
    examples, _ = task.encode(records, tokenizer, EncodeOptions(max_length=512))
    task.prepare(model, examples, tokenizer, torch.device("cpu"), batch_size=3)
    batch = task.collate(examples, tokenizer, seed=0)
    assert batch["reference_logps"].shape == (2 * len(examples),)
    with torch.no_grad():
        summed, sums = task.loss_and_metrics(model, batch)
    # Nothing trained yet: every reward is 0, so each pair's loss is log 2.
    assert float(summed) / len(examples) == pytest.approx(math.log(2), abs=1e-6)
    assert float(sums["reward_margin"]) == pytest.approx(0.0, abs=1e-6)


def _dpo_config(model: Path, data: Path, out: Path, method: str, **task: Any) -> dict[str, Any]:
    return {
        "model": {"ref": str(model)},
        "task": {"name": "dpo", "max_length": 96, "beta": 0.5, **task},
        "data": {"train": str(data), "validation": str(data)},
        "method": {"name": method, "lora_r": 8, "lora_dropout": 0.0},
        "train": {
            "max_steps": 15,
            "batch_size": 4,
            "lr": 5e-3 if method == "lora" else 1e-3,
            "log_every": 1,
            "scheduler": "constant",
        },
        "output": {"dir": str(out), "experiment": "dpo-test"},
    }


@pytest.mark.parametrize(
    ("method", "reference"), [("lora", "adapter_off"), ("full", "precomputed")]
)
def test_a_dpo_run_learns_to_prefer_the_chosen_answers(
    home: Path, tiny_causal_lm: Path, tmp_path: Path, method: str, reference: str
) -> None:
    from lmforge.track import get_client

    data = write_jsonl(tmp_path / "pairs.jsonl", _rows())
    config = load_config_dict(_dpo_config(tiny_causal_lm, data, tmp_path / "run", method))
    assert get_task("dpo").configured(config).precompute == (reference == "precomputed")
    result = train(config)
    assert result.eval_metrics["reward_accuracy"] == 1.0
    assert result.eval_metrics["loss"] < math.log(2) - 0.1
    assert result.eval_metrics["reward_margin"] > 0
    history = get_client().get_metric_history(result.run_id, "train/reward_accuracy")
    assert [m.step for m in history] == list(range(1, 16))
    for metric in ("train/reward_margin", "train/chosen_logp", "train/rejected_logp",
                   "eval/reward_accuracy", "eval/chosen_reward"):  # fmt: skip
        assert metric in get_client().get_run(result.run_id).data.metrics, metric
    if method == "lora":  # the adapter alone is saved, and loads in plain peft
        assert (result.model_dir / "adapter_config.json").is_file()


def test_what_dpo_cannot_do_is_refused_by_name(tmp_path: Path) -> None:
    base = _dpo_config(tmp_path / "m", tmp_path / "d.jsonl", tmp_path / "o", "full",
                       reference="adapter_off")  # fmt: skip
    with pytest.raises(ValueError, match=r"task.reference: adapter_off .* method 'full' has none"):
        RunConfig.model_validate(base)
    lora = _dpo_config(tmp_path / "m", tmp_path / "d.jsonl", tmp_path / "o", "lora",
                       reference="adapter_off")  # fmt: skip
    lora["model"]["init_from"] = str(tmp_path / "sft")
    with pytest.raises(ValueError, match=r"task.reference: adapter_off would score the model"):
        RunConfig.model_validate(lora)
    private = _dpo_config(tmp_path / "m", tmp_path / "d.jsonl", tmp_path / "o", "lora")
    private["privacy"] = {"target_epsilon": 3.0}
    with pytest.raises(ValueError, match=r"task.name: not with privacy \(a dpo example.s loss"):
        RunConfig.model_validate(private)
    with pytest.raises(ValueError, match=r"data.packing: only tasks .* not 'dpo'"):
        RunConfig.model_validate({**base, "task": {"name": "dpo"}, "data": {
            "train": "d.jsonl", "packing": True}})  # fmt: skip
