"""lmforge.track against a real sqlite MLflow store in a temporary LMFORGE_HOME."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from lmforge.errors import LmforgeError
from lmforge.track import (
    OUTPUT_DIR_TAG,
    MlflowTracker,
    NullTracker,
    Tracker,
    flatten_params,
    get_alias,
    list_registered,
    register_model,
    resolve_registry_ref,
    resolve_run_ref,
    set_alias,
    start_run,
    tracking_uri,
)
from lmforge.track import registry as registry_module


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    model = tmp_path / "my-model"
    (model / "sub").mkdir(parents=True)
    (model / "config.json").write_text('{"model_type": "llama"}')
    (model / "sub" / "weights.bin").write_bytes(b"\x00\x01\x02")
    return model


def client() -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri(), registry_uri=tracking_uri())


def assert_model_files(path: Path) -> None:
    assert path.is_dir()
    assert (path / "config.json").read_text() == '{"model_type": "llama"}'
    assert (path / "sub" / "weights.bin").read_bytes() == b"\x00\x01\x02"


# --- the store -------------------------------------------------------------------------


def test_tracking_uri_is_sqlite_in_home_unless_overridden(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert tracking_uri() == f"sqlite:///{home / 'mlflow.db'}"
    monkeypatch.setenv("LMFORGE_TRACKING_URI", "http://mlflow.internal:5000")
    assert tracking_uri() == "http://mlflow.internal:5000"


def test_first_use_creates_the_store_without_log_noise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LMFORGE_HOME", str(tmp_path / "fresh"))
    monkeypatch.delenv("LMFORGE_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    with start_run("first") as tracker:
        tracker.log_metrics({"loss": 1.0})
    out, err = capfd.readouterr()
    assert (tmp_path / "fresh" / "mlflow.db").is_file()
    assert "Creating initial MLflow database tables" not in err
    assert "INFO" not in err
    assert out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh"]  # no ./mlruns or the like


# --- tracker ---------------------------------------------------------------------------


def test_mlflow_tracker_round_trips_params_metrics_tags_artifacts(
    home: Path, tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "scores.json").write_text("{}")

    with start_run("sft", run_name="lora-1", tags={"task": "sft"}) as tracker:
        assert isinstance(tracker, MlflowTracker)
        assert isinstance(tracker, Tracker)
        tracker.log_params(
            {"train": {"lr": 2e-4, "epochs": 1}, "layers": [1, 2], "prompt": "x" * 10_000}
        )
        tracker.log_metrics({"train/loss": 2.5}, step=1)
        tracker.log_metrics({"train/loss": 1.25, "accuracy": 0.5}, step=2)
        tracker.log_artifact(tmp_path / "notes.txt")
        tracker.log_artifacts(tmp_path / "eval", artifact_path="eval")
        tracker.set_tags({"stage": "adapt", OUTPUT_DIR_TAG: str(tmp_path)})
    assert tracker.run_id is not None

    run = client().get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "lora-1"
    params = run.data.params
    assert params["train.lr"] == "0.0002"
    assert params["train.epochs"] == "1"
    assert params["layers"] == "[1,2]"
    assert len(params["prompt"]) == 6000
    assert params["prompt"].endswith("...[truncated]")
    history = client().get_metric_history(tracker.run_id, "train/loss")
    assert [(m.step, m.value) for m in history] == [(1, 2.5), (2, 1.25)]
    assert run.data.metrics == {"train/loss": 1.25, "accuracy": 0.5}
    assert run.data.tags["task"] == "sft"
    assert run.data.tags["stage"] == "adapt"
    assert run.data.tags[OUTPUT_DIR_TAG] == str(tmp_path)

    artifacts = {a.path for a in client().list_artifacts(tracker.run_id)}
    assert artifacts == {"notes.txt", "eval"}
    # The embedded store keeps artifacts as plain files under $LMFORGE_HOME/artifacts.
    experiment = client().get_experiment(run.info.experiment_id)
    assert experiment.artifact_location == (home / "artifacts").as_uri()
    local = home / "artifacts" / tracker.run_id / "artifacts"
    assert (local / "notes.txt").read_text() == "hello"
    assert (local / "eval" / "scores.json").read_text() == "{}"


def test_exception_inside_the_run_marks_it_failed(home: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), start_run("sft") as tracker:
        tracker.log_metrics({"loss": 3.0})
        raise RuntimeError("boom")
    assert tracker.run_id is not None
    assert client().get_run(tracker.run_id).info.status == "FAILED"


def test_close_is_idempotent_and_keeps_the_first_status(home: Path) -> None:
    tracker = start_run("sft")
    tracker.close("FAILED")
    tracker.close("FINISHED")
    assert tracker.run_id is not None
    assert client().get_run(tracker.run_id).info.status == "FAILED"


def test_disabled_tracking_records_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMFORGE_HOME", str(tmp_path / "untouched"))
    monkeypatch.delenv("LMFORGE_TRACKING_URI", raising=False)
    (tmp_path / "f.txt").write_text("x")
    with start_run("sft", enabled=False) as tracker:
        assert isinstance(tracker, NullTracker)
        assert tracker.run_id is None
        tracker.log_params({"a": {"b": 1}})
        tracker.log_metrics({"loss": 1.0}, step=3)
        tracker.log_artifact(tmp_path / "f.txt")
        tracker.log_artifacts(tmp_path)
        tracker.set_tags({"k": "v"})
    assert not (tmp_path / "untouched" / "mlflow.db").exists()


def test_changing_a_logged_param_is_a_user_error(home: Path) -> None:
    with start_run("sft") as tracker:
        tracker.log_params({"lr": 1})
        tracker.log_params({"lr": 1})  # same value again is fine
        with pytest.raises(LmforgeError, match="write-once"):
            tracker.log_params({"lr": 2})


def test_non_numeric_metric_and_missing_artifact_are_user_errors(
    home: Path, tmp_path: Path
) -> None:
    with start_run("sft") as tracker:
        with pytest.raises(LmforgeError, match=r"metric 'loss'.*expected a number"):
            not_a_number: dict[str, Any] = {"loss": "low"}
            tracker.log_metrics(not_a_number)
        with pytest.raises(LmforgeError, match="no such file"):
            tracker.log_artifact(tmp_path / "missing.txt")
        with pytest.raises(LmforgeError, match="no such directory"):
            tracker.log_artifacts(tmp_path / "missing")


def test_unknown_backend_names_the_known_ones() -> None:
    with pytest.raises(LmforgeError, match="known: mlflow, null"):
        start_run("sft", backend="wandb")


def test_flatten_params_makes_valid_mlflow_keys() -> None:
    flat = flatten_params(
        {"model": {"lora": {"r": 8, "targets": ("q", "v")}}, "bad key!": None, "empty": {}}
    )
    assert flat == {
        "model.lora.r": "8",
        "model.lora.targets": '["q","v"]',
        "bad key_": "None",
        "empty": "{}",
    }
    assert flatten_params({"a//b": 1, "/abs": 2, "../up": 3}) == {
        "a__b": "1",
        "_abs": "2",
        "_up": "3",
    }


# --- registry --------------------------------------------------------------------------


def test_register_alias_and_resolve_to_the_model_files(home: Path, model_dir: Path) -> None:
    info = register_model(model_dir, "support-bot", description="first", tags={"base": "smollm2"})
    assert (info.name, info.version, info.ref) == ("support-bot", 1, "registry:support-bot/1")
    assert info.description == "first"
    assert info.tags["base"] == "smollm2"
    assert info.run_id is not None

    set_alias("support-bot", "prod", info.version)
    assert get_alias("support-bot", "prod") == 1
    by_alias = resolve_registry_ref("registry:support-bot@prod")
    by_version = resolve_registry_ref("registry:support-bot/1")
    assert by_alias == by_version
    assert_model_files(by_alias)
    # A local file store is used in place: the path lies under $LMFORGE_HOME/artifacts.
    assert by_alias.is_relative_to(home / "artifacts")
    assert not (home / "models" / "registry").exists()

    second = register_model(model_dir, "support-bot")
    assert second.version == 2
    set_alias("support-bot", "prod", 2)
    set_alias("support-bot", "previous", 1)
    assert get_alias("support-bot", "prod") == 2
    listed = [(v.name, v.version, v.aliases) for v in list_registered()]
    assert listed == [("support-bot", 1, ("previous",)), ("support-bot", 2, ("prod",))]

    registered = client().get_model_version("support-bot", "2")
    assert registered.run_id == second.run_id
    assert registered.source == second.source


def test_unknown_alias_error_lists_the_existing_aliases(home: Path, model_dir: Path) -> None:
    register_model(model_dir, "bot")
    set_alias("bot", "prod", 1)
    set_alias("bot", "staging", 1)
    with pytest.raises(LmforgeError) as err:
        resolve_registry_ref("registry:bot@canary")
    message = str(err.value)
    assert "no alias 'canary'" in message
    assert "prod -> 1" in message and "staging -> 1" in message
    assert "registry:bot/VERSION" in message


def test_registry_ref_errors_name_what_exists(home: Path, model_dir: Path) -> None:
    register_model(model_dir, "bot")
    with pytest.raises(
        LmforgeError, match=r"no registered model named 'bott'.*registered models: bot"
    ):
        resolve_registry_ref("registry:bott/1")
    with pytest.raises(LmforgeError, match=r"no version 5; its versions are 1"):
        resolve_registry_ref("registry:bot/5")
    with pytest.raises(LmforgeError, match="has no aliases yet"):
        resolve_registry_ref("registry:bot@prod")
    with pytest.raises(LmforgeError, match="no version 9"):
        set_alias("bot", "prod", 9)
    with pytest.raises(LmforgeError, match="cannot set alias 'latest'"):
        set_alias("bot", "latest", 1)


@pytest.mark.parametrize(
    "ref", ["registry:bot", "registry:bot/x", "registry:@prod", "registry:/1", "bot@prod"]
)
def test_malformed_registry_refs_show_both_forms(home: Path, ref: str) -> None:
    with pytest.raises(LmforgeError, match=r"registry:NAME@ALIAS .* registry:NAME/VERSION"):
        resolve_registry_ref(ref)


def test_register_model_rejects_bad_input(home: Path, tmp_path: Path, model_dir: Path) -> None:
    with pytest.raises(LmforgeError, match="is not a directory"):
        register_model(tmp_path / "nope", "bot")
    with pytest.raises(LmforgeError, match="invalid model name"):
        register_model(model_dir, "team/bot")
    with pytest.raises(LmforgeError, match="no MLflow run with id 'deadbeef'"):
        register_model(model_dir, "bot", run_id="deadbeef")


def test_register_into_an_existing_run_and_resolve_run_ref(home: Path, model_dir: Path) -> None:
    with start_run("sft", run_name="train") as tracker:
        tracker.log_metrics({"loss": 1.0})
    assert tracker.run_id is not None

    first = register_model(model_dir, "bot", run_id=tracker.run_id)
    again = register_model(model_dir, "bot-again", run_id=tracker.run_id)
    assert first.run_id == again.run_id == tracker.run_id
    assert first.source.endswith("/artifacts/model")
    assert again.source == first.source  # the same files: no second upload
    (model_dir / "config.json").write_text('{"model_type": "llama", "retrained": true}')
    changed = register_model(model_dir, "bot-changed", run_id=tracker.run_id)
    assert changed.source.endswith("/artifacts/model-2")  # never overwrites the first
    assert_model_files(resolve_registry_ref("registry:bot/1"))
    artifacts = {a.path for a in client().list_artifacts(tracker.run_id)}
    assert artifacts == {"model", "model-2"}

    # No output_dir tag: run: refs fall back to the run's model/ artifacts.
    from_run = resolve_run_ref(f"run:{tracker.run_id}")
    assert_model_files(from_run)
    assert from_run == resolve_registry_ref("registry:bot/1")


def test_run_ref_prefers_the_output_dir_tag(home: Path, tmp_path: Path, model_dir: Path) -> None:
    with start_run("sft", tags={OUTPUT_DIR_TAG: str(model_dir)}) as tracker:
        pass
    assert resolve_run_ref(f"run:{tracker.run_id}") == model_dir

    gone = tmp_path / "deleted-output"
    with start_run("sft", tags={OUTPUT_DIR_TAG: str(gone)}) as orphan:
        pass
    with pytest.raises(LmforgeError) as err:
        resolve_run_ref(f"run:{orphan.run_id}")
    assert str(gone) in str(err.value)
    assert "'model/' artifacts (none)" in str(err.value)
    assert f"lmforge runs show {orphan.run_id}" in str(err.value)


def test_run_ref_errors(home: Path) -> None:
    with pytest.raises(LmforgeError, match=r"no MLflow run with id 'f00'.*lmforge runs list"):
        resolve_run_ref("run:f00")
    with pytest.raises(LmforgeError, match="malformed run reference"):
        resolve_run_ref("run:")


def test_remote_artifacts_are_downloaded_once_into_home(
    home: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = register_model(model_dir, "bot")
    # Treat the store as remote: files must be copied into $LMFORGE_HOME/models/registry.
    monkeypatch.setattr(registry_module, "local_path_from_uri", lambda uri: None)
    path = resolve_registry_ref("registry:bot/1")
    assert path == home / "models" / "registry" / "bot" / "1"
    assert_model_files(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["1"]  # no temp dirs left

    (path / "config.json").write_text("cached")  # a second resolve reuses the download
    assert (resolve_registry_ref("registry:bot/1") / "config.json").read_text() == "cached"

    run_path = resolve_run_ref(f"run:{info.run_id}")
    assert run_path == home / "models" / "runs" / str(info.run_id)
    assert_model_files(run_path)
