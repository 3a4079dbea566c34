"""``lmforge runs list|show`` and ``lmforge ui``: look at tracked runs."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich import box
from rich.table import Table

from lmforge.cli.console import console, err_console
from lmforge.errors import LmforgeError
from lmforge.home import lmforge_home

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

app = typer.Typer(
    help="List and inspect tracked runs (MLflow). Example: lmforge runs list --limit 5",
    no_args_is_help=True,
)

# Shown first in the `runs list` metrics column when a run has them.
_KEY_METRICS = ("eval/loss", "eval_loss", "train/loss", "loss", "eval/accuracy", "accuracy")
_MAX_ARTIFACTS = 500
_WIDE_TABLE = 120  # console columns needed for the one-row-per-run table
_UI_START_TIMEOUT_S = 90.0


@app.command("list")
def list_runs(
    experiment: str | None = typer.Option(
        None, "--experiment", "-e", help="Only runs of this experiment."
    ),
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="Most recent runs to show."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """List recent runs, newest first.

    Example: lmforge runs list --experiment sft --limit 5
    """
    from lmforge.track.mlflow_store import get_client, tracking_uri

    client = get_client()
    experiments = _experiments(client, experiment)
    names = {e.experiment_id: e.name for e in experiments}
    runs = []
    if experiments:
        runs = list(
            client.search_runs(
                list(names), max_results=limit, order_by=["attributes.start_time DESC"]
            )
        )
    rows = [_run_summary(run, names) for run in runs]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        where = f"experiment {experiment!r}" if experiment else tracking_uri()
        console.print(f"No runs yet in {where}. Train something, e.g. `lmforge quickstart`.")
        return
    console.print(f"[bold]Runs[/bold] in {tracking_uri()}", soft_wrap=True, highlight=False)
    if console.width >= _WIDE_TABLE:
        _print_runs_table(rows)
        return
    # Narrow terminals: two lines per run, so the full id (copied into `runs show` and
    # run: refs) and the metrics both stay visible.
    for row in rows:
        console.print(
            f"[bold]{row['run_id']}[/bold]  {_status_markup(row['status'])}  "
            f"{_fmt_time(row['start_time'])}  {_fmt_duration(row['duration_s'])}",
            highlight=False,
        )
        console.print(
            f"  {row['experiment']} / {row['name']}  {_metrics_text(row['metrics'])}",
            markup=False,
            highlight=False,
        )


def _print_runs_table(rows: list[dict[str, Any]]) -> None:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("run id", no_wrap=True, min_width=32)  # whole, to copy into run: refs
    table.add_column("experiment", overflow="fold")
    table.add_column("name", overflow="fold")
    for column in ("status", "started", "duration"):
        table.add_column(column, no_wrap=True)
    table.add_column("metrics", overflow="fold")
    for row in rows:
        table.add_row(
            row["run_id"],
            row["experiment"],
            row["name"],
            _status_markup(row["status"]),
            _fmt_time(row["start_time"]),
            _fmt_duration(row["duration_s"]),
            _metrics_text(row["metrics"]),
        )
    console.print(table)


@app.command("show")
def show_run(
    run_id: str = typer.Argument(..., help="Run id (from `lmforge runs list`)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Show one run: params, latest metrics, tags and artifacts.

    Example: lmforge runs show 3e3a5555079b411680579ede66eaaced --json
    """
    from lmforge.track.mlflow_store import get_client, get_run

    client = get_client()
    run = get_run(client, run_id)
    experiment = client.get_experiment(run.info.experiment_id)
    detail = _run_summary(run, {experiment.experiment_id: experiment.name})
    detail["metrics"] = dict(sorted(run.data.metrics.items()))
    detail.update(
        artifact_uri=run.info.artifact_uri,
        params=dict(sorted(run.data.params.items())),
        tags=dict(sorted(run.data.tags.items())),
        artifacts=_artifacts(client, run.info.run_id),
    )
    if as_json:
        typer.echo(json.dumps(detail, indent=2))
        return

    console.print(f"[bold]run[/bold] {detail['run_id']}  {detail['name']}")
    console.print(
        f"experiment {detail['experiment']}  status {_status_markup(detail['status'])}  "
        f"started {_fmt_time(detail['start_time'])}  "
        f"duration {_fmt_duration(detail['duration_s'])}"
    )
    console.print(f"artifacts at {detail['artifact_uri']}", soft_wrap=True, highlight=False)
    sections: list[tuple[str, list[tuple[str, str]]]] = [
        ("params", [(k, _shorten(v)) for k, v in detail["params"].items()]),
        ("metrics (latest)", [(k, _fmt(v)) for k, v in detail["metrics"].items()]),
        # MLflow's own bookkeeping tags stay in --json only.
        (
            "tags",
            [(k, _shorten(v)) for k, v in detail["tags"].items() if not k.startswith("mlflow.")],
        ),
        ("artifacts", [(a["path"], _fmt_size(a["size"])) for a in detail["artifacts"]]),
    ]
    for title, items in sections:
        console.print(f"\n[bold]{title}[/bold]" + ("" if items else ": (none)"))
        if not items:
            continue
        table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2, 0, 2))
        table.add_column("key", style="cyan", overflow="fold")
        table.add_column("value", overflow="fold")
        for key, value in items:
            table.add_row(key, value, end_section=False)
        console.print(table)


