"""Continual fine-tuning (train.continual): the config and its refusals, the matrix
summaries against hand-worked numbers, EWC's per-weight pull, and class-incremental
sequences of a tiny classifier (a 2-layer LLaMA with a class head; the tiny BERT's tanh
pooler saturates after one stage and then learns nothing) trained through the one
loop, each stage its own MLflow run, scored by `lmforge eval continual`."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from typer.testing import CliRunner

from lmforge.cli.main import app
from lmforge.config import load_config, load_config_dict
from lmforge.errors import LmforgeError
from lmforge.evaluate.continual import score_sequence, summarize
from lmforge.train.continual import REPLAY_FILE, SEQUENCE_TAG, train_sequence
from lmforge.train.start import ProximalTerm
from tests.datafiles import write_jsonl

# Six classes, two per stage; each class has its own words, so a tiny model learns it fast.
WORDS = {"fruit": ["apple", "pear", "plum"], "tool": ["hammer", "saw", "drill"],
         "animal": ["horse", "sheep", "goat"], "color": ["red", "blue", "green"],
         "city": ["paris", "rome", "oslo"], "sport": ["golf", "tennis", "rugby"]}  # fmt: skip
STAGES = [("first", ["fruit", "tool"]), ("second", ["animal", "color"]),
          ("third", ["city", "sport"])]  # fmt: skip


def _rows(count: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows = []
    for label, words in WORDS.items():
        for _ in range(count):
            rows.append({"text": " ".join(rng.choice(words) for _ in range(4)), "label": label})
    return rows


def _sequence(tmp_path: Path, model: Path, **continual: Any) -> dict[str, Any]:
    train = write_jsonl(tmp_path / "train.jsonl", _rows(12, seed=0))
    test = write_jsonl(tmp_path / "test.jsonl", _rows(6, seed=1))
    stages = [{"name": name, "train": str(train), "test": str(test), "labels": labels}
              for name, labels in STAGES]  # fmt: skip
    return {
        "model": {"ref": str(model)},
        "task": {"name": "classify", "max_length": 16},
        "data": {"labels": list(WORDS)},
        "method": {"name": "full"},
        "train": {"epochs": 8, "batch_size": 8, "lr": 3e-3, "log_every": 1,
                  "scheduler": "constant", "continual": {"stages": stages, **continual}},
        "output": {"dir": str(tmp_path / "sequence"), "experiment": "continual-test"},
    }  # fmt: skip


# --- the numbers and the config --------------------------------------------------------


def test_forgetting_and_backward_transfer_are_chaudhrys() -> None:
    matrix = [[0.9, 0.1, 0.0], [0.5, 0.8, 0.2], [0.3, 0.6, 0.9]]
    accuracy, forgetting, transfer = summarize(matrix)
    assert accuracy == pytest.approx((0.3 + 0.6 + 0.9) / 3)
    # stage 1 fell from its best 0.9 to 0.3, stage 2 from 0.8 to 0.6
    assert forgetting == pytest.approx((0.6 + 0.2) / 2)
    assert transfer == pytest.approx(((0.3 - 0.9) + (0.6 - 0.8)) / 2)
    with pytest.raises(ValueError, match="T x T"):
        summarize([[1.0]])


def test_stage_paths_are_relative_to_the_config_and_mistakes_are_named(
    tmp_path: Path, tiny_causal_lm: Path
) -> None:
    config = _sequence(tmp_path, tiny_causal_lm)
    config["train"]["continual"]["stages"][0]["train"] = "train.jsonl"
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    loaded = load_config(tmp_path / "run.yaml")
    assert loaded.train.continual is not None
    assert loaded.train.continual.stages[0].train == tmp_path / "train.jsonl"

    def problems(**changes: dict[str, Any]) -> str:
        broken = json.loads(json.dumps(config))
        for section, values in changes.items():
            broken[section] = {**broken.get(section, {}), **values}
        with pytest.raises(LmforgeError) as error:
            load_config_dict(broken)
        return str(error.value)

    assert "data.train: not with train.continual (each stage gives" in problems(
        data={"train": "x.jsonl", "labels": list(WORDS)}
    )
    assert "data.labels: list the labels of every stage" in problems(data={"labels": None})
    assert "train.proximal_mu: not with train.continual (ewc already" in problems(
        train={**config["train"], "proximal_mu": 0.1,
               "continual": {**config["train"]["continual"], "ewc": 10.0}})  # fmt: skip
    same = [{**stage, "name": "one"} for stage in config["train"]["continual"]["stages"]]
    assert "train.continual.stages: names must differ" in problems(
        train={**config["train"], "continual": {"stages": same}}
    )
    with pytest.raises(LmforgeError, match=r"data.train: required"):
        load_config_dict({"model": {"ref": "m"}, "task": {"name": "clm"}, "data": {}})


def test_ewc_pulls_each_weight_by_its_own_importance() -> None:
    model = torch.nn.Linear(2, 1, bias=False)
    importance = {"weight": torch.tensor([[10.0, 0.0]])}
    term = ProximalTerm(model, 1.0, importance)
    with torch.no_grad():
        model.weight += 1.0  # both weights moved by 1 from where they started
    model.weight.grad = torch.zeros_like(model.weight)
    term.add_to_gradients()
    assert model.weight.grad.tolist() == [[10.0, 0.0]]  # only the important one is pulled


# --- sequences -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sequences(
    tiny_causal_lm: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, tuple[Any, Any]]]:
    """Plain sequential fine-tuning and replay, the same stages, each scored, tracked in
    a store of their own (LMFORGE_HOME) while this module's tests read it."""
    results = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LMFORGE_HOME", str(tmp_path_factory.mktemp("continual-home")))
        for name, settings in (("plain", {}), ("replay", {"replay": 0.3, "buffer_size": 20})):
            root = tmp_path_factory.mktemp(name)
            config = load_config_dict(_sequence(root, tiny_causal_lm, **settings))
            result = train_sequence(config)
            results[name] = (result, score_sequence(str(result.sequence_dir)))
        yield results


