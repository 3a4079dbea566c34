"""Federated training across real processes with Flower's deployment engine (flwr): a
SuperLink coordinates, one SuperNode runs at each site beside that site's own data, and
``lmforge federated run`` hands the run to the SuperLink. lmforge is both of Flower's apps
(``lmforge.federated.flower_app``): the ServerApp, where Flower's FedAvg or FedProx picks
the sites and averages their weights and lmforge scores, logs, saves and registers the
global model every round as the simulation does; and the ClientApp, where a site trains
the global model on its own records with ``lmforge.train``.

Flower pins older releases of the serving stack (fastapi, starlette, uvicorn, typer, rich,
packaging) than lmforge installs, so it lives in an environment of its own layered on
lmforge's: ``make flower`` (docs/privacy.md). This module starts the Flower programs of the
environment it runs in; it never imports flwr.

The ServerApp runs beside the SuperLink and writes the run folder and the MLflow run
there: start the SuperLink on the machine (and with the LMFORGE_HOME) that runs
``lmforge federated run``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from lmforge.errors import LmforgeError
from lmforge.federated.config import FederatedConfig
from lmforge.federated.simulation import FederatedResult, read_summary, site_run
from lmforge.home import runs_dir

# The Flower run config keys the ServerApp reads (the generated app's defaults).
CONFIG_KEY, RUN_DIR_KEY, TRACK_KEY = "federated", "run-dir", "track"
# The SuperNode's node config key holding the site's training file.
DATA_KEY = "data"
# Flower phones home and installs an app's dependencies at run time unless told not to.
QUIET = {"FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1",
         "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1"}  # fmt: skip
CONNECTION = "lmforge"  # the SuperLink connection's name in the generated config.toml


def flower_program(name: str) -> str:
    """The path of Flower's program ``name`` in this environment.

    Raises:
        LmforgeError: Flower is not installed here.
    """
    found = shutil.which(name, path=_path())
    if found is None:
        raise LmforgeError(f"{name} not found: Flower runs from its own environment; "
                           "run `make flower`, then .venv-flower/bin/lmforge "
                           "(docs/privacy.md, 'Across machines with Flower')")  # fmt: skip
    return found


def flower_env() -> dict[str, str]:
    """This environment's variables for Flower's programs: this interpreter's bin first
    (the SuperLink and SuperNodes start their helpers and the apps by name from PATH, so
    another Flower on PATH would run them), telemetry, update checks and run-time
    dependency installs off."""
    return {**os.environ, "PATH": _path(), **QUIET}


def superlink_command(host: str, port: int) -> list[str]:
    """A SuperLink on ``host:port`` (one HTTP port carries Flower's APIs)."""
    return [flower_program("flower-superlink"), "--insecure", "--host", host, "--port",
            str(port), "--disable-runtime-dependency-installation"]  # fmt: skip


def site_command(superlink: str, data: Path, port: int) -> list[str]:
    """A SuperNode that trains on ``data`` for the runs of the SuperLink at ``superlink``;
    ``port`` is its own API for the apps it starts (each site on a host needs its own)."""
    if not data.is_file():
        raise LmforgeError(f"--data: {data} does not exist; give the site's training file")
    return [flower_program("flower-supernode"), "--insecure", "--superlink", superlink,
            "--port", str(port),
            "--node-config", f"{DATA_KEY}={json.dumps(str(data.absolute()))}"]  # fmt: skip


def run_flower(config: FederatedConfig, *, track: bool = True) -> FederatedResult:
    """Run ``config`` on the SuperLink at ``config.flower.superlink``; the server's log
    lines stream to stderr. Returns once the run finished.

    Raises:
        LmforgeError: Flower is not installed here, the run config does not suit federated
            training, or the run failed (the server's error is in the streamed lines).
    """
    site_run(config)  # its errors here, before anything starts
    run_dir = Path(config.output.dir or runs_dir() / uuid.uuid4().hex).absolute()
    run_dir.mkdir(parents=True, exist_ok=True)
    flwr = flower_program("flwr")
    with tempfile.TemporaryDirectory(prefix="lmforge-flower-") as tmp:
        app, home = Path(tmp) / "app", Path(tmp) / "flwr-home"
        _write_app(app, config, run_dir, track)
        home.mkdir()
        (home / "config.toml").write_text(
            f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\n'
            f'address = "{config.flower.superlink}"\ninsecure = true\n'
        )
        env = {**flower_env(), "FLWR_HOME": str(home)}
        run_id = _stream([flwr, "run", str(app), CONNECTION, "--stream"], env)
        status = _status(flwr, run_id, env)
    if status != "finished:completed":
        raise LmforgeError(f"the Flower run {run_id} ended {status}: the server's error is "
                           "in the lines above")  # fmt: skip
    return read_summary(run_dir)


def _write_app(app: Path, config: FederatedConfig, run_dir: Path, track: bool) -> None:
    """The Flower app that ``flwr run`` uploads: only its pyproject.toml; the apps are
    lmforge's, importable wherever the SuperLink and SuperNodes run."""
    app.mkdir()
    federated = json.dumps(json.dumps(config.summary()))  # a TOML string holding JSON
    (app / "pyproject.toml").write_text(f"""\
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "lmforge-federated"
version = "1.0.0"
description = "lmforge's federated training: {config.name}"
license = "Apache-2.0"

[tool.flwr.app]
publisher = "lmforge"

[tool.flwr.app.components]
serverapp = "lmforge.federated.flower_app:server_app"
clientapp = "lmforge.federated.flower_app:client_app"

[tool.flwr.app.config]
{CONFIG_KEY} = {federated}
{RUN_DIR_KEY} = {json.dumps(str(run_dir))}
{TRACK_KEY} = {"true" if track else "false"}
""")


def _stream(command: list[str], env: dict[str, str]) -> str:
    """Run ``flwr run --stream``, echo its lines to stderr, return the run's id."""
    run_id = None
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as process:  # fmt: skip
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", file=sys.stderr, flush=True)
            found = re.search(r"Successfully started run (\d+)", line)
            run_id = run_id or (found.group(1) if found else None)
    if process.returncode != 0 or run_id is None:
        raise LmforgeError(f"flwr run did not start the run (exit code {process.returncode}): "
                           "its lines are above; is the SuperLink up?")  # fmt: skip
    return run_id


def _status(flwr: str, run_id: str, env: dict[str, str]) -> str:
    """The run's final status (``flwr run`` exits 0 even when the ServerApp failed)."""
    command = [flwr, "ls", CONNECTION, "--run-id", run_id, "--format", "json"]
    try:
        listed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        raise LmforgeError(
            f"flwr ls did not report run {run_id} within 120 s: check that the SuperLink at "
            "flower.superlink is still running"
        ) from None
    try:
        runs = json.loads(listed.stdout)["runs"]
        return str(runs[0]["status"])
    except (json.JSONDecodeError, KeyError, IndexError):
        raise LmforgeError(
            f"flwr ls could not report run {run_id}: "
            f"{(listed.stdout + listed.stderr).strip()[-500:]}"
        ) from None


def _path() -> str:
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
