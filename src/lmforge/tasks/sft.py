"""Supervised fine-tuning on conversations: loss on the assistant's tokens only."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from lmforge.config import RunConfig
from lmforge.config.tasks import SftSettings
from lmforge.data.chat import chat_text
from lmforge.errors import LmforgeError
from lmforge.tasks.base import (
    IGNORE_INDEX,
    EncodeOptions,
    EncodeStats,
    Example,
    fit_length,
)
from lmforge.tasks.causal_lm import CausalLmTask


def assistant_spans(tokenizer: Any, messages: Sequence[dict]) -> tuple[str, list[tuple[int, int]]]:
    """Render ``messages`` with the chat template; return the text and the character
    spans of every assistant turn (its content and end-of-turn marker, not the role
    header), found by rendering each prefix of the conversation."""
    text = chat_text(tokenizer, messages)
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = chat_text(tokenizer, messages[:index], add_generation_prompt=True)
        through = chat_text(tokenizer, messages[: index + 1])
        if not (text.startswith(before) and text.startswith(through)):
            raise LmforgeError(
                "the model's chat template renders a conversation differently from its "
                "prefixes, so assistant tokens cannot be located; use a model whose template "
                "only appends turns (ChatML, LLaMA-style), or task.train_on_prompt: true."
            )
        spans.append((len(before), len(through)))
    return text, spans


def require_chat_template(tokenizer: Any, task: str) -> None:
    """Raise unless the tokenizer has the chat template that task ``task`` renders with."""
    if not getattr(tokenizer, "chat_template", None):
        raise LmforgeError(
            f"task {task} renders conversations with the tokenizer's chat template, and this "
            "model has none; start from an instruct model (e.g. smollm2-135m-instruct)."
        )


def encode_conversation(
    tokenizer: Any, messages: Sequence[dict], train_on_prompt: bool = False
) -> Example:
    """Token ids and labels for one conversation (prompt tokens get IGNORE_INDEX)."""
    text, spans = assistant_spans(tokenizer, messages)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    labels = []
    for token, (start, end) in zip(encoded["input_ids"], encoded["offset_mapping"], strict=True):
        in_answer = any(start >= lo and end <= hi for lo, hi in spans) and end > start
        labels.append(token if train_on_prompt or in_answer else IGNORE_INDEX)
    return {"input_ids": list(encoded["input_ids"]), "labels": labels}


class SftTask(CausalLmTask):
    """Chat fine-tuning: records in messages (or alpaca) format, rendered by the
    tokenizer's own chat template, which is saved with the output."""

    name = "sft"
    settings = SftSettings
    formats = SftSettings.formats
    train_on_prompt = False  # task.train_on_prompt: the loss on prompt tokens too

    def configured(self, config: RunConfig) -> SftTask:
        assert isinstance(config.task, SftSettings)
        self.train_on_prompt = config.task.train_on_prompt
        return self

    def encode(
        self, records: Iterable[dict], tokenizer: Any, options: EncodeOptions
    ) -> tuple[list[Example], EncodeStats]:
        require_chat_template(tokenizer, self.name)
        stats = EncodeStats()
        examples = []
        for record in records:
            example = encode_conversation(tokenizer, record["messages"], self.train_on_prompt)
            ids = fit_length(example["input_ids"], options, stats)
            if ids is None:
                continue
            labels = example["labels"][: len(ids)]
            if all(label == IGNORE_INDEX for label in labels[1:]):
                stats.dropped_empty += 1  # truncation cut every answer token
                continue
            examples.append({"input_ids": ids, "labels": labels})
        stats.examples = len(examples)
        return examples, stats
