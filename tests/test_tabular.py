"""Tabular classification: tables read and checked against data.columns, split by time,
preprocessing fitted on training rows only, the FT-Transformer trained by the one loop and
LightGBM fitted beside it, their metrics checked against scikit-learn, explanations that
add up, and `lmforge eval --task tabular-classification` saving a threshold."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score
from typer.testing import CliRunner

from lmforge.cli.main import app
from lmforge.config import RunConfig
from lmforge.config.schema import TabularColumns
from lmforge.data.tabular import TabularProcessor, read_table, split_table
from lmforge.data.transactions import write_transactions
from lmforge.errors import LmforgeError
from lmforge.hub import resolve
from lmforge.hub.tabular import FTShape, FTTransformer, load_tabular
from lmforge.stats import binary_scores, cost_optimal_threshold
from lmforge.train.loop import train

COLUMNS = TabularColumns(target="Class", time="Time")


@pytest.fixture(scope="module")
def transactions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("transactions")
    write_transactions(folder / "test.csv", 2_000, seed=1, fraud_rate=0.03)
    return write_transactions(folder / "train.parquet", 4_000, seed=0, fraud_rate=0.03)


def _config(data: Path, out: Path, task: dict[str, Any], **sections: Any) -> RunConfig:
    return RunConfig.model_validate({
        "task": task,
        "data": {"train": str(data), "val_ratio": 0.25, "columns": {"target": "Class",
                                                                     "time": "Time"}},
        "train": {"epochs": 1, "batch_size": 128, "lr": 0.003, "log_every": 100},
        "output": {"dir": str(out)},
        **sections,
    })  # fmt: skip


@pytest.fixture(scope="module")
def ft_model(transactions: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ft")
    return train(_config(transactions, out, {"name": "tabular"}), track=False).model_dir


@pytest.fixture(scope="module")
def lightgbm_model(transactions: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lgb")
    task = {"name": "lightgbm", "trees": 60, "early_stopping": None}
    return train(_config(transactions, out, task), track=False).model_dir


# --- metrics -------------------------------------------------------------------------


def test_binary_scores_agree_with_scikit_learn_with_ties() -> None:
    rng = np.random.default_rng(0)
    truths = (rng.random(3_000) < 0.05).astype(int)
    scores = np.round(rng.random(3_000) * 0.6 + truths * 0.3, 2)  # many tied scores
    ours = binary_scores(truths, scores, at_fpr=0.01, at_recall=0.5)
    assert ours["auprc"] == pytest.approx(average_precision_score(truths, scores), abs=1e-12)
    assert ours["roc_auc"] == pytest.approx(roc_auc_score(truths, scores), abs=1e-12)
    # recall at FPR and precision at recall, by brute force over every threshold
    best_recall, best_precision = 0.0, 0.0
    for threshold in np.unique(scores):
        flagged = scores >= threshold
        tp, fp = (flagged & (truths == 1)).sum(), (flagged & (truths == 0)).sum()
        recall, precision = tp / truths.sum(), tp / flagged.sum()
        if fp / (truths == 0).sum() <= 0.01:
            best_recall = max(best_recall, recall)
        if recall >= 0.5:
            best_precision = max(best_precision, precision)
    assert ours["recall_at_fpr"] == pytest.approx(best_recall)
    assert ours["precision_at_recall"] == pytest.approx(best_precision)


def test_cost_optimal_threshold_is_the_cheapest_one() -> None:
    rng = np.random.default_rng(1)
    truths = (rng.random(500) < 0.1).astype(int)
    scores = rng.random(500) * 0.7 + truths * 0.3
    threshold, cost = cost_optimal_threshold(truths, scores, missed_cost=20, false_alarm_cost=1)

    def cost_at(t: float) -> float:
        flagged = scores >= t
        return (20 * (~flagged & (truths == 1)).sum() + (flagged & (truths == 0)).sum()) / 500

    assert cost == pytest.approx(cost_at(threshold))
    assert all(cost <= cost_at(t) + 1e-12 for t in [*np.unique(scores), 1.01])
    # nothing worth flagging: the threshold lies above every probability
    none, cost = cost_optimal_threshold(np.array([0, 1, 0]), np.array([0.9, 0.5, 0.1]),
                                        missed_cost=0.5, false_alarm_cost=1)  # fmt: skip
    assert none > 1.0 and cost == pytest.approx(0.5 / 3)


def test_population_stability_index() -> None:
    from lmforge.data.tabular import population_stability

    assert population_stability([0.5, 0.5], [0.5, 0.5]) == 0.0
    expected = (0.8 - 0.5) * np.log(0.8 / 0.5) + (0.2 - 0.5) * np.log(0.2 / 0.5)
    assert population_stability([0.5, 0.5], [0.8, 0.2]) == pytest.approx(expected)
    assert np.isfinite(population_stability([0.5, 0.5, 0.0], [0.4, 0.4, 0.2]))  # empty bin


# --- data ----------------------------------------------------------------------------


def test_table_errors_name_the_column(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("Time,V1,Kind,Class\n1,0.5,a,0\n2,,b,1\n3,0.1,c,1\n")
    with pytest.raises(LmforgeError, match=r"data.columns.numeric: column 'V1' .* 1 missing"
                       r".*data row 2"):  # fmt: skip
        read_table(path, TabularColumns(target="Class", categorical=["Kind"]))
    path.write_text("Time,V1,Kind,Class\n1,0.5,a,0\n2,0.2,b,1\n")
    with pytest.raises(LmforgeError, match=r"column 'Kind' .* holds str values such as 'a'.*"
                       "categorical"):  # fmt: skip
        read_table(path, TabularColumns(target="Class"))
    with pytest.raises(LmforgeError, match=r"data.columns.time: no column 'When' .* its "
                       "columns are Time, V1, Kind, Class"):  # fmt: skip
        read_table(path, TabularColumns(target="Class", time="When", categorical=["Kind"]))
    path.write_text("V1,Class\n0.5,0\n0.2,0\n")
    with pytest.raises(LmforgeError, match="holds only the class"):
        read_table(path, TabularColumns(target="Class"))
    with pytest.raises(LmforgeError, match=r"is already data.columns.target"):
        read_table(path, TabularColumns(target="Class", numeric=["V1", "Class"]))


def test_timestamps_order_the_split(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    stamps = np.array(["2024-01-03", "2024-01-01", "2024-01-02", "2024-01-04"], "datetime64[ns]")
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"when": stamps, "x": [3.0, 1.0, 2.0, 4.0], "y": [0, 1, 0, 1]}), path)
    table = read_table(path, TabularColumns(target="y", time="when"))
    earlier, latest = split_table(table, val_ratio=0.5, time_column="when", seed=0)
    assert sorted(earlier.columns["x"].tolist()) == [1.0, 2.0]
    assert sorted(latest.columns["x"].tolist()) == [3.0, 4.0]


def test_time_split_keeps_the_latest_rows_for_validation(transactions: Path) -> None:
    table = read_table(transactions, COLUMNS)
    train_part, latest = split_table(table, val_ratio=0.25, time_column="Time", seed=0)
    assert len(latest) == 1_000 and len(train_part) == 3_000
    assert train_part.columns["Time"].max() <= latest.columns["Time"].min()
    shuffled, held = split_table(table, val_ratio=0.25, time_column=None, seed=0)
    assert shuffled.columns["Time"].max() > held.columns["Time"].min()  # random, not by time


def test_processor_fits_on_training_rows_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("Time,Amount,Shop,Class\n" + "".join(
        f"{i},{i * 10.0},{'ab'[i % 2]},{int(i % 5 == 0)}\n" for i in range(100)))  # fmt: skip
    columns = TabularColumns(target="Class", time="Time", categorical=["Shop"])
    train_part, later = split_table(read_table(path, columns), val_ratio=0.2,
                                    time_column="Time", seed=0)  # fmt: skip
    processor = TabularProcessor(columns, scaling="standard")
    processor.fit(train_part)
    assert processor.numeric == ["Amount"]  # numeric: null takes the rest, time excluded
    assert processor.stats["Amount"][0] == pytest.approx(395.0)  # mean of rows 0..79 only
    assert processor.classes == ["0", "1"] and processor.class_counts == [64, 16]
    assert processor.cardinalities == [3]
    processor.save_pretrained(tmp_path)
    loaded = TabularProcessor.from_pretrained(tmp_path)
    assert loaded.to_dict() == processor.to_dict()
    np.testing.assert_array_equal(loaded.numeric_matrix(later), processor.numeric_matrix(later))
    quantile = TabularProcessor(columns, scaling="quantile")
    quantile.fit(train_part)
    scaled = quantile.numeric_matrix(later)[:, 0]
    assert np.all(scaled == scaled.max())  # every later amount is beyond the training range
    assert scaled.max() == pytest.approx(3.09, abs=0.01)  # capped, not exploding
    with pytest.raises(LmforgeError, match=r"rows\[0\].Amount: 'x'; expected a finite number"):
        processor.rows_table([{"Amount": "x", "Shop": "a"}])
    with pytest.raises(LmforgeError, match=r"rows\[1\].Shop: missing"):
        processor.rows_table([{"Amount": 1, "Shop": "a"}, {"Amount": 2}])


# --- config --------------------------------------------------------------------------


def test_config_errors(transactions: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"model.ref: required for task 'classify'"):
        RunConfig.model_validate({"task": {"name": "classify"}, "data": {"train": "x.jsonl"}})
    with pytest.raises(ValueError, match=r"data.columns: tabular data needs its columns"):
        RunConfig.model_validate({"task": {"name": "tabular"}, "data": {"train": "x.csv"}})
    with pytest.raises(ValueError, match=r"data.split: 'time' needs data.columns.time"):
        RunConfig.model_validate({"task": {"name": "tabular"}, "data": {
            "train": "x.csv", "split": "time", "columns": {"target": "y"}}})  # fmt: skip
    with pytest.raises(ValueError, match=r"task.heads: 3 does not divide task.d_token 32"):
        data = {"train": "x.csv", "columns": {"target": "y"}}
        RunConfig.model_validate({"task": {"name": "tabular", "heads": 3}, "data": data})
    with pytest.raises(ValueError, match=r"data.on_error: not used by tabular data"):
        RunConfig.model_validate({"task": {"name": "tabular"}, "data": {
            "train": "x.csv", "on_error": "skip", "columns": {"target": "y"}}})  # fmt: skip
    config = _config(transactions, tmp_path, {"name": "lightgbm"}, model={"ref": "x"})
    with pytest.raises(LmforgeError, match=r"model.ref: task lightgbm grows its trees"):
        train(config, track=False)
    config = _config(transactions, tmp_path, {"name": "tabular"}, method={"name": "lora"})
    with pytest.raises(LmforgeError, match=r"method.name: lora: task tabular trains every"):
        train(config, track=False)


# --- training and the saved models -----------------------------------------------------


def test_ft_transformer_trains_and_saves_its_threshold(ft_model: Path) -> None:
    assert resolve(str(ft_model)).kind == "tabular"
    metrics = json.loads((ft_model.parent / "metrics.json").read_text())["eval"]
    assert metrics["rows"] == 1_000 and metrics["positives"] > 10
    assert metrics["roc_auc"] > 0.9  # the synthetic frauds are separable
    assert metrics["auprc"] > 3 * metrics["positives"] / metrics["rows"]  # far above chance
    model = load_tabular(ft_model)
    decision = model.processor.decision
    assert decision.chosen_on == "validation"
    assert decision.threshold == pytest.approx(metrics["threshold"])
    assert (decision.missed_cost, decision.false_alarm_cost) == (100.0, 1.0)


def test_ft_transformer_loss_weights_positives_and_focal(
    transactions: Path, tmp_path: Path
) -> None:
    from lmforge.tasks.tabular import TabularTask

    config = _config(transactions, tmp_path, {"name": "tabular", "positive_weight": 5.0})
    task = TabularTask().configured(config)
    processor = task.load_processor(None)
    processor.fit(read_table(transactions, COLUMNS))
    model = task.build_model("", labels=["0", "1"], dtype=torch.float32).eval()  # no dropout
    examples, _ = task.encode(read_table(transactions, COLUMNS).take(np.arange(64)), processor,
                              None)  # type: ignore[arg-type]  # fmt: skip
    batch = task.collate(examples, processor, seed=0)
    logits = model(batch["numeric"], batch["input_ids"]).detach()
    truth = batch["label"]
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, truth, reduction="none")
    weights = torch.where(truth > 0, 5.0, 1.0)
    with torch.no_grad():
        assert float(task.loss(model, batch)) == pytest.approx(float((bce * weights).sum()),
                                                               rel=1e-5)  # fmt: skip
        task.options = task.options.model_copy(update={"loss": "focal", "focal_gamma": 2.0})
        p = torch.sigmoid(logits)
        right = torch.where(truth > 0, p, 1 - p)
        focal = bce * (1 - right) ** 2 * weights
        assert float(task.loss(model, batch)) == pytest.approx(float(focal.sum()), rel=1e-5)


def test_lightgbm_fits_saves_and_explains_with_its_own_contributions(
    lightgbm_model: Path, transactions: Path
) -> None:
    assert resolve(str(lightgbm_model)).kind == "tabular"
    assert (lightgbm_model / "model.txt").is_file()
    metrics = json.loads((lightgbm_model.parent / "metrics.json").read_text())["eval"]
    assert metrics["trees"] == 60 and metrics["roc_auc"] > 0.9
    model = load_tabular(lightgbm_model)
    table = read_table(transactions, COLUMNS).take(np.arange(5))
    numeric, codes = model.inputs(table)
    contributions = model.contributions(numeric, codes)  # (5, 29 + Amount)
    assert contributions.shape == (5, len(model.processor.features))
    raw = model.booster.booster.predict(numeric.astype(np.float64), raw_score=True)  # type: ignore[union-attr]
    expected = model.booster.booster.predict(numeric.astype(np.float64), pred_contrib=True)[:, -1]  # type: ignore[union-attr]
    np.testing.assert_allclose(contributions.sum(1) + expected, raw, rtol=1e-6, atol=1e-6)


def test_ft_layers_are_torch_transformer_layers() -> None:
    """The FT-Transformer's written-out layers hold nn.TransformerEncoder's parameters and
    compute what it computes, in training (without dropout: ours draws its masks batch
    first) and at inference; and a saved FT-Transformer keeps torch's names."""
    tokens = torch.randn(7, 6, 16)
    for dropout in (0.0, 0.1):
        shape = FTShape(numeric=5, cardinalities=(3,), d_token=16, heads=4, layers=2,
                        attention_dropout=dropout, ffn_dropout=dropout)  # fmt: skip
        network = FTTransformer(shape)
        layer = torch.nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, dropout=dropout,
                                                 activation="gelu", batch_first=True,
                                                 norm_first=True)  # fmt: skip
        reference = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        reference.load_state_dict(network.encoder.state_dict())  # strict: the same names
        for training in (False, True) if dropout == 0.0 else (False,):
            network.encoder.train(training)
            reference.train(training)
            ours = network.encoder(tokens)
            torch.testing.assert_close(ours, reference(tokens), rtol=1e-5, atol=1e-5)
            assert not torch.allclose(ours, tokens)
    saved = set(network.state_dict())
    assert {"cls", "numeric_weight", "feature_bias"} <= saved
    assert "encoder.layers.0.self_attn.in_proj_weight" in saved


