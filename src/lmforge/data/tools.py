"""Tool calling in plain chat messages: lmforge's default format for models whose chat
template knows no tools (SmolLM2's does not).

The convention is the one Qwen2.5's and Hermes' templates use, so a model tuned on either
reads it: the tool definitions go into the system prompt inside ``<tools></tools>``, one
JSON function per line; the assistant calls a tool with one JSON object per call,
``{"name": ..., "arguments": {...}}``, each inside ``<tool_call></tool_call>``; a tool's
result comes back in a user turn inside ``<tool_response></tool_response>``. Serving
(``serve/api/chat.py``), the ``messages`` training format and the agent all go through
``plain_messages``, so a model is trained on exactly what it is served.

A model whose own template renders tools in this same call convention (Qwen2.5's,
Hermes') gets them in its own shape instead: ``structured_messages`` undoes
``plain_messages`` exactly, and ``data/chat.py`` ``chat_text`` passes the result to the
template with ``tools=`` (see there).
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
RESULT_OPEN, RESULT_CLOSE = "<tool_response>", "</tool_response>"
_CALL = re.compile(re.escape(CALL_OPEN) + r"\s*(.*?)\s*" + re.escape(CALL_CLOSE), re.DOTALL)
_INSTRUCTIONS = (
    "You may call one or more functions to help with the user's request. The functions, "
    "as JSON Schemas, are inside <tools></tools>:\n<tools>\n{tools}\n</tools>\n"
    "To call a function, reply with a JSON object with its name and arguments inside "
    '<tool_call></tool_call> tags:\n<tool_call>\n{{"name": <function-name>, '
    '"arguments": <args-json-object>}}\n</tool_call>'
)


# The block's text before and after its tools (each tool is one JSON line)
_TOOLS_HEAD, _TOOLS_TAIL = _INSTRUCTIONS.format(tools="\0").split("\0")


def tools_prompt(tools: Sequence[dict[str, Any]]) -> str:
    """The system-prompt block that lists ``tools`` (OpenAI ``{"type": "function",
    "function": {...}}`` objects)."""
    lines = "\n".join(json.dumps(tool, ensure_ascii=False) for tool in tools)
    return _INSTRUCTIONS.format(tools=lines)


def call_text(name: str, arguments: dict[str, Any] | str) -> str:
    """One call as the assistant writes it."""
    if isinstance(arguments, str):  # OpenAI sends arguments as a JSON string
        arguments = json.loads(arguments) if arguments.strip() else {}
    body = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"{CALL_OPEN}\n{body}\n{CALL_CLOSE}"


def plain_messages(
    messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] = ()
) -> list[dict[str, str]]:
    """``messages`` with tool calls and tool results written out as text, and ``tools``
    listed in the system prompt (added to the first system message, or as a new one), so
    that any chat template renders them.

    An assistant message's ``tool_calls`` (OpenAI's shape) follow its content; a ``tool``
    message becomes a user turn holding ``<tool_response>``.
    """
    plain: list[dict[str, str]] = []
    for message in messages:
        role, content = message["role"], message.get("content") or ""
        if role == "assistant" and message.get("tool_calls"):
            calls = [call_text(c["function"]["name"], c["function"].get("arguments") or "{}")
                     for c in message["tool_calls"]]  # fmt: skip
            content = "\n".join([content, *calls] if content else calls)
        elif role == "tool":
            role, content = "user", f"{RESULT_OPEN}\n{content}\n{RESULT_CLOSE}"
        plain.append({"role": role, "content": content})
    if tools:
        block = tools_prompt(tools)
        if plain and plain[0]["role"] == "system":
            plain[0] = {"role": "system", "content": f"{plain[0]['content']}\n\n{block}"}
        else:
            plain.insert(0, {"role": "system", "content": block})
    return plain


def structured_messages(
    messages: Sequence[dict[str, str]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The inverse of ``plain_messages``: the conversation with tool calls as assistant
    ``tool_calls`` (arguments as objects, as Hugging Face chat templates take them) and
    tool results as ``tool`` messages, and the tools that the system prompt listed.
    Messages not written by ``plain_messages`` come back unchanged."""
    structured: list[dict[str, Any]] = []
    tools: list[dict[str, Any]] = []
    for message in messages:
        role, content = message["role"], message["content"]
        if role == "system" and _TOOLS_HEAD in content and content.endswith(_TOOLS_TAIL):
            start = content.index(_TOOLS_HEAD)
            listed = content[start + len(_TOOLS_HEAD) : -len(_TOOLS_TAIL)]
            tools = [json.loads(line) for line in listed.split("\n")]
            content = content[:start].removesuffix("\n\n")
            if not content:
                continue
        elif role == "assistant":
            text, calls = parse_calls(content)
            if calls:
                structured.append({"role": role, "content": text, "tool_calls": [
                    {"type": "function", "function": call} for call in calls
                ]})  # fmt: skip
                continue
        elif is_tool_result(message) and content.endswith("\n" + RESULT_CLOSE):
            role, content = "tool", content[len(RESULT_OPEN) + 1 : -len(RESULT_CLOSE) - 1]
        structured.append({"role": role, "content": content})
    return structured, tools


