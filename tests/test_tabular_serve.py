"""Real-time scoring served for real: an FT-Transformer and a LightGBM model behind
`lmforge serve` on loopback, scoring transactions one by one and in batches with a reason
per decision, micro-batching concurrent requests, refusing bad rows with the field named,
and reporting drift on /metrics."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from lmforge.config import RunConfig
from lmforge.data.transactions import synthetic_transactions, write_transactions
from lmforge.hub.tabular import load_tabular
from lmforge.serve.scoring import SERVED_IG_STEPS
from lmforge.train.loop import train
from tests.servers import lmforge_server, request


def _train(data: Path, out: Path, task: dict[str, Any]) -> Path:
    config = RunConfig.model_validate({
        "task": task,
        "data": {"train": str(data), "val_ratio": 0.25,
                 "columns": {"target": "Class", "time": "Time"}},
        "train": {"epochs": 1, "batch_size": 128, "lr": 0.003},
        "output": {"dir": str(out)},
    })  # fmt: skip
    return train(config, track=False).model_dir


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("served-tabular")
    data = write_transactions(folder / "train.parquet", 3_000, seed=0, fraud_rate=0.03)
    return {
        "fraud": _train(data, folder / "ft", {"name": "tabular"}),
        "trees": _train(data, folder / "lgb", {"name": "lightgbm", "trees": 40}),
    }


@pytest.fixture(scope="module")
def server(models: dict[str, Path]) -> Any:
    with lmforge_server(str(models["fraud"]), "--served-name", "fraud", "--scorer",
                        f"trees={models['trees']}") as base:  # fmt: skip
        yield base


def _rows(count: int, seed: int = 5, **options: Any) -> list[dict[str, float]]:
    columns = synthetic_transactions(count, seed=seed, **options)
    features = [name for name in columns if name not in {"Time", "Class"}]
    return [{name: float(columns[name][i]) for name in features} for i in range(count)]


def _score(server: str, name: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    status, text = request(f"{server}/v1/score/{name}", body)
    return status, json.loads(text)


def test_one_transaction_gets_a_score_a_decision_and_its_reasons(
    server: str, models: dict[str, Path]
) -> None:
    row = _rows(1)[0]
    status, body = _score(server, "fraud", {"input": row})
    assert status == 200, body
    (answer,) = body["data"]
    offline = load_tabular(models["fraud"])
    numeric, codes = offline.inputs(offline.processor.rows_table([row]))
    assert answer["score"] == pytest.approx(float(offline.probabilities(numeric, codes)[0]),
                                            abs=1e-6)  # fmt: skip
    threshold = offline.processor.decision.threshold
    assert answer["threshold"] == pytest.approx(threshold)
    assert answer["flagged"] == (answer["score"] >= threshold)
    assert answer["label"] == ("1" if answer["flagged"] else "0")
    reasons = answer["reasons"]
    assert len(reasons) == 3
    assert all(reason["feature"] in row and reason["value"] == row[reason["feature"]]
               for reason in reasons)  # fmt: skip
    sizes = [abs(reason["contribution"]) for reason in reasons]
    assert sizes == sorted(sizes, reverse=True)
    weights = offline.contributions(numeric, codes, steps=SERVED_IG_STEPS)[0]  # eager
    expected = dict(zip(offline.processor.features, weights, strict=True))
    assert {r["feature"]: r["contribution"] for r in reasons} == pytest.approx(
        {r["feature"]: expected[r["feature"]] for r in reasons}, rel=1e-3, abs=1e-4)  # fmt: skip


def test_a_batch_scores_as_single_requests_do_and_trees_explain_with_their_own_contributions(
    server: str, models: dict[str, Path]
) -> None:
    rows = _rows(20, seed=6)
    status, batch = _score(server, "trees", {"input": rows, "top_k": 30})
    assert status == 200, batch
    _, single = _score(server, "trees", {"input": rows[7], "top_k": 30})
    assert batch["data"][7]["score"] == pytest.approx(single["data"][0]["score"], abs=1e-9)
    trees = load_tabular(models["trees"])
    numeric, codes = trees.inputs(trees.processor.rows_table(rows))
    expected = trees.contributions(numeric, codes)
    for i, answer in enumerate(batch["data"]):
        got = {reason["feature"]: reason["contribution"] for reason in answer["reasons"]}
        wanted = dict(zip(trees.processor.features, expected[i], strict=True))
        assert got == pytest.approx(wanted, abs=1e-9)
    _, quiet = _score(server, "fraud", {"input": rows[:2], "explain": False})
    assert all("reasons" not in answer for answer in quiet["data"])


def test_bad_rows_get_a_400_naming_the_field(server: str) -> None:
    row = _rows(1)[0]
    missing = {k: v for k, v in row.items() if k != "V3"}
    status, body = _score(server, "fraud", {"input": [row, missing]})
    assert status == 400
    assert body["error"]["message"].startswith("input[1].V3: missing; expected a finite number")
    assert body["error"]["param"] == "input"
    status, body = _score(server, "trees", {"input": {**row, "Amount": "12 EUR"}})
    assert status == 400 and "input[0].Amount: '12 EUR'" in body["error"]["message"]
    status, body = _score(server, "nope", {"input": row})
    assert status == 404 and "scoring models: trees, fraud" in body["error"]["message"]
    status, body = _score(server, "fraud", {"input": [row] * 1025})
    assert status == 400 and "send 1 to 1024" in body["error"]["message"]


def test_concurrent_requests_are_micro_batched(server: str) -> None:
    rows = _rows(96, seed=7)

    def one(row: dict[str, float]) -> int:
        return _score(server, "fraud", {"input": row})[0]

    before = _metric(server, 'lmforge_score_batches_total{scorer="fraud"}')
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(one, rows))
    assert statuses == [200] * 96  # no request lost
    passes = _metric(server, 'lmforge_score_batches_total{scorer="fraud"}') - before
    assert passes < 96  # some passes scored several requests together


def test_drift_is_measured_against_the_training_data(server: str) -> None:
    shifted = _rows(300, seed=8, drift=4.0)  # V1's mean moves 0 -> 4 over the rows
    status, _ = _score(server, "trees", {"input": shifted, "explain": False})
    assert status == 200
    status, text = request(f"{server}/v1/score/trees/drift")
    report = json.loads(text)
    assert status == 200 and report["threshold"] == 0.2
    assert report["drifted"] == ["V1"], report["psi"]
    assert report["psi"]["V1"] > 0.5 and report["psi"]["V2"] < 0.1
    assert _metric(server, 'lmforge_score_feature_drifted{feature="V1",scorer="trees"}') == 1.0
    assert _metric(server, 'lmforge_score_feature_drifted{feature="V2",scorer="trees"}') == 0.0
    status, text = request(f"{server}/v1/models")
    listed = {model["id"]: model for model in json.loads(text)["data"]}
    assert listed["trees"]["architecture"] == "lightgbm"
    assert listed["fraud"]["architecture"] == "ft-transformer" and "V14" in listed[
        "fraud"]["features"]  # fmt: skip
    assert listed["fraud"]["compiled"] and not listed["trees"]["compiled"]


def _metric(server: str, sample: str) -> float:
    _, text = request(f"{server}/metrics")
    match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    assert match is not None, f"{sample} not in /metrics"
    return float(match.group(1))
