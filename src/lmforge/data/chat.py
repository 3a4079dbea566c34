"""Render conversations with a model's own chat template."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lmforge.errors import LmforgeError

Message = dict[str, str]


def has_chat_template(tokenizer: Any) -> bool:
    """True when the tokenizer carries a chat template."""
    return bool(getattr(tokenizer, "chat_template", None))


def render_chat(tokenizer: Any, messages: Sequence[Message], *, model_ref: str = "") -> list[int]:
    """Token ids for ``messages`` in the model's template, ending with the assistant cue.

    Raises:
        LmforgeError: the model has no chat template, or a message is malformed.
    """
    if not has_chat_template(tokenizer):
        raise LmforgeError(
            f"model '{model_ref}' has no chat template, so it cannot chat; use an instruct "
            "model such as smollm2-135m-instruct, or `lmforge generate --raw` for plain text."
        )
    for index, message in enumerate(messages):
        if message.get("role") not in {"system", "user", "assistant"} or not isinstance(
            message.get("content"), str
        ):
            raise LmforgeError(
                f"messages[{index}]: expected {{'role': system|user|assistant, 'content': str}}, "
                f"got {message!r}"
            )
    text = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    # The template already holds the special tokens it needs.
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])
