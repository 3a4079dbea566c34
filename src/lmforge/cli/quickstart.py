"""``lmforge quickstart``: the main job on the embedded models."""

from __future__ import annotations

import typer

from lmforge.cli.console import console


def quickstart(
    no_track: bool = typer.Option(False, "--no-track", help="Do not log an MLflow run."),
) -> None:
    """Run the lifecycle on the embedded real models (SmolLM2 and MiniLM).

    Example: lmforge quickstart
    """
    from lmforge.pipeline.quickstart import run_quickstart

    run_quickstart(console, track=not no_track)
