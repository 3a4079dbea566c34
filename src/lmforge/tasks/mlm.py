"""BERT-style masked-LM pretraining for encoders (domain-adaptive pretraining)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AutoModelForMaskedLM

from lmforge.config import RunConfig
from lmforge.config.tasks import MlmSettings
from lmforge.runtime.modules import unwrap
from lmforge.tasks.base import (
    IGNORE_INDEX,
    Batch,
    EncodeOptions,
    EncodeStats,
    Example,
    fit_length,
    load_weights,
    pad,
    text_tokenizer,
)

MASK_PROBABILITY = 0.15


def mask_tokens(
    input_ids: torch.Tensor,
    special: torch.Tensor,
    tokenizer: Any,
    generator: torch.Generator,
    probability: float = MASK_PROBABILITY,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick ``probability`` of the non-special tokens as targets; of those, 80% become
    [MASK], 10% a random token and 10% stay as they are. Returns (inputs, labels)."""
    chosen = (torch.rand(input_ids.shape, generator=generator) < probability) & ~special
    labels = torch.where(chosen, input_ids, IGNORE_INDEX)
    roll = torch.rand(input_ids.shape, generator=generator)
    inputs = input_ids.clone()
    inputs[chosen & (roll < 0.8)] = tokenizer.mask_token_id
    randomize = chosen & (roll >= 0.8) & (roll < 0.9)
    random_ids = torch.randint(len(tokenizer), input_ids.shape, generator=generator)
    inputs[randomize] = random_ids[randomize]
    return inputs, labels


class MlmTask:
    """Masked language modeling: 15% of tokens are targets (80/10/10 mask/random/keep).

    Masking happens when a batch is built, from a seed the loop derives from the run
    seed and the step, so a resumed run masks exactly as an uninterrupted one.
    """

    name = "mlm"
    settings = MlmSettings
    formats = MlmSettings.formats
    label_kind = None
    model_kinds = ("encoder",)
    peft_task_type = None
    head_modules: tuple[str, ...] = ("cls",)
    frozen_modules: tuple[str, ...] = ()
    merge_on_save = False
    weights_subfolder = ""
    load_processor = staticmethod(text_tokenizer)
    packable = MlmSettings.packable
    probability = MASK_PROBABILITY

    def configured(self, config: RunConfig) -> MlmTask:
        assert isinstance(config.task, MlmSettings)
        self.probability = config.task.mlm_probability
        return self

    def build_model(
        self, path: str, *, labels: Sequence[str], dtype: torch.dtype, pretrained: bool = True
    ) -> Any:
        return load_weights(AutoModelForMaskedLM, path, dtype=dtype, pretrained=pretrained)

    def encode(
        self, records: Iterable[dict], tokenizer: Any, options: EncodeOptions
    ) -> tuple[list[Example], EncodeStats]:
        stats = EncodeStats()
        examples = []
        for record in records:
            ids = fit_length(list(tokenizer(record["text"])["input_ids"]), options, stats)
            if ids is not None:
                examples.append({"input_ids": ids})
        stats.examples = len(examples)
        return examples, stats

    def collate(self, examples: Sequence[Example], tokenizer: Any, seed: int) -> Batch:
        input_ids = pad([ex["input_ids"] for ex in examples], tokenizer.pad_token_id)
        attention_mask = pad([[1] * len(ex["input_ids"]) for ex in examples], 0)
        special = torch.tensor(
            [
                tokenizer.get_special_tokens_mask(row, already_has_special_tokens=True)
                for row in input_ids.tolist()
            ],
            dtype=torch.bool,
        ) | (attention_mask == 0)
        generator = torch.Generator().manual_seed(seed)
        inputs, labels = mask_tokens(input_ids, special, tokenizer, generator, self.probability)
        return {"input_ids": inputs, "attention_mask": attention_mask, "labels": labels}

    def target_count(self, batch: Batch) -> int:
        return int((batch["labels"] != IGNORE_INDEX).sum())

    def loss(self, model: Any, batch: Batch) -> torch.Tensor:
        logits, labels = self._masked_logits(model, batch)
        return F.cross_entropy(logits.float(), labels, reduction="sum")

    def _masked_logits(self, model: Any, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        lm = unwrap(model)
        keep = batch["labels"] != IGNORE_INDEX
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        if hasattr(lm, "cls"):  # BERT-style: run the MLM head only on masked positions
            hidden = getattr(lm, lm.base_model_prefix)(**inputs).last_hidden_state  # (B, T, C)
            return lm.cls(hidden[keep]), batch["labels"][keep]  # (N, V), (N,)
        return model(**inputs).logits[keep], batch["labels"][keep]

    def evaluate(self, model: Any, batches: Iterable[Batch]) -> dict[str, Any]:
        total, correct, count = 0.0, 0, 0
        with torch.no_grad():
            for batch in batches:
                logits, labels = self._masked_logits(model, batch)
                total += float(F.cross_entropy(logits.float(), labels, reduction="sum"))
                correct += int((logits.argmax(-1) == labels).sum())
                count += len(labels)
        loss = total / max(count, 1)
        return {
            "loss": loss,
            "perplexity": math.exp(min(loss, 50.0)),
            "masked_accuracy": correct / max(count, 1),
        }
