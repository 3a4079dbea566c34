"""Remaining useful life served for real: a RUL Transformer and the ridge baseline behind
`lmforge serve` on loopback, scoring windows of sensor readings for one unit and many,
streaming one reading at a time into a cached window, naming the sensors behind each
prediction, refusing bad readings with the field named, and reporting drift on /metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lmforge.config import RunConfig
from lmforge.config.schema import SeriesColumns
from lmforge.data.cmapss import SETTINGS, simulate_cmapss
from lmforge.data.timeseries import read_series
from lmforge.hub.timeseries import load_series_model
from lmforge.serve.series_scoring import WindowCache
from lmforge.train.loop import train
from tests.servers import lmforge_server, request

SERIES = {"format": "cmapss", "subset": "FD001", "window": 10, "horizon": 20}


def _train(data: Path, out: Path, task: dict[str, Any]) -> Path:
    config = RunConfig.model_validate({
        "task": task,
        "data": {"train": str(data), "format": "timeseries", "series": SERIES},
        "train": {"epochs": 1, "batch_size": 64, "lr": 0.003},
        "output": {"dir": str(out)},
    })  # fmt: skip
    return train(config, track=False).model_dir


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("served-cmapss")
    return simulate_cmapss(folder, "FD001", seed=3, train_units=10, test_units=4)


@pytest.fixture(scope="module")
def models(data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("served-rul")
    return {
        "engines": _train(data, folder / "transformer",
                          {"name": "timeseries", "d_model": 16, "heads": 2, "layers": 1}),
        "ridge": _train(data, folder / "ridge", {"name": "timeseries-ridge"}),
    }  # fmt: skip


@pytest.fixture(scope="module")
def server(models: dict[str, Path]) -> Any:
    with lmforge_server(str(models["engines"]), "--served-name", "engines", "--scorer",
                        f"ridge={models['ridge']}") as base:  # fmt: skip
        yield base


def _readings(data: Path, unit: int) -> list[dict[str, float]]:
    """A test unit's readings as a client sends them: settings and every sensor."""
    series = read_series(data, SeriesColumns(**SERIES), split="test")
    rows = series.entity == unit
    names = [*SETTINGS, *series.names]
    values = np.column_stack([series.settings[rows], series.values[rows]])
    return [dict(zip(names, map(float, row), strict=True)) for row in values]


