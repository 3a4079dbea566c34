"""Tool calling's text format (data/tools.py) and its grammar; the served API is tested in
tests/test_serve.py (test_tool_*)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmforge.data.tools import (
    CALL_OPEN,
    call_text,
    calls_grammar,
    parse_calls,
    plain_messages,
    tools_prompt,
)

LOOKUP = {"type": "function", "function": {
    "name": "lookup_order", "description": "An order's status",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}},
                   "required": ["order_id"]}}}  # fmt: skip


def test_calls_and_results_become_plain_turns_with_the_tools_in_the_system_prompt() -> None:
    messages = [
        {"role": "system", "content": "You are Nessa."},
        {"role": "user", "content": "Where is BN-1042?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "lookup_order", "arguments": '{"order_id": "BN-1042"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"status": "shipped"}'},
    ]  # fmt: skip
    plain = plain_messages(messages, [LOOKUP])
    assert [m["role"] for m in plain] == ["system", "user", "assistant", "user"]
    assert plain[0]["content"].startswith("You are Nessa.\n\n")
    assert tools_prompt([LOOKUP]) in plain[0]["content"] and json.dumps(LOOKUP) in plain[0][
        "content"]  # fmt: skip
    assert plain[2]["content"] == call_text("lookup_order", {"order_id": "BN-1042"})
    assert plain[3]["content"] == '<tool_response>\n{"status": "shipped"}\n</tool_response>'
    assert plain_messages(plain) == plain  # plain turns stay as they are
    assert plain_messages(messages[1:], [LOOKUP])[0]["role"] == "system"  # a new one


def test_parse_calls_keeps_text_and_skips_broken_blocks() -> None:
    text = ("Let me check.\n" + call_text("lookup_order", {"order_id": "BN-1"}) + "\n"
            + CALL_OPEN + "\nnot json\n</tool_call>")  # fmt: skip
    before, calls = parse_calls(text)
    assert before == "Let me check."
    assert calls == [{"name": "lookup_order", "arguments": {"order_id": "BN-1"}}]
    assert parse_calls("no calls here") == ("no calls here", [])


def test_the_calls_grammar_accepts_exactly_well_formed_calls() -> None:
    from llguidance import LLMatcher
    from llguidance.hf import from_tokenizer

    from lmforge.hub import zoo_tokenizer

    tokenizer = zoo_tokenizer("smollm2-135m-instruct")
    llg = from_tokenizer(tokenizer)

    def accepts(grammar: str, text: str) -> bool:
        matcher = LLMatcher(llg, LLMatcher.grammar_from_lark(grammar))
        assert not matcher.is_error(), matcher.get_error()
        ok = matcher.consume_tokens(tokenizer(text, add_special_tokens=False)["input_ids"])
        return ok and matcher.is_accepting()

    one = call_text("lookup_order", {"order_id": "BN-1"})
    assert accepts(calls_grammar([LOOKUP], parallel=False), one)
    assert not accepts(calls_grammar([LOOKUP], parallel=False), one + "\n" + one)
    assert accepts(calls_grammar([LOOKUP], parallel=True), one + "\n" + one)
    assert not accepts(calls_grammar([LOOKUP], parallel=True),
                       call_text("lookup_order", {"id": "BN-1"}))  # fmt: skip
    assert not accepts(calls_grammar([LOOKUP], parallel=True),
                       call_text("start_return", {"order_id": "BN-1"}))  # fmt: skip
    opened = calls_grammar([LOOKUP], parallel=False, opened=True)
    assert accepts(opened, one[len(CALL_OPEN) :])


def test_the_messages_training_format_reads_calls_results_and_tools(tmp_path) -> None:
    from lmforge.data.records import read_records
    from lmforge.errors import LmforgeError
    from tests.datafiles import write_jsonl

    dialog = [
        {"role": "user", "content": "Where is BN-1042?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "lookup_order", "arguments": {"order_id": "BN-1042"}}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "shipped"},
        {"role": "assistant", "content": "It shipped."},
    ]  # fmt: skip
    path = write_jsonl(tmp_path / "dialogs.jsonl", [{"messages": dialog, "tools": [LOOKUP]}])
    records, _ = read_records(path, format="messages")
    assert records[0]["messages"] == plain_messages(dialog, [LOOKUP])  # served the same way
    broken = write_jsonl(tmp_path / "broken.jsonl", [{"messages": dialog, "tools": ["x"]}])
    try:
        read_records(broken, format="messages")
    except LmforgeError as error:
        assert "field 'tools': expected a list of {'type': 'function'" in str(error)
    else:
        raise AssertionError("a malformed tools column must be refused")


def test_partial_calls_follow_a_growing_answer() -> None:
    from lmforge.data.tools import partial_calls

    text = 'Let me check. <tool_call>\n{"name": "lookup_order", "arguments": {"id": "a}\\"'
    assert partial_calls(text[: text.index('"name"') + 10]) == []  # the name is not complete
    assert partial_calls(text) == [("lookup_order", '{"id": "a}\\"')]
    done = text + '"}}\n</tool_call>\n<tool_call>\n{"name": "escalate", "arguments": {'
    assert partial_calls(done) == [("lookup_order", '{"id": "a}\\""}'), ("escalate", "{")]


DIALOG = [
    {"role": "system", "content": "You are Nessa."},
    {"role": "user", "content": "Where is BN-1042?"},
    {"role": "assistant", "content": "Let me look.", "tool_calls": [
        {"id": "c1", "type": "function",
         "function": {"name": "lookup_order", "arguments": {"order_id": "BN-1042"}}}]},
    {"role": "tool", "tool_call_id": "c1", "content": '{"status": "shipped"}'},
    {"role": "assistant", "content": "It shipped."},
]  # fmt: skip


def test_structured_messages_undo_plain_messages() -> None:
    from lmforge.data.tools import structured_messages

    plain = plain_messages(DIALOG, [LOOKUP])
    structured, tools = structured_messages(plain)
    assert tools == [LOOKUP]
    assert structured[0] == {"role": "system", "content": "You are Nessa."}
    assert structured[2] == {"role": "assistant", "content": "Let me look.", "tool_calls": [
        {"type": "function", "function": {"name": "lookup_order",
                                          "arguments": {"order_id": "BN-1042"}}}]}  # fmt: skip
    assert structured[3] == {"role": "tool", "content": '{"status": "shipped"}'}
    assert plain_messages(structured, tools) == plain  # the round trip is exact
    alone, tools = structured_messages(plain_messages(DIALOG[1:], [LOOKUP]))
    assert alone[0]["role"] == "user" and tools == [LOOKUP]  # the added system turn goes
    untouched = [{"role": "user", "content": "<tool_response> is a tag"}]
    assert structured_messages(untouched) == (untouched, [])


@pytest.fixture(scope="module")
def native(tiny_causal_lm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.models import with_native_tools_template

    return with_native_tools_template(tiny_causal_lm, tmp_path_factory.mktemp("m") / "native")


def test_a_template_that_renders_tools_gets_them_in_its_own_shape(
    native: Path, tiny_causal_lm: Path
) -> None:
    from transformers import AutoTokenizer

    from lmforge.data.chat import chat_text, native_tools

    plain = plain_messages(DIALOG, [LOOKUP])
    tokenizer = AutoTokenizer.from_pretrained(native)
    assert native_tools(tokenizer)
    text = chat_text(tokenizer, plain)
    assert "# Tools" in text and json.dumps(LOOKUP) in text  # the template's own header
    assert "You may call one or more functions" not in text  # not lmforge's block
    assert '<|im_start|>assistant\nLet me look.\n<tool_call>\n{"name": "lookup_order"' in text
    smollm = AutoTokenizer.from_pretrained(tiny_causal_lm)  # SmolLM2's template: no tools
    assert not native_tools(smollm)
    assert "You may call one or more functions" in chat_text(smollm, plain)
    # A template that names tools and <tool_call> but drops the calls is not native
    tokenizer.chat_template = (
        "{# tools, <tool_call> #}{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
    )
    assert not native_tools(tokenizer)
    assert "You may call one or more functions" in chat_text(tokenizer, plain)


def test_sft_trains_on_the_calls_as_a_native_template_writes_them(native: Path) -> None:
    from transformers import AutoTokenizer

    from lmforge.tasks.base import IGNORE_INDEX
    from lmforge.tasks.sft import encode_conversation

    tokenizer = AutoTokenizer.from_pretrained(native)
    example = encode_conversation(tokenizer, plain_messages(DIALOG, [LOOKUP]))
    learned = [t for t, label in zip(example["input_ids"], example["labels"], strict=True)
               if label != IGNORE_INDEX]  # fmt: skip
    assert tokenizer.decode(learned) == (
        'Let me look.\n<tool_call>\n{"name": "lookup_order", "arguments": {"order_id": '
        '"BN-1042"}}\n</tool_call><|im_end|>\nIt shipped.<|im_end|>\n'
    )
    assert "# Tools" in tokenizer.decode(example["input_ids"])
