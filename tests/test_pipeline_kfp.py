"""Compiling pipeline files to Kubeflow Pipelines v2 YAML: the task graph, the container
each task runs, and that kfp itself loads the result back."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from lmforge.errors import LmforgeError
from lmforge.pipeline.kfp import compile_kfp
from lmforge.pipeline.load import load_pipeline, parse_pipeline
from lmforge.pipeline.spec import Pipeline

EXAMPLES = Path(__file__).parents[1] / "examples" / "pipelines"
IMAGE = "ghcr.io/acme/lmforge:0.1"
TRACKING_URI = "http://mlflow.mlops:5000"

LIFECYCLE = """\
name: support_bot
description: Train, score, register and deploy a support model.
steps:
  - name: prep-data
    type: data
    with: {files: [train.jsonl]}
  - name: train
    type: train
    needs: [prep-data]
    with:
      run: {model: {ref: x}, task: {name: sft}, data: {train: train.jsonl}}
  - name: eval_qa
    type: eval
    with:
      model: "${{ steps.train.outputs.model }}"
      data: test.jsonl
      task: qa
      system: 'Answer {{briefly}} \\ "politely" {{{'  # braces, a backslash, quotes
  - name: register
    type: register
    with:
      model: "${{ steps.train.outputs.model }}"
      name: support-bot
      metrics: "${{ steps.eval_qa.outputs.metrics }}"
  - name: deploy
    type: deploy
    needs: [register]
    with: {model: "registry:support-bot@production"}
"""


def write_pipeline(folder: Path, text: str = LIFECYCLE) -> Path:
    """The pipeline file and the data files its steps check for."""
    record = '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'  # noqa: E501
    (folder / "train.jsonl").write_text(record, encoding="utf-8")
    (folder / "test.jsonl").write_text('{"question": "hi?", "answer": "hello"}\n', encoding="utf-8")
    path = folder / "pipeline.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def compiled(pipeline: Pipeline, out: Path, **options: Any) -> dict[str, Any]:
    """Compile ``pipeline`` and return the IR YAML, parsed."""
    assert compile_kfp(pipeline, out, image=IMAGE, **options) == out
    return yaml.safe_load(out.read_text(encoding="utf-8"))


def tasks_by_step(ir: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Step name (the display name) -> (kfp task name, task)."""
    tasks = ir["root"]["dag"]["tasks"]
    return {task["taskInfo"]["name"]: (key, task) for key, task in tasks.items()}


def container_of(ir: dict[str, Any], task: dict[str, Any]) -> dict[str, Any]:
    label = ir["components"][task["componentRef"]["name"]]["executorLabel"]
    return ir["deploymentSpec"]["executors"][label]["container"]


def check_loads_in_kfp(path: Path, pipeline: Pipeline) -> None:
    from kfp.components import load_component_from_file

    component = load_component_from_file(str(path))
    assert component.pipeline_spec is not None, "kfp did not load it as a pipeline"
    assert len(component.pipeline_spec.root.dag.tasks) == len(pipeline.order)


def test_each_step_is_a_container_task_wired_to_its_upstream_records(tmp_path: Path) -> None:
    pipeline = load_pipeline(write_pipeline(tmp_path))
    out = tmp_path / "kfp" / "support_bot.yaml"  # the folder does not exist yet
    ir = compiled(pipeline, out, tracking_uri=TRACKING_URI)

    check_loads_in_kfp(out, pipeline)
    assert ir["pipelineInfo"]["name"] == "support-bot"  # kfp's spelling of support_bot
    tasks = tasks_by_step(ir)
    assert set(tasks) == set(pipeline.names)
    task_step = {key: step for step, (key, _) in tasks.items()}
    for step in pipeline.order:
        _, task = tasks[step.name]
        upstream = pipeline.upstream[step.name]
        assert {task_step[t] for t in task.get("dependentTasks", [])} == set(upstream)

        parameters = task["inputs"]["parameters"]
        embedded = parameters["spec_text"]["runtimeValue"]["constant"]
        assert parse_pipeline(embedded, pipeline.path).spec == pipeline.spec
        wired = {
            task_step[value["taskOutputParameter"]["producerTask"]]
            for value in parameters.values()
            if "taskOutputParameter" in value
            and value["taskOutputParameter"]["outputParameterKey"] == "records"
        }
        assert wired == set(upstream)

        container = container_of(ir, task)
        assert container["image"] == IMAGE
        assert container["command"] == ["lmforge", "pipeline", "step"]
        args = container["args"]
        assert args[args.index("--step") + 1] == step.name
        assert args[args.index("--base-dir") + 1] == "/workspace"
        assert args.count("--upstream") == len(upstream)
        assert args[-2] == "--outputs-file" and "outputs.parameters['records']" in args[-1]
        assert {"name": "LMFORGE_TRACKING_URI", "value": TRACKING_URI} in container["env"]

    # Argo would read ${{ steps... }} in the embedded text as its own variable and refuse
    # the run; the only double braces left are kfp's own {{$...}} placeholders.
    assert "${{ steps.train.outputs.model }}" in pipeline.text
    assert re.findall(r"\{\{(?!\$)", out.read_text(encoding="utf-8")) == []

    # needs without a data reference still orders (and feeds) the task
    assert [task_step[t] for t in tasks["deploy"][1]["dependentTasks"]] == ["register"]
    caching = {step: task.get("cachingOptions", {}) for step, (_, task) in tasks.items()}
    assert caching.pop("deploy").get("enableCache", False) is False  # a side effect
    assert all(options.get("enableCache") is True for options in caching.values())


