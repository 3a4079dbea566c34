"""A training run as a user sees it: the CLI, MLflow, resume after a kill, Ctrl-C, NaN."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from typer.testing import CliRunner

from lmforge.cli.main import app
from lmforge.config import load_config_dict
from lmforge.errors import LmforgeError
from lmforge.tasks import register_task
from lmforge.tasks.sft import SftTask
from lmforge.train.loop import train
from tests.datafiles import chat_rows, write_jsonl


def write_config(path: Path, model: Path, data: Path, **train: Any) -> Path:
    config = {
        "model": {"ref": str(model)},
        "task": {"name": "sft", "max_length": 128},
        "data": {"train": str(data), "val_ratio": 0.2},
        "method": {"name": "lora", "lora_r": 4, "lora_dropout": 0.1},
        "train": {"batch_size": 2, "lr": 2e-3, "log_every": 1, **train},
        "output": {"dir": str(path.parent / "run"), "experiment": "runs-test"},
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_cli_train_tracks_everything_in_mlflow(
    home: Path, tiny_causal_lm: Path, tmp_path: Path
) -> None:
    from lmforge.track import get_client

    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(10))
    config = write_config(tmp_path / "run.yaml", tiny_causal_lm, data, max_steps=3)
    result = CliRunner().invoke(
        app, ["train", str(config), "--set", "output.register_as=tiny-support"]
    )
    assert result.exit_code == 0, result.output
    assert "final train loss" in result.stdout
    (run,) = get_client().search_runs(
        [get_client().get_experiment_by_name("runs-test").experiment_id]
    )
    run_id = run.info.run_id
    assert f"run {run_id}" in result.stderr
    assert run.info.status == "FINISHED"
    assert run.data.params["train.lr"] == "0.002"
    assert run.data.params["method.name"] == "lora"
    assert run.data.tags["lmforge.output_dir"] == str(tmp_path / "run")
    history = get_client().get_metric_history(run_id, "train/loss")
    assert [m.step for m in history] == [1, 2, 3]
    for metric in ("train/learning_rate", "train/grad_norm", "train/tokens_per_second",
                   "eval/loss", "peak_memory_mb", "data/train/rows_kept"):  # fmt: skip
        assert metric in run.data.metrics, metric
    artifacts = {a.path for a in get_client().list_artifacts(run_id)}
    assert artifacts == {"model", "config.yaml", "metrics.json"}  # the model once, not model-2
    version = get_client().get_model_version("tiny-support", "1")
    assert version.source == f"{run.info.artifact_uri}/model"  # registered without a copy
    listed = CliRunner().invoke(app, ["models", "show", "registry:tiny-support/1", "--json"])
    assert json.loads(listed.stdout)["kind"] == "adapter"
    generated = CliRunner().invoke(
        app, ["generate", f"run:{run_id}", "Hi", "--max-tokens", "3", "--json"]
    )
    assert generated.exit_code == 0, generated.output


def _start(config: Path, *extra: str) -> subprocess.Popen[str]:
    """``lmforge train`` in a child that hears Ctrl-C: a shell's background job (``make
    test &``) ignores SIGINT, its children inherit that, and Python then keeps ignoring it."""
    return subprocess.Popen(
        [sys.executable, "-m", "lmforge.cli.main", "train", str(config), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_for_checkpoint(run_dir: Path, process: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not list((run_dir / "checkpoints").glob("step-*/trainer_state.json")):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)


def _final_loss(run_dir: Path) -> float:
    return float(json.loads((run_dir / "metrics.json").read_text())["final_loss"])


def test_resume_after_sigkill_ends_with_the_same_loss(tiny_causal_lm: Path, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(20))
    settings = {"max_steps": 120, "save_every": 10}
    (tmp_path / "whole").mkdir()
    whole = write_config(tmp_path / "whole" / "run.yaml", tiny_causal_lm, data, **settings)
    (tmp_path / "killed").mkdir()
    killed = write_config(tmp_path / "killed" / "run.yaml", tiny_causal_lm, data, **settings)

    process = _start(killed, "--no-track")
    _wait_for_checkpoint(tmp_path / "killed" / "run", process, timeout=120)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert not (tmp_path / "killed" / "run" / "metrics.json").exists(), "finished before the kill"

    resumed = _start(killed, "--no-track", "--resume")  # bare: the newest unfinished run
    assert resumed.wait(timeout=300) == 0, resumed.communicate()
    uninterrupted = _start(whole, "--no-track")
    assert uninterrupted.wait(timeout=300) == 0, uninterrupted.communicate()
    assert (
        abs(_final_loss(tmp_path / "killed" / "run") - _final_loss(tmp_path / "whole" / "run"))
        < 1e-4
    )


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(
    home: Path, tiny_causal_lm: Path, tmp_path: Path
) -> None:
    from lmforge.track import get_client

    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(20))
    config = write_config(tmp_path / "run.yaml", tiny_causal_lm, data, max_steps=5000, save_every=5)
    process = _start(config)
    _wait_for_checkpoint(tmp_path / "run", process, timeout=120)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Resume with: lmforge train CONFIG --resume" in stderr
    match = re.search(r"interrupted at step (\d+)", stderr)
    assert match, stderr
    step = int(match.group(1))
    saved = tmp_path / "run" / "checkpoints" / f"step-{step:06d}" / "trainer_state.json"
    assert json.loads(saved.read_text())["step"] == step  # saved on Ctrl-C, not only every 5
    (run,) = get_client().search_runs(
        [get_client().get_experiment_by_name("runs-test").experiment_id]
    )
    assert run.info.status == "KILLED"


class NanAfterFourSteps(SftTask):
    """A user-registered task whose loss blows up at step 5."""

    calls = 0

    def loss(self, model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        type(self).calls += 1
        loss = super().loss(model, batch)
        return loss * float("nan") if type(self).calls > 4 else loss


def test_nan_loss_stops_with_the_last_good_checkpoint(tiny_causal_lm: Path, tmp_path: Path) -> None:
    register_task("sft-nan", NanAfterFourSteps)
    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(12))
    config = load_config_dict(
        {
            "model": {"ref": str(tiny_causal_lm)},
            "task": {"name": "sft"},
            "data": {"train": str(data)},
            "train": {"max_steps": 10, "batch_size": 2, "save_every": 2},
            "output": {"dir": str(tmp_path / "run")},
        }
    )
    config.task.name = "sft-nan"  # registered above, like a user's own task
    with pytest.raises(LmforgeError) as err:
        train(config, track=False)
    assert "the loss became nan at step 5" in str(err.value)
    assert "step-000004" in str(err.value)
    assert (tmp_path / "run" / "checkpoints" / "step-000004" / "trainable.safetensors").is_file()
    assert not (tmp_path / "run" / "model").exists()


def test_a_run_dir_without_resume_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path / "run.yaml", tmp_path / "model", tmp_path / "d.jsonl")
    result = CliRunner().invoke(app, ["train", str(config), str(tmp_path / "old-run")])
    assert result.exit_code == 2
    assert f"pass --resume {tmp_path / 'old-run'}" in result.stderr


def test_bare_resume_with_nothing_to_resume_names_where_it_looked(
    tiny_causal_lm: Path, tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(4))
    config = write_config(tmp_path / "run.yaml", tiny_causal_lm, data)
    missing_parent = tmp_path / "never-made"
    result = CliRunner().invoke(
        app, ["train", str(config), "--no-track", "--resume",
              "--set", f"output.dir={missing_parent / 'run'}"]
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert f"no unfinished run with a checkpoint under {missing_parent}" in result.stderr


def test_a_failure_in_the_final_evaluation_marks_the_run_failed(
    home: Path, tiny_causal_lm: Path, tmp_path: Path
) -> None:
    from lmforge.track import get_client

    class BrokenEvalTask(SftTask):
        def evaluate(self, model: Any, batches: Any) -> dict[str, Any]:
            raise RuntimeError("evaluation broke")

    register_task("sft-broken-eval", BrokenEvalTask)
    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(10))
    config = load_config_dict(
        yaml.safe_load(write_config(tmp_path / "run.yaml", tiny_causal_lm, data, max_steps=2)
                       .read_text())
    )  # fmt: skip
    config.task.name = "sft-broken-eval"
    with pytest.raises(RuntimeError, match="evaluation broke"):
        train(config)
    experiment = get_client().get_experiment_by_name("runs-test")
    (run,) = get_client().search_runs([experiment.experiment_id])
    assert run.info.status == "FAILED"
    assert not (tmp_path / "run" / "model").exists()
