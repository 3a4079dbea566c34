"""The ``deploy`` step: how to run ``lmforge serve`` on a model, written down, and
optionally started.

It always writes, into the step's folder:
- ``serve.yaml``: the serve config (the step's settings but ``start`` and ``image``);
- ``serve.sh``: the exact command (``lmforge serve --config serve.yaml``);
- ``lmforge-NAME.service``: a systemd unit running it (``systemctl --user`` or system-wide);
- ``compose.yaml``: a container spec (Docker Compose) running it in an image with lmforge,
  with ``$LMFORGE_HOME`` on a volume and a health check on ``/ready``.

With ``start: true`` it also starts the server as a background process (its log beside
the specs) and waits until ``/ready`` answers, so the step's outputs hold a live URL.

With ``target: k8s`` it writes Kubernetes manifests instead (``pipeline/k8s.py``: replicas
sharing one store, probes, a Service and an autoscaler), for ``kubectl apply -k``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lmforge.errors import LmforgeError
from lmforge.home import atomic_write_text, lmforge_home
from lmforge.serve.config import ServeConfig

if TYPE_CHECKING:
    from lmforge.pipeline.steps import DeployParams, StepContext

READY_TIMEOUT_S = 300


DEPLOY_ONLY = {"target", "start", "image", "replicas", "namespace", "store_secret"}


def deploy(params: DeployParams, ctx: StepContext) -> dict[str, Any]:
    """Write the config, command and specs (Kubernetes manifests with ``target: k8s``);
    start the server when ``params.start``."""
    config = ServeConfig.model_validate(params.model_dump(exclude=DEPLOY_ONLY))
    if params.target == "k8s":
        from lmforge.pipeline.k8s import K8sOptions, kubernetes_name, write_manifests

        name = kubernetes_name(params.served_name or ctx.pipeline.spec.name, "served_name")
        options = K8sOptions(name, params.image, params.replicas, namespace=params.namespace,
                             store_secret=params.store_secret)  # fmt: skip
        manifests = write_manifests(config, options, ctx.work_dir)
        ctx.log(f"wrote {', '.join(p.name for p in manifests)} to {ctx.work_dir}: "
                f"kubectl apply -k {ctx.work_dir}")  # fmt: skip
        return {"command": f"kubectl apply -k {ctx.work_dir}",
                "files": [str(p) for p in manifests], "url": "", "pid": 0}  # fmt: skip
    command = config.command_line()
    text = shlex.join(command)
    folder = ctx.work_dir
    # systemd and a bare shell may not have the virtual environment on PATH
    here = shlex.join([_lmforge_executable(), "serve", "--config", str(folder / "serve.yaml")])
    name = params.served_name or ctx.pipeline.spec.name
    home = lmforge_home()
    settings = config.model_dump(mode="json", exclude_defaults=True) | {"model": config.model}
    files = {
        "serve.yaml": f"# Written by the {ctx.pipeline.spec.name} pipeline: `{here}`.\n"
        + yaml.safe_dump(settings, sort_keys=False),
        "serve.sh": f"#!/bin/sh\n# Written by the {ctx.pipeline.spec.name} pipeline.\n"
        f"export LMFORGE_HOME={shlex.quote(str(home))}\nexec {here}\n",
        f"lmforge-{name}.service": _systemd_unit(name, here, home),
        "compose.yaml": _compose(name, command, params),
    }
    for file, content in files.items():
        atomic_write_text(folder / file, content)
    (folder / "serve.sh").chmod(0o755)
    ctx.log(f"wrote {', '.join(files)} to {folder}")
    written = [str(folder / file) for file in files]
    outputs: dict[str, Any] = {"command": text, "files": written, "url": "", "pid": 0}
    if params.start:
        url, pid = _start(command, folder, params)
        outputs.update(url=url, pid=pid)
        ctx.log(f"serving {params.model} at {url} (pid {pid}; stop with kill {pid})")
    return outputs


def _lmforge_executable() -> str:
    """The absolute path of this installation's ``lmforge`` command."""
    beside = Path(sys.executable).parent / "lmforge"
    return str(beside) if beside.is_file() else shutil.which("lmforge") or "lmforge"


def _start(command: list[str], folder: Path, params: DeployParams) -> tuple[str, int]:
    log_path = folder / "server.log"
    executable = [sys.executable, "-m", "lmforge.cli.main", *command[1:]]
    with log_path.open("ab") as log:
        server = subprocess.Popen(
            executable, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ},
        )  # fmt: skip
    host = "127.0.0.1" if params.host in {"0.0.0.0", "::"} else params.host
    url = f"http://{host}:{params.port}"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise LmforgeError(f"the server exited with code {server.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(f"{url}/ready", timeout=2) as response:
                if response.status == 200:
                    return url, server.pid
        except OSError:
            pass
        time.sleep(0.5)
    server.kill()
    raise LmforgeError(
        f"the server did not become ready within {READY_TIMEOUT_S} s; see {log_path}"
    )


def _systemd_unit(name: str, command: str, home: Path) -> str:
    return f"""[Unit]
Description=lmforge serve: {name}
After=network-online.target

[Service]
Environment=LMFORGE_HOME={home}
ExecStart={command}
Restart=on-failure
RestartSec=5

[Install]
WantedBy=default.target
"""


def _compose(name: str, command: list[str], params: DeployParams) -> str:
    args = [c if c != params.host else "0.0.0.0" for c in command]  # reachable from the host
    spec = {
        "services": {
            name: {
                "image": params.image,
                "command": args,
                "environment": {"LMFORGE_HOME": "/data/lmforge"},
                "volumes": ["lmforge-home:/data/lmforge"],
                "ports": [f"{params.port}:{params.port}"],
                "healthcheck": {
                    "test": ["CMD", "python", "-c", "import urllib.request; urllib.request"
                             f".urlopen('http://127.0.0.1:{params.port}/ready')"],
                    "interval": "10s",
                    "retries": 30,
                },
            }
        },
        "volumes": {"lmforge-home": {}},
    }  # fmt: skip
    return yaml.safe_dump(spec, sort_keys=False)
