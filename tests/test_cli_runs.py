"""``lmforge runs list|show`` and ``lmforge ui`` against a real sqlite MLflow store."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lmforge.cli import runs as runs_cli
from lmforge.cli.main import app
from lmforge.track import (
    OUTPUT_DIR_TAG,
    register_model,
    resolve_registry_ref,
    start_run,
)
from tests.servers import free_port, http_status

runner = CliRunner()


@pytest.fixture
def two_runs(home: Path, tmp_path: Path) -> tuple[str, str]:
    """An sft run (params, metrics, artifacts, tags), then a later eval run."""
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "scores.json").write_text('{"accuracy": 0.5}')
    with start_run("sft", run_name="lora-1", tags={OUTPUT_DIR_TAG: str(tmp_path)}) as sft:
        sft.log_params({"train": {"lr": 2e-4}, "model": "smollm2-135m-instruct"})
        sft.log_metrics({"train/loss": 2.5, "tokens_per_s": 900.0}, step=1)
        sft.log_metrics({"train/loss": 1.25}, step=2)
        sft.log_artifacts(tmp_path / "eval", artifact_path="eval")
    time.sleep(0.01)  # distinct start times order the listing
    with start_run("eval", run_name="judge") as evaluation:
        evaluation.log_metrics({"accuracy": 0.75})
    assert sft.run_id is not None and evaluation.run_id is not None
    return sft.run_id, evaluation.run_id


def test_runs_list_json_is_newest_first_and_filters(two_runs: tuple[str, str]) -> None:
    sft_id, eval_id = two_runs
    result = runner.invoke(app, ["runs", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["run_id"] for r in rows] == [eval_id, sft_id]
    sft = rows[1]
    assert (sft["experiment"], sft["name"], sft["status"]) == ("sft", "lora-1", "FINISHED")
    assert sft["metrics"] == {"tokens_per_s": 900.0, "train/loss": 1.25}
    assert sft["duration_s"] >= 0 and sft["start_time"] and sft["end_time"]

    only_sft = json.loads(runner.invoke(app, ["runs", "list", "-e", "sft", "--json"]).stdout)
    assert [r["run_id"] for r in only_sft] == [sft_id]
    newest = json.loads(runner.invoke(app, ["runs", "list", "--limit", "1", "--json"]).stdout)
    assert [r["run_id"] for r in newest] == [eval_id]


def test_runs_list_shows_full_ids_and_headline_metrics(
    two_runs: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sft_id, eval_id = two_runs
    narrow = runner.invoke(app, ["runs", "list"], env={"COLUMNS": "80"})  # an 80-column terminal
    assert narrow.exit_code == 0, narrow.output
    assert sft_id in narrow.stdout and eval_id in narrow.stdout
    assert "sft / lora-1  train/loss=1.25, tokens_per_s=900" in narrow.stdout
    assert "accuracy=0.75" in narrow.stdout

    monkeypatch.setattr(runs_cli.console, "_width", 160)
    wide = runner.invoke(app, ["runs", "list"])
    assert wide.exit_code == 0, wide.output
    header = next(line for line in wide.stdout.splitlines() if "run id" in line)
    columns = ["run", "id", "experiment", "name", "status", "started", "duration", "metrics"]
    assert header.split() == columns
    sft_line = next(line for line in wide.stdout.splitlines() if sft_id in line)
    assert "lora-1" in sft_line and "FINISHED" in sft_line and "train/loss=1.25" in sft_line


def test_runs_list_on_an_empty_store(home: Path) -> None:
    result = runner.invoke(app, ["runs", "list"])
    assert result.exit_code == 0
    assert "No runs yet" in result.stdout
    assert json.loads(runner.invoke(app, ["runs", "list", "--json"]).stdout) == []


def test_runs_list_unknown_experiment_names_the_known_ones(two_runs: tuple[str, str]) -> None:
    result = runner.invoke(app, ["runs", "list", "--experiment", "nope"])
    assert result.exit_code == 2
    assert "no experiment named 'nope'" in result.stderr
    assert "sft" in result.stderr and "eval" in result.stderr


def test_runs_show_json_has_params_metrics_tags_artifacts(
    two_runs: tuple[str, str], tmp_path: Path
) -> None:
    sft_id, _ = two_runs
    result = runner.invoke(app, ["runs", "show", sft_id, "--json"])
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    assert run["run_id"] == sft_id and run["experiment"] == "sft"
    assert run["params"] == {"model": "smollm2-135m-instruct", "train.lr": "0.0002"}
    assert run["metrics"] == {"tokens_per_s": 900.0, "train/loss": 1.25}
    assert run["tags"][OUTPUT_DIR_TAG] == str(tmp_path)
    assert run["artifacts"] == [{"path": "eval/scores.json", "size": 17}]
    assert run["artifact_uri"].startswith("file://")


def test_runs_show_table(two_runs: tuple[str, str]) -> None:
    sft_id, _ = two_runs
    result = runner.invoke(app, ["runs", "show", sft_id])
    assert result.exit_code == 0, result.output
    out = result.stdout
    for expected in (sft_id, "lora-1", "train.lr", "0.0002", "train/loss", "1.25"):
        assert expected in out
    assert "eval/scores.json" in out and "17 B" in out
    assert "mlflow.user" not in out  # MLflow's bookkeeping tags stay in --json


def test_runs_show_unknown_id_points_at_runs_list(home: Path) -> None:
    result = runner.invoke(app, ["runs", "show", "0123456789abcdef"])
    assert result.exit_code == 2
    assert "no MLflow run with id '0123456789abcdef'" in result.stderr
    assert "lmforge runs list" in result.stderr


@pytest.mark.parametrize(
    "args",
    [["runs", "--help"], ["runs", "list", "--help"], ["runs", "show", "--help"], ["ui", "--help"]],
)
def test_help_has_a_worked_example(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 0
    assert "Example: lmforge " in result.stdout


def test_ui_refuses_a_remote_tracking_server(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMFORGE_TRACKING_URI", "http://mlflow.internal:5000")
    result = runner.invoke(app, ["ui"])
    assert result.exit_code == 2
    assert "already serves the UI" in result.stderr


def test_ui_reports_a_busy_port(home: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(app, ["ui", "--port", str(port)])
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "--port" in result.stderr


def _readline(process: subprocess.Popen[str], timeout: float) -> str:
    """One line of the process's stdout, or "" if none arrives within ``timeout``."""
    import selectors

    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            return ""
    return process.stdout.readline()


