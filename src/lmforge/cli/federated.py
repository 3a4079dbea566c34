"""``lmforge federated``: train one model across sites that keep their data."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from lmforge.cli.console import console, err_console
from lmforge.progress import ProgressReporter

app = typer.Typer(help="Federated learning: sites train, only weights travel.",
                  no_args_is_help=True)  # fmt: skip


@app.command("run")
def run(
    config_file: Annotated[Path, typer.Argument(help="A federated config (YAML).")],
    overrides: list[str] = typer.Option([], "--set", help="Override a field: --set rounds=5"),
    no_track: Annotated[bool, typer.Option("--no-track", help="Do not log to MLflow.")] = False,
) -> None:
    """Run the rounds: each site trains the global model on its own data with the run
    config, the sites' weights are averaged by their size (FedAvg or FedProx), the global
    model is scored after each round, saved, and registered like any trained model.

    Example: lmforge federated run examples/federated/sentiment_sites.yaml --set rounds=5
    """
    from lmforge.config.load import load_settings
    from lmforge.federated.config import FederatedConfig
    from lmforge.federated.simulation import run_federated

    config = load_settings(config_file, FederatedConfig, overrides)
    if config.engine == "flower":  # the server's lines stream from Flower as they come
        from lmforge.federated.flower import run_flower

        result = run_flower(config, track=not no_track)
    else:
        with ProgressReporter(err_console, "rounds") as progress:
            result = run_federated(config, track=not no_track, progress=progress)
    last = result.rounds[-1]
    console.print(f"run {result.run_id}: {len(result.rounds)} rounds over "
                  f"{len(result.site_sizes)} sites ({', '.join(map(str, result.site_sizes))} "
                  f"records)", highlight=False)  # fmt: skip
    scores = ", ".join(f"{k[5:]} {v:.4g}" for k, v in last.items() if k.startswith("eval/"))
    if scores:
        console.print(f"global model after the last round: {scores}", highlight=False)
    if result.privacy:
        console.print(f"privacy: epsilon {result.privacy['epsilon']:.3g} at delta "
                      f"{result.privacy['delta']:g} (the most any site spent)",
                      highlight=False)  # fmt: skip
    console.print(f"model: {result.model_dir}", highlight=False)


@app.command("superlink")
def superlink(
    port: Annotated[int, typer.Option(help="The one port of Flower's APIs.")] = 9092,
    host: Annotated[str, typer.Option(help="The address to listen on.")] = "127.0.0.1",
) -> None:
    """Start Flower's SuperLink, which coordinates `engine: flower` runs (runs until
    stopped). Start it where `lmforge federated run` runs: the server's side of each run
    writes the run folder and the MLflow run there. Needs `make flower`.

    Example: .venv-flower/bin/lmforge federated superlink --port 9092
    """
    from lmforge.federated.flower import flower_env, superlink_command

    command = superlink_command(host, port)
    os.execve(command[0], command, flower_env())


@app.command("site")
def site(
    superlink: Annotated[str, typer.Option(help="HOST:PORT of the SuperLink.")],
    data: Annotated[Path, typer.Option(help="This site's training file; it never leaves.")],
    port: Annotated[
        int, typer.Option(help="This site's own port (one per site on a host).")
    ] = 9094,
) -> None:
    """Start one site (a Flower SuperNode): each round of an `engine: flower` run it
    trains the global model on DATA and sends back only weights, its record count, its
    loss and the privacy it spent (runs until stopped). Needs `make flower`.

    Example: .venv-flower/bin/lmforge federated site --superlink 127.0.0.1:9092 --data shop1.jsonl
    """
    from lmforge.federated.flower import flower_env, site_command

    command = site_command(superlink, data, port)
    os.execve(command[0], command, flower_env())
