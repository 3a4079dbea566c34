"""Continued pretraining on raw text: documents concatenated and cut into blocks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

from lmforge.tasks.base import Batch, EncodeOptions, EncodeStats, Example, register_task
from lmforge.tasks.causal_lm import (
    build_causal_lm,
    collate_lm,
    evaluate_lm,
    lm_loss,
    lm_target_count,
)


class ClmTask:
    """Causal language modeling for domain adaptation (e.g. a company's documents).

    Every document ends with the EOS token; the token stream is concatenated and cut
    into ``task.max_length`` blocks, so no text is thrown away. With
    ``data.packing: true`` documents are instead packed whole (split only when longer
    than a block) and never attend to each other.
    """

    name = "clm"
    formats = ("text",)
    label_kind = None
    model_kinds = ("causal-lm",)
    peft_task_type = "CAUSAL_LM"
    head_modules: tuple[str, ...] = ()
    packable = True

    def build_model(
        self, path: str, *, labels: Sequence[str], dtype: torch.dtype, pretrained: bool = True
    ) -> Any:
        return build_causal_lm(path, dtype, pretrained)

    def encode(
        self, records: Iterable[dict], tokenizer: Any, options: EncodeOptions
    ) -> tuple[list[Example], EncodeStats]:
        size = options.max_length
        documents = [
            [
                *tokenizer(record["text"], add_special_tokens=False)["input_ids"],
                tokenizer.eos_token_id,
            ]
            for record in records
        ]
        if not options.packing:
            stream = [token for document in documents for token in document]
            blocks = [stream[i : i + size] for i in range(0, len(stream), size)]
        else:
            blocks = [doc[i : i + size] for doc in documents for i in range(0, len(doc), size)]
        examples = [{"input_ids": b, "labels": list(b)} for b in blocks if len(b) > 1]
        return examples, EncodeStats(examples=len(examples))

    def collate(self, examples: Sequence[Example], tokenizer: Any, seed: int) -> Batch:
        return collate_lm(examples, tokenizer.pad_token_id)

    def target_count(self, batch: Batch) -> int:
        return lm_target_count(batch)

    def loss(self, model: Any, batch: Batch) -> torch.Tensor:
        return lm_loss(model, batch)

    def evaluate(self, model: Any, batches: Iterable[Batch]) -> dict[str, Any]:
        return evaluate_lm(model, batches)


register_task("clm", ClmTask)
