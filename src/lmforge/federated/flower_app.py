"""lmforge as Flower's two apps (imported by Flower's processes only; flwr lives in the
environment ``make flower`` builds).

``server_app`` runs beside the SuperLink, once per run: it waits for ``flower.sites``
sites, then Flower's FedAvg (or FedProx) runs the rounds. Each round it asks the sites to
train, averages their weights by their record counts (then, with ``server_momentum``,
takes the same server step as the simulation) and hands the result back here,
where lmforge writes it as a model folder, scores it, logs the round to MLflow and prints
one line. After the last round the global model is saved, logged and registered, as in
the simulation (``lmforge.federated.simulation.finish``).

``client_app`` runs at a site, once per message (Flower starts a fresh process each
time): it writes the global weights it was sent as a model folder, trains from them on the
site's file (the SuperNode's ``data`` node config) with ``lmforge.train``, and replies
with its weights, its record count (the averaging weight), its loss and the privacy it
spent. The first reply also carries the model folder's other files (configs, tokenizer),
which the server needs to write the global model as a folder; no record leaves a site.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg, FedProx

from lmforge.config import load_config_dict
from lmforge.errors import LmforgeError
from lmforge.federated.config import FederatedConfig
from lmforge.federated.flower import CONFIG_KEY, DATA_KEY, RUN_DIR_KEY, TRACK_KEY
from lmforge.federated.simulation import (
    ServerStep,
    count_records,
    describe,
    finish,
    job_privacy,
    round_metrics,
    site_config,
    site_run,
    weight_files,
)
from lmforge.home import atomic_dir
from lmforge.track import OUTPUT_DIR_TAG, start_run
from lmforge.train.loop import train

server_app = ServerApp()
client_app = ClientApp()

# The records of a message: Flower's own keys for the weights and the round's settings,
# and lmforge's for what else a site reports.
ARRAYS, CONFIG, METRICS, REPORT, FILES = "arrays", "config", "metrics", "report", "files"
RECORDS = "num-examples"  # the averaging weight, as Flower's strategies name it
SEPARATOR = "/"  # an array's key: FILE/TENSOR, the weights file and the tensor in it


@client_app.train()
def train_site(message: Message, context: Context) -> Message:
    """One round of this site's training, from the weights in ``message``."""
    data = context.node_config.get(DATA_KEY)
    if not data:
        raise LmforgeError("this site was started without its data: lmforge federated site "
                           "--superlink HOST:PORT --data FILE")  # fmt: skip
    settings = message.content[CONFIG]
    run = load_config_dict(json.loads(str(settings["run"])), "the federated run config")
    mu = float(settings["proximal-mu"]) if "proximal-mu" in settings else None
    with tempfile.TemporaryDirectory(prefix="lmforge-site-") as tmp:
        start = None
        if len(message.content[ARRAYS]):  # round 1 starts from the base model
            start = _write_weights(message.content[ARRAYS], Path(tmp) / "start")
        site = site_config(run, Path(str(data)), Path(tmp) / "out", start, mu)
        result = train(site, track=False)
        content = RecordDict({
            ARRAYS: _read_weights(result.model_dir),
            METRICS: MetricRecord({RECORDS: count_records(Path(str(data))),
                                   "train-loss": float(result.final_loss)}),
            REPORT: ConfigRecord({"privacy": json.dumps(result.privacy or {})}),
        })  # fmt: skip
        if settings.get("want-files"):
            content[FILES] = ConfigRecord(_other_files(result.model_dir))
    return Message(content=content, reply_to=message)


@server_app.main()
def serve_rounds(grid: Grid, context: Context) -> None:
    """The whole federated run: wait for the sites, run the rounds, save the model."""
    config = FederatedConfig.model_validate(json.loads(str(context.run_config[CONFIG_KEY])))
    run = site_run(config)
    run_dir = Path(str(context.run_config[RUN_DIR_KEY]))
    tracker = start_run(config.output.experiment, run_name=config.name,
                        tags={"lmforge.command": "federated", "lmforge.engine": "flower"},
                        enabled=bool(context.run_config[TRACK_KEY]))  # fmt: skip
    with tracker:
        tracker.set_tags({OUTPUT_DIR_TAG: str(run_dir), "lmforge.task": run.task.name})
        tracker.log_params({"federated": config.summary()})
        _wait_for_sites(grid, config)
        rounds = _Rounds(config, run_dir, tracker)
        strategy = _strategy(config, rounds)
        train_config = ConfigRecord({"run": json.dumps(run.model_dump(mode="json"))})
        strategy.start(grid=grid, initial_arrays=ArrayRecord(), num_rounds=config.rounds,
                       timeout=config.flower.round_timeout, train_config=train_config,
                       evaluate_fn=rounds.evaluate)  # fmt: skip
        if rounds.global_dir is None:
            raise LmforgeError("no round produced a global model: no site answered")
        nodes = sorted(rounds.sizes)
        sizes = [rounds.sizes[n] for n in nodes]
        privacy = job_privacy(run, sizes, [rounds.spent.get(n, []) for n in nodes])
        tracker.log_params({"site_sizes": sizes})
        finish(tracker, config, run_dir, rounds.global_dir, rounds.history, sizes, privacy)