def test_options_base_dir_no_tracking_and_cache_false(tmp_path: Path) -> None:
    text = LIFECYCLE.replace("    type: eval\n", "    type: eval\n    cache: false\n")
    pipeline = load_pipeline(write_pipeline(tmp_path, text))
    ir = compiled(pipeline, tmp_path / "out.yaml", base_dir="/data/bot")

    tasks = tasks_by_step(ir)
    assert tasks["eval_qa"][1].get("cachingOptions", {}).get("enableCache", False) is False
    assert tasks["train"][1]["cachingOptions"]["enableCache"] is True
    for _, task in tasks.values():
        container = container_of(ir, task)
        assert "env" not in container
        assert container["args"][container["args"].index("--base-dir") + 1] == "/data/bot"


def test_step_names_that_clash_once_sanitized_stay_apart(tmp_path: Path) -> None:
    text = """\
name: clash
steps:
  - {name: a-b, type: data, with: {files: [train.jsonl]}}
  - {name: a_b, type: data, needs: [a-b], with: {files: [train.jsonl]}}
  - {name: 1st, type: data, needs: [a-b, a_b], with: {files: [train.jsonl]}}
"""
    pipeline = load_pipeline(write_pipeline(tmp_path, text))
    out = tmp_path / "clash.yaml"
    ir = compiled(pipeline, out)

    check_loads_in_kfp(out, pipeline)
    tasks = tasks_by_step(ir)
    task_step = {key: step for step, (key, _) in tasks.items()}
    assert {task_step[t] for t in tasks["1st"][1]["dependentTasks"]} == {"a-b", "a_b"}
    # without double braces in it, the file is embedded as written, comments and all
    spec_text = tasks["1st"][1]["inputs"]["parameters"]["spec_text"]["runtimeValue"]
    assert spec_text["constant"] == text
    args = container_of(ir, tasks["1st"][1])["args"]
    assert args.count("--upstream") == 2


def test_an_unwritable_out_is_an_error_naming_it_and_leaves_no_temp_file(tmp_path: Path) -> None:
    pipeline = load_pipeline(write_pipeline(tmp_path))
    folder = tmp_path / "already-a-folder"
    folder.mkdir()
    with pytest.raises(LmforgeError, match="already-a-folder"):
        compile_kfp(pipeline, folder, image=IMAGE)
    assert list(folder.iterdir()) == []
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_values_with_double_braces_are_refused(tmp_path: Path) -> None:
    pipeline = load_pipeline(write_pipeline(tmp_path))
    with pytest.raises(LmforgeError, match="tracking_uri"):
        compile_kfp(pipeline, tmp_path / "out.yaml", image=IMAGE, tracking_uri="http://{{x}}")
    with pytest.raises(LmforgeError, match="image: empty"):
        compile_kfp(pipeline, tmp_path / "out.yaml", image=" ")
    assert not (tmp_path / "out.yaml").exists()


def test_missing_kfp_names_the_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = load_pipeline(write_pipeline(tmp_path))
    monkeypatch.setitem(sys.modules, "kfp", None)  # makes `import kfp` fail
    with pytest.raises(LmforgeError, match=r"pip install .lmforge\[kubeflow\]."):
        compile_kfp(pipeline, tmp_path / "out.yaml", image=IMAGE)
    assert not (tmp_path / "out.yaml").exists()


def test_every_bundled_example_pipeline_compiles(tmp_path: Path) -> None:
    examples = sorted(EXAMPLES.glob("*.yaml"))
    assert examples, f"no example pipelines in {EXAMPLES}"
    for example in examples:
        pipeline = load_pipeline(example)
        out = tmp_path / f"{example.stem}.kfp.yaml"
        ir = compiled(pipeline, out, tracking_uri=TRACKING_URI)
        check_loads_in_kfp(out, pipeline)
        assert set(tasks_by_step(ir)) == set(pipeline.names), example.name


def test_cli_compile_writes_the_file_and_rejects_other_targets(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from lmforge.cli.main import app

    path = write_pipeline(tmp_path)
    out = tmp_path / "X.yaml"
    runner = CliRunner()
    result = runner.invoke(app, ["pipeline", "compile", str(path), "--image", "img:1",
                                 "--out", str(out), "--tracking-uri", TRACKING_URI])  # fmt: skip
    assert result.exit_code == 0, result.output
    ir = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert {task["taskInfo"]["name"] for task in ir["root"]["dag"]["tasks"].values()} == {
        "prep-data", "train", "eval_qa", "register", "deploy"}  # fmt: skip

    argo_out = tmp_path / "Y.yaml"
    result = runner.invoke(app, ["pipeline", "compile", str(path), "--image", "img:1",
                                 "--out", str(argo_out), "--target", "argo"])  # fmt: skip
    assert result.exit_code != 0
    assert "argo" in result.output and "kfp" in result.output
    assert not argo_out.exists()
