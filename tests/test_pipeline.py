"""lmforge.pipeline: checking, running, caching and resuming pipelines on a tiny model,
with the registry's gates, lineage, model cards and rollback."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import socket
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from lmforge.cli.main import app
from lmforge.data.bundled import dataset_path
from lmforge.errors import LmforgeError
from lmforge.pipeline.load import load_pipeline
from lmforge.pipeline.runner import run_pipeline, state_path
from lmforge.pipeline.spec import PipelineError
from lmforge.track import get_alias, get_client
from lmforge.track.registry import alias_history, lineage

runner = CliRunner()


def write_pipeline(
    folder: Path,
    model: Path,
    *,
    min_records: int = 1,
    margin: float = 0.0,
    seed: int = 42,
    privacy: dict[str, Any] | None = None,
    max_epsilon: float | None = None,
) -> Path:
    """A data -> train -> eval -> register (gated) -> deploy pipeline on a tiny model."""
    gate: dict[str, Any] = {"alias": "production", "metrics": {"token_f1": margin}}
    if max_epsilon is not None:
        gate["max_epsilon"] = max_epsilon
    data = folder / "dialogs.jsonl"
    if not data.exists():
        shutil.copy(dataset_path("customer_service", "train"), data)
    spec = {
        "name": "tiny",
        "steps": [
            {"name": "data", "type": "data",
             "with": {"files": ["dialogs.jsonl"], "min_records": min_records}},
            {"name": "train", "type": "train", "needs": ["data"], "with": {"run": {
                "model": {"ref": str(model)}, "task": {"name": "sft", "max_length": 256},
                "data": {"train": "${{ steps.data.outputs.files.0 }}", "max_samples": 8},
                "method": {"name": "lora", "lora_r": 4},
                "train": {"max_steps": 1, "batch_size": 4, "seed": seed},
                **({"privacy": privacy} if privacy else {})}}},
            {"name": "eval", "type": "eval", "with": {
                "model": "${{ steps.train.outputs.model }}",
                "data": "bundled:customer_service/test_questions", "task": "qa",
                "max_examples": 2, "max_tokens": 2}},
            {"name": "register", "type": "register", "with": {
                "model": "${{ steps.train.outputs.model }}", "name": "tiny-bot",
                "metrics": "${{ steps.eval.outputs.metrics }}", "eval_step": "eval",
                "gate": gate}},
            {"name": "deploy", "type": "deploy", "with": {
                "model": "registry:tiny-bot@production", "served_name": "tiny"}},
        ],
    }  # fmt: skip
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def statuses(result: object) -> dict[str, str]:
    return {record.name: record.status for record in result.steps}  # type: ignore[attr-defined]


# --- checking -----------------------------------------------------------------------------


def test_a_bad_pipeline_lists_every_problem_before_anything_runs(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"name": "bad", "steps": [
        {"name": "a", "type": "data", "with": {"files": ["missing.jsonl"]}},
        {"name": "a", "type": "fit"},
        {"name": "b", "type": "eval", "needs": ["ghost"],
         "with": {"model": "x", "data": "missing.jsonl", "task": "qa"}},
    ]}))  # fmt: skip
    with pytest.raises(PipelineError) as error:
        load_pipeline(tmp_path / "p.yaml")
    message = str(error.value)
    assert "step name 'a' is used 2 times" in message
    assert "unknown step type 'fit'; the types are compress, data, deploy" in message
    assert "steps[2] (b).needs: no step named 'ghost'" in message

    (tmp_path / "q.yaml").write_text(yaml.safe_dump({"name": "bad", "steps": [
        {"name": "data", "type": "data", "with": {"files": ["missing.jsonl"]}},
        {"name": "eval", "type": "eval", "with": {"model": "${{ steps.data.outputs.model }}",
                                                  "data": "missing.jsonl", "task": "qna"}},
        {"name": "reg", "type": "register", "with": {
            "model": "m", "name": "n", "metrics": "${{ steps.eval.outputs.metrics }}",
            "gate": {"metrics": {"accuracy": 0.0}}}},
    ]}))  # fmt: skip
    with pytest.raises(PipelineError) as error:
        load_pipeline(tmp_path / "q.yaml")
    message = str(error.value)
    assert "steps[0] (data).with.files: no such file 'missing.jsonl'" in message
    assert "step 'data' (data) has no output 'model'; its outputs are files, records" in message
    assert "task: unknown task 'qna'" in message
    assert "gate.metrics: 'accuracy' is not a metric of eval" in message

    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"name": "loop", "steps": [
        {"name": "a", "type": "deploy", "needs": ["b"], "with": {"model": "x"}},
        {"name": "b", "type": "deploy", "needs": ["a"], "with": {"model": "x"}},
    ]}))  # fmt: skip
    with pytest.raises(PipelineError, match="in a cycle: a -> b -> a"):
        load_pipeline(tmp_path / "c.yaml")
    (tmp_path / "l.yaml").write_text("- just\n- a list\n")
    with pytest.raises(PipelineError, match="mapping with `name:` and `steps:`"):
        load_pipeline(tmp_path / "l.yaml")


def test_steps_run_after_what_they_reference(tmp_path: Path, tiny_causal_lm: Path) -> None:
    pipeline = load_pipeline(write_pipeline(tmp_path, tiny_causal_lm))
    assert pipeline.names == ["data", "train", "eval", "register", "deploy"]
    assert pipeline.upstream["register"] == ["train", "eval"]
    assert pipeline.ancestors("register") == ["data", "train", "eval"]


# --- running ------------------------------------------------------------------------------


def test_a_pipeline_runs_tracks_registers_and_then_is_cached(
    home: Path, tmp_path: Path, tiny_causal_lm: Path
) -> None:
    file = write_pipeline(tmp_path, tiny_causal_lm)
    pipeline = load_pipeline(file)
    plan = run_pipeline(pipeline, dry_run=True)
    assert statuses(plan) == dict.fromkeys(pipeline.names, "planned")
    assert get_client().search_experiments(filter_string="name = 'pipeline-tiny'") == []

    first = run_pipeline(pipeline)
    assert first.status == "succeeded"
    assert statuses(first) == dict.fromkeys(pipeline.names, "ran")
    # One pipeline run with a child run per step.
    client = get_client()
    children = client.search_runs(
        [client.get_experiment_by_name("pipeline-tiny").experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{first.run_id}'",
    )
    assert sorted(r.data.tags["lmforge.pipeline.step"] for r in children) == sorted(pipeline.names)
    # The version is registered with its metrics, lineage and card, and promoted.
    register = first.outputs("register")
    assert (register["version"], register["promoted"]) == (1, True)
    assert get_alias("tiny-bot", "production") == 1
    card = Path(register["card"]).read_text()
    for section in (
        "## Intended use",
        "## Data",
        "## Metrics",
        "## Limitations",
        "## Compression",
        "## Safety evaluation",
        "## Privacy",
        "## Compute and energy",
    ):
        assert section in card
    assert "Trained without differential privacy" in card
    assert "6 x parameters x training tokens" in card and "test_questions.jsonl" in card
    record = lineage("tiny-bot", 1)
    assert record["parent_model"] == str(tiny_causal_lm)
    assert record["config"]["train"]["max_steps"] == 1
    assert (
        record["data"][str(tmp_path / "dialogs.jsonl")]
        == first.outputs("data")["sha256"][str(tmp_path / "dialogs.jsonl")]
    )
    assert record["code_version"].startswith("lmforge ")
    deploy = first.outputs("deploy")
    assert deploy["command"].startswith("lmforge serve registry:tiny-bot@production")
    written = [Path(f).name for f in deploy["files"]]
    assert written == ["serve.yaml", "serve.sh", "lmforge-tiny.service", "compose.yaml"]
    from lmforge.config.load import load_settings
    from lmforge.serve.config import ServeConfig

    served = load_settings(deploy["files"][0], ServeConfig)  # what serve.sh serves
    assert served.model == "registry:tiny-bot@production" and served.guard == "default"
    assert deploy["command"] == shlex.join(served.command_line())

    second = run_pipeline(pipeline)
    assert statuses(second) == {**dict.fromkeys(pipeline.names, "cached"), "deploy": "ran"}
    assert second.outputs("register")["version"] == 1
    plan = run_pipeline(pipeline, dry_run=True)
    assert [r.reason for r in plan.steps][:4] == ["cached: inputs unchanged"] * 4

    # Changed data: the data step and everything after it run again.
    with (tmp_path / "dialogs.jsonl").open("a") as handle:
        handle.write((tmp_path / "dialogs.jsonl").read_text().splitlines()[0] + "\n")
    plan = run_pipeline(pipeline, dry_run=True)
    assert plan.steps[0].reason == "will run: no cached result for these inputs"
    assert plan.steps[1].reason == "will run: an upstream step will run"
    third = run_pipeline(pipeline)
    assert statuses(third) == dict.fromkeys(pipeline.names, "ran")
    assert third.outputs("register")["version"] == 2

    # A deleted upstream artifact is not an error: the step that made it runs again.
    shutil.rmtree(third.outputs("train")["model"])
    fourth = run_pipeline(pipeline)
    assert statuses(fourth)["data"] == "cached" and statuses(fourth)["train"] == "ran"
    assert Path(fourth.outputs("train")["model"]).is_dir()


def test_a_gate_that_is_not_met_ends_the_pipeline_not_promoted(
    home: Path, tmp_path: Path, tiny_causal_lm: Path
) -> None:
    run_pipeline(load_pipeline(write_pipeline(tmp_path, tiny_causal_lm)))
    stricter = load_pipeline(write_pipeline(tmp_path, tiny_causal_lm, margin=0.5, seed=7))
    result = run_pipeline(stricter)
    assert result.status == "not promoted"
    assert "token_f1" in result.reason and "needs +0.5" in result.reason
    assert statuses(result)["deploy"] == "skipped"
    assert result.steps[-1].reason.startswith("not promoted by step 'register'")
    assert get_alias("tiny-bot", "production") == 1  # the new version 2 was not promoted

    shown = runner.invoke(app, ["pipeline", "run", str(stricter.path), "--quiet"])
    assert shown.exit_code == 0 and "not promoted" in shown.stdout


def test_a_gate_on_the_privacy_budget(home: Path, tmp_path: Path, tiny_causal_lm: Path) -> None:
    """``gate.max_epsilon`` refuses a model trained without privacy or over the budget, and
    promotes one within it; the registry shows the budget."""
    plain = run_pipeline(load_pipeline(write_pipeline(tmp_path, tiny_causal_lm, max_epsilon=3)))
    assert plain.status == "not promoted"
    assert "trained without differential privacy; the gate needs epsilon <= 3" in plain.reason
    over = {"target_epsilon": 8.0}  # one step of a Poisson batch of 4 expected out of 8
    spent = run_pipeline(load_pipeline(write_pipeline(tmp_path, tiny_causal_lm, privacy=over,
                                                      max_epsilon=3)))  # fmt: skip
    assert spent.status == "not promoted" and "(needs <= 3)" in spent.reason
    within = {"target_epsilon": 2.5}
    kept = run_pipeline(load_pipeline(write_pipeline(tmp_path, tiny_causal_lm, privacy=within,
                                                     max_epsilon=3)))  # fmt: skip
    assert kept.status == "succeeded" and get_alias("tiny-bot", "production") == 3
    assert re.fullmatch(r"epsilon 2\.\d+ at delta 0\.1 \(needs <= 3\); no version holds "
                        r"@production yet", kept.outputs("register")["reason"])  # fmt: skip
    shown = runner.invoke(app, ["registry", "show", "tiny-bot/3"])
    assert shown.exit_code == 0 and re.search(r"epsilon=2\.\d+ \(delta 0\.1\)", shown.stdout)
    assert "differential privacy at epsilon <= 3" in shown.stdout  # the card's gate line


def test_a_failed_step_resumes_in_the_same_pipeline_run(
    home: Path, tmp_path: Path, tiny_causal_lm: Path
) -> None:
    failing = load_pipeline(write_pipeline(tmp_path, tiny_causal_lm, min_records=1000))
    with pytest.raises(LmforgeError, match=r"step 'data' failed.*fewer than min_records 1000"):
        run_pipeline(failing)
    failed_run = json.loads(state_path(failing).read_text())
    assert failed_run["status"] == "failed"
    assert get_client().get_run(failed_run["run_id"]).info.status == "FAILED"
    fixed = load_pipeline(write_pipeline(tmp_path, tiny_causal_lm, min_records=1))
    resumed = run_pipeline(fixed, resume=True)
    assert resumed.status == "succeeded" and resumed.run_id == failed_run["run_id"]
    assert get_client().get_run(resumed.run_id).info.status == "FINISHED"
    with pytest.raises(LmforgeError, match="has no failed run to resume"):
        run_pipeline(fixed, resume=True)


def test_registry_commands_promote_roll_back_and_show_lineage(
    home: Path, tmp_path: Path, tiny_causal_lm: Path
) -> None:
    run_pipeline(load_pipeline(write_pipeline(tmp_path, tiny_causal_lm)))
    run_pipeline(load_pipeline(write_pipeline(tmp_path, tiny_causal_lm, seed=7)))
    assert get_alias("tiny-bot", "production") == 2  # a tie passes a margin of 0
    assert alias_history("tiny-bot", "production") == [1, 2]

    listed = runner.invoke(app, ["registry", "list", "tiny-bot", "--json"])
    assert [v["version"] for v in json.loads(listed.stdout)] == [1, 2]
    back = runner.invoke(app, ["registry", "rollback", "tiny-bot"])
    assert back.exit_code == 0 and "-> version 1 (rolled back from version 2)" in back.stdout
    assert get_alias("tiny-bot", "production") == 1
    again = runner.invoke(app, ["registry", "rollback", "tiny-bot"])
    assert again.exit_code == 2 and "no earlier version to roll back to" in again.output
    promoted = runner.invoke(app, ["registry", "promote", "tiny-bot/2", "--alias", "production"])
    assert promoted.exit_code == 0 and "(was version 1)" in promoted.stdout
    missing = runner.invoke(app, ["registry", "promote", "tiny-bot/9"])
    assert missing.exit_code == 2 and "has no version 9; its versions are 1, 2" in missing.output

    shown = runner.invoke(app, ["registry", "lineage", "tiny-bot@production", "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["config"]["train"]["seed"] == 7
    card = runner.invoke(app, ["registry", "show", "tiny-bot/1"])
    assert card.exit_code == 0 and "Compute and energy" in card.stdout


def test_kubeflow_step_command_runs_one_step_from_upstream_records(
    home: Path, tmp_path: Path, tiny_causal_lm: Path
) -> None:
    file = write_pipeline(tmp_path, tiny_causal_lm)
    data = runner.invoke(app, ["pipeline", "step", str(file), "--step", "data",
                               "--outputs-file", str(tmp_path / "data.json")])  # fmt: skip
    assert data.exit_code == 0, data.output
    records = json.loads((tmp_path / "data.json").read_text())
    assert records["data"]["outputs"]["files"] == [str(tmp_path / "dialogs.jsonl")]
    missing = runner.invoke(app, ["pipeline", "step", str(file), "--step", "eval"])
    assert missing.exit_code == 2 and "needs the outputs of data, train" in missing.output
    train = runner.invoke(app, ["pipeline", "step", str(file), "--step", "train", "--upstream",
                                (tmp_path / "data.json").read_text(), "--no-track"])  # fmt: skip
    assert train.exit_code == 0, train.output
    assert Path(json.loads(train.stdout.splitlines()[-1])["train"]["outputs"]["model"]).is_dir()


def test_a_deploy_step_can_start_the_server(
    home: Path, tmp_path: Path, tiny_causal_lm: Path
) -> None:
    import os
    import signal

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"name": "serve-it", "steps": [
        {"name": "deploy", "type": "deploy",
         "with": {"model": str(tiny_causal_lm), "port": port, "guard": None, "start": True}},
    ]}))  # fmt: skip
    result = run_pipeline(load_pipeline(tmp_path / "p.yaml"), track=False)
    outputs = result.outputs("deploy")
    try:
        assert outputs["url"] == f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"{outputs['url']}/v1/models", timeout=10) as response:
            assert json.load(response)["data"][0]["id"] == str(tiny_causal_lm)
    finally:
        os.killpg(outputs["pid"], signal.SIGTERM)


def test_whole_references_may_fill_any_setting_and_a_wrong_kind_names_the_step(
    home: Path, tmp_path: Path
) -> None:
    shutil.copy(dataset_path("customer_service", "test"), tmp_path / "q.jsonl")
    prose = "Answer briefly. " * 30  # long text with dots: a setting, never a path
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"name": "refs", "steps": [
        {"name": "data", "type": "data", "with": {"files": ["q.jsonl"]}},
        {"name": "eval", "type": "eval", "with": {
            "model": "x", "data": "${{ steps.data.outputs.files }}", "task": "qa",
            "system": prose}},
        {"name": "kb", "type": "kb", "with": {
            "name": "k", "documents": "${{ steps.data.outputs.files }}"}},
    ]}))  # fmt: skip
    pipeline = load_pipeline(tmp_path / "p.yaml")  # a list may fill documents; checked later
    with pytest.raises(LmforgeError, match=r"step 'eval', with its references filled in: "
                       r"with.data: Input should be a valid string"):  # fmt: skip
        run_pipeline(pipeline, track=False)


def test_a_step_with_bad_settings_is_reported_once_even_when_others_read_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"name": "typo", "steps": [
        {"name": "eval", "type": "eval", "with": {"model": "x", "data": "d", "taks": "qa"}},
        {"name": "reg", "type": "register", "with": {
            "model": "${{ steps.eval.outputs.metrics }}", "name": "n",
            "metrics": "${{ steps.eval.outputs.metrics }}",
            "gate": {"metrics": {"token_f1": 0}}}},
    ]}))  # fmt: skip
    with pytest.raises(PipelineError) as error:
        load_pipeline(tmp_path / "p.yaml")
    assert "steps[0] (eval).with.taks: Extra inputs are not permitted" in str(error.value)
    assert "steps[0] (eval).with.task: Field required" in str(error.value)


def test_a_register_step_without_an_alias_does_not_end_the_pipeline(
    home: Path, tmp_path: Path, tiny_causal_lm: Path
) -> None:
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"name": "plain", "steps": [
        {"name": "register", "type": "register", "with": {"model": str(tiny_causal_lm),
                                                          "name": "plain-bot"}},
        {"name": "deploy", "type": "deploy", "with": {"model": "registry:plain-bot/1"}},
    ]}))  # fmt: skip
    result = run_pipeline(load_pipeline(tmp_path / "p.yaml"))
    assert result.status == "succeeded"
    assert statuses(result) == {"register": "ran", "deploy": "ran"}
    assert result.outputs("register")["promoted"] is None


def test_a_data_step_joins_files_into_one_training_set(home: Path, tmp_path: Path) -> None:
    shutil.copy(dataset_path("customer_service", "validation"), tmp_path / "a.jsonl")
    shutil.copy(dataset_path("customer_service", "grounded_validation"), tmp_path / "b.jsonl")
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"name": "joined", "steps": [
        {"name": "data", "type": "data", "with": {"files": ["a.jsonl", "b.jsonl"],
                                                  "concat": True}},
        {"name": "eval", "type": "eval", "with": {"model": "x", "data": "a.jsonl",
                                                  "task": "safety", "kb": "brightnest"}},
    ]}))  # fmt: skip
    with pytest.raises(PipelineError, match="kb: the safety task reads no passages"):
        load_pipeline(tmp_path / "p.yaml")
    spec = yaml.safe_load((tmp_path / "p.yaml").read_text())
    spec["steps"].pop()
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(spec))
    result = run_pipeline(load_pipeline(tmp_path / "p.yaml"), track=False)
    (joined,) = result.outputs("data")["files"]
    lines = Path(joined).read_text().splitlines()
    parts = [(tmp_path / n).read_text().splitlines() for n in ("a.jsonl", "b.jsonl")]
    assert lines == parts[0] + parts[1]


def test_the_docs_step_types_table_is_the_registry() -> None:
    from lmforge.pipeline.steps import STEP_TYPES, markdown_table

    docs = (Path(__file__).parent.parent / "docs" / "pipelines.md").read_text(encoding="utf-8")
    start = docs.index("<!-- step types table: generated from the registry")
    table = docs[docs.index("\n", start) + 1 : docs.index("<!-- end step types table -->")]
    assert table == markdown_table(), "regenerate it: lmforge.pipeline.steps.markdown_table"
    assert list(STEP_TYPES)[:3] == ["data", "train", "eval"]