def test_integrated_gradients_add_up_to_the_logit_change(
    ft_model: Path, transactions: Path
) -> None:
    model = load_tabular(ft_model)
    network = model.network
    assert network is not None
    numeric, codes = model.inputs(read_table(transactions, COLUMNS).take(np.arange(4)))
    probabilities, attributions = model.explain(numeric, codes, steps=64)
    with torch.no_grad():
        logits = network(torch.from_numpy(numeric), torch.from_numpy(codes))
        baseline = network.forward_tokens(network.feature_bias.weight.expand(4, -1, -1))
    np.testing.assert_allclose(attributions.sum(1), (logits - baseline).numpy(), atol=0.05)
    np.testing.assert_allclose(probabilities, torch.sigmoid(logits).numpy(), rtol=1e-5)
    np.testing.assert_allclose(probabilities, model.probabilities(numeric, codes), rtol=1e-5)


def test_the_scorer_compiles_its_explanations_and_they_match_the_eager_ones(
    ft_model: Path, transactions: Path
) -> None:
    import asyncio

    from lmforge.serve.scoring import Scorer

    table = read_table(transactions, COLUMNS).take(np.arange(6))
    processor = load_tabular(ft_model).processor
    rows = [{name: float(table.columns[name][i]) for name in processor.features}
            for i in range(6)]  # fmt: skip
    compiled, eager = Scorer(str(ft_model)), Scorer(str(ft_model), compile=False)
    try:
        assert compiled.compiled and not eager.compiled
        fast, slow = (asyncio.run(s.score(rows, top_k=len(rows[0]))) for s in (compiled, eager))
    finally:
        compiled.stop()
        eager.stop()
    for a, b in zip(fast, slow, strict=True):
        assert a["score"] == pytest.approx(b["score"], rel=1e-4)
        reasons = {r["feature"]: r["contribution"] for r in b["reasons"]}
        assert {r["feature"]: r["contribution"] for r in a["reasons"]} == pytest.approx(
            reasons, rel=1e-3, abs=1e-4)  # fmt: skip