def _wait_for_sites(grid: Grid, config: FederatedConfig) -> None:
    """Wait until ``flower.sites`` sites are connected, at most ``connect_timeout`` s."""
    deadline = time.monotonic() + config.flower.connect_timeout
    while (connected := len(list(grid.get_node_ids()))) < config.flower.sites:
        if time.monotonic() > deadline:
            raise LmforgeError(f"flower.sites: {connected} of {config.flower.sites} sites "
                               f"connected within {config.flower.connect_timeout:g} s; start "
                               "them with lmforge federated site")  # fmt: skip
        time.sleep(1)
    print(f"{connected} sites connected", flush=True)


class _Rounds:
    """The server's side of the rounds that is lmforge's: what the sites reported, the
    global model of each round written as a folder and scored, the metrics logged."""

    def __init__(self, config: FederatedConfig, run_dir: Path, tracker: Any) -> None:
        self.config, self.run_dir, self.tracker = config, run_dir, tracker
        self.files: dict[str, bytes] | None = None  # the model folder's other files
        self.sizes: dict[int, int] = {}  # each site (node id) that answered: its records
        self.spent: dict[int, list[dict[str, Any]]] = {}  # its privacy report per round
        self.history: list[dict[str, float]] = []
        self.global_dir: Path | None = None
        self.sent = ArrayRecord()  # the global weights this round's sites start from
        self.asked = 0  # sites asked to train this round
        self.round_sizes: list[int] = []  # this round's answering sites: records, loss
        self.losses: list[float] = []
        self.started = time.perf_counter()

    def record(self, replies: list[Message]) -> None:
        """Keep what this round's answering sites reported."""
        self.round_sizes, self.losses = [], []
        for reply in replies:
            node, metrics = reply.metadata.src_node_id, reply.content[METRICS]
            self.sizes[node] = int(metrics[RECORDS])
            self.round_sizes.append(int(metrics[RECORDS]))
            self.losses.append(float(metrics["train-loss"]))
            if spent := json.loads(str(reply.content[REPORT]["privacy"])):
                self.spent.setdefault(node, []).append(spent)
            if self.files is None and FILES in reply.content:
                self.files = {k: bytes(v) for k, v in reply.content[FILES].items()}

    def evaluate(self, number: int, arrays: ArrayRecord) -> MetricRecord | None:
        """Flower's central evaluation, after each round: write the global model as a
        folder, score it, log and print the round."""
        if number == 0 or not self.round_sizes:  # before round 1, or nobody answered
            return None
        assert self.files is not None
        folder = self.run_dir / "rounds" / str(number) / "global"
        _write_weights(arrays, folder, self.files)
        if self.global_dir is not None:
            shutil.rmtree(self.global_dir.parent, ignore_errors=True)
        self.global_dir = folder
        metrics = round_metrics(self.config, self.round_sizes, self.losses, self.asked, folder,
                                number)  # fmt: skip
        metrics["round/seconds"] = time.perf_counter() - self.started
        self.started = time.perf_counter()
        self.tracker.log_metrics(metrics, step=number)
        self.history.append({"round": float(number), **metrics})
        print(f"round {number}/{self.config.rounds}: {describe(metrics)}", flush=True)
        return MetricRecord({k: v for k, v in metrics.items() if k.startswith("eval/")})


