"""Preference tuning: DPO (Rafailov et al., 2023) and IPO (Azar et al., 2023).

Each example is a prompt with two answers, one chosen and one rejected. The policy's
log-probability of each answer (summed over the answer's tokens, the prompt's ignored) is
compared with the reference model's, the model training started from:

    reward(answer) = beta * (log p_policy(answer | prompt) - log p_reference(answer | prompt))
    sigmoid (DPO):  loss = -log sigmoid(reward(chosen) - reward(rejected))
    ipo:            loss = (margin - 1 / (2 beta))^2, margin = the same log-ratio difference
                    with each log-probability averaged over its answer's tokens
    nll_weight:     adds nll_weight * (the chosen answer's mean token negative
                    log-likelihood) to either (RPO), so the chosen answer stays likely

The reference never needs a second copy of the model. With a fresh LoRA adapter the
reference is the same network with the adapter switched off (``reference: adapter_off``,
computed every step without gradients). Otherwise (full fine-tuning, or a run starting
from ``model.init_from``) every pair is scored once before the first step and the scores
travel with the examples (``precomputed``), which also makes each step one forward pass
cheaper with LoRA.

A batch holds its B chosen answers in rows 0..B-1 and their rejected answers in rows
B..2B-1, so one forward pass scores both.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from lmforge.config import RunConfig
from lmforge.config.tasks import DpoSettings
from lmforge.errors import LmforgeError
from lmforge.tasks.base import (
    IGNORE_INDEX,
    Batch,
    EncodeOptions,
    EncodeStats,
    Example,
    fit_length,
    pad,
)
from lmforge.tasks.causal_lm import CausalLmTask, label_logps
from lmforge.tasks.sft import assistant_spans, require_chat_template

METRICS = ("reward_accuracy", "reward_margin", "chosen_reward", "rejected_reward",
           "chosen_logp", "rejected_logp", "chosen_nll")  # fmt: skip


def encode_answer(
    tokenizer: Any, prompt: Sequence[dict], answer: str
) -> tuple[list[int], list[int]]:
    """Token ids of the prompt followed by ``answer`` in the chat template, and labels that
    keep only the answer's tokens (its end-of-turn marker included)."""
    messages = [*prompt, {"role": "assistant", "content": answer}]
    text, spans = assistant_spans(tokenizer, messages)
    start, end = spans[-1]  # the answer: earlier assistant turns are part of the prompt
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    labels = [
        token if lo >= start and hi <= end and hi > lo else IGNORE_INDEX
        for token, (lo, hi) in zip(encoded["input_ids"], encoded["offset_mapping"], strict=True)
    ]
    return list(encoded["input_ids"]), labels


