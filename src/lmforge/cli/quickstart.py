"""``lmforge quickstart``: the main job on the embedded models."""

from __future__ import annotations

import typer

from lmforge.cli.console import console


def quickstart(
    no_track: bool = typer.Option(False, "--no-track", help="Do not log an MLflow run."),
    no_serve: bool = typer.Option(False, "--no-serve", help="Skip serving the adapted model."),
    port: int = typer.Option(8000, envvar="LMFORGE_PORT", help="Where to serve it."),
) -> None:
    """Run the lifecycle on the embedded real models (SmolLM2 and MiniLM), ending by
    serving the adapted model with the web chat page (until Ctrl-C in a terminal).

    Example: lmforge quickstart
    """
    import sys

    from lmforge.pipeline.quickstart import run_quickstart

    run_quickstart(
        console, track=not no_track, serve=not no_serve, keep_serving=sys.stdin.isatty(),
        port=port,
    )  # fmt: skip
