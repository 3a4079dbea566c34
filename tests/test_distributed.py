"""Several processes, one run: ``lmforge train --nproc 2`` through the real CLI and torchrun.

Two processes with batch 2 each must train exactly like one process with batch 4: the
loss is summed over all processes' targets before dividing, and the batch order is
global. Runs use a tiny random LLaMA on CPU (gloo), dropout off, 4 steps, a fresh
LMFORGE_HOME each; each launch takes about 8 s (one process) or 15 s (two) on 2 cores.

Tolerances: losses agree to 1e-5 relative (measured: ~5e-8; the processes sum the
same numbers in a different order). Weights agree to 1e-5 absolute after 4 AdamW
steps at lr 1e-3 (measured: ~1e-6). A resumed run repeats the uninterrupted one to
1e-6 relative (measured: bit for bit).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
import yaml

from lmforge.errors import LmforgeError
from lmforge.train import distributed

LOSS_RTOL = 1e-5
WEIGHT_ATOL = 1e-5
RESUME_RTOL = 1e-6
STEPS = 4

WORDS = ["order", "refund", "shipping", "account", "password", "invoice", "delivery", "return"]


@dataclass
class Outcome:
    """What one ``lmforge train`` launch left behind."""

    home: Path
    run_dirs: list[Path]  # under $LMFORGE_HOME/runs
    mlflow_run_ids: list[str]
    losses: list[float]  # train/loss at steps 1..STEPS
    eval_losses: list[float]  # eval/loss before training and after

    @property
    def run_dir(self) -> Path:
        return self.run_dirs[0]


def _conversations(count: int, seed: int) -> list[dict]:
    import random

    rng = random.Random(seed)

    def text(low: int, high: int) -> str:
        return " ".join(rng.choices(WORDS, k=rng.randint(low, high)))

    return [
        {
            "messages": [
                {"role": "user", "content": text(3, 12)},
                {"role": "assistant", "content": text(4, 20)},
            ]
        }
        for _ in range(count)
    ]


def _write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _env(home: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "LMFORGE_HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",  # one process gets the same threads as each of two
        "TOKENIZERS_PARALLELISM": "false",
    }
    env.pop("LMFORGE_TRACKING_URI", None)
    return env


def _lmforge(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lmforge.cli.main", *args],
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=300,  # a collective that never completes hangs forever: fail instead
    )


def _metric(home: Path, run_id: str, key: str) -> list[float]:
    from lmforge.track import get_client

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LMFORGE_HOME", str(home))
        history = get_client().get_metric_history(run_id, key)
    return [m.value for m in sorted(history, key=lambda m: (m.step, m.timestamp))]


def _mlflow_run_ids(home: Path) -> list[str]:
    from lmforge.track import get_client

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LMFORGE_HOME", str(home))
        client = get_client()
        experiments = [e.experiment_id for e in client.search_experiments()]
        return [run.info.run_id for run in client.search_runs(experiments)]


class Launches:
    """Each named launch runs once per module, on first use, in its own LMFORGE_HOME."""

    SETTINGS: ClassVar[dict[str, dict[str, Any]]] = {
        "one-process": {"nproc": 1, "batch_size": 4},
        "ddp": {"nproc": 2, "batch_size": 2, "strategy": "ddp"},
        "fsdp": {"nproc": 2, "batch_size": 2, "strategy": "fsdp"},
        "one-process-lora": {"nproc": 1, "batch_size": 4, "method": "lora"},
        "fsdp-lora": {"nproc": 2, "batch_size": 2, "strategy": "fsdp", "method": "lora"},
    }

    def __init__(self, root: Path, model: Path, empty_store_db: Path) -> None:
        self.root = root
        self.empty_store_db = empty_store_db
        self.done: dict[str, Outcome | str] = {}  # an outcome, or why the launch failed
        self.config = {
            "model": {"ref": str(model)},
            "task": {"name": "sft", "max_length": 128},
            "data": {
                "train": str(_write_jsonl(root / "train.jsonl", _conversations(16, seed=0))),
                "validation": str(_write_jsonl(root / "val.jsonl", _conversations(4, seed=1))),
                "format": "messages",
            },
            "method": {"name": "full", "lora_dropout": 0.0},
            "train": {
                "max_steps": STEPS,
                "lr": 1e-3,
                "log_every": 1,
                "save_every": 2,
                "seed": 0,
            },
            "eval": {"before_training": True},
        }

    def new_home(self, name: str) -> Path:
        home = self.root / name
        home.mkdir()
        shutil.copy(self.empty_store_db, home / "mlflow.db")
        return home

    def __getitem__(self, name: str) -> Outcome:
        if name not in self.done:
            try:
                self.done[name] = self._launch(name, **self.SETTINGS[name])
            except AssertionError as failed:
                self.done[name] = str(failed)
                raise
        outcome = self.done[name]
        if isinstance(outcome, str):
            pytest.fail(f"launch {name!r} failed in an earlier test: {outcome}")
        return outcome

    def _launch(
        self,
        name: str,
        *,
        nproc: int,
        batch_size: int,
        strategy: str = "auto",
        method: str = "full",
    ) -> Outcome:
        config = json.loads(json.dumps(self.config))
        config["train"].update(batch_size=batch_size, strategy=strategy)
        if method == "lora":
            config["method"]["name"] = "lora"
            config["train"]["lr"] = 1e-2  # adapters start at zero: move them visibly
        config_file = self.root / f"{name}.yaml"
        config_file.write_text(yaml.safe_dump(config))
        home = self.new_home(name)
        done = _lmforge(["train", str(config_file), "--nproc", str(nproc)], home)
        assert done.returncode == 0, f"{name}: exit {done.returncode}\n{done.stderr[-4000:]}"
        run_dirs = sorted((home / "runs").iterdir())
        run_id = json.loads((run_dirs[0] / "metrics.json").read_text())["run_id"]
        return Outcome(
            home=home,
            run_dirs=run_dirs,
            mlflow_run_ids=_mlflow_run_ids(home),
            losses=_metric(home, run_id, "train/loss"),
            eval_losses=_metric(home, run_id, "eval/loss"),
        )


@pytest.fixture(scope="module")
def launches(
    tiny_causal_lm: Path, empty_store_db: Path, tmp_path_factory: pytest.TempPathFactory
) -> Launches:
    return Launches(tmp_path_factory.mktemp("distributed"), tiny_causal_lm, empty_store_db)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(path)


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_train_like_one_with_the_same_global_batch(
    launches: Launches, strategy: str
) -> None:
    alone, shared = launches["one-process"], launches[strategy]

    assert len(alone.losses) == STEPS
    assert shared.losses == pytest.approx(alone.losses, rel=LOSS_RTOL)
    assert len(alone.eval_losses) == 2  # before the first step (fsdp: unsharded) and after
    assert shared.eval_losses == pytest.approx(alone.eval_losses, rel=LOSS_RTOL)
    assert alone.losses[-1] < alone.losses[0]  # it trained: the comparison means something


def test_fsdp_with_lora_trains_like_one_process(launches: Launches) -> None:
    alone, shared = launches["one-process-lora"], launches["fsdp-lora"]

    assert shared.losses == pytest.approx(alone.losses, rel=LOSS_RTOL)
    expected = _weights(alone.run_dir / "model" / "adapter_model.safetensors")
    saved = _weights(shared.run_dir / "model" / "adapter_model.safetensors")
    assert saved.keys() == expected.keys()
    for name, tensor in expected.items():
        assert saved[name].shape == tensor.shape, name  # gathered whole, not one shard
        torch.testing.assert_close(saved[name], tensor, rtol=0, atol=WEIGHT_ATOL, msg=name)
    assert any(t.abs().max() > 0 for n, t in saved.items() if "lora_B" in n)


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_only_rank_zero_tracks_and_writes_outputs(launches: Launches, strategy: str) -> None:
    outcome = launches[strategy]

    assert len(outcome.mlflow_run_ids) == 1
    assert len(outcome.run_dirs) == 1
    entries = sorted(p.name for p in outcome.run_dir.iterdir())
    assert entries == ["checkpoints", "config.yaml", "metrics.json", "model"]
    assert sorted(p.name for p in (outcome.run_dir / "checkpoints").iterdir()) == [
        "step-000002",
        "step-000004",
    ]
    assert not [p for p in (outcome.run_dir / "model").iterdir() if p.name.startswith(".")]


def test_fsdp_model_loads_in_transformers_with_the_one_process_weights(
    launches: Launches,
) -> None:
    from transformers import AutoModelForCausalLM

    alone = AutoModelForCausalLM.from_pretrained(launches["one-process"].run_dir / "model")
    loaded: Any = AutoModelForCausalLM.from_pretrained(
        launches["fsdp"].run_dir / "model", output_loading_info=True
    )
    sharded_run, info = loaded

    assert not info["missing_keys"] and not info["unexpected_keys"]
    expected = alone.state_dict()
    for name, tensor in sharded_run.state_dict().items():
        torch.testing.assert_close(tensor, expected[name], rtol=0, atol=WEIGHT_ATOL, msg=name)
    # the head stays tied to the embeddings, as in the base model
    assert sharded_run.lm_head.weight.data_ptr() == sharded_run.model.embed_tokens.weight.data_ptr()


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_resume_continues_a_two_process_run_exactly(launches: Launches, strategy: str) -> None:
    finished = launches[strategy]
    # Stand-in for a crash after step 2's checkpoint: a copy without what came later.
    home = finished.home.parent / f"{strategy}-resumed"
    shutil.copytree(finished.home, home)
    run_dir = home / "runs" / finished.run_dir.name
    shutil.rmtree(run_dir / "model")
    shutil.rmtree(run_dir / "checkpoints" / "step-000004")
    (run_dir / "metrics.json").unlink()

    # --no-track: the copied store's artifact paths point at the original home.
    resume = ["--resume", str(run_dir), "--no-track"]
    done = _lmforge(["train", str(run_dir / "config.yaml"), "--nproc", "2", *resume], home)

    assert done.returncode == 0, done.stderr[-4000:]
    history = json.loads((run_dir / "checkpoints/step-000004/trainer_state.json").read_text())
    assert [h["step"] for h in history["history"]] == [1, 2, 3, 4]
    assert [h["train/loss"] for h in history["history"]] == pytest.approx(
        finished.losses, rel=RESUME_RTOL
    )
    expected = _weights(finished.run_dir / "checkpoints/step-000004/trainable.safetensors")
    resumed = _weights(run_dir / "checkpoints/step-000004/trainable.safetensors")
    for name, tensor in expected.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=RESUME_RTOL, atol=0, msg=name)


def test_two_machines_meet_through_the_rendezvous_flags(launches: Launches) -> None:
    """Two "machines" on localhost, one process each: the --nnodes/--node-rank/
    --master-addr/--master-port flags reach torchrun and make one run."""
    import socket

    with socket.socket() as probe:  # a free port for rank 0's rendezvous store
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config_file = launches.root / "two-machines.yaml"
    config = json.loads(json.dumps(launches.config))
    config["train"].update(batch_size=2, strategy="ddp")
    config_file.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "lmforge.cli.main", "train", str(config_file), "--nproc"]
    command += ["1", "--nnodes", "2", "--master-addr", "127.0.0.1", "--master-port", str(port)]
    homes = [launches.new_home(f"machine-{rank}") for rank in (0, 1)]
    processes = [
        subprocess.Popen(
            [*command, "--node-rank", str(rank)],
            env=_env(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank, home in zip((0, 1), homes, strict=True)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in processes]

    assert [p.returncode for p in processes] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    first, second = homes
    assert len(_mlflow_run_ids(first)) == 1 and not _mlflow_run_ids(second)
    assert not list((second / "runs").glob("*"))  # only rank 0 (on machine 0) writes
    [run_dir] = (first / "runs").iterdir()
    run_id = json.loads((run_dir / "metrics.json").read_text())["run_id"]
    losses = _metric(first, run_id, "train/loss")
    assert losses == pytest.approx(launches["one-process"].losses, rel=LOSS_RTOL)


def test_a_worker_error_is_one_message_and_exit_code_2(launches: Launches, tmp_path: Path) -> None:
    config = json.loads(json.dumps(launches.config))
    config["model"]["ref"] = str(tmp_path / "no-such-model")
    config_file = tmp_path / "bad.yaml"
    config_file.write_text(yaml.safe_dump(config))

    done = _lmforge(["train", str(config_file), "--nproc", "2"], launches.new_home("bad-ref"))

    assert done.returncode == 2
    assert "unknown model reference" in done.stderr
    assert "Traceback" not in done.stderr and "ChildFailedError" not in done.stderr


def test_deepspeed_is_refused_naming_the_alternative() -> None:
    with pytest.raises(LmforgeError, match=r"needs CUDA GPUs.*train.strategy: fsdp"):
        distributed.check_strategy("deepspeed", torch.device("cpu"))
    with pytest.raises(LmforgeError, match=r"not supported by this lmforge version.*fsdp"):
        distributed.check_strategy("deepspeed", torch.device("cuda"))
    # refused alone too, rather than silently training without it
    with pytest.raises(LmforgeError, match="deepspeed"):
        distributed.wrap(torch.nn.Linear(2, 2), "deepspeed", distributed.Dist())
    for strategy in ("auto", "ddp", "fsdp"):
        distributed.check_strategy(strategy, torch.device("cpu"))
