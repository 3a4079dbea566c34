"""The CLI front door, driven through Typer's runner on tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lmforge.cli.main import app

runner = CliRunner()


def test_help_lists_the_command_groups() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("models", "generate", "chat", "config", "runs", "ui", "quickstart"):
        assert command in result.stdout


def test_generate_json_is_reproducible_with_a_seed(tiny_causal_lm: Path) -> None:
    args = ["generate", str(tiny_causal_lm), "Hello there", "--seed", "11", "--max-tokens", "6"]
    first = runner.invoke(app, [*args, "--json"])
    second = runner.invoke(app, [*args, "--json"])
    assert first.exit_code == 0, first.output
    payload = json.loads(first.stdout)
    assert payload == {
        **json.loads(second.stdout),
        "seconds": payload["seconds"],
        "tokens_per_second": payload["tokens_per_second"],
    }
    usage = payload["usage"]
    assert usage["completion_tokens"] <= 6
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert payload["finish_reason"] in {"stop", "length"}


def test_generate_streams_the_same_text_as_json(tiny_causal_lm: Path) -> None:
    args = ["generate", str(tiny_causal_lm), "Hi", "--temperature", "0", "--max-tokens", "5"]
    streamed = runner.invoke(app, args)
    as_json = runner.invoke(app, [*args, "--json"])
    assert streamed.exit_code == 0, streamed.output
    assert streamed.stdout == json.loads(as_json.stdout)["text"] + "\n"


def test_generate_unknown_model_exits_2_with_the_fix() -> None:
    result = runner.invoke(app, ["generate", "no-such-model", "hi"])
    assert result.exit_code == 2
    assert "unknown model reference 'no-such-model'" in result.stderr
    assert "lmforge models list" in result.stderr


def test_generate_bad_option_names_it(tiny_causal_lm: Path) -> None:
    result = runner.invoke(app, ["generate", str(tiny_causal_lm), "hi", "--top-p", "0"])
    assert result.exit_code == 2
    assert "top_p must be in (0, 1]" in result.stderr


@pytest.mark.parametrize("prompt", ["", "  \n"])
def test_generate_refuses_an_empty_prompt_with_the_fix(tiny_causal_lm: Path, prompt: str) -> None:
    result = runner.invoke(app, ["generate", str(tiny_causal_lm), prompt, "--max-tokens", "3"])
    assert result.exit_code == 2, result.output
    assert "prompt: empty" in result.stderr
    assert "pass the text to continue" in result.stderr
    assert result.stdout == ""  # nothing was generated


def test_generate_refuses_an_empty_standard_input(tiny_causal_lm: Path) -> None:
    result = runner.invoke(app, ["generate", str(tiny_causal_lm), "-"], input="")
    assert result.exit_code == 2, result.output
    assert "prompt: standard input ('-') was empty" in result.stderr


def test_a_missing_alias_names_the_command_that_sets_it(home: Path, tmp_path: Path) -> None:
    from lmforge.track.registry import register_model

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "llama"}')
    register_model(model, "support-bot")
    promote = "lmforge registry promote support-bot/VERSION --alias production"
    for command in (["lineage", "support-bot@production"], ["rollback", "support-bot"]):
        result = runner.invoke(app, ["registry", *command])
        assert result.exit_code == 2, result.output
        assert "has no aliases yet" in result.stderr
        assert promote in result.stderr
    # The command it names works as written, with a version filled in.
    promoted = runner.invoke(app, promote.replace("VERSION", "1").split()[1:])
    assert promoted.exit_code == 0, promoted.output
    shown = runner.invoke(app, ["registry", "show", "support-bot@production", "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["version"] == 1


def test_chat_reads_one_message_per_line_and_handles_commands(
    tiny_causal_lm: Path, tmp_path: Path
) -> None:
    saved = tmp_path / "conversation.json"
    script = f"Hello\n\n/system You are terse.\nFirst question\nSecond question\n/save {saved}\n"
    result = runner.invoke(
        app,
        ["chat", str(tiny_causal_lm), "--max-tokens", "4", "--temperature", "0"],
        input=script,
    )
    assert result.exit_code == 0, result.output
    assert "system prompt set; conversation reset" in result.stderr
    messages = json.loads(saved.read_text())["messages"]
    # /system reset the history: only the two questions after it remain.
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant"]
    assert messages[0]["content"] == "You are terse."
    assert messages[1]["content"] == "First question"
    # One answer line per user message (3), each printed as the model produced it.
    answers = [messages[2]["content"], messages[4]["content"]]
    assert result.stdout.endswith(f"{answers[0]}\n{answers[1]}\n")


def test_models_list_shows_the_zoo(tiny_causal_lm: Path) -> None:
    result = runner.invoke(app, ["models", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["ref"]: row for row in json.loads(result.stdout)}
    assert rows["all-minilm-l6-v2"]["kind"] == "encoder"
    assert rows["all-minilm-l6-v2"]["parameters"] == 22_713_728
    assert rows["smollm2-135m-instruct"]["kind"] == "causal-lm"


def test_models_show_describes_a_local_model(tiny_causal_lm: Path) -> None:
    result = runner.invoke(app, ["models", "show", str(tiny_causal_lm), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["kind"] == "causal-lm"
    assert info["architecture"] == "LlamaForCausalLM"
    assert info["chat_template"] is True
    assert info["size_bytes"] > 0
