"""RL with verifiable rewards (task grpo): prompt data with the columns rewards read, the
built-in rewards and their checks, the engine's sampled token ids, groups and their
advantages, the loss against TRL's GRPOTrainer and against the formula computed
completion by completion, and runs of the one training loop that raise their reward."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lmforge.config import RunConfig, load_config_dict
from lmforge.data.records import DataError, read_records
from lmforge.errors import LmforgeError
from lmforge.serve.engine import Engine
from lmforge.serve.requests import Event, Request, RequestParams
from lmforge.tasks import get_task
from lmforge.tasks.base import IGNORE_INDEX, EncodeOptions
from lmforge.train import grpo, rewards
from lmforge.train.grpo import GrpoTask
from lmforge.train.loop import train
from tests.datafiles import write_jsonl
from tests.models import random_lora

QUESTIONS = ["How long is the return window?", "Do plugs need Wi-Fi?",
             "How do I reset the camera?", "Can I cancel an order?"]  # fmt: skip


def _letter_a(completions: list[str], contexts: list[dict[str, Any]]) -> list[float]:
    """A dense reward a tiny random model can learn in a few steps: the share of 'a's."""
    return [text.count("a") / max(len(text), 1) for text in completions]


@pytest.fixture
def letter_a() -> Iterator[None]:
    rewards.register_reward("letter_a", _letter_a)
    yield
    del rewards._REGISTRY["letter_a"]


def _settings(**task: Any) -> dict[str, Any]:
    return {"name": "grpo", "max_length": 64, "rewards": [{"name": "letter_a"}],
            "group_size": 4, "max_new_tokens": 8, "beta": 0.0, **task}  # fmt: skip


def _config(model: Path, data: Path, out: Path, method: str = "full", **task: Any) -> RunConfig:
    return load_config_dict({
        "model": {"ref": str(model)},
        "task": _settings(**task),
        "data": {"train": str(data), "validation": str(data)},
        "method": {"name": method, "lora_r": 8, "lora_dropout": 0.0},
        "train": {"max_steps": 20, "batch_size": 4, "lr": 3e-2, "log_every": 1,
                  "scheduler": "constant"},
        "eval": {"before_training": True},
        "output": {"dir": str(out), "experiment": "grpo-test"},
    })  # fmt: skip


def _task(config: RunConfig, tokenizer: Any, records: list[dict]) -> GrpoTask:
    task = get_task("grpo").configured(config)
    assert isinstance(task, GrpoTask)
    task.encode(records, tokenizer, EncodeOptions(max_length=64))
    return task


def _prompts(tmp_path: Path) -> Path:
    rows = [{"prompt": q, "topic": f"t{i}"} for i, q in enumerate(QUESTIONS)]
    return write_jsonl(tmp_path / "prompts.jsonl", rows)


# --- data and rewards ------------------------------------------------------------------


def test_prompt_rows_keep_the_columns_rewards_read(tmp_path: Path) -> None:
    rows = [
        {"prompt": "Write add(a, b).", "tests": "assert add(1, 2) == 3", "entry_point": "add"},
        {"prompt": [{"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Refund time?"}], "keywords": ["5 days"]},
    ]  # fmt: skip
    records, report = read_records(write_jsonl(tmp_path / "p.jsonl", rows))
    assert report.format == "prompt"
    assert records[0] == {
        "messages": [{"role": "user", "content": "Write add(a, b)."}],
        "context": {"tests": "assert add(1, 2) == 3", "entry_point": "add"},
    }
    assert records[1]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert records[1]["context"] == {"keywords": ["5 days"]}
    bad = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            {
                "prompt": [
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello"},
                ]
            }
        ],
    )
    with pytest.raises(DataError, match=r"bad.jsonl.*line 1.*'prompt': expected the prompt to "
                                        r"end with the user's message"):  # fmt: skip
        read_records(bad, format="prompt")


def test_the_built_in_rewards() -> None:
    context = {"tests": "assert add(2, 3) == 5\n", "entry_point": "add"}
    right = "Here it is:\n```python\ndef add(a, b):\n    return a + b\n```"
    wrong = "```python\ndef add(a, b):\n    return a - b\n```"
    assert rewards.code_tests([right, wrong, "no code"], [context] * 3) == [1.0, 0.0, 0.0]
    assert rewards.keywords(["Refunds take 5 days, by card.", "Soon."],
                            [{"keywords": ["5 days", "CARD"]}] * 2) == [1.0, 0.0]  # fmt: skip
    assert rewards.keywords(["5 days"], [{"keywords": '["5 days", "card"]'}]) == [0.5]
    assert rewards.format_match(["x ```python y", "x"], [{}, {}], pattern="```python") == [1, 0]
    assert rewards.format_match(["ab", "abc"], [{}, {}], pattern="ab", full=True) == [1.0, 0.0]
    words = ["one two", "one two three", "one two three four five six"]
    assert rewards.length(words, [{}] * 3, max_words=2) == [1.0, 0.5, 0.0]


def test_a_bad_reward_is_named_before_the_model_loads() -> None:
    with pytest.raises(LmforgeError, match=r"task.rewards\[0\].name: unknown reward 'code_test' "
                                           r"\(did you mean 'code_tests'\?\)"):  # fmt: skip
        rewards.checked("code_test", {}, "task.rewards[0]")
    with pytest.raises(LmforgeError, match=r"task.rewards\[1\].params: reward format .*'pattern'"):
        rewards.checked("format", {}, "task.rewards[1]")
    with pytest.raises(LmforgeError, match=r"params: reward length .*'max_chars'.*max_words"):
        rewards.checked("length", {"max_words": 3, "max_chars": 3}, "task.rewards[0]")
    with pytest.raises(LmforgeError, match=r"params: reward format refused .*error"):
        rewards.checked("format", {"pattern": "(unclosed"}, "task.rewards[0]")


def test_records_without_a_rewards_column_are_named(tiny_causal_lm: Path, tmp_path: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    config = _config(tiny_causal_lm, tmp_path / "d.jsonl", tmp_path / "o",
                     rewards=[{"name": "code_tests"}])  # fmt: skip
    records, _ = read_records(_prompts(tmp_path))
    with pytest.raises(LmforgeError, match=r"record 1 has no column 'tests', which reward "
                                           r"code_tests reads .*\['topic'\]"):  # fmt: skip
        _task(config, tokenizer, records)


# --- sampling ----------------------------------------------------------------------------


def test_the_engine_gives_the_sampled_token_ids(tiny_causal_lm: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_causal_lm).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    prompts = [tokenizer(q)["input_ids"] for q in QUESTIONS]
    engine = Engine(model, tokenizer, max_batch=4, max_len=64, kept_slots=0)
    finals: dict[int, Event] = {}

    def emit_for(index: int) -> Any:
        return lambda event: finals.__setitem__(index, event) if event.finish_reason else None

    for index, ids in enumerate(prompts):
        engine.submit(Request(ids, RequestParams(max_tokens=12, temperature=0.0), emit_for(index)))
    engine.run_here()  # on this thread: the engine's own never starts
    for index, ids in enumerate(prompts):
        generated = model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False,
                                   pad_token_id=tokenizer.pad_token_id)  # fmt: skip
        expected = generated[0, len(ids) :].tolist()
        assert list(finals[index].token_ids) == expected
        if finals[index].finish_reason == "stop":  # the end token is one of them
            assert expected[-1] == tokenizer.eos_token_id


def test_a_rollout_samples_groups_and_normalises_their_rewards(
    letter_a: None, tiny_causal_lm: Path, tmp_path: Path
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    model = AutoModelForCausalLM.from_pretrained(tiny_causal_lm).train()
    records, _ = read_records(_prompts(tmp_path))
    task = _task(_config(tiny_causal_lm, tmp_path / "d", tmp_path / "o"), tokenizer, records)
    examples, _ = task.encode(records[:2], tokenizer, EncodeOptions(max_length=64))
    batch = task.collate(examples, tokenizer, seed=7)
    rolled = task.rollout(model, batch)
    assert model.training  # back in train mode after sampling in eval mode
    assert task.target_count(batch) == task.target_count(rolled) == 8  # 2 prompts x 4
    for row in range(8):
        prompt = examples[row // 4]["input_ids"]
        ids, labels = rolled["input_ids"][row].tolist(), rolled["labels"][row].tolist()
        assert ids[: len(prompt)] == prompt
        assert labels[: len(prompt)] == [IGNORE_INDEX] * len(prompt)
        completion = [t for t in labels if t != IGNORE_INDEX]
        assert (
            1 <= len(completion) <= 8
            and completion == ids[len(prompt) : len(prompt) + len(completion)]
        )
    texts = {tokenizer.decode(row[rolled["labels"][i] != IGNORE_INDEX])
             for i, row in enumerate(rolled["input_ids"])}  # fmt: skip
    assert len(texts) > 4  # sampled at temperature 1: the members of a group differ
    rewards_ = rolled["reward"].view(2, 4)
    assert torch.equal(rolled["reward"], rolled["reward_letter_a"])  # one reward, weight 1
    expected = (rewards_ - rewards_.mean(1, keepdim=True)) / (rewards_.std(1, keepdim=True) + 1e-4)
    assert torch.allclose(rolled["advantages"].view(2, 4), expected)
    again = task.rollout(model, batch)  # the batch's seed makes sampling repeatable
    assert torch.equal(again["input_ids"], rolled["input_ids"])


# --- the loss ----------------------------------------------------------------------------


def _rolled(task: GrpoTask, model: Any, tokenizer: Any, records: list[dict]) -> dict:
    examples, _ = task.encode(records, tokenizer, EncodeOptions(max_length=64))
    rolled = task.rollout(model, task.collate(examples, tokenizer, seed=3))
    assert rolled["advantages"].abs().sum() > 0  # the check has something to weigh
    return rolled


def test_the_loss_is_the_formula_completion_by_completion(
    letter_a: None, tiny_causal_lm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(grpo, "CHUNK", 3)  # forward passes of 3, 3 and 2 in length order
    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    policy = random_lora(tiny_causal_lm)
    reference = AutoModelForCausalLM.from_pretrained(tiny_causal_lm).eval()  # a second copy
    records, _ = read_records(_prompts(tmp_path))
    config = _config(tiny_causal_lm, tmp_path / "d", tmp_path / "o", method="lora", beta=0.3)
    task = _task(config, tokenizer, records)
    rolled = _rolled(task, policy, tokenizer, records[:2])
    expected = 0.0
    kls = []
    for row in range(len(rolled["advantages"])):  # one unpadded sequence at a time
        keep = rolled["attention_mask"][row].bool()
        ids, labels = rolled["input_ids"][row][keep], rolled["labels"][row][keep]
        answer = labels[1:] != IGNORE_INDEX
        with torch.no_grad():
            ours = policy(ids[None]).logits[0, :-1].log_softmax(-1)
            base = reference(ids[None]).logits[0, :-1].log_softmax(-1)
        token = ids[1:, None]
        logp = ours.gather(1, token)[:, 0][answer].double()
        ref = base.gather(1, token)[:, 0][answer].double()
        kl = torch.exp(ref - logp) - (ref - logp) - 1
        advantage = float(rolled["advantages"][row])
        expected += float((-advantage + 0.3 * kl).mean())  # the ratio is 1 in value
        kls.append(float(kl.mean()))
    with torch.no_grad():
        summed, sums = task.loss_and_metrics(policy, rolled)  # reference: the adapter off
    assert float(summed) == pytest.approx(expected, rel=1e-5, abs=1e-7)
    assert float(sums["kl"]) == pytest.approx(sum(kls), rel=1e-4)
    assert min(kls) > 0  # the random adapter moved the policy from its reference


def test_the_loss_and_its_gradient_equal_trls_grpo_trainer(
    letter_a: None, tiny_causal_lm: Path, tmp_path: Path
) -> None:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    model = random_lora(tiny_causal_lm)
    records, _ = read_records(_prompts(tmp_path))
    config = _config(tiny_causal_lm, tmp_path / "d", tmp_path / "o", method="lora", beta=0.2)
    task = _task(config, tokenizer, records)
    rolled = _rolled(task, model, tokenizer, records[:1])  # one prompt: no prompt padding
    args = GRPOConfig(output_dir=str(tmp_path / "trl"), beta=0.2, loss_type="grpo",
                      epsilon=0.2, num_generations=4, per_device_train_batch_size=4,
                      max_completion_length=8, report_to="none", use_cpu=True, bf16=False,
                      gradient_checkpointing=False)  # fmt: skip
    trainer = GRPOTrainer(model=model, reward_funcs=[_letter_a], args=args,
                          train_dataset=Dataset.from_list([{"prompt": QUESTIONS[0]}]),
                          processing_class=tokenizer)  # fmt: skip
    prompt_length = next(i for i, t in enumerate(rolled["labels"][0]) if t != IGNORE_INDEX)
    completion = rolled["input_ids"][:, prompt_length:]
    completion_mask = (rolled["labels"][:, prompt_length:] != IGNORE_INDEX).long()
    completion = completion * completion_mask + tokenizer.pad_token_id * (1 - completion_mask)
    prompt = rolled["input_ids"][:, :prompt_length]
    inputs = {"prompt_ids": prompt, "prompt_mask": torch.ones_like(prompt),
              "completion_ids": completion, "completion_mask": completion_mask,
              "advantages": rolled["advantages"].float()}  # fmt: skip
    with torch.no_grad(), model.disable_adapter():
        inputs["ref_per_token_logps"], _, _ = trainer._get_per_token_logps_and_entropies(
            model,
            torch.cat([prompt, completion], 1),
            torch.cat([inputs["prompt_mask"], completion_mask], 1),
            completion.shape[1],
        )
    model.eval()  # TRL's eval mode: no division by gradient accumulation steps
    theirs = trainer._compute_loss(model, inputs)
    theirs.backward()
    their_grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
    model.zero_grad()
    summed, _ = task.loss_and_metrics(model, rolled)
    ours = summed / task.target_count(rolled)
    ours.backward()
    our_grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert float(ours.detach()) == pytest.approx(float(theirs.detach()), rel=1e-4, abs=1e-6)
    for mine, trl in zip(our_grads, their_grads, strict=True):
        assert torch.allclose(mine, trl, rtol=1e-3, atol=1e-7)
    assert sum(float(g.abs().sum()) for g in our_grads) > 0


# --- runs ----------------------------------------------------------------------------------


def test_a_grpo_run_raises_its_reward(
    letter_a: None, home: Path, tiny_causal_lm: Path, tmp_path: Path
) -> None:
    from lmforge.track import get_client

    shown: list[str] = []
    config = _config(tiny_causal_lm, _prompts(tmp_path), tmp_path / "run", beta=0.0)
    result = train(config, progress=lambda step, total, message: shown.append(message))
    client = get_client()
    curve = [m.value for m in client.get_metric_history(result.run_id, "train/reward")]
    assert len(curve) == 20
    assert sum(curve[-5:]) / 5 > sum(curve[:5]) / 5 + 0.05, curve
    greedy = [m.value for m in client.get_metric_history(result.run_id, "eval/reward")]
    assert greedy[-1] > greedy[0], greedy  # the greedy answers to the prompts, too
    metrics = client.get_run(result.run_id).data.metrics
    for key in (
        "train/reward_letter_a",
        "train/reward_spread",
        "train/kl",
        "train/clipped",
        "train/completion_length",
        "train/truncated",
        "eval/completion_length",
    ):
        assert key in metrics, key
    assert metrics["train/clipped"] == 0.0  # one update per sample: the ratio is 1
    assert "reward " in shown[-1]


def test_a_lora_grpo_run_keeps_a_kl_to_the_adapter_off(
    letter_a: None, home: Path, tiny_causal_lm: Path, tmp_path: Path
) -> None:
    from lmforge.track import get_client

    config = _config(tiny_causal_lm, _prompts(tmp_path), tmp_path / "run", method="lora",
                     beta=0.1)  # fmt: skip
    config.train.max_steps = 4
    result = train(config)
    kl = [m.value for m in get_client().get_metric_history(result.run_id, "train/kl")]
    assert kl[0] == pytest.approx(0.0, abs=1e-9)  # a fresh adapter is the reference
    assert kl[-1] > 0
    assert (result.model_dir / "adapter_config.json").is_file()


def test_what_grpo_cannot_do_is_refused_by_name() -> None:
    def config(method: str = "lora", **sections: dict[str, Any]) -> dict[str, Any]:
        base: dict[str, Any] = {
            "model": {"ref": "m"},
            "task": _settings(beta=0.1),
            "data": {"train": "d.jsonl"},
            "method": {"name": method},
        }
        for section, values in sections.items():
            base[section] = {**base.get(section, {}), **values}
        return base

    with pytest.raises(ValueError, match=r"task.beta: the KL penalty's reference .* 'full'"):
        RunConfig.model_validate(config("full"))
    RunConfig.model_validate(config("full", task={"beta": 0.0}))  # no reference needed
    with pytest.raises(ValueError, match=r"task.beta: the KL reference .* model.init_from"):
        RunConfig.model_validate(config(model={"init_from": "run:abc"}))
    with pytest.raises(ValueError, match=r"train.strategy: grpo samples with the whole model"):
        RunConfig.model_validate(config(train={"strategy": "fsdp"}))
    with pytest.raises(ValueError, match=r"task.name: not with privacy \(a grpo example"):
        RunConfig.model_validate(config(privacy={"target_epsilon": 3.0}))
    with pytest.raises(LmforgeError, match=r"task.rewards: List should have at least 1 item"):
        load_config_dict(config(task={"rewards": []}))