def _strategy(config: FederatedConfig, rounds: _Rounds) -> FedAvg:
    """Flower's FedAvg or FedProx, weighted by the sites' records, telling ``rounds``
    what each round asked and got, and failing a round below ``min_sites``."""
    base = FedProx if config.strategy == "fedprox" else FedAvg

    class Strategy(base):  # type: ignore[misc, valid-type]  # flwr's classes are untyped here
        def configure_train(self, server_round: int, arrays: ArrayRecord, settings: ConfigRecord,
                            grid: Grid) -> list[Message]:  # fmt: skip
            settings["want-files"] = rounds.files is None
            rounds.sent = arrays
            messages = list(super().configure_train(server_round, arrays, settings, grid))
            rounds.asked = len(messages)
            print(f"round {server_round}: {len(messages)} sites asked to train", flush=True)
            return messages

        def aggregate_train(self, server_round: int, replies: Any) -> Any:
            replies = list(replies)
            answered = [r for r in replies if not r.has_error()]
            for failed in (r for r in replies if r.has_error()):
                print(f"round {server_round}: site {failed.metadata.src_node_id} failed: "
                      f"{failed.error.reason}", flush=True)  # fmt: skip
            if len(answered) < config.min_sites:
                raise LmforgeError(
                    f"round {server_round}: {len(answered)} of {rounds.asked} "
                    f"sites finished, below min_sites {config.min_sites}"
                )
            rounds.record(answered)
            arrays, metrics = super().aggregate_train(server_round, answered)
            averaged = _keep_dtypes(arrays, answered[0].content[ARRAYS])
            if len(rounds.sent) == 0:  # round 1: the sites started from the base model
                return averaged, metrics
            return _stepped(step, rounds.sent, averaged), metrics

    step = ServerStep(config.server_lr, config.server_momentum)
    settings: dict[str, Any] = {"proximal_mu": config.proximal_mu} if base is FedProx else {}
    return Strategy(fraction_train=config.fraction, fraction_evaluate=0.0,
                min_train_nodes=config.min_sites, min_available_nodes=config.min_sites,
                weighted_by_key=RECORDS, **settings)  # fmt: skip


def _stepped(step: ServerStep, sent: ArrayRecord, averaged: ArrayRecord) -> ArrayRecord:
    """The server's step (FedAvgM, ``server_momentum``/``server_lr``) from the global
    weights ``sent`` to the sites to this round's average of their replies."""
    if not step.active:
        return averaged
    stepped = step.apply(_tensors(sent), _tensors(averaged))
    return ArrayRecord({k: Array(v.numpy()) for k, v in stepped.items()})


def _tensors(record: ArrayRecord) -> dict[str, torch.Tensor]:
    return {key: torch.from_numpy(array.numpy().copy()) for key, array in record.items()}


def _keep_dtypes(averaged: ArrayRecord, sent: ArrayRecord) -> ArrayRecord:
    """Flower's average comes back as float64; each array goes back to the type the sites
    sent (counters and ids, the same at every site, rounded back to integers)."""
    kept = {}
    for key, array in averaged.items():
        value, dtype = array.numpy(), sent[key].numpy().dtype
        kept[key] = Array(np.rint(value).astype(dtype) if dtype.kind in "iub"
                          else value.astype(dtype))  # fmt: skip
    return ArrayRecord(kept)


def _read_weights(folder: Path) -> ArrayRecord:
    """A model folder's trained weights (its LoRA adapter, or every weights file); bf16,
    which NumPy lacks, travels as float32."""
    from safetensors.torch import load_file

    tensors = {}
    for name in weight_files(folder):
        for key, value in load_file(folder / name).items():
            float32 = value.dtype == torch.bfloat16
            tensors[f"{name}{SEPARATOR}{key}"] = value.float() if float32 else value
    return ArrayRecord(tensors)


def _write_weights(
    arrays: ArrayRecord, folder: Path, files: dict[str, bytes] | None = None
) -> Path:
    """``arrays`` (from ``_read_weights``) as weights files in ``folder``, beside ``files``."""
    from safetensors.torch import save_file

    by_file: dict[str, dict[str, torch.Tensor]] = {}
    for key, array in arrays.items():
        name, _, tensor = key.partition(SEPARATOR)
        by_file.setdefault(name, {})[tensor] = torch.from_numpy(array.numpy().copy())
    with atomic_dir(folder) as tmp:
        for name, content in (files or {}).items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_bytes(content)
        for name, tensors in by_file.items():
            save_file(tensors, str(tmp / name), metadata={"format": "pt"})
    return folder


def _other_files(folder: Path) -> dict[str, bytes]:
    """Every file of a model folder but the weights it sends, by path inside it."""
    weights = set(weight_files(folder))
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.relative_to(folder).as_posix() not in weights}  # fmt: skip
