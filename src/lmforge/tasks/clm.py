"""Continued pretraining on raw text: documents concatenated and cut into blocks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lmforge.config.tasks import ClmSettings
from lmforge.tasks.base import EncodeOptions, EncodeStats, Example
from lmforge.tasks.causal_lm import CausalLmTask


class ClmTask(CausalLmTask):
    """Causal language modeling for domain adaptation (e.g. a company's documents).

    Every document ends with the EOS token; the token stream is concatenated and cut
    into ``task.max_length`` blocks, so no text is thrown away. With
    ``data.packing: true`` documents are instead packed whole (split only when longer
    than a block) and never attend to each other.
    """

    name = "clm"
    settings = ClmSettings
    formats = ClmSettings.formats

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
