"""Render conversations with a model's own chat template.

Conversations travel through lmforge as plain ``{"role", "content"}`` messages, tool calls
and results written out in lmforge's default format (``data/tools.py``). A template that
renders tools itself, in the same ``<tool_call>`` convention (Qwen2.5's, Hermes'), gets
them back in its own shape (``chat_text``); serving, training and the agent all render
through it, so a model is trained and served on one format.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lmforge.data.tools import CALL_OPEN, RESULT_OPEN, parse_calls, structured_messages
from lmforge.errors import LmforgeError

Message = dict[str, str]

# A conversation that shows whether a template renders tools in lmforge's convention
_PROBE_TOOL = {"type": "function", "function": {
    "name": "lmforge_probe", "description": "lmforge-probe-description",
    "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}},
}}  # fmt: skip
_PROBE = [
    {"role": "user", "content": "probe"},
    {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "lmforge_probe", "arguments": {"x": 1}}}
    ]},
    {"role": "tool", "content": "lmforge-probe-result"},
]  # fmt: skip
_NATIVE: dict[str, bool] = {}  # template text -> whether it renders tools itself


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
    text = chat_text(tokenizer, messages, add_generation_prompt=True)
    # The template already holds the special tokens it needs.
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def chat_text(
    tokenizer: Any, messages: Sequence[Message], *, add_generation_prompt: bool = False
) -> str:
    """``messages`` through the tokenizer's chat template, as text. Tools, tool calls and
    tool results go to a template that renders them itself (``native_tools``) in its own
    shape, and to any other in lmforge's default format."""
    if native_tools(tokenizer):
        structured, tools = structured_messages(messages)
        return str(tokenizer.apply_chat_template(
            structured, tools=tools or None, tokenize=False,
            add_generation_prompt=add_generation_prompt,
        ))  # fmt: skip
    return str(tokenizer.apply_chat_template(
        list(messages), tokenize=False, add_generation_prompt=add_generation_prompt
    ))  # fmt: skip


def native_tools(tokenizer: Any) -> bool:
    """Whether the tokenizer's chat template renders tool definitions, calls and results
    itself, with calls in lmforge's ``<tool_call>`` JSON convention (so parsing and
    constrained decoding stay the same): the template is asked to render a probe
    conversation, once per template."""
    template = getattr(tokenizer, "chat_template", None)
    if not template or "tools" not in str(template) or CALL_OPEN not in str(template):
        return False
    key = str(template)
    if key not in _NATIVE:
        _NATIVE[key] = _renders_probe(tokenizer)
    return _NATIVE[key]


def _renders_probe(tokenizer: Any) -> bool:
    try:
        text = str(tokenizer.apply_chat_template(_PROBE, tools=[_PROBE_TOOL], tokenize=False))
    except Exception:  # a template that fails on tools does not render them
        return False
    call = {"name": "lmforge_probe", "arguments": {"x": 1}}
    result = text.find(RESULT_OPEN)
    return (
        call in parse_calls(text)[1]
        and "lmforge-probe-description" in text
        and result >= 0 and "lmforge-probe-result" in text[result:]
    )  # fmt: skip
