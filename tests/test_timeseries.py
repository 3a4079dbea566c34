"""Sensor time series: long tables and C-MAPSS folders read and checked against
data.series, windows cut as documented, the processor fitted on training rows only and
saved with the model, the RUL Transformer trained by the one loop and the two baselines
fitted beside it, their metrics and the NASA score, integrated gradients that add up, and
`lmforge eval --task rul` with bootstrap intervals and a plot in MLflow."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge
from typer.testing import CliRunner

from lmforge.cli.main import app
from lmforge.config import RunConfig
from lmforge.config.schema import SeriesColumns
from lmforge.data.cmapss import simulate_cmapss
from lmforge.data.fetch import data_file
from lmforge.data.timeseries import SeriesProcessor, read_series
from lmforge.errors import LmforgeError
from lmforge.hub import resolve
from lmforge.hub.timeseries import (
    RidgeRUL,
    RULTransformer,
    SeriesShape,
    attributions_and_outputs,
    load_series_model,
    window_statistics,
)
from lmforge.stats import nasa_penalties, rul_scores
from lmforge.tasks.base import get_task
from lmforge.track.mlflow_store import get_client
from lmforge.train.data import build_data
from lmforge.train.loop import train

FD001 = SeriesColumns(format="cmapss", subset="FD001", window=12, horizon=20)


@pytest.fixture(scope="module")
def cmapss(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cmapss")
    return simulate_cmapss(folder, "FD001", seed=0, train_units=16, test_units=8)


def _config(data: Path, out: Path, task: dict[str, Any], **series: Any) -> RunConfig:
    return RunConfig.model_validate({
        "task": task,
        "data": {"train": str(data), "val_ratio": 0.25, "format": "timeseries",
                 "series": {**FD001.model_dump(), **series}},
        "train": {"epochs": 1, "batch_size": 64, "lr": 0.003, "log_every": 100},
        "output": {"dir": str(out)},
    })  # fmt: skip


@pytest.fixture(scope="module")
def transformer(cmapss: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rul")
    task = {"name": "timeseries", "tokens": "sensor", "d_model": 16, "heads": 2, "layers": 1}
    return train(_config(cmapss, out, task), track=False).model_dir


def _long_table(path: Path) -> Path:
    """Two machines, out of time order in the file, with a setting column and a target."""
    lines = ["machine,t,load,temp,vib,rul"]
    for machine, length in (("b", 5), ("a", 3)):
        for t in range(length, 0, -1):
            lines.append(f"{machine},{t},1.0,{20 + t},{0.1 * t * (machine == 'a')},{length - t}")
    path.write_text("\n".join(lines) + "\n")
    return path


LONG = SeriesColumns(format="long", entity="machine", time="t", conditions=["load"],
                     target="rul", window=4, stride=2, horizon=1, rul_cap=3)  # fmt: skip


# --- data ----------------------------------------------------------------------------


def test_a_long_table_is_sorted_and_cut_into_windows(tmp_path: Path) -> None:
    series = read_series(_long_table(tmp_path / "m.csv"), LONG)
    assert series.names == ["temp", "vib"] and series.entity.tolist() == ["a"] * 3 + ["b"] * 5
    assert series.time.tolist() == [1, 2, 3, 1, 2, 3, 4, 5]
    processor = SeriesProcessor(LONG)
    processor.fit(series)
    assert processor.sensors == ["temp", "vib"]
    windows = processor.windows(series)
    # stride 2 counted back from each machine's last reading: a at t 1, 3; b at t 1, 3, 5
    assert windows.entity.tolist() == ["a", "a", "b", "b", "b"]
    assert windows.rul.tolist() == [2, 0, 3, 2, 0]  # b's RUL 4 capped at 3
    assert windows.failure.tolist() == [0, 1, 0, 0, 1]  # failure within horizon 1 (uncapped)
    scaled = processor.scaled(series)
    # a's first window ends at its first reading: that reading repeated four times
    np.testing.assert_array_equal(windows.inputs[0], np.repeat(scaled[[0]], 4, axis=0))
    np.testing.assert_array_equal(windows.inputs[4], scaled[4:8])  # b's last four
    last = processor.windows(series, last_only=True)
    assert last.entity.tolist() == ["a", "b"] and last.rul.tolist() == [0, 0]


def test_long_table_errors_name_the_field_file_and_row(tmp_path: Path) -> None:
    path = _long_table(tmp_path / "m.csv")
    with pytest.raises(LmforgeError, match=r"data.series.conditions: no column 'speed'"):
        read_series(path, LONG.model_copy(update={"conditions": ["speed"]}))
    duplicate = tmp_path / "dup.csv"
    duplicate.write_text(path.read_text() + "a,2,1.0,22,0.2,1\n")
    with pytest.raises(LmforgeError, match=r"entity 'a' has time 2 twice"):
        read_series(duplicate, LONG)
    missing = tmp_path / "missing.csv"
    missing.write_text(path.read_text().replace("b,4,1.0,24", "b,4,1.0,"))
    with pytest.raises(LmforgeError, match=r"column 'temp' row \d+ is missing"):
        read_series(missing, LONG)
    with pytest.raises(LmforgeError, match="not a folder"):
        read_series(path, FD001)
    with pytest.raises(ValueError, match=r"data\.series\.features: C-MAPSS files have fixed"):
        SeriesColumns(format="cmapss", features=["s2"])


def test_the_processor_round_trips_and_scales_test_rows_as_training_did(
    cmapss: Path, tmp_path: Path
) -> None:
    train_rows = read_series(cmapss, FD001)
    test_rows = read_series(cmapss, FD001, split="test")
    processor = SeriesProcessor(FD001)
    processor.fit(train_rows)
    assert len(processor.sensors) == 14  # the simulator's seven constant sensors dropped
    processor.save_pretrained(tmp_path)
    loaded = SeriesProcessor.from_pretrained(tmp_path)
    np.testing.assert_array_equal(loaded.windows(test_rows, last_only=True).inputs,
                                  processor.windows(test_rows, last_only=True).inputs)  # fmt: skip
    # the test RUL of each unit's last window is the RUL file's line, capped
    rul_file = (cmapss / "RUL_FD001.txt").read_text().split()
    expected = np.minimum(np.array(rul_file, dtype=float), FD001.rul_cap)
    np.testing.assert_array_equal(loaded.windows(test_rows, last_only=True).rul, expected)
    one = test_rows.take_entities(np.array([1]))
    window = loaded.window_of(one.settings, one.values)
    np.testing.assert_allclose(window, loaded.windows(one, last_only=True).inputs[0])


def test_the_simulated_folder_is_named_like_a_fetched_data_set(home: Path) -> None:
    with pytest.raises(LmforgeError, match="run `lmforge data simulate cmapss` first"):
        data_file("dataset:cmapss-sim")
    folder = simulate_cmapss(home / "datasets" / "cmapss-sim", "FD001", train_units=2,
                             test_units=1)  # fmt: skip
    assert data_file("dataset:cmapss-sim") == folder
    with pytest.raises(LmforgeError, match="is one folder, name it without /test"):
        data_file("dataset:cmapss-sim/test")


def test_config_errors() -> None:
    with pytest.raises(ValueError, match=r"data\.series: sensor series need their layout"):
        RunConfig.model_validate({"task": {"name": "timeseries"}, "data": {"train": "x"}})
    with pytest.raises(ValueError, match=r"data\.series: only timeseries data"):
        RunConfig.model_validate({"task": {"name": "tabular"}, "data": {
            "train": "x", "columns": {"target": "y"}, "series": {}}})  # fmt: skip
    with pytest.raises(ValueError, match=r"task\.heads: 3 does not divide task\.d_model 32"):
        RunConfig.model_validate({"task": {"name": "timeseries", "heads": 3},
                                  "data": {"train": "x", "series": {}}})  # fmt: skip
    with pytest.raises(ValueError, match=r"task\.tokens: sensor tokens each read a sensor's whole"):
        RunConfig.model_validate({"task": {"name": "timeseries", "tokens": "sensor", "patch": 5},
                                  "data": {"train": "x", "series": {}}})  # fmt: skip
    with pytest.raises(ValueError, match=r"normalize: 'condition' needs data\.series\.conditions"):
        SeriesColumns(format="long", normalize="condition")


def test_validation_holds_out_whole_entities_cut_before_failure(
    cmapss: Path, tmp_path: Path
) -> None:
    config = _config(cmapss, tmp_path, {"name": "timeseries-ridge"})
    task = get_task("timeseries-ridge").configured(config)
    data = build_data(task, task.load_processor(None), config.data, max_length=1)
    assert data.metrics["data/train/entities"] == 12
    assert len(data.validation) == data.metrics["data/validation/entities"] == 4
    assert all(ex["rul"] > 0 for ex in data.validation)  # cut before failure, not at it
    # stride 1: one training window per reading of the 12 training units
    assert len(data.train) == data.metrics["data/train/windows"] > 12 * 100


# --- metrics and models --------------------------------------------------------------


def test_the_nasa_score_punishes_late_predictions_more() -> None:
    truths = np.array([50.0, 50.0, 50.0])
    penalties = nasa_penalties(truths, np.array([40.0, 50.0, 60.0]))
    np.testing.assert_allclose(penalties, [np.exp(10 / 13) - 1, 0, np.exp(1) - 1])
    assert penalties[2] > penalties[0]
    scores = rul_scores(truths, np.array([40.0, 50.0, 60.0]))
    assert scores["rmse"] == pytest.approx(np.sqrt(200 / 3)) and scores["mae"] == pytest.approx(
        20 / 3)  # fmt: skip
    assert scores["nasa_score"] == pytest.approx(penalties.sum())


def test_ridge_matches_scikit_learn_and_statistics_measure_the_window() -> None:
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(200, 5, 3)).astype(np.float32)
    rul = inputs[:, -1, 0] * 10 + 50 + rng.normal(size=200)
    ours = RidgeRUL.fit(inputs, rul, alpha=2.0)
    flat = inputs.reshape(200, -1).astype(np.float64)
    reference = Ridge(alpha=2.0).fit(flat, rul)
    np.testing.assert_allclose(ours.coef, reference.coef_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ours.predict(inputs), reference.predict(flat), rtol=1e-6)
    ramp = (np.arange(6, dtype=np.float64)[None, :, None] * np.array([2.0, -1.0])).astype(
        np.float32)  # (1, 6, 2): slopes 2 and -1  # fmt: skip
    np.testing.assert_allclose(window_statistics(ramp), [[5, -2.5, 2, -1, 10, -5]], atol=1e-6)


@pytest.mark.parametrize(("tokens", "positions", "pooling", "patch"),
                         [("time", "learned", "cls", 1), ("time", "sinusoidal", "mean", 3),
                          ("sensor", "learned", "cls", 1)])  # fmt: skip
def test_integrated_gradients_add_up_to_the_rul_change(
    tokens: str, positions: str, pooling: str, patch: int
) -> None:
    torch.manual_seed(0)
    shape = SeriesShape(features=3, window=6, d_token=16, tokens=tokens, heads=2, layers=1,
                        positions=positions, pooling=pooling, patch=patch)  # fmt: skip
    model = RULTransformer(shape).eval()
    inputs = torch.randn(2, 6, 3)
    attributions, rul, logits = attributions_and_outputs(model, inputs, steps=64)
    assert attributions.shape == (2, 6, 3)
    with torch.no_grad():
        expected_rul, expected_logits = model(inputs)
        base, _ = model(torch.zeros(1, 6, 3))
    torch.testing.assert_close(rul, expected_rul)
    torch.testing.assert_close(logits, expected_logits)
    gaps = expected_rul - base
    torch.testing.assert_close(attributions.sum((1, 2)), gaps, rtol=0.02, atol=0.05)
    with pytest.raises(LmforgeError, match=r"task\.patch: 4 does not divide the window of 6"):
        RULTransformer(dataclasses.replace(shape, patch=4))


def test_a_sensor_token_reads_that_sensor_s_whole_window_and_nothing_else() -> None:
    torch.manual_seed(0)
    model = RULTransformer(SeriesShape(features=3, window=6, d_token=8, tokens="sensor",
                                       heads=2, layers=1))  # fmt: skip
    inputs = torch.randn(2, 6, 3)
    tokens = model.tokens(inputs)
    assert tokens.shape == (2, 3, 8)  # one token per sensor
    changed = inputs.clone()
    changed[:, 0, 1] += 1.0  # sensor 1's oldest reading
    moved = (model.tokens(changed) - tokens).abs().amax(dim=(0, 2))
    assert moved[1] > 0 and moved[0] == 0 and moved[2] == 0


def test_jitter_perturbs_only_the_readings_training_sees(cmapss: Path, tmp_path: Path) -> None:
    model = RULTransformer(SeriesShape(features=3, window=12, d_token=8, heads=2, layers=1,
                                       attention_dropout=0, ffn_dropout=0))  # fmt: skip
    batch = {"inputs": torch.randn(4, 12, 3), "rul": torch.tensor([10.0, 50, 90, 125]),
             "failure": torch.tensor([1.0, 0, 0, 0])}  # fmt: skip

    def losses(jitter: float) -> list[float]:
        task = {"name": "timeseries", "jitter": jitter}
        configured = get_task("timeseries").configured(_config(cmapss, tmp_path, task))
        return [configured.loss(model, batch).item() for _ in range(2)]

    plain, jittered = losses(0.0), losses(0.5)
    assert plain[0] == plain[1] and jittered[0] != jittered[1] and plain[0] not in jittered


# --- training and evaluation ---------------------------------------------------------


def test_the_transformer_trains_saves_and_resolves(transformer: Path, cmapss: Path) -> None:
    assert resolve(str(transformer)).kind == "timeseries"
    model = load_series_model(transformer)
    assert model.kind == "rul-transformer" and model.processor.sensors
    config = json.loads((transformer / "config.json").read_text())
    assert config["window"] == 12 and config["d_token"] == 16 and config["rul_cap"] == 125
    windows = model.processor.windows(read_series(cmapss, FD001, split="test"), last_only=True)
    rul, probability = model.predict(windows.inputs)
    assert rul.shape == (8,) and probability is not None
    assert ((rul >= 0) & (rul <= 125)).all() and ((probability > 0) & (probability < 1)).all()


@pytest.mark.parametrize("task", [{"name": "timeseries-ridge", "alpha": 3.0},
                                  {"name": "timeseries-lightgbm", "trees": 40}])  # fmt: skip
def test_the_baselines_fit_on_the_same_windows(
    cmapss: Path, tmp_path: Path, task: dict[str, Any]
) -> None:
    result = train(_config(cmapss, tmp_path, task), track=False)
    assert result.steps == 0 and {"rmse", "mae", "nasa_score"} <= set(result.eval_metrics)
    model = load_series_model(result.model_dir)
    assert model.kind == {"timeseries-ridge": "rul-ridge",
                          "timeseries-lightgbm": "rul-lightgbm"}[task["name"]]  # fmt: skip
    windows = model.processor.windows(read_series(cmapss, FD001, split="test"), last_only=True)
    rul, probability = model.predict(windows.inputs)
    assert probability is None and rul.shape == (8,)


def test_eval_rul_reports_intervals_and_logs_the_plot(transformer: Path, cmapss: Path,
                                                      home: Path) -> None:  # fmt: skip
    result = CliRunner().invoke(app, ["eval", str(transformer), "--task", "rul",
                                      "--data", str(cmapss), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["examples"] == 8
    for metric in ("rmse", "mae", "nasa_score"):
        low, high = report["intervals"][metric]
        assert low <= report["metrics"][metric] <= high and high > low
    run = get_client().get_run(report["run_id"])
    assert run.data.metrics["rmse"] == pytest.approx(report["metrics"]["rmse"])
    artifacts = {a.path for a in get_client().list_artifacts(report["run_id"])}
    assert "rul.png" in artifacts
    other = CliRunner().invoke(app, ["eval", str(transformer), "--task", "rul", "--no-track",
                                     "--data", str(cmapss / "missing")])  # fmt: skip
    assert other.exit_code != 0 and "not a folder" in other.output