def ui(
    port: int = typer.Option(5000, "--port", "-p", help="Port to listen on."),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Interface to bind; keep 127.0.0.1 unless you need LAN."
    ),
) -> None:
    """Start the MLflow web UI on lmforge's tracking store; Ctrl-C stops it.

    Example: lmforge ui --port 5000   (then open http://127.0.0.1:5000)
    """
    from lmforge.track.mlflow_store import artifact_root, get_client, is_local_store, tracking_uri

    uri = tracking_uri()
    if not is_local_store(uri):
        raise LmforgeError(
            f"LMFORGE_TRACKING_URI is the MLflow server {uri}; it already serves the UI, open "
            "it in a browser (or unset LMFORGE_TRACKING_URI to browse the local store)."
        )
    _check_port_free(host, port)
    # Create/migrate the db here, once, rather than racing in the server's workers.
    get_client().search_experiments(max_results=1)

    log_path = lmforge_home() / "mlflow-ui.log"
    root = artifact_root()
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        uri,
        "--default-artifact-root",
        root.as_uri(),
        "--artifacts-destination",
        str(root),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    # Browsing needs no background job workers (GenAI scorers); they slow start and stop.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    err_console.print(f"Starting the MLflow UI on {uri} (log: {log_path}) ...")
    url = f"http://{_url_host(host)}:{port}"
    with _stop_signals_interrupt():
        try:
            with log_path.open("ab") as log:
                # Own process group: stopping it also stops the uvicorn worker mlflow spawns.
                server = subprocess.Popen(
                    command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
                )
            try:
                _wait_until_up(server, url, log_path)
                console.print(f"MLflow UI: {url}  (Ctrl-C to stop)", markup=False, highlight=False)
                sys.stdout.flush()
                server.wait()
            finally:
                _stop_group(server)
        except KeyboardInterrupt:
            err_console.print("Stopped the MLflow UI.")
            return
    if server.returncode:
        raise LmforgeError(
            f"the MLflow UI server exited with code {server.returncode}; see {log_path}."
        )


def _experiments(client: MlflowClient, name: str | None) -> list[Any]:
    if name is None:
        return list(client.search_experiments(max_results=50000))
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        known = [e.name for e in client.search_experiments(max_results=50)]
        have = f"experiments: {', '.join(known)}" if known else "there are no experiments yet"
        raise LmforgeError(
            f"no experiment named {name!r} in {client.tracking_uri} ({have}); pass one of "
            "those to --experiment, or drop --experiment to list runs of all experiments."
        )
    return [experiment]


