"""Prompt templates: Jinja rendering, files, MLflow's prompt registry, side-by-side eval."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lmforge.cli.main import app
from lmforge.data.bundled import dataset_path
from lmforge.errors import LmforgeError
from lmforge.track.prompts import (
    PromptTemplate,
    list_prompts,
    load_prompt,
    read_template_file,
    register_prompt,
)

runner = CliRunner()
ROLE = "As a professional customer-service agent of {{ company }}, answer briefly."


def test_a_template_renders_a_record_into_system_and_user_messages() -> None:
    template = PromptTemplate.from_text(
        "Question: {{ question }}{% if hint %} (hint: {{ hint }}){% endif %}", system=ROLE
    )
    assert template.variables() == {"question", "hint", "company"}
    messages = template.render({"question": "Refund?", "hint": "", "company": "Brightnest"})
    assert messages == [
        {"role": "system", "content": ROLE.replace("{{ company }}", "Brightnest")},
        {"role": "user", "content": "Question: Refund?"},
    ]


def test_a_missing_variable_is_an_error_naming_it_and_the_record_fields() -> None:
    template = PromptTemplate.from_text("Q: {{ querstion }}", ref="t.jinja")
    with pytest.raises(LmforgeError, match=r"'querstion' is undefined.*fields answer, question"):
        template.render({"question": "q", "answer": "a"})
    with pytest.raises(LmforgeError, match="Jinja syntax error on line 1"):
        PromptTemplate.from_text("{% if %}")


def test_template_files(tmp_path: Path) -> None:
    (tmp_path / "bare.jinja").write_text("{{ question }}")
    assert read_template_file(tmp_path / "bare.jinja").user == "{{ question }}"
    (tmp_path / "role.yaml").write_text(f"system: '{ROLE}'\nuser: '{{{{ question }}}}'\n")
    role = read_template_file(tmp_path / "role.yaml")
    assert role.system == ROLE and role.user == "{{ question }}"
    (tmp_path / "bad.yaml").write_text("system: hi\n")
    with pytest.raises(LmforgeError, match="needs a string key 'user'"):
        read_template_file(tmp_path / "bad.yaml")
    (tmp_path / "x.md").write_text("hi")
    with pytest.raises(LmforgeError, match=r"ends in \.jinja"):
        read_template_file(tmp_path / "x.md")


def test_templates_are_versioned_in_the_registry(home: Path) -> None:
    first = PromptTemplate.from_text("{{ question }}")
    second = PromptTemplate.from_text("Answer: {{ question }}", system=ROLE)
    assert register_prompt("support", first, "bare") == 1
    assert register_prompt("support", second, "role prompt") == 2
    assert load_prompt("support/1").user == "{{ question }}"
    newest = load_prompt("support")
    assert newest.system == ROLE and newest.ref == "prompt:support/2"
    assert list_prompts() == [{"name": "support", "version": 2, "aliases": [],
                               "variables": ["company", "question"]}]  # fmt: skip
    with pytest.raises(LmforgeError, match="no prompt template 'nope'"):
        load_prompt("nope")
    with pytest.raises(LmforgeError, match="invalid prompt name"):
        register_prompt("a/b", first)


def test_prompts_eval_scores_templates_side_by_side(
    home: Path, tmp_path: Path, tiny_causal_lm: Path
) -> None:
    (tmp_path / "bare.jinja").write_text("{{ question }}")
    (tmp_path / "role.yaml").write_text(
        "system: As a professional customer-service agent, answer in one sentence.\n"
        "user: '{{ question }}'\n"
    )
    created = runner.invoke(app, ["prompts", "create", "role", str(tmp_path / "role.yaml")])
    assert created.exit_code == 0 and "prompt role version 1" in created.stdout
    data = dataset_path("customer_service", "test_questions")
    result = runner.invoke(app, ["prompts", "eval", str(tmp_path / "bare.jinja"), "role",
                                 "--model", str(tiny_causal_lm), "--data", str(data),
                                 "--max-examples", "3", "--max-tokens", "4", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["template"] for row in rows] == [str(tmp_path / "bare.jinja"), "prompt:role/1"]
    assert rows[0]["vs_first"] == []
    assert [d["metric"] for d in rows[1]["vs_first"]] == list(rows[0]["metrics"])
    assert all(d["paired"] for d in rows[1]["vs_first"])
    from lmforge.track import get_client

    runs = get_client().search_runs([get_client().get_experiment_by_name("prompts").experiment_id])
    assert sorted(r.data.tags["lmforge.prompt"] for r in runs) == sorted(
        [str(tmp_path / "bare.jinja"), "prompt:role/1"]
    )
    listed = runner.invoke(app, ["prompts", "list", "--json"])
    assert json.loads(listed.stdout)[0]["name"] == "role"
    one = runner.invoke(app, ["prompts", "eval", "role", "--model", "x", "--data", str(data)])
    assert one.exit_code == 2 and "at least two templates" in one.output