def _score(server: str, name: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    status, text = request(f"{server}/v1/score/{name}", body)
    return status, json.loads(text)


def test_a_window_gets_the_offline_rul_and_the_sensors_behind_it(
    server: str, models: dict[str, Path], data: Path
) -> None:
    readings = _readings(data, 1)
    status, body = _score(server, "engines", {"input": {"unit": "e1", "readings": readings},
                                              "top_k": 2})  # fmt: skip
    assert status == 200, body
    (answer,) = body["data"]
    offline = load_series_model(models["engines"])
    series = read_series(data, offline.processor.columns, split="test").take_entities(
        np.array([1]))  # fmt: skip
    rul, probability = offline.predict(offline.processor.windows(series, last_only=True).inputs)
    assert answer["rul"] == pytest.approx(rul[0], abs=1e-3)
    assert answer["failure_probability"] == pytest.approx(probability[0], abs=1e-5)
    assert answer["unit"] == "e1" and answer["readings"] == 10 and answer["horizon"] == 20
    reasons = answer["reasons"]
    assert len(reasons) == 2 and abs(reasons[0]["contribution"]) >= abs(
        reasons[1]["contribution"])  # fmt: skip
    assert all(r["sensor"] in offline.processor.sensors and -9 <= r["most_at"] <= 0
               and r["value"] == readings[-1][r["sensor"]] for r in reasons)  # fmt: skip


def test_streaming_one_reading_at_a_time_scores_the_cached_window(server: str, data: Path) -> None:
    readings = _readings(data, 2)
    _, whole = _score(server, "engines", {"input": {"readings": readings}, "explain": False})
    # the first readings as a window, then the rest one by one under a unit id
    status, _ = _score(server, "engines", {"input": {"unit": "e2", "readings": readings[:3]}})
    assert status == 200
    for reading in readings[3:]:
        status, body = _score(server, "engines", {"input": {"unit": "e2", "reading": reading},
                                                  "explain": False})  # fmt: skip
        assert status == 200, body
    assert body["data"][0]["rul"] == pytest.approx(whole["data"][0]["rul"], abs=1e-4)
    assert body["data"][0]["readings"] == 10
    # many units in one request, each its own window
    _, both = _score(server, "ridge", {"input": [{"unit": "x", "readings": readings},
                                                 {"readings": _readings(data, 3)}]})  # fmt: skip
    assert [row["unit"] for row in both["data"]] == ["x", None]
    assert "failure_probability" not in both["data"][0]  # ridge predicts the RUL only
    assert both["data"][0]["reasons"][0]["most_at"] <= 0


def test_bad_readings_are_refused_with_the_field_named(server: str, data: Path) -> None:
    readings = _readings(data, 1)[:2]
    missing = [readings[0], {k: v for k, v in readings[1].items() if k != "s2"}]
    status, body = _score(server, "engines", {"input": {"readings": missing}})
    assert status == 400 and "input[0].readings[1].s2 is missing" in body["error"]["message"]
    status, body = _score(server, "engines", {"input": {"reading": readings[0]}})
    assert status == 400 and "input[0].unit" in body["error"]["message"]
    status, body = _score(server, "engines", {"input": {"unit": "u", "readings": readings,
                                                        "reading": readings[0]}})  # fmt: skip
    assert status == 400 and "'readings'" in body["error"]["message"]


def test_drift_is_reported_per_sensor_on_metrics(server: str, data: Path) -> None:
    readings = _readings(data, 4)
    shifted = [{**r, "s2": r["s2"] + 50} for r in readings] * 4  # far outside training
    for start in range(0, len(shifted), 20):
        status, _ = _score(server, "ridge", {"input": {"readings": shifted[start : start + 20]},
                                             "explain": False})  # fmt: skip
        assert status == 200
    status, text = request(f"{server}/v1/score/ridge/drift")
    report = json.loads(text)
    assert "s2" in report["drifted"] and report["rows"] >= 100, report
    _, metrics = request(f"{server}/metrics")
    match = re.search(r'lmforge_score_feature_drifted\{feature="s2",scorer="ridge"\} (\S+)',
                      metrics)  # fmt: skip
    assert match is not None and float(match.group(1)) == 1.0
    status, text = request(f"{server}/v1/models")
    described = {m["id"]: m for m in json.loads(text)["data"]}
    assert described["engines"]["architecture"] == "rul-transformer"
    assert described["engines"]["compiled"] is True
    assert described["ridge"]["features"][:3] == SETTINGS


def test_the_window_cache_is_bounded_and_expires() -> None:
    now = [0.0]
    cache = WindowCache(3, units=2, seconds=10, clock=lambda: now[0])
    row = np.ones((1, 4))
    assert cache.update("a", np.arange(8.0).reshape(2, 4), replace=True).shape == (2, 4)
    assert cache.update("a", row, replace=False).shape == (3, 4)
    assert cache.update("a", row * 2, replace=False)[0, 0] == 4.0  # the oldest dropped
    cache.update("b", row, replace=True)
    now[0] = 5.0
    cache.update("c", row, replace=True)  # a third unit: "a", updated longest ago, goes
    assert "a" not in cache and cache.evicted == 1
    now[0] = 12.0  # "b" (updated at 0) has expired; "c" (at 5) has not
    assert "b" not in cache and "c" in cache and cache.expired == 1
    assert cache.update("c", row, replace=False).shape == (2, 4)