def test_a_scorer_that_cannot_compile_explains_eagerly(ft_model: Path, tmp_path: Path) -> None:
    """A machine without a C++ compiler, for real: a fresh process whose inductor looks for
    one that does not exist, with an empty kernel cache."""
    script = (
        "import asyncio, sys\n"
        "from lmforge.serve.scoring import Scorer\n"
        "scorer = Scorer(sys.argv[1])\n"
        "(answer,) = asyncio.run(scorer.score([dict.fromkeys(scorer.features, 0.0)]))\n"
        "print(scorer.compiled, 0 < answer['score'] < 1, len(answer['reasons']))\n"
        "scorer.stop()\n"
    )
    environment = {**os.environ, "CXX": str(tmp_path / "no-such-g++"),
                   "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script, str(ft_model)], env=environment,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["False", "True", "3"]
    assert "cannot compile it" in done.stderr and "explaining eagerly" in done.stderr


def test_eval_reports_intervals_and_saves_the_threshold(
    ft_model: Path, transactions: Path, tmp_path: Path
) -> None:
    test_file = transactions.parent / "test.csv"
    result = CliRunner().invoke(app, ["eval", str(ft_model), "--task", "tabular-classification",
                                      "--data", str(test_file), "--json", "--no-track",
                                      "--save-threshold"])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    low, high = report["intervals"]["auprc"]
    assert low <= report["metrics"]["auprc"] <= high and high > low
    assert report["examples"] == 2_000
    decision = load_tabular(ft_model).processor.decision
    assert decision.threshold == pytest.approx(report["metrics"]["best_threshold"])
    assert decision.chosen_on == str(test_file)
    # a file with extra columns (ids, notes) is read for exactly the model's features
    lines = test_file.read_text().splitlines()
    extra = tmp_path / "with_notes.csv"
    extra.write_text("\n".join([lines[0] + ",note"] + [f"{line},n{i}" for i, line in
                                                         enumerate(lines[1:])]) + "\n")  # fmt: skip
    noted = CliRunner().invoke(app, ["eval", str(ft_model), "--task", "tabular-classification",
                                     "--data", str(extra), "--json", "--no-track"])  # fmt: skip
    assert noted.exit_code == 0, noted.output
    assert json.loads(noted.stdout)["metrics"]["auprc"] == report["metrics"]["auprc"]
    encoder = tmp_path / "encoder"
    encoder.mkdir()
    (encoder / "config.json").write_text('{"model_type": "bert"}')
    other = CliRunner().invoke(app, ["eval", str(encoder), "--task", "tabular-classification",
                                     "--data", str(test_file), "--no-track"])  # fmt: skip
    assert other.exit_code != 0 and "not a tabular one" in other.output


def test_explain_row_gives_every_feature_its_share(ft_model: Path, transactions: Path) -> None:
    test_file = transactions.parent / "test.csv"
    result = CliRunner().invoke(app, ["explain", "row", str(ft_model), "--data", str(test_file),
                                      "--index", "3", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    model = load_tabular(ft_model)
    row = read_table(test_file, COLUMNS).take(np.array([3]))
    probability = float(model.probabilities(*model.inputs(row))[0])
    assert payload["method"] == "ig" and payload["probabilities"]["1"] == pytest.approx(
        probability, abs=1e-6)  # fmt: skip
    assert [t["token"] for t in payload["tokens"]] == model.processor.features
    shown = CliRunner().invoke(app, ["explain", "row", str(ft_model), "--input",
                                     json.dumps({"V1": 1.0})])  # fmt: skip
    assert shown.exit_code != 0 and "row[0].V2: missing" in shown.output
    text = CliRunner().invoke(app, ["explain", "row", str(ft_model), "--data", str(test_file),
                                    "--index", "3", "--top", "2"])  # fmt: skip
    assert text.exit_code == 0 and "log-odds of '1'" in text.stdout


def test_a_stopped_scorer_refuses_new_rows_instead_of_hanging(ft_model: Path) -> None:
    import asyncio

    from lmforge.serve.scoring import Scorer

    scorer = Scorer(str(ft_model), compile=False)
    row = dict.fromkeys(scorer.features, 0.0)
    (answer,) = asyncio.run(scorer.score([row], top_k=2))
    assert 0 < answer["score"] < 1 and len(answer["reasons"]) == 2
    scorer.stop()
    assert not scorer._worker.running
    with pytest.raises(LmforgeError, match="shutting down"):
        asyncio.run(scorer.score([row]))


def test_a_registered_lightgbm_model_resolves_scores_and_keeps_its_threshold(
    home: Path, transactions: Path, tmp_path: Path
) -> None:
    task = {"name": "lightgbm", "trees": 20, "early_stopping": None}
    output = {"dir": str(tmp_path / "run"), "register_as": "fraud-trees"}
    config = _config(transactions, tmp_path / "run", task, output=output)
    trained = train(config)
    assert resolve("registry:fraud-trees/1").kind == "tabular"
    model = load_tabular(resolve("registry:fraud-trees/1").path)
    assert model.kind == "lightgbm" and model.processor.decision.chosen_on == "validation"
    from lmforge.evaluate.tabular import save_threshold

    with pytest.raises(LmforgeError, match="registered version, which stays as it was"):
        save_threshold("registry:fraud-trees/1", 0.5, chosen_on="x")
    saved = save_threshold(f"run:{trained.run_id}", 0.25, chosen_on="later rows")
    assert load_tabular(trained.model_dir).processor.decision == saved