def is_tool_result(message: dict[str, str]) -> bool:
    """Whether a plain message (``plain_messages``) is a tool's result, not the user's words."""
    return message["role"] == "user" and message["content"].startswith(RESULT_OPEN + "\n")


def parse_calls(text: str) -> tuple[str, list[dict[str, Any]]]:
    """The text before the first call and each well-formed call's ``{"name",
    "arguments"}``; a block that is not a JSON object with a name stays in the text."""
    calls = []
    for match in _CALL.finditer(text):
        try:
            call = json.loads(match.group(1))
        except ValueError:
            continue
        if isinstance(call, dict) and isinstance(call.get("name"), str):
            arguments = call.get("arguments", {})
            arguments = arguments if isinstance(arguments, dict) else {}
            calls.append({"name": call["name"], "arguments": arguments})
    if not calls:
        return text, []
    return text[: text.index(CALL_OPEN)].rstrip(), calls


# JSON without free whitespace, as json.dumps and call_text write it (llguidance's JSON
# options): a sampled run of spaces and newlines cannot eat a constrained answer's budget
COMPACT_JSON: dict[str, Any] = {
    "whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "
}  # fmt: skip


# The start of a call as the grammar writes it: its name, then its arguments' JSON
_CALL_HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"arguments"\s*:\s*')


def partial_calls(text: str) -> list[tuple[str, str]]:
    """The calls a growing answer has opened so far, for streaming them as they are
    written: each call's name (once it is complete) and its arguments' JSON text so far
    (the whole object once it has closed). Calls are in the order written; one whose name
    is still being written is not listed yet."""
    calls = []
    for piece in text.split(CALL_OPEN)[1:]:
        head = _CALL_HEAD.match(piece)
        if head is None:
            break
        arguments = piece[head.end() :]
        calls.append((json.loads(f'"{head.group(1)}"'), arguments[: _value_end(arguments)]))
    return calls


def _value_end(text: str) -> int:
    """Where the JSON object or array that ``text`` starts with ends (its length while it
    is still open)."""
    for index, (depth, string, _) in enumerate(json_states(text)):
        if depth == 0 and string is None and text[index] in "}]":
            return index + 1
    return len(text)


def json_position(text: str) -> tuple[int, int | None, bool]:
    """Where a (valid) JSON prefix stands at its end (``json_states``)."""
    states = deque(json_states(text), maxlen=1)
    return states[0] if states else (0, None, False)


def json_states(text: str) -> Iterator[tuple[int, int | None, bool]]:
    """After each character of a (valid) JSON prefix: its open containers' depth, how
    many characters the string it is inside holds so far (None outside strings), and
    whether a value has just been completed (so a closing bracket may follow). Text
    around the JSON (a tool call's tags) leaves it at depth 0."""
    depth, string, escaped, done = 0, None, False, False
    for char in text:
        if string is not None:
            if escaped:
                escaped, string = False, string + 1
            elif char == "\\":
                escaped = True
            elif char == '"':
                string, done = None, True  # a key is done too: a ":" follows, never a "}"
            else:
                string += 1
        elif char == '"':
            string, done = 0, False
        elif char in "{[":
            depth, done = depth + 1, False
        elif char in "}]":
            depth, done = max(depth - 1, 0), True
        elif char in ",:":
            done = False
        elif char.isalnum() or char in ".-+":
            done = True  # a number or literal so far
        yield depth, string, done


def call_schema(tools: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The JSON Schema of one call to any of ``tools``: its name and arguments."""
    options = []
    for tool in tools:
        function = tool["function"]
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        properties = {"name": {"const": function["name"]}, "arguments": parameters}
        options.append({"type": "object", "properties": properties,
                        "required": ["name", "arguments"],
                        "additionalProperties": False})  # fmt: skip
    schema: dict[str, Any] = options[0] if len(options) == 1 else {"anyOf": options}
    return {**schema, "x-guidance": COMPACT_JSON}


def calls_grammar(tools: Sequence[dict[str, Any]], *, parallel: bool, opened: bool = False) -> str:
    """A Lark grammar (llguidance's dialect) for answers that are only tool calls, each to
    one of ``tools`` with arguments valid under its schema; one call unless ``parallel``.
    ``opened``: the first ``<tool_call>`` tag is already written (the model opened it on its
    own under ``tool_choice: auto``), so the grammar starts after it."""
    schema = json.dumps(call_schema(tools))
    call = f'"{CALL_OPEN}\\n" body "\\n{CALL_CLOSE}"'
    first = f'"\\n"? body "\\n{CALL_CLOSE}"' if opened else call
    more = f' ("\\n" {call})*' if parallel else ""
    return f"start: {first}{more}\nbody: %json {schema}\n"
