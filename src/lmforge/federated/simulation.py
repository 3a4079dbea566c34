"""Federated training simulated in one process: every round, each chosen site trains the
global model on its own data with the one training loop (``lmforge.train``), and the
sites' weights are averaged, weighted by how many training records each holds (FedAvg:
McMahan et al., 2017); with ``strategy: fedprox`` each site's training is also pulled
toward the global weights (Li et al., 2020); with ``server_momentum`` the server steps
along the rounds' averaged changes with momentum (FedAvgM: Hsu et al., 2019). Only
weights leave a site, never records.

A site's update is its saved model folder: its LoRA adapter and head, or its whole model.
The global model of a round is the weighted average of those files, written as a model
folder of the same kind, which the next round's sites start from (``model.init_from``).

With ``privacy:`` in the run config every site trains with DP-SGD each round; a site's
budget composes over the rounds it took part in, and the global model's budget is the
largest site's (each record belongs to one site).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lmforge.config import RunConfig, load_config, load_config_dict
from lmforge.data.fetch import data_file
from lmforge.errors import LmforgeError
from lmforge.federated.config import FederatedConfig
from lmforge.federated.split import split_records
from lmforge.home import atomic_dir, atomic_write_text, runs_dir
from lmforge.progress import ProgressFn
from lmforge.retrieve.documents import json_lines
from lmforge.track import OUTPUT_DIR_TAG, start_run
from lmforge.track.registry import log_model, register_model
from lmforge.train.loop import TrainingInterrupted, train
from lmforge.train.privacy import PRIVACY_FILE, composed_epsilon, default_delta
from lmforge.train.start import ADAPTER_WEIGHTS

SUMMARY_FILE = "federated.json"  # in the run folder: the rounds' metrics and the sites


@dataclass
class FederatedResult:
    run_id: str
    run_dir: Path
    model_dir: Path  # the final global model
    rounds: list[dict[str, float]] = field(default_factory=list)  # each round's metrics
    site_sizes: list[int] = field(default_factory=list)
    privacy: dict[str, Any] = field(default_factory=dict)


def run_federated(
    config: FederatedConfig,
    *,
    track: bool = True,
    progress: ProgressFn | None = None,
) -> FederatedResult:
    """Run ``config.rounds`` rounds over the sites; save, log and register the global model.

    Raises:
        LmforgeError: a bad run config or split, or a round fewer than ``min_sites`` sites
            finished.
    """
    if config.engine != "simulation" or config.sites is None:
        raise LmforgeError("engine: flower runs through lmforge.federated.flower.run_flower")
    run = site_run(config)
    tracker = start_run(config.output.experiment, run_name=config.name,
                        tags={"lmforge.command": "federated"}, enabled=track)  # fmt: skip
    run_id = tracker.run_id or uuid.uuid4().hex
    run_dir = Path(config.output.dir or runs_dir() / run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    with tracker:
        files = _site_files(config, run, run_dir / "sites")
        sites = _Sites(files, [count_records(f) for f in files], [[] for _ in files])
        tracker.set_tags({OUTPUT_DIR_TAG: str(run_dir), "lmforge.task": run.task.name})
        tracker.log_params({"federated": config.summary(), "site_sizes": sites.sizes})
        rng = np.random.default_rng(config.sites.seed + 1)
        history: list[dict[str, float]] = []
        global_dir: Path | None = None
        step = ServerStep(config.server_lr, config.server_momentum)
        for number in range(1, config.rounds + 1):
            started = time.perf_counter()
            asked = max(1, round(config.fraction * len(files)))
            chosen = sorted(rng.choice(len(files), size=asked, replace=False).tolist())
            round_dir = run_dir / "rounds" / str(number)
            updates = _train_round(run, config, sites, chosen, round_dir, global_dir)
            average_models([u.model_dir for u in updates], [u.records for u in updates],
                           round_dir / "global")  # fmt: skip
            if global_dir is not None:
                step.apply_to_folder(global_dir, round_dir / "global")
            for update in updates:  # averaged: the sites' folders are not needed again
                shutil.rmtree(update.model_dir.parent, ignore_errors=True)
            if global_dir is not None:  # nor the previous round's global model
                shutil.rmtree(global_dir.parent, ignore_errors=True)
            global_dir = round_dir / "global"
            sizes, losses = [u.records for u in updates], [u.loss for u in updates]
            metrics = round_metrics(config, sizes, losses, len(chosen), global_dir, number)
            metrics["round/seconds"] = time.perf_counter() - started
            tracker.log_metrics(metrics, step=number)
            history.append({"round": float(number), **metrics})
            if progress is not None:
                progress(number, config.rounds, describe(metrics))
        assert global_dir is not None
        privacy = job_privacy(run, sites.sizes, sites.spent)
        return finish(tracker, config, run_dir, global_dir, history, sites.sizes, privacy)


def site_run(config: FederatedConfig) -> RunConfig:
    """The run config every site trains with, checked to suit federated training.

    Raises:
        LmforgeError: a task that scales inputs to its own data, or FedProx with DP-SGD.
    """
    run = load_config(config.run)
    if run.data.columns is not None or run.data.series is not None:
        raise LmforgeError(f"run: task {run.task.name} fits its scaling to the data it reads, "
                           "so each site's model would see differently scaled inputs; "
                           "federated training of tables and series is not built yet")  # fmt: skip
    if run.privacy is not None and config.strategy == "fedprox":
        raise LmforgeError("strategy: fedprox's pull is not noised with the gradients; use "
                           "fedavg with a private run config")  # fmt: skip
    return run


def finish(
    tracker: Any,
    config: FederatedConfig,
    run_dir: Path,
    global_dir: Path,
    history: list[dict[str, float]],
    sizes: list[int],
    privacy: dict[str, Any],
) -> FederatedResult:
    """Save the last round's global model as the run's model, write the summary, and log
    and register the model (``tracker``: the open MLflow run, or a disabled one)."""
    run_id = tracker.run_id or run_dir.name
    model_dir = run_dir / "model"
    _save_global(global_dir, model_dir, privacy)
    shutil.rmtree(run_dir / "rounds", ignore_errors=True)
    summary = {"run_id": run_id, "config": config.summary(), "site_sizes": sizes,
               "rounds": history, **({"privacy": privacy} if privacy else {})}  # fmt: skip
    atomic_write_text(run_dir / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    if privacy:
        tracker.log_metrics({"privacy/epsilon": privacy["epsilon"]}, step=config.rounds)
    log_model(tracker, model_dir)
    tracker.log_artifact(run_dir / SUMMARY_FILE)
    if config.output.register_as and tracker.run_id:
        register_model(model_dir, config.output.register_as, run_id=tracker.run_id)
    return FederatedResult(run_id, run_dir, model_dir, history, sizes, privacy)


def read_summary(run_dir: Path) -> FederatedResult:
    """The result of a finished run from its folder's summary (written by ``finish``)."""
    summary = json.loads((run_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
    return FederatedResult(summary["run_id"], run_dir, run_dir / "model", summary["rounds"],
                           summary["site_sizes"], summary.get("privacy", {}))  # fmt: skip


@dataclass
class _Sites:
    files: list[Path]  # each site's training records
    sizes: list[int]  # how many: the weight of its updates
    spent: list[list[dict[str, Any]]]  # each site's privacy report of every round


@dataclass
class _Update:
    model_dir: Path  # the site's trained model folder this round
    records: int
    loss: float


def _train_round(
    run: RunConfig,
    config: FederatedConfig,
    sites: _Sites,
    chosen: list[int],
    round_dir: Path,
    start: Path | None,
) -> list[_Update]:
    """Each chosen site trains from ``start`` (the global model; None: the base model).

    Raises:
        LmforgeError: fewer than ``min_sites`` sites finished.
    """
    updates = []
    for index in chosen:
        mu = config.proximal_mu if config.strategy == "fedprox" else None
        site = site_config(run, sites.files[index], round_dir / f"site-{index}", start, mu)
        try:
            result = train(site, track=False)
        except TrainingInterrupted:  # Ctrl-C or SIGTERM stops the job, not just this site
            raise LmforgeError(f"round {round_dir.name}: interrupted while site {index} "
                               "trained; the federated run stopped (it cannot resume from "
                               "a round: start it again)") from None  # fmt: skip
        except LmforgeError as error:  # the round goes on without this site
            print(f"round {round_dir.name}: site {index} dropped out: {error}",
                  file=sys.stderr, flush=True)  # fmt: skip
            continue
        updates.append(_Update(result.model_dir, sites.sizes[index], result.final_loss))
        if result.privacy:
            sites.spent[index].append(result.privacy)
    if len(updates) < config.min_sites:
        raise LmforgeError(f"round {round_dir.name}: {len(updates)} of {len(chosen)} sites "
                           f"finished, below min_sites {config.min_sites}")  # fmt: skip
    return updates


def round_metrics(
    config: FederatedConfig,
    sizes: list[int],
    losses: list[float],
    asked: int,
    global_dir: Path,
    number: int,
) -> dict[str, float]:
    """The round's sites, their mean loss (weighted by size) and the global model's scores."""
    loss = float(np.average(losses, weights=np.array(sizes, dtype=float)))
    metrics = {"round/sites": float(len(sizes)), "round/dropped": float(asked - len(sizes)),
               "round/local_loss": loss}  # fmt: skip
    if config.eval is not None and (number % config.eval.every == 0 or number == config.rounds):
        from lmforge.evaluate.runner import evaluate_model

        scored = evaluate_model(str(global_dir), str(config.eval.data), config.eval.task,
                                track=False)  # fmt: skip
        metrics |= {f"eval/{k}": float(v) for k, v in scored.metrics.items()
                    if isinstance(v, int | float)}  # fmt: skip
    return metrics


def _save_global(global_dir: Path, model_dir: Path, privacy: dict[str, Any]) -> None:
    """The last round's global model as the run's model folder, with the job's budget."""
    with atomic_dir(model_dir) as tmp:
        shutil.copytree(global_dir, tmp, dirs_exist_ok=True)
        (tmp / PRIVACY_FILE).unlink(missing_ok=True)  # one site's round, not the whole job
        if privacy:
            (tmp / PRIVACY_FILE).write_text(json.dumps(privacy, indent=2) + "\n")


def average_models(folders: list[Path], weights: list[int], out: Path) -> None:
    """Write into ``out`` a model folder like ``folders[0]`` whose weights are the average of
    the folders' weights, each folder counting ``weights[i]`` (its training records).

    Raises:
        LmforgeError: the folders hold different weights (another model or method).
    """
    from safetensors.torch import load_file, save_file

    names = weight_files(folders[0])
    share = torch.tensor(weights, dtype=torch.float64) / sum(weights)
    with atomic_dir(out) as tmp:
        for item in folders[0].iterdir():
            if item.name not in names:
                copy = shutil.copytree if item.is_dir() else shutil.copy2
                copy(item, tmp / item.name)
        for name in names:
            states = [load_file(folder / name) for folder in folders]
            shapes = [{k: tuple(v.shape) for k, v in state.items()} for state in states]
            if any(shape != shapes[0] for shape in shapes):
                raise LmforgeError(f"the sites' {name} hold different weights: every site "
                                   "must train the same model and method (a classifier whose "
                                   "site lacks a label gets a smaller head: list them all in "
                                   "data.labels)")  # fmt: skip
            averaged = {}
            for key, first in states[0].items():
                if not first.is_floating_point():  # counters, ids: the same at every site
                    averaged[key] = first
                    continue
                total = sum(s[key].double() * w for s, w in zip(states, share, strict=True))
                averaged[key] = total.to(first.dtype).contiguous()
            save_file(averaged, str(tmp / name), metadata={"format": "pt"})


class ServerStep:
    """The server's step after averaging (FedAvgM, Hsu et al., 2019): the global model
    moves ``lr`` times along the velocity, the sum of the rounds' changes (the sites'
    average minus the weights they started from), each earlier one decayed by
    ``momentum`` per round. With lr 1 and momentum 0 the global model is the average.

    Round 1 has no earlier global model here (the sites start from the base model), so
    its average is taken as it is and the velocity starts with round 2's change.
    """

    def __init__(self, lr: float, momentum: float) -> None:
        self.lr, self.momentum = lr, momentum
        self.velocity: dict[str, torch.Tensor] = {}

    @property
    def active(self) -> bool:
        return self.lr != 1.0 or self.momentum > 0.0

    def apply(
        self, previous: dict[str, torch.Tensor], averaged: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """The new global weights from the last global weights and this round's average."""
        if not self.active:
            return averaged
        stepped = {}
        for key, new in averaged.items():
            if not new.is_floating_point():  # counters, ids: the same at every site
                stepped[key] = new
                continue
            old = previous[key].double()
            change = new.double() - old
            velocity = self.velocity.get(key)
            velocity = change if velocity is None else self.momentum * velocity + change
            self.velocity[key] = velocity
            stepped[key] = (old + self.lr * velocity).to(new.dtype).contiguous()
        return stepped

    def apply_to_folder(self, previous: Path, averaged: Path) -> None:
        """Replace the weights in the model folder ``averaged`` by the server's step from
        the global model folder ``previous``."""
        from safetensors.torch import load_file, save_file

        if not self.active:
            return
        for name in weight_files(averaged):
            old, new = load_file(previous / name), load_file(averaged / name)
            stepped = self.apply({f"{name}/{k}": v for k, v in old.items()},
                                 {f"{name}/{k}": v for k, v in new.items()})  # fmt: skip
            partial = averaged / f"{name}.partial"
            save_file({k: stepped[f"{name}/{k}"] for k in new}, str(partial),
                      metadata={"format": "pt"})  # fmt: skip
            partial.replace(averaged / name)


def weight_files(folder: Path) -> list[str]:
    if (folder / ADAPTER_WEIGHTS).is_file():
        return [ADAPTER_WEIGHTS]
    names = sorted(p.name for p in folder.glob("*.safetensors"))
    if not names:
        raise LmforgeError(f"{folder} holds no weights (*.safetensors) to average")
    return names


def _site_files(config: FederatedConfig, run: RunConfig, folder: Path) -> list[Path]:
    """One training file per site: the given ones, or a split of run.data.train."""
    assert config.sites is not None
    if config.sites.files is not None:
        for path in config.sites.files:
            if not Path(path).is_file():
                raise LmforgeError(f"sites.files: {path} does not exist")
        return [Path(p) for p in config.sites.files]
    source = data_file(run.data.train_path)
    if source.suffix != ".jsonl":
        raise LmforgeError(f"sites.count: splits a JSON Lines file, and run.data.train is "
                           f"{source.name}; give one file per site in sites.files")  # fmt: skip
    records = [record for _, record in json_lines(source, source.read_text(encoding="utf-8"))]
    assert config.sites.count is not None
    label = run.data.fields.get("label", "label")
    parts = split_records(records, config.sites.count, dirichlet=config.sites.dirichlet,
                          seed=config.sites.seed, label_key=label)  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for site, part in enumerate(parts):
        path = folder / f"site-{site}.jsonl"
        atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in part))
        files.append(path)
    return files


def count_records(path: Path) -> int:
    return sum(1 for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip())


def site_config(
    run: RunConfig, data: Path, out: Path, start: Path | None, proximal_mu: float | None
) -> RunConfig:
    """The run config one site trains with in one round: its data, no validation (the
    global model is scored instead), starting from the global weights (None: the base
    model), pulled toward them with FedProx's ``proximal_mu``."""
    tree = run.model_dump(mode="json")
    tree["data"] |= {"train": str(data), "validation": None, "val_ratio": 0.0}
    tree["model"]["init_from"] = str(start) if start is not None else None
    tree["eval"] = {**tree["eval"], "every": None}
    tree["output"] = {**tree["output"], "dir": str(out), "register_as": None}
    if proximal_mu is not None:
        tree["train"]["proximal_mu"] = proximal_mu
    return load_config_dict(tree, f"the federated run config (site data {data.name})")


def job_privacy(
    run: RunConfig, sizes: list[int], spent: list[list[dict[str, Any]]]
) -> dict[str, Any]:
    """The global model's budget: each site's rounds (``spent[i]``: site i's privacy
    reports) composed, the largest of them."""
    if run.privacy is None:
        return {}
    per_site = []
    for site, rounds in enumerate(spent):
        delta = rounds[0]["delta"] if rounds else default_delta(sizes[site])
        epsilon = composed_epsilon(rounds, delta, run.privacy.accountant) if rounds else 0.0
        per_site.append({"site": site, "epsilon": epsilon, "delta": delta,
                         "rounds": len(rounds)})  # fmt: skip
    worst = max(per_site, key=lambda s: s["epsilon"])
    return {"epsilon": worst["epsilon"], "delta": worst["delta"], "per_site": per_site,
            "max_grad_norm": run.privacy.max_grad_norm}  # fmt: skip


def describe(metrics: dict[str, float]) -> str:
    shown = [f"{int(metrics['round/sites'])} sites", f"loss {metrics['round/local_loss']:.3f}"]
    shown += [f"{k[5:]} {v:.3f}" for k, v in metrics.items()
              if k.startswith("eval/") and k[5:] in {"accuracy", "macro_f1", "auprc"}]  # fmt: skip
    return ", ".join(shown)
