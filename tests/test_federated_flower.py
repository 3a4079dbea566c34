"""Federated learning across real processes with Flower's deployment engine: a SuperLink
and three sites (SuperNodes) on loopback, each a process of its own holding its own file,
lmforge's ServerApp and ClientApp running in Flower's environment (``make flower``, which
``make test`` builds), every site training with DP-SGD; one site is killed mid-round and
the round goes on without it. The
rest of lmforge works in that environment, whose serving stack is the older one Flower
pins: the OpenAI-compatible server answers the official client there."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import yaml

from lmforge.config.load import load_settings
from lmforge.errors import LmforgeError
from lmforge.federated.config import FederatedConfig
from lmforge.federated.flower import flower_program, site_command
from lmforge.federated.simulation import run_federated
from lmforge.track import get_client
from tests.datafiles import labeled_rows, write_jsonl
from tests.servers import free_port, lmforge_server

ROOT = Path(__file__).resolve().parent.parent
FLOWER_BIN = ROOT / ".venv-flower" / "bin"


@pytest.fixture(scope="module")
def flower_bin() -> Path:
    if not (FLOWER_BIN / "flwr").is_file():
        pytest.fail("Flower's environment is missing: run `make flower` (make test does)")
    return FLOWER_BIN


def _daemon(command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A Flower daemon in a session of its own (so its whole group can be killed)."""
    with log.open("wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)  # fmt: skip


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the SuperLink exited:\n{log.read_text()[-2000:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise RuntimeError(f"the SuperLink did not listen on {port}:\n{log.read_text()[-2000:]}")


@pytest.fixture
def daemons(tmp_path: Path, home: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Every Flower daemon the test starts, stopped afterwards whatever happened."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in started:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_three_site_processes_train_one_model_and_a_killed_site_drops_out(
    flower_bin: Path,
    tiny_classifier: Path,
    tmp_path: Path,
    home: Path,
    daemons: list[subprocess.Popen[bytes]],
) -> None:
    rows = labeled_rows(48)
    files = [write_jsonl(tmp_path / f"site-{i}.jsonl", part)
             for i, part in enumerate((rows[:24], rows[24:40], rows[40:]))]  # fmt: skip
    test = write_jsonl(tmp_path / "test.jsonl", labeled_rows(12))
    run = {"model": {"ref": str(tiny_classifier)}, "task": {"name": "classify", "max_length": 32},
           "data": {"train": str(files[0])}, "method": {"name": "lora"},
           "train": {"max_steps": 2, "batch_size": 8, "lr": 1e-2, "log_every": 1},
           "privacy": {"noise_multiplier": 1.0}}  # each site trains with DP-SGD  # fmt: skip
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(run))
    link = free_port()
    # A round waits for a silent site up to round_timeout: long enough for live sites on a
    # busy 2-core machine (a round took ~30 s beside other work), short enough for a test.
    spec = {"name": "tiny-flower", "run": "run.yaml", "engine": "flower", "rounds": 2,
            "min_sites": 2, "server_momentum": 0.5,  # round 2 takes the server's step
            "eval": {"data": str(test), "task": "classification"},
            "flower": {"superlink": f"127.0.0.1:{link}", "sites": 3, "round_timeout": 60,
                       "connect_timeout": 120},
            "output": {"dir": str(tmp_path / "out"), "register_as": "tiny-flower"}}  # fmt: skip
    (tmp_path / "federated.yaml").write_text(yaml.safe_dump(spec))
    env = {**os.environ, "FLWR_HOME": str(tmp_path / "flwr-daemons")}
    lmforge = str(flower_bin / "lmforge")
    superlink_log = tmp_path / "superlink.log"
    superlink = _daemon([lmforge, "federated", "superlink", "--port", str(link)],
                        superlink_log, env)  # fmt: skip
    daemons.append(superlink)
    _wait_for_port(link, superlink, superlink_log)
    for i, data in enumerate(files):
        command = [lmforge, "federated", "site", "--superlink", f"127.0.0.1:{link}",
                   "--data", str(data), "--port", str(free_port())]  # fmt: skip
        daemons.append(_daemon(command, tmp_path / f"site-{i}.log", env))

    lines = []
    job = subprocess.Popen([lmforge, "federated", "run", str(tmp_path / "federated.yaml")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    watchdog = threading.Timer(480, job.kill)  # bounded: a hung run fails the test
    watchdog.start()
    try:
        assert job.stdout is not None
        for line in job.stdout:
            lines.append(line)
            if "round 2: 3 sites asked to train" in line:  # site 2 dies before it answers
                os.killpg(daemons[3].pid, signal.SIGKILL)
        job.wait()
    finally:
        watchdog.cancel()
    output = "".join(lines)
    assert job.returncode == 0, output[-4000:]

    summary = json.loads((tmp_path / "out" / "federated.json").read_text())
    first, second = summary["rounds"]
    assert (first["round/sites"], first["round/dropped"]) == (3, 0), output[-3000:]
    assert (second["round/sites"], second["round/dropped"]) == (2, 1), output[-3000:]
    assert sorted(summary["site_sizes"]) == [8, 16, 24]
    # the killed site spent its budget in round 1 only; the model's is the largest site's
    per_site = summary["privacy"]["per_site"]
    assert sorted(s["rounds"] for s in per_site) == [1, 2, 2]
    assert summary["privacy"]["epsilon"] == max(s["epsilon"] for s in per_site) > 0
    saved = json.loads((tmp_path / "out" / "model" / "privacy.json").read_text())
    assert saved["epsilon"] == summary["privacy"]["epsilon"]
    assert (tmp_path / "out" / "model" / "adapter_model.safetensors").is_file()
    assert "eval/accuracy" in second and "round 2/2:" in output
    history = get_client().get_metric_history(summary["run_id"], "eval/accuracy")
    assert [m.step for m in history] == [1, 2]
    versions = get_client().search_model_versions("name='tiny-flower'")
    assert len(versions) == 1 and versions[0].run_id == summary["run_id"]

    # Round 1 had every site: the same sites in the one-process simulation train the same
    # global model (Flower's average, weighted by the 24/16/8 records, equals lmforge's).
    sites = {"sites": {"files": [str(f) for f in files]}}
    overrides = ["engine=simulation", "rounds=1", f"output.dir={tmp_path / 'simulated'}",
                 "output.register_as=null"]  # fmt: skip
    simulated = load_settings(tmp_path / "federated.yaml", FederatedConfig, overrides, given=sites)
    expected = run_federated(simulated, track=False).rounds[0]
    for key in ("round/local_loss", "eval/accuracy", "eval/macro_f1"):
        assert first[key] == pytest.approx(expected[key], abs=1e-5), key


def test_the_rest_of_lmforge_works_in_flowers_environment(
    flower_bin: Path, tiny_causal_lm: Path
) -> None:
    python = str(flower_bin / "python")
    probe = "import fastapi, starlette, uvicorn; print(fastapi.__version__, uvicorn.__version__)"
    older = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True)
    import fastapi
    import uvicorn

    # the environment really is different: Flower's pins, not the main environment's
    assert older.stdout.split() != [fastapi.__version__, uvicorn.__version__]
    assert older.stdout.split()[0].startswith("0.138.")
    with lmforge_server(str(tiny_causal_lm), "--served-name", "tiny", "--max-model-len", "96",
                        "--backend", "torch", python=python) as base:  # fmt: skip
        client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
        answer = client.chat.completions.create(
            model="tiny",
            messages=[{"role": "user", "content": "Hello"}],
            max_tokens=8,
            temperature=0,
        )
        assert answer.choices[0].message.content and answer.usage is not None
        hello = [{"role": "user", "content": "Hello"}]
        chunks = list(client.chat.completions.create(
            model="tiny", messages=hello, max_tokens=8, temperature=0, stream=True))  # fmt: skip
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert streamed == answer.choices[0].message.content  # greedy: the same words


def test_flower_settings_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "run.yaml").write_text("model: {ref: x}\n")
    with pytest.raises(LmforgeError, match="sites: with engine flower each site holds"):
        load_settings(None, FederatedConfig, given={
            "name": "x", "run": str(tmp_path / "run.yaml"), "rounds": 1, "engine": "flower",
            "sites": {"count": 2}})  # fmt: skip
    with pytest.raises(LmforgeError, match="sites: the simulation needs the sites' data"):
        load_settings(
            None,
            FederatedConfig,
            given={"name": "x", "run": str(tmp_path / "run.yaml"), "rounds": 1},
        )
    with pytest.raises(LmforgeError, match=r"--data: .* does not exist"):
        site_command("127.0.0.1:9092", tmp_path / "missing.jsonl", 9094)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("sys.executable", str(tmp_path / "python"))
    with pytest.raises(LmforgeError, match="run `make flower`"):
        flower_program("flwr")