def answer_logps(model: Any, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's answer log-probability (summed over its labeled tokens) and its number
    of labeled tokens: two ``(R,)`` tensors."""
    token_logps, keep = label_logps(model, batch)  # (N,), (R, T-1)
    rows = keep.nonzero()[:, 0]  # (N,): the row each answer token belongs to
    sums = torch.zeros(len(keep), dtype=token_logps.dtype, device=token_logps.device)
    return sums.index_add(0, rows, token_logps), keep.sum(dim=1)


def _fit_answer(
    tokenizer: Any, prompt: Sequence[dict], answer: str, options: EncodeOptions, stats: EncodeStats
) -> tuple[list[int], list[int]] | None:
    """``encode_answer`` within ``task.max_length``; None when dropped as too long or when
    truncation cut every answer token (counted in ``stats``)."""
    ids, labels = encode_answer(tokenizer, prompt, answer)
    kept = fit_length(ids, options, stats)
    if kept is None:
        return None
    if all(label == IGNORE_INDEX for label in labels[1 : len(kept)]):
        stats.dropped_empty += 1
        return None
    return kept, labels[: len(kept)]


def adapter_off(model: Any) -> Any:
    """A context in which ``model`` (a peft model, maybe wrapped) runs without its adapter."""
    inner = model
    while not hasattr(inner, "disable_adapter") and hasattr(inner, "module"):
        inner = inner.module
    if not hasattr(inner, "disable_adapter"):
        raise LmforgeError("task.reference: adapter_off needs a LoRA model, and this one has "
                           "no adapter; use reference: precomputed")  # fmt: skip
    return inner.disable_adapter()


class DpoTask(CausalLmTask):
    """Preference tuning on ``preference`` records (a prompt, a chosen and a rejected
    answer), rendered with the tokenizer's chat template as ``sft`` renders them."""

    name = "dpo"
    settings = DpoSettings
    formats = DpoSettings.formats
    packable = False
    progress_metrics = ("reward_accuracy",)  # shown beside the loss after each step
    beta = 0.1
    loss_type = "sigmoid"
    nll_weight = 0.0
    precompute = False  # reference log-probabilities scored once, before training

    def configured(self, config: RunConfig) -> DpoTask:
        assert isinstance(config.task, DpoSettings)
        self.beta, self.loss_type = config.task.beta, config.task.loss
        self.nll_weight = config.task.nll_weight
        reference = config.task.reference
        if reference is None:
            fresh_adapter = config.method.name in {"lora", "qlora"} and not config.model.init_from
            reference = "adapter_off" if fresh_adapter else "precomputed"
        self.precompute = reference == "precomputed"
        return self

    def encode(
        self, records: Iterable[dict], tokenizer: Any, options: EncodeOptions
    ) -> tuple[list[Example], EncodeStats]:
        require_chat_template(tokenizer, self.name)
        stats = EncodeStats()
        examples = []
        for record in records:
            chosen = _fit_answer(tokenizer, record["messages"], record["chosen"], options, stats)
            if chosen is None:
                continue
            rejected = _fit_answer(tokenizer, record["messages"], record["rejected"], options,
                                   stats)  # fmt: skip
            if rejected is None:
                continue
            # input_ids/labels hold the chosen answer: what the loop measures lengths by
            examples.append({"input_ids": chosen[0], "labels": chosen[1],
                             "rejected_ids": rejected[0],
                             "rejected_labels": rejected[1]})  # fmt: skip
        stats.examples = len(examples)
        return examples, stats

    def collate(self, examples: Sequence[Example], tokenizer: Any, seed: int) -> Batch:
        ids = [ex["input_ids"] for ex in examples] + [ex["rejected_ids"] for ex in examples]
        labels = [ex["labels"] for ex in examples] + [ex["rejected_labels"] for ex in examples]
        batch = {
            "input_ids": pad(ids, tokenizer.pad_token_id),  # (2B, T)
            "labels": pad(labels, IGNORE_INDEX),
            "attention_mask": pad([[1] * len(row) for row in ids], 0),
        }
        if all("reference" in ex for ex in examples):
            chosen = [ex["reference"][0] for ex in examples]
            rejected = [ex["reference"][1] for ex in examples]
            batch["reference_logps"] = torch.tensor(chosen + rejected, dtype=torch.float64)
        return batch

    def target_count(self, batch: Batch) -> int:
        return len(batch["input_ids"]) // 2  # pairs

    def prepare(self, model: Any, examples: list[Example], tokenizer: Any,
                device: torch.device, batch_size: int) -> None:  # fmt: skip
        """Score every pair's answers with ``model`` as it is now, the reference, when the
        reference is precomputed: ``example["reference"] = [chosen, rejected]``."""
        if not self.precompute:
            return
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                for start in range(0, len(examples), batch_size):
                    chunk = examples[start : start + batch_size]
                    batch = {k: v.to(device) for k, v in
                             self.collate(chunk, tokenizer, seed=0).items()}  # fmt: skip
                    sums, _ = answer_logps(model, batch)
                    chosen, rejected = sums.double().cpu().chunk(2)
                    for example, c, r in zip(chunk, chosen.tolist(), rejected.tolist(),
                                             strict=True):  # fmt: skip
                        example["reference"] = [c, r]
        finally:
            model.train(was_training)

    def loss_and_metrics(
        self, model: Any, batch: Batch
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The batch's summed loss, and sums over its pairs of what DPO trainers log:
        reward accuracy (chosen reward above rejected), reward margin, each side's reward
        and policy log-probability."""
        policy, counts = answer_logps(model, batch)  # (2B,), (2B,)
        reference = batch.get("reference_logps")
        if reference is None:
            with torch.no_grad(), adapter_off(model):
                reference, _ = answer_logps(model, batch)
        reference = reference.to(policy.dtype)
        if self.loss_type == "ipo":  # IPO compares per-token averages
            ratios = (policy - reference) / counts.clamp(min=1)
        else:
            ratios = policy - reference
        chosen, rejected = ratios.chunk(2)  # (B,) each: log-ratio of each answer
        margin = chosen - rejected
        if self.loss_type == "ipo":
            losses = (margin - 1 / (2 * self.beta)) ** 2
        else:
            losses = -F.logsigmoid(self.beta * margin)
        chosen_logp, rejected_logp = policy.chunk(2)
        chosen_nll = -chosen_logp / counts.chunk(2)[0].clamp(min=1)  # (B,): per token
        if self.nll_weight:
            losses = losses + self.nll_weight * chosen_nll
        chosen_reward, rejected_reward = self.beta * chosen.detach(), self.beta * rejected.detach()
        chosen_logp, rejected_logp = chosen_logp.detach(), rejected_logp.detach()
        sums = {
            "reward_accuracy": (chosen_reward > rejected_reward).double().sum(),
            "reward_margin": (chosen_reward - rejected_reward).sum(),
            "chosen_reward": chosen_reward.sum(),
            "rejected_reward": rejected_reward.sum(),
            "chosen_logp": chosen_logp.sum(),
            "rejected_logp": rejected_logp.sum(),
            "chosen_nll": chosen_nll.detach().sum(),
        }
        return losses.sum(), sums

    def loss(self, model: Any, batch: Batch) -> torch.Tensor:
        return self.loss_and_metrics(model, batch)[0]

    def evaluate(self, model: Any, batches: Iterable[Batch]) -> dict[str, Any]:
        """Mean loss and the logged metrics over the validation pairs."""
        totals = dict.fromkeys(("loss", *METRICS), 0.0)
        pairs = 0
        with torch.no_grad():
            for batch in batches:
                loss, sums = self.loss_and_metrics(model, batch)
                totals["loss"] += float(loss)
                for key, value in sums.items():
                    totals[key] += float(value)
                pairs += self.target_count(batch)
        return {key: value / max(pairs, 1) for key, value in totals.items()} | {
            "pairs": float(pairs)
        }