def test_ui_serves_the_store_and_stops_on_ctrl_c(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k != "LMFORGE_TRACKING_URI"}
    ui = subprocess.Popen(
        [sys.executable, "-m", "lmforge.cli.main", "ui", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "LMFORGE_HOME": str(home)},
    )
    try:
        deadline = time.monotonic() + 60
        while http_status(url) != 200 and ui.poll() is None and time.monotonic() < deadline:
            time.sleep(0.25)
        assert http_status(url) == 200, f"UI not up at {url}; exit code {ui.poll()}"
        # lmforge prints the URL once its own readiness check passes (a moment later).
        assert f"MLflow UI: {url}" in _readline(ui, timeout=30)

        # The UI's server is a full tracking server: lmforge can register through it, and
        # MLflow 3's server-side source validation accepts lmforge's model version source.
        model = tmp_path / "model"
        model.mkdir()
        (model / "config.json").write_text("{}")
        monkeypatch.setenv("LMFORGE_TRACKING_URI", url)
        info = register_model(model, "via-ui")
        assert (resolve_registry_ref(f"registry:via-ui/{info.version}") / "config.json").is_file()
    finally:
        ui.send_signal(signal.SIGINT)
        try:
            out, err = ui.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            ui.kill()
            out, err = ui.communicate()
    assert ui.returncode == 0, err + out
    assert http_status(url) is None  # the whole server process group is gone