def _run_summary(run: Run, experiment_names: dict[str, str]) -> dict[str, Any]:
    info = run.info
    end_ms = info.end_time or None
    duration = (
        ((end_ms or time.time() * 1000) - info.start_time) / 1000 if info.start_time else None
    )
    return {
        "run_id": info.run_id,
        "experiment_id": info.experiment_id,
        "experiment": experiment_names.get(info.experiment_id, info.experiment_id),
        "name": info.run_name or "",
        "status": info.status,
        "start_time": _iso(info.start_time),
        "end_time": _iso(end_ms),
        "duration_s": round(duration, 3) if duration is not None else None,
        "metrics": dict(sorted(run.data.metrics.items())),
    }


def _metrics_text(metrics: dict[str, float], count: int = 3) -> str:
    """Up to ``count`` metrics, the usual headline ones (losses, accuracy) first."""
    keys = [k for k in _KEY_METRICS if k in metrics]
    keys += [k for k in metrics if k not in keys]
    return ", ".join(f"{k}={_fmt(metrics[k])}" for k in keys[:count])


def _artifacts(client: MlflowClient, run_id: str) -> list[dict[str, Any]]:
    """Files under the run's artifact root, depth first, at most ``_MAX_ARTIFACTS``."""
    found: list[dict[str, Any]] = []
    pending: list[str | None] = [None]
    while pending and len(found) < _MAX_ARTIFACTS:
        for entry in client.list_artifacts(run_id, pending.pop()):
            if entry.is_dir:
                pending.append(entry.path)
            else:
                found.append({"path": entry.path, "size": entry.file_size})
    return sorted(found, key=lambda a: a["path"])[:_MAX_ARTIFACTS]


def _iso(ms: int | None) -> str | None:
    return datetime.fromtimestamp(ms / 1000).astimezone().isoformat() if ms else None


def _fmt_time(iso: str | None) -> str:
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M") if iso else "-"


def _shorten(text: str, limit: int = 200) -> str:
    """Long values are cut in tables; ``--json`` prints them whole."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{seconds:.1f}s"


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _fmt_size(size: int | None) -> str:
    if size is None:
        return ""
    if size < 1024:
        return f"{size} B"
    scaled = float(size)
    for unit in ("KB", "MB", "GB"):
        scaled /= 1024
        if scaled < 1024 or unit == "GB":
            break
    return f"{scaled:.1f} {unit}"


def _status_markup(status: str) -> str:
    color = {"FINISHED": "green", "FAILED": "red", "RUNNING": "yellow"}.get(status, "white")
    return f"[{color}]{status}[/{color}]"


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host in ("::", "[::]"):
        return "[::1]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as err:
            raise LmforgeError(
                f"cannot listen on {host}:{port} ({err.strerror}); pass a free port, "
                f"e.g. `lmforge ui --port {port + 1}`."
            ) from None


def _wait_until_up(server: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + _UI_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise LmforgeError(
                f"the MLflow UI server exited during startup (code {server.returncode}); "
                f"last lines of {log_path}:\n{_tail(log_path)}"
            )
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise LmforgeError(
        f"the MLflow UI did not answer at {url} within {_UI_START_TIMEOUT_S:.0f}s; see {log_path}."
    )


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def _stop_signals_interrupt() -> Iterator[None]:
    """Make the first Ctrl-C or SIGTERM raise KeyboardInterrupt and ignore repeats.

    So the server group is always stopped, never orphaned by a second Ctrl-C during
    shutdown. SIGINT is set explicitly because shells start background jobs with it
    ignored.
    """
    interrupted = False

    def handler(signum: int, frame: Any) -> None:
        nonlocal interrupted
        if not interrupted:
            interrupted = True
            raise KeyboardInterrupt

    try:
        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


def _stop_group(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group; SIGKILL what is left once the leader is gone."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.wait(timeout=10)
    # Give the leader's children a moment to finish their own shutdown.
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            os.killpg(server.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)
    server.wait()
