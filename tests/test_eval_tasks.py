"""The evaluation-task registry: a task registered from a script or an installed package's
``lmforge.eval_tasks`` entry point is evaluated end to end (``evaluate_model``, ``lmforge
eval``), listed in ``--help`` and the docs' table; unknown names list the valid ones. The
plugin is a real distribution on ``sys.path`` (a ``.dist-info`` folder with
``entry_points.txt``), found by ``importlib.metadata`` exactly as an installed one is."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from lmforge.cli.main import app
from lmforge.errors import LmforgeError
from lmforge.evaluate import EvalTask, eval_task, eval_task_names, evaluate_model, tasks
from lmforge.evaluate.runner import read_eval_data
from tests.datafiles import install_distribution, write_jsonl

runner = CliRunner()
BUILT_IN = (
    "perplexity, qa, generation, classification, regression, code, safety, image-retrieval, "
    "zero-shot, image-generation, tabular-classification, rul, agent"
)


def _contains_expected(
    records: list[dict[str, Any]], prompts: list[list[dict[str, str]]], answers: list[str]
) -> list[dict[str, Any]]:
    return [{"id": record["id"], "prompt": prompt[-1]["content"], "prediction": answer,
             "contains": float(record["expected"].lower() in answer.lower())}
            for record, prompt, answer in zip(records, prompts, answers, strict=True)]  # fmt: skip


def _one_word(record: dict[str, Any]) -> str | None:
    return None if len(record["expected"].split()) == 1 else "'expected' must be one word"


CONTAINS = EvalTask(
    "contains", "Whether the answer contains the expected word.", ("contains",),
    fields=("prompt", "expected"), question=lambda record: f"Say {record['prompt']}",
    score=_contains_expected, check=_one_word,
)  # fmt: skip

PLUGIN = """
from lmforge.evaluate import EvalTask


def _lengths(ref, records, progress):
    return [{"id": r["id"], "chars": float(len(r["text"]))} for r in records]


TASK = EvalTask("text-length", "Characters per text (no model).", ("chars",),
                fields=("text",), predict=_lengths)
NOT_A_TASK = "length"
"""


def _help(*command: str) -> str:
    """A command's --help as one line of words (no box borders, no wrapping)."""
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return re.sub(r"[\s│]+", " ", result.stdout)


