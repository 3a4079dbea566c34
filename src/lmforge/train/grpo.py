"""RL with verifiable rewards: GRPO (group relative policy optimisation, Shao et al., 2024).

Each step takes a batch of prompts and samples a group of ``group_size`` completions of
each from the model as it is now, through the serving engine's continuous batching
(``Engine.run_here``: every completion of the batch decodes together, and the completions
of one prompt share its prefill). Reward functions (``lmforge.train.rewards``: a code
problem's tests, required keywords, a format, a length) score every completion, and each
completion's advantage is its reward minus its group's mean, divided by the group's
standard deviation (``scale_rewards``): the model learns which of its own answers to the
same prompt were better, with no value model. The loss on the completion tokens t:

    ratio_t = pi(t) / pi_old(t)
    loss_t  = -min(ratio_t * A, clip(ratio_t, 1 - epsilon, 1 + epsilon) * A)
              + beta * ratio_t * KL_t
    KL_t    = exp(ref_t - logp_t) - (ref_t - logp_t) - 1       (the k3 estimator, >= 0)

averaged over each completion's tokens, then summed over completions (the loop divides
by their number). ``pi_old`` is the policy that sampled; each sample is used for one
update (TRL's default), so the ratio is 1 in value and the clip bounds nothing: the
gradient is the policy gradient A * grad log pi. The KL term is weighted by the ratio too,
which changes its gradient (not its value) into the unbiased gradient of the reverse KL
(DeepSeek-V3.2; TRL's ``use_bias_correction_kl``, on by default). The reference ``ref`` is
the same model with its LoRA adapter switched off, so no second copy is held.

The task lives in ``lmforge.train``, not ``lmforge.tasks``, because it samples with the
serving engine and scores code in the evaluate sandbox, packages a layer above the tasks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from lmforge.config import RunConfig
from lmforge.config.tasks import GrpoSettings
from lmforge.data.chat import render_chat
from lmforge.errors import LmforgeError
from lmforge.serve.engine import Engine
from lmforge.serve.requests import Event, Request, RequestParams
from lmforge.tasks.base import IGNORE_INDEX, Batch, EncodeOptions, EncodeStats, Example, pad
from lmforge.tasks.causal_lm import CausalLmTask, label_logps
from lmforge.tasks.dpo import adapter_off
from lmforge.tasks.sft import require_chat_template
from lmforge.train.rewards import Reward, checked

GENERATION_BATCH = 32  # completions decoded together at most
CHUNK = 8  # completions per forward pass of the loss, in length order


@dataclass
class Completion:
    """One sampled answer: its token ids (the end token included when one ended it) and
    text."""

    token_ids: list[int]
    text: str
    truncated: bool  # stopped by max_new_tokens


class GrpoTask(CausalLmTask):
    """RL fine-tuning on ``prompt`` records: completions sampled per prompt, scored by the
    configured rewards, trained with GRPO's group-normalised advantages."""

    name = "grpo"
    settings = GrpoSettings
    formats = GrpoSettings.formats
    packable = False
    progress_metrics = ("reward",)  # shown beside the loss after each step

    options: GrpoSettings  # set by configured()

    def __init__(self) -> None:
        self.rewards: list[tuple[Reward, float, dict[str, Any]]] = []
        # Each prompt's record context (what its rewards read), by the number its example
        # carries; encode fills it, the rollout reads it.
        self.contexts: list[dict[str, Any]] = []
        self.tokenizer: Any = None

    def configured(self, config: RunConfig) -> GrpoTask:
        assert isinstance(config.task, GrpoSettings)
        self.options = config.task
        self.rewards = [
            (checked(spec.name, spec.params, f"task.rewards[{i}]"), spec.weight, spec.params)
            for i, spec in enumerate(config.task.rewards)
        ]
        return self

    # --- data ---------------------------------------------------------------------------

    def encode(
        self, records: Iterable[dict], tokenizer: Any, options: EncodeOptions
    ) -> tuple[list[Example], EncodeStats]:
        """Each record's prompt in the chat template, ending with the assistant's cue;
        prompts longer than ``task.max_length`` are dropped."""
        require_chat_template(tokenizer, self.name)
        self.tokenizer = tokenizer
        stats = EncodeStats()
        examples = []
        for number, record in enumerate(records, start=1):
            context = record["context"]
            for found, _, _ in self.rewards:
                missing = [column for column in found.needs if column not in context]
                if missing:
                    raise LmforgeError(
                        f"data: record {number} has no column {missing[0]!r}, which reward "
                        f"{found.name} reads (its other columns: {sorted(context)}); add it "
                        "or choose rewards the data can feed"
                    )
            ids = render_chat(tokenizer, self._messages(record["messages"]))
            if len(ids) > options.max_length:
                stats.dropped_overlong += 1
                continue
            examples.append({"input_ids": ids, "context": len(self.contexts)})
            self.contexts.append(context)
        stats.examples = len(examples)
        return examples, stats

    def _messages(self, messages: list[dict[str, str]]) -> list[dict[str, str]]:
        instruction = self.options.instruction
        if not instruction:
            return messages
        *before, last = messages
        return [*before, {**last, "content": f"{last['content']}\n{instruction}"}]

    def collate(self, examples: Sequence[Example], tokenizer: Any, seed: int) -> Batch:
        """The prompts, padded, with their context numbers and the batch's sampling seed."""
        ids = [ex["input_ids"] for ex in examples]
        return {
            "input_ids": pad(ids, tokenizer.pad_token_id),
            "attention_mask": pad([[1] * len(row) for row in ids], 0),
            "context": torch.tensor([ex["context"] for ex in examples]),
            "seed": torch.tensor([seed]),
        }

    def target_count(self, batch: Batch) -> int:
        if "advantages" in batch:
            return len(batch["advantages"])  # completions
        return len(batch["input_ids"]) * self.options.group_size

    # --- sampling and scoring -----------------------------------------------------------

    def rollout(self, model: Any, batch: Batch) -> Batch:
        """The completions of the batch's prompts, sampled ``group_size`` times each,
        scored, with their advantages: the batch one step trains on."""
        options = self.options
        prompts = _rows(batch)
        group = options.group_size
        seed = int(batch["seed"][0])
        completions = self.sample(model, prompts, group, temperature=options.temperature,
                                  seed=seed)  # fmt: skip
        contexts = [self.contexts[int(i)] for i in batch["context"] for _ in range(group)]
        scores = self.score(completions, contexts)  # reward, reward_NAME: (B*G,) each
        rewards = scores["reward"].view(-1, group)  # (B, G)
        spread = rewards.std(dim=1, keepdim=True)  # (B, 1)
        advantages = rewards - rewards.mean(dim=1, keepdim=True)
        if options.scale_rewards:
            advantages = advantages / (spread + 1e-4)
        sequences = [prompts[i // group] + c.token_ids for i, c in enumerate(completions)]
        labels = [[IGNORE_INDEX] * len(prompts[i // group]) + c.token_ids
                  for i, c in enumerate(completions)]  # fmt: skip
        device = batch["input_ids"].device
        rolled = {
            "input_ids": pad(sequences, self.tokenizer.pad_token_id),
            "attention_mask": pad([[1] * len(row) for row in sequences], 0),
            "labels": pad(labels, IGNORE_INDEX),
            "advantages": advantages.flatten(),
            "group_spread": spread.expand(-1, group).flatten(),
            "completion_length": torch.tensor([float(len(c.token_ids)) for c in completions]),
            "truncated": torch.tensor([float(c.truncated) for c in completions]),
            **scores,
        }
        return {key: value.to(device) for key, value in rolled.items()}

    def sample(
        self,
        model: Any,
        prompts: list[list[int]],
        group: int,
        *,
        temperature: float,
        seed: int | None,
    ) -> list[Completion]:
        """``group`` completions of each prompt (prompt-major), decoded together by the
        serving engine on this thread with the model in eval mode (no dropout);
        ``temperature`` 0 is greedy."""
        options = self.options
        count = len(prompts) * group
        longest = max(len(ids) for ids in prompts) + options.max_new_tokens + 1
        was_training = model.training
        model.eval()
        try:
            engine = Engine(model, self.tokenizer, max_batch=min(count, GENERATION_BATCH),
                            max_queue=count, max_len=longest, kept_slots=0)  # fmt: skip
            if engine.max_len < longest:
                raise LmforgeError(
                    f"task.max_new_tokens: prompts of up to {longest - 1 - options.max_new_tokens}"
                    f" tokens plus {options.max_new_tokens} new ones exceed the model's "
                    f"context ({engine.max_len}); lower task.max_length or max_new_tokens"
                )
            texts, finals = [""] * count, [Event()] * count

            def collect(index: int) -> Any:
                def emit(event: Event) -> None:
                    texts[index] += event.text
                    if event.finish_reason is not None:
                        finals[index] = event

                return emit

            for index in range(count):
                params = RequestParams(
                    max_tokens=options.max_new_tokens,
                    temperature=temperature,
                    top_p=options.top_p,
                    seed=None if seed is None else seed * 1_000 + index,
                )
                engine.submit(Request(prompts[index // group], params, collect(index)))
            engine.run_here()
        finally:
            model.train(was_training)
        failed = [event.error for event in finals if event.finish_reason == "error"]
        if failed:
            raise LmforgeError(f"task grpo: sampling failed: {failed[0]}")
        return [Completion(list(event.token_ids), text, event.finish_reason == "length")
                for event, text in zip(finals, texts, strict=True)]  # fmt: skip

    def score(
        self, completions: list[Completion], contexts: list[dict[str, Any]]
    ) -> dict[str, torch.Tensor]:
        """Each reward function's scores (``reward_NAME``) and their weighted sum
        (``reward``), ``(N,)`` each.

        Raises:
            LmforgeError: a reward function failed or returned the wrong number of scores.
        """
        texts = [c.text for c in completions]
        total = torch.zeros(len(texts), dtype=torch.float64)
        scores: dict[str, torch.Tensor] = {}
        for found, weight, params in self.rewards:
            try:
                values = found.fn(texts, contexts, **params)
            except Exception as error:  # a user's reward may raise anything
                raise LmforgeError(f"reward {found.name} failed: {type(error).__name__}: "
                                   f"{error}") from error  # fmt: skip
            if len(values) != len(texts):
                raise LmforgeError(f"reward {found.name} returned {len(values)} scores for "
                                   f"{len(texts)} completions")  # fmt: skip
            scored = torch.tensor([float(v) for v in values], dtype=torch.float64)
            scores[f"reward_{found.name}"] = scored
            total += weight * scored
        return {"reward": total, **scores}

    # --- the loss -----------------------------------------------------------------------

    def loss_and_metrics(
        self, model: Any, batch: Batch
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The summed GRPO loss over the batch's completions, and sums over them of the
        rewards, their spread within groups, the KL to the reference, the clipped share,
        the completion length and the truncated share.

        Completions differ widely in length (one stops after 30 tokens, its neighbour runs
        to max_new_tokens), so the forward passes take them in length order, ``CHUNK`` at
        a time, each chunk padded only to its own longest.
        """
        lengths = batch["attention_mask"].sum(dim=1)
        order = torch.argsort(lengths)
        loss, kl, clipped = torch.zeros((), device=lengths.device), 0.0, 0.0
        for start in range(0, len(order), CHUNK):
            rows = order[start : start + CHUNK]
            width = int(lengths[rows].max())
            part = {key: batch[key][rows, :width]
                    for key in ("input_ids", "attention_mask", "labels")}  # fmt: skip
            part_loss, part_kl, part_clipped = self._policy_loss(
                model, part, batch["advantages"][rows]
            )
            loss, kl, clipped = loss + part_loss, kl + part_kl, clipped + part_clipped
        sums = {key: batch[key].double().sum() for key in batch if key.startswith("reward")}
        sums |= {
            "reward_spread": batch["group_spread"].double().sum(),
            "kl": torch.tensor(kl, dtype=torch.float64),
            "clipped": torch.tensor(clipped, dtype=torch.float64),
            "completion_length": batch["completion_length"].double().sum(),
            "truncated": batch["truncated"].double().sum(),
        }
        return loss, sums

    def _policy_loss(
        self, model: Any, batch: Batch, advantages: torch.Tensor
    ) -> tuple[torch.Tensor, float, float]:
        """The summed loss of some completions (rows of ``batch``), and the sums over them
        of their mean KL and of their share of tokens whose ratio is clipped."""
        options = self.options
        logps, keep = label_logps(model, batch)  # (N,), (R, T-1)
        rows = keep.nonzero()[:, 0]  # (N,): each completion token's row
        counts = keep.sum(dim=1).clamp(min=1).to(logps.dtype)  # (R,)
        token_advantages = advantages.to(logps.dtype)[rows]  # (N,)
        ratio = torch.exp(logps - logps.detach())  # pi / pi_old: 1, with pi's gradient
        clipped = ratio.clamp(1 - options.epsilon, 1 + options.epsilon)
        per_token = -torch.minimum(ratio * token_advantages, clipped * token_advantages)
        kl = torch.zeros_like(logps)
        if options.beta > 0:
            with torch.no_grad(), adapter_off(model):
                reference, _ = label_logps(model, batch)
            delta = reference.to(logps.dtype) - logps
            kl = torch.exp(delta) - delta - 1
            # times the ratio (1 in value): the unbiased gradient of the reverse KL
            per_token = per_token + options.beta * kl * ratio

        def per_row(values: torch.Tensor) -> torch.Tensor:
            """Each completion's mean over its tokens: (R,)."""
            return torch.zeros_like(counts).index_add(0, rows, values) / counts

        outside = ((ratio < 1 - options.epsilon) | (ratio > 1 + options.epsilon)).to(logps.dtype)
        return (per_row(per_token).sum(), float(per_row(kl.detach()).sum()),
                float(per_row(outside.detach()).sum()))  # fmt: skip

    def loss(self, model: Any, batch: Batch) -> torch.Tensor:
        return self.loss_and_metrics(model, batch)[0]

    def evaluate(self, model: Any, batches: Iterable[Batch]) -> dict[str, Any]:
        """The rewards of one greedy completion of each validation prompt (``reward``
        and each function's mean: with ``code_tests``, greedy pass@1)."""
        totals: dict[str, float] = {}
        prompts = 0
        lengths = 0.0
        for batch in batches:
            rows = _rows(batch)
            completions = self.sample(model, rows, 1, temperature=0.0, seed=None)
            contexts = [self.contexts[int(i)] for i in batch["context"]]
            for key, values in self.score(completions, contexts).items():
                totals[key] = totals.get(key, 0.0) + float(values.sum())
            prompts += len(rows)
            lengths += sum(len(c.token_ids) for c in completions)
        metrics = {key: value / max(prompts, 1) for key, value in totals.items()}
        return metrics | {"completion_length": lengths / max(prompts, 1),
                          "prompts": float(prompts)}  # fmt: skip


def _rows(batch: Batch) -> list[list[int]]:
    """The batch's prompts without their padding."""
    return [row[mask.bool()].tolist() for row, mask in
            zip(batch["input_ids"], batch["attention_mask"], strict=True)]  # fmt: skip
