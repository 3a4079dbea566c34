"""Federated learning simulated in one process: the sites' data split (evenly, or non-IID by
a Dirichlet draw), updates averaged by site size, a run of rounds on a tiny classifier that
logs each round to MLflow and saves and registers the global model, FedProx, client-side
DP composed over rounds, and a site that fails dropping out of its round."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from lmforge.config.load import load_settings
from lmforge.errors import LmforgeError
from lmforge.federated import simulation
from lmforge.federated.config import FederatedConfig
from lmforge.federated.simulation import ServerStep, average_models, run_federated
from lmforge.federated.split import split_records
from lmforge.track import get_client
from lmforge.train.loop import TrainingInterrupted
from tests.datafiles import labeled_rows, write_jsonl


def test_a_dirichlet_split_gives_every_record_to_one_site_and_skews_labels() -> None:
    records = [{"text": str(i), "label": "abcd"[i % 4]} for i in range(400)]
    even = split_records(records, 4, dirichlet=None, seed=0)
    assert sorted(len(p) for p in even) == [100, 100, 100, 100]
    skewed = split_records(records, 4, dirichlet=0.1, seed=0)
    assert skewed == split_records(records, 4, dirichlet=0.1, seed=0)  # seeded
    assert sorted(r["text"] for p in skewed for r in p) == sorted(r["text"] for r in records)
    # at 0.1 a site's commonest label holds most of it; an even split stays near a quarter
    top = [Counter(r["label"] for r in p).most_common(1)[0][1] / len(p) for p in skewed]
    assert sum(share > 0.6 for share in top) >= 2
    assert all(Counter(r["label"] for r in p).most_common(1)[0][1] / len(p) < 0.4 for p in even)
    with pytest.raises(LmforgeError, match=r"sites\.dirichlet: splits by label"):
        split_records([{"text": str(i)} for i in range(40)], 4, dirichlet=0.5, seed=0)


def test_updates_are_averaged_by_site_size(tmp_path: Path) -> None:
    folders = []
    for site, value in enumerate((1.0, 4.0)):
        folder = tmp_path / f"site-{site}"
        folder.mkdir()
        save_file({"w": torch.full((2,), value), "steps": torch.tensor([site])},
                  str(folder / "adapter_model.safetensors"))  # fmt: skip
        (folder / "adapter_config.json").write_text("{}")
        folders.append(folder)
    average_models(folders, [300, 100], tmp_path / "global")
    averaged = load_file(tmp_path / "global" / "adapter_model.safetensors")
    torch.testing.assert_close(averaged["w"], torch.full((2,), 1.75))  # (3 * 1 + 4) / 4
    assert int(averaged["steps"]) == 0 and (tmp_path / "global" / "adapter_config.json").is_file()


def test_the_server_steps_along_the_rounds_changes_with_momentum(tmp_path: Path) -> None:
    step = ServerStep(lr=1.0, momentum=0.5)
    start, steps = {"w": torch.tensor([1.0]), "n": torch.tensor([3])}, torch.tensor([7])
    first = step.apply(start, {"w": torch.tensor([2.0]), "n": steps})  # change 1
    assert float(first["w"]) == 2.0 and int(first["n"]) == 7
    second = step.apply(first, {"w": torch.tensor([2.5]), "n": steps})  # 0.5 * 1 + 0.5
    assert float(second["w"]) == 3.0
    plain = ServerStep(lr=1.0, momentum=0.0)
    assert not plain.active and plain.apply(start, first) is first
    # on model folders: the averaged folder's weights are replaced by the step
    for name, value in (("previous", 1.0), ("averaged", 2.0)):
        (tmp_path / name).mkdir()
        save_file({"w": torch.full((2,), value, dtype=torch.bfloat16)},
                  str(tmp_path / name / "adapter_model.safetensors"))  # fmt: skip
    ServerStep(lr=2.0, momentum=0.9).apply_to_folder(tmp_path / "previous", tmp_path / "averaged")
    stepped = load_file(tmp_path / "averaged" / "adapter_model.safetensors")["w"]
    assert stepped.dtype == torch.bfloat16 and stepped.tolist() == [3.0, 3.0]  # 1 + 2 * 1
    assert [p.name for p in (tmp_path / "averaged").iterdir()] == ["adapter_model.safetensors"]


def _federated(tmp_path: Path, model: Path, **settings: Any) -> FederatedConfig:
    data = write_jsonl(tmp_path / "train.jsonl", labeled_rows(60))
    test = write_jsonl(tmp_path / "test.jsonl", labeled_rows(12))
    run = {"model": {"ref": str(model)}, "task": {"name": "classify", "max_length": 32},
           "data": {"train": str(data)}, "method": {"name": "lora"},
           "train": {"max_steps": 2, "batch_size": 8, "lr": 1e-2, "log_every": 1},
           **settings.pop("run", {})}  # fmt: skip
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(run))
    spec = {"name": "tiny-sites", "run": "run.yaml", "sites": {"count": 3, "dirichlet": 1.0},
            "rounds": 2, "eval": {"data": str(test), "task": "classification"},
            "output": {"dir": str(tmp_path / "out")}, **settings}  # fmt: skip
    (tmp_path / "federated.yaml").write_text(yaml.safe_dump(spec))
    return load_settings(tmp_path / "federated.yaml", FederatedConfig)


def test_rounds_of_fedavg_log_each_round_and_register_the_global_model(
    home: Path, tiny_classifier: Path, tmp_path: Path
) -> None:
    output = {"dir": str(tmp_path / "out"), "register_as": "tiny-sites"}
    config = _federated(tmp_path, tiny_classifier, output=output)
    result = run_federated(config)
    assert len(result.rounds) == 2 and sum(result.site_sizes) == 60
    assert all(r["round/sites"] == 3 and "eval/accuracy" in r for r in result.rounds)
    assert (result.model_dir / "adapter_model.safetensors").is_file()
    summary = json.loads((result.run_dir / "federated.json").read_text())
    assert summary["site_sizes"] == result.site_sizes and not (result.run_dir / "rounds").exists()
    history = get_client().get_metric_history(result.run_id, "eval/accuracy")
    assert [m.step for m in history] == [1, 2]
    versions = get_client().search_model_versions("name='tiny-sites'")
    assert len(versions) == 1 and versions[0].run_id == result.run_id


def test_fedprox_private_sites_and_a_site_that_drops_out(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    rows = labeled_rows(48)
    files = [write_jsonl(tmp_path / f"site-{i}.jsonl", rows[i * 16 : (i + 1) * 16])
             for i in range(3)]  # fmt: skip
    files[2].write_text("this is not JSON\n")  # site 2 fails every round
    config = _federated(tmp_path, tiny_classifier, sites={"files": [str(f) for f in files]},
                        run={"privacy": {"noise_multiplier": 1.0}}, min_sites=2)  # fmt: skip
    result = run_federated(config, track=False)
    assert [r["round/dropped"] for r in result.rounds] == [1.0, 1.0]
    per_site = result.privacy["per_site"]
    assert [s["rounds"] for s in per_site] == [2, 2, 0]
    assert result.privacy["epsilon"] == max(s["epsilon"] for s in per_site) > 0
    saved = json.loads((result.model_dir / "privacy.json").read_text())
    assert saved["epsilon"] == result.privacy["epsilon"]
    with pytest.raises(LmforgeError, match="strategy: fedprox's pull is not noised"):
        run_federated(config.model_copy(update={"strategy": "fedprox"}), track=False)
    plain = _federated(tmp_path, tiny_classifier, sites={"files": [str(f) for f in files]},
                       strategy="fedprox", min_sites=3)  # fmt: skip
    with pytest.raises(LmforgeError, match=r"round 1: 2 of 3 sites finished, below min_sites 3"):
        run_federated(plain, track=False)


def test_the_simulation_takes_the_server_step_after_averaging(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    # a server step of almost nothing keeps round 1's global model through round 2; plain
    # averaging moves it
    def final(name: str, **settings: Any) -> dict[str, torch.Tensor]:
        (tmp_path / name).mkdir()
        config = _federated(tmp_path / name, tiny_classifier, **settings)
        model = run_federated(config, track=False).model_dir
        return load_file(model / "adapter_model.safetensors")

    one = final("one", rounds=1)
    held = final("held", server_lr=1e-9, server_momentum=0.5)
    moved = final("moved")
    for key in one:
        torch.testing.assert_close(held[key], one[key], atol=1e-6, rtol=0)
    assert any(not torch.allclose(moved[k], one[k], atol=1e-4) for k in one)


def test_an_interrupt_stops_the_job_instead_of_dropping_a_site(
    tiny_classifier: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the loop turns Ctrl-C or SIGTERM into TrainingInterrupted (tests/test_train_runs.py
    # sends the real signal); here the site's training raises it directly
    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise TrainingInterrupted("interrupted at step 1")

    monkeypatch.setattr(simulation, "train", interrupted)
    config = _federated(tmp_path, tiny_classifier)
    with pytest.raises(LmforgeError, match="round 1: interrupted while site 0 trained; the "
                       "federated run stopped"):  # fmt: skip
        run_federated(config, track=False)


def test_tables_are_refused_with_the_reason(tmp_path: Path) -> None:
    table = tmp_path / "table.csv"
    table.write_text("x,y\n" + "".join(f"{i},{'yes' if i % 2 else 'no'}\n" for i in range(40)))
    data = {"train": str(table), "format": "tabular", "columns": {"target": "y"}}
    run = {"task": {"name": "tabular", "d_token": 8, "layers": 1, "heads": 2}, "data": data}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(run))
    spec = {"name": "tables", "run": "run.yaml", "sites": {"count": 2}, "rounds": 1}
    (tmp_path / "federated.yaml").write_text(yaml.safe_dump(spec))
    config = load_settings(tmp_path / "federated.yaml", FederatedConfig)
    with pytest.raises(LmforgeError, match="run: task tabular fits its scaling"):
        run_federated(config, track=False)