@pytest.fixture
def length_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The distribution ``lmforge-length`` with the entry point ``length`` (and a broken
    one, ``bad``), on sys.path for this test only."""
    site = install_distribution(
        tmp_path / "site",
        "lmforge_length",
        PLUGIN,
        "[lmforge.eval_tasks]\nlength = lmforge_length:TASK\n",
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(tasks, "_REGISTRY", dict(tasks._REGISTRY))
    monkeypatch.setattr(tasks, "_plugins_loaded", False)
    yield
    sys.modules.pop("lmforge_length", None)


def test_a_registered_task_is_evaluated_end_to_end_on_a_tiny_model(
    home: Path, tiny_causal_lm: Path, tmp_path: Path
) -> None:
    from lmforge.track import get_client

    tasks.register_eval_task(CONTAINS)
    rows = [{"prompt": f"item {i}", "expected": "item"} for i in range(3)]
    data = write_jsonl(tmp_path / "contains.jsonl", rows)
    result = evaluate_model(str(tiny_causal_lm), data, "contains", max_tokens=4,
                            system="Be brief.")  # fmt: skip
    assert [row["prompt"] for row in result.examples] == ["Say item 0", "Say item 1", "Say item 2"]
    scores = [row["contains"] for row in result.examples]
    assert result.metrics == {"contains": pytest.approx(sum(scores) / 3)}
    assert set(result.intervals) == {"contains"}
    run = get_client().get_run(result.run_id)
    assert run.data.tags["lmforge.eval.task"] == "contains"
    assert "examples.jsonl" in [a.path for a in get_client().list_artifacts(result.run_id)]

    cli = runner.invoke(app, ["eval", str(tiny_causal_lm), "--data", str(data), "--task",
                              "contains", "--max-tokens", "4", "--no-track", "--json"])  # fmt: skip
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.stdout)["metrics"] == result.metrics  # greedy: the same answers
    listed = BUILT_IN.replace(", agent", ", agent or contains")
    assert f"{listed}." in _help("eval", "model")
    assert "qa, generation, code, safety or contains. [default: qa]" in _help("prompts", "eval")


def test_a_tasks_own_record_check_names_the_line(tmp_path: Path) -> None:
    tasks.register_eval_task(CONTAINS)
    data = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "p", "expected": "two words"}])
    with pytest.raises(LmforgeError, match=r"bad.jsonl:1: 'expected' must be one word"):
        read_eval_data(data, "contains")
    write_jsonl(data, [{"prompt": "p"}])
    with pytest.raises(LmforgeError, match=r"bad.jsonl:1: the contains task needs non-empty "
                       r"string fields prompt, expected$"):  # fmt: skip
        read_eval_data(data, "contains")


def test_a_plugin_task_is_listed_and_evaluated(length_plugin: None, tmp_path: Path) -> None:
    assert eval_task_names() == (*BUILT_IN.split(", "), "length")
    assert eval_task("length").description == "Characters per text (no model)."
    data = write_jsonl(tmp_path / "texts.jsonl", [{"text": "abcd"}, {"text": "ab"}])
    result = runner.invoke(app, ["eval", "no-model-needed", "--data", str(data), "--task",
                                 "length", "--no-track", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metrics"] == {"chars": 3.0}
    assert "| `length` | Characters per text (no model). | `text` | chars | - | no |" in (
        tasks.markdown_table()
    )
    assert "tabular-classification, rul, agent or length." in _help("eval", "model")


def test_an_unknown_task_names_the_field_and_lists_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(LmforgeError) as info:
        eval_task("qna")
    assert str(info.value) == (
        f"task: unknown task 'qna' (did you mean 'qa'?); choose one of {BUILT_IN}"
    )

    data = write_jsonl(tmp_path / "q.jsonl", [{"question": "q", "answer": "a"}])
    result = runner.invoke(app, ["eval", "m", "--data", str(data), "--task", "clasification"])
    assert result.exit_code == 2
    assert " ".join(result.stderr.split()) == (
        "error: task: unknown task 'clasification' (did you mean 'classification'?); choose "
        f"one of {BUILT_IN}"
    )


def test_a_task_that_asks_nothing_takes_no_template_or_knowledge_base(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "t.jsonl", [{"text": "t"}])
    result = runner.invoke(app, ["prompts", "eval", "a.jinja", "b.jinja", "--model", "m",
                                 "--data", str(data), "--task", "perplexity"])  # fmt: skip
    assert result.exit_code == 2
    assert " ".join(result.stderr.split()) == (
        "error: --task 'perplexity': templates shape the questions of the tasks that ask the "
        "model one: qa, generation, code, safety"
    )
    with pytest.raises(
        LmforgeError,
        match=r"^kb: the regression task reads no passages; a "
        r"knowledge base grounds qa and generation answers \(leave kb unset\)$",
    ):
        evaluate_model("m", data, "regression", kb="any")


def test_a_task_must_say_how_it_is_scored() -> None:
    with pytest.raises(LmforgeError, match=r"evaluation task 'half': give question and score "
                       r"\(the model answers each record's question\), predict"):  # fmt: skip
        EvalTask("half", "Asks but never scores.", ("m",), question=lambda record: "q")
    with pytest.raises(LmforgeError, match="metrics is empty"):
        EvalTask("none", "Scores nothing.", (), predict=lambda ref, records, progress: [])


def test_a_plugin_that_does_not_load_or_is_no_task_is_named(
    length_plugin: None, tmp_path: Path
) -> None:
    info = tmp_path / "site" / "lmforge_length-0.1.dist-info" / "entry_points.txt"
    info.write_text("[lmforge.eval_tasks]\nbroken = lmforge_missing:TASK\n")
    with pytest.raises(LmforgeError, match=r"entry point broken = lmforge_missing:TASK of "
                       r"lmforge-length does not load \(ModuleNotFoundError"):  # fmt: skip
        eval_task("broken")
    info.write_text("[lmforge.eval_tasks]\nbad = lmforge_length:NOT_A_TASK\n")
    with pytest.raises(LmforgeError, match=r"entry point bad names 'length'; make it name an "
                       r"lmforge.evaluate.tasks.EvalTask"):  # fmt: skip
        eval_task("bad")


def test_the_docs_eval_task_table_is_the_registrys() -> None:
    """docs/evaluate.md's task table is derived from the registry, not written again."""
    docs = (Path(__file__).parents[1] / "docs" / "evaluate.md").read_text()
    start = docs.index("<!-- eval tasks table: generated from the registry")
    table = docs[docs.index("\n", start) + 1 : docs.index("<!-- end eval tasks table -->")].strip()
    assert table == tasks.markdown_table(), "regenerate it: see tasks.markdown_table's docstring"