def test_each_stage_is_its_own_run_under_the_sequences(sequences: dict) -> None:
    from lmforge.track import get_client

    result, scores = sequences["replay"]
    assert [r.run_id for r in result.stages] == [
        r.info.run_id for r in sorted(
            get_client().search_runs([get_client().get_experiment_by_name(
                "continual-test").experiment_id],
                f"tags.`{SEQUENCE_TAG}` = '{result.sequence_id}' and "
                f"tags.`mlflow.parentRunId` = '{result.sequence_id}'"),
            key=lambda r: r.data.tags["lmforge.continual.stage"])
    ]  # fmt: skip
    assert scores.stages == ["first", "second", "third"]
    run = get_client().get_run(result.sequence_id)  # the sequence's run holds the matrix
    assert run.data.metrics["continual/average_forgetting"] == pytest.approx(
        scores.average_forgetting
    )
    artifacts = {f.path for f in get_client().list_artifacts(result.sequence_id)}
    assert {"continual_matrix.json", "continual_matrix.png"} <= artifacts


def test_the_replay_buffer_is_saved_with_each_model_and_mixed_in(sequences: dict) -> None:
    result, _ = sequences["replay"]
    for index, stage in enumerate(result.stages, start=1):
        buffer = (stage.model_dir / REPLAY_FILE).read_text().splitlines()
        assert len(buffer) == 20 * index  # 20 records of each stage so far
        assert {json.loads(line)["stage"] for line in buffer} == {
            name for name, _ in STAGES[:index]
        }
    second = json.loads((result.sequence_dir / "sequence.json").read_text())["stages"][1]
    # replay 0.3 of the mix: 24 of the stage's own records and round(0.3/0.7 * 24) replayed
    assert (second["train_records"], second["replayed_records"]) == (24, 10)


def test_replay_forgets_less_than_plain_sequential_fine_tuning(sequences: dict) -> None:
    plain, replay = sequences["plain"][1], sequences["replay"][1]
    for scores in (plain, replay):  # each stage learned its own classes
        assert all(scores.matrix[i][i] >= 0.9 for i in range(3)), scores.matrix
    assert plain.average_forgetting > 0.5, plain.matrix  # class-incremental: forgets
    assert replay.average_forgetting < plain.average_forgetting / 2, replay.matrix
    assert replay.average_accuracy > plain.average_accuracy


def test_ewc_through_the_cli_saves_the_fisher_information_and_scores_the_matrix(
    home: Path, tiny_causal_lm: Path, tmp_path: Path
) -> None:
    settings = _sequence(tmp_path, tiny_causal_lm, ewc=100.0, fisher_samples=8)
    settings["train"]["continual"]["stages"] = settings["train"]["continual"]["stages"][:2]
    settings["train"]["epochs"] = 2
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(settings))
    out = CliRunner().invoke(app, ["train", str(tmp_path / "run.yaml"), "--no-track"])
    assert out.exit_code == 0, out.output
    folder = Path(out.output.split("lmforge eval continual ")[-1].split()[0])
    assert folder == tmp_path / "sequence"
    assert "first: EWC Fisher information" in out.output  # its own progress, not a step's
    stages = json.loads((folder / "sequence.json").read_text())["stages"]
    first, second = (Path(stage["model_dir"]) for stage in stages)
    assert (first / "fisher.safetensors").is_file()
    assert not (second / "fisher.safetensors").exists()  # no stage after it to pull
    out = CliRunner().invoke(app, ["eval", "continual", str(folder), "--json", "--no-track"])
    assert out.exit_code == 0, out.output
    shown = json.loads(out.output[out.output.index("{") :])
    assert shown["stages"] == ["first", "second"]
    assert len(shown["matrix"]) == 2 and "average_forgetting" in shown
