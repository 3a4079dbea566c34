"""Shared pieces of the causal-LM tasks (sft, clm): batching and the token loss."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from lmforge.config import RunConfig
from lmforge.runtime.modules import unwrap
from lmforge.tasks.base import IGNORE_INDEX, Batch, Example, load_weights, pad, text_tokenizer


def build_causal_lm(path: str, dtype: torch.dtype, pretrained: bool = True) -> Any:
    return load_weights(AutoModelForCausalLM, path, dtype=dtype, pretrained=pretrained)


def collate_lm(examples: Sequence[Example], pad_id: int) -> Batch:
    """Pad token examples. Packed examples carry ``position_ids`` that restart at every
    packed example; with them (and no attention mask) transformers builds a
    block-diagonal causal mask, so packed examples never attend to each other."""
    batch = {
        "input_ids": pad([ex["input_ids"] for ex in examples], pad_id),
        "labels": pad([ex["labels"] for ex in examples], IGNORE_INDEX),
    }
    if any("position_ids" in ex for ex in examples):
        # Padding becomes one more "example" (positions 0..k) whose labels are ignored.
        longest = batch["input_ids"].shape[1]
        batch["position_ids"] = torch.tensor(
            [
                list(ex.get("position_ids", range(len(ex["input_ids"]))))
                + list(range(longest - len(ex["input_ids"])))
                for ex in examples
            ]
        )
        batch["token_mask"] = pad([[1] * len(ex["input_ids"]) for ex in examples], 0)
    else:
        batch["attention_mask"] = pad([[1] * len(ex["input_ids"]) for ex in examples], 0)
    return batch


def lm_target_count(batch: Batch) -> int:
    return int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())


def label_logps(model: Any, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """The log-probability of every labeled token, ``(N,)`` in row-major order, and the
    ``(R, T-1)`` mask of where they are (position t predicts token t+1). The vocabulary
    projection runs only on those positions (what ``lm_loss`` does; preference and RL
    losses sum these per answer)."""
    lm = unwrap(model)
    backbone = getattr(lm, lm.base_model_prefix)
    hidden = backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                      use_cache=False).last_hidden_state  # (R, T, C)  # fmt: skip
    targets = batch["labels"][:, 1:]  # (R, T-1)
    keep = targets != IGNORE_INDEX
    logits = lm.get_output_embeddings()(hidden[:, :-1][keep]).float()  # (N, V)
    return -F.cross_entropy(logits, targets[keep], reduction="none"), keep


def lm_loss(model: Any, batch: Batch) -> torch.Tensor:
    """Summed next-token cross-entropy over labeled positions.

    The vocabulary projection runs only on positions that have a target: on chat data
    most tokens are prompt, and a (B, T, 49152) logits tensor is most of the memory.
    """
    lm = unwrap(model)
    backbone = getattr(lm, lm.base_model_prefix)
    inputs = {
        k: v for k, v in batch.items() if k in {"input_ids", "attention_mask", "position_ids"}
    }
    hidden = backbone(**inputs, use_cache=False).last_hidden_state  # (B, T, C)
    targets = batch["labels"][:, 1:]  # (B, T-1): token t+1 is predicted at t
    keep = targets != IGNORE_INDEX
    logits = lm.get_output_embeddings()(hidden[:, :-1][keep])  # (N, V)
    return F.cross_entropy(logits.float(), targets[keep], reduction="sum")


def evaluate_lm(model: Any, batches: Iterable[Batch]) -> dict[str, Any]:
    """Mean token loss and perplexity."""
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            total += float(lm_loss(model, batch))
            count += lm_target_count(batch)
    loss = total / max(count, 1)
    return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "tokens": float(count)}


class CausalLmTask:
    """What the causal-LM tasks (sft, clm) share: the model, batching, loss and metrics.
    Subclasses add ``name``, ``settings``, ``formats`` and ``encode``."""

    label_kind = None
    model_kinds = ("causal-lm",)
    packable = True
    peft_task_type = "CAUSAL_LM"
    head_modules: tuple[str, ...] = ()
    frozen_modules: tuple[str, ...] = ()
    merge_on_save = False
    weights_subfolder = ""
    load_processor = staticmethod(text_tokenizer)

    def configured(self, config: RunConfig) -> CausalLmTask:
        return self  # max_length reaches encode through EncodeOptions

    def build_model(
        self, path: str, *, labels: Sequence[str], dtype: torch.dtype, pretrained: bool = True
    ) -> Any:
        return build_causal_lm(path, dtype, pretrained)

    def collate(self, examples: Sequence[Example], tokenizer: Any, seed: int) -> Batch:
        return collate_lm(examples, tokenizer.pad_token_id)

    def target_count(self, batch: Batch) -> int:
        return lm_target_count(batch)

    def loss(self, model: Any, batch: Batch) -> torch.Tensor:
        return lm_loss(model, batch)

    def evaluate(self, model: Any, batches: Iterable[Batch]) -> dict[str, Any]:
        return evaluate_lm(model, batches)
