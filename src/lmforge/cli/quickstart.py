"""``lmforge quickstart``: the main job on the embedded models."""

from __future__ import annotations

import typer

from lmforge.cli.console import console


def quickstart(
    no_track: bool = typer.Option(
        False,
        "--no-track",
        help="Log no MLflow runs (the registered version is still recorded in the registry).",
    ),
    no_serve: bool = typer.Option(False, "--no-serve", help="Skip serving the model."),
    port: int = typer.Option(8000, envvar="LMFORGE_PORT", help="Where to serve it."),
) -> None:
    """Run the bundled quickstart pipeline on the embedded models (adapt SmolLM2 with LoRA,
    compress, evaluate, register with a promotion gate, build the knowledge base), then
    serve the production version with the web chat page (until Ctrl-C in a terminal).
    Unchanged steps are cached, so a second run goes straight to serving.

    Example: lmforge quickstart
    """
    import sys

    from lmforge.pipeline.quickstart import run_quickstart

    run_quickstart(
        console, track=not no_track, serve=not no_serve, keep_serving=sys.stdin.isatty(),
        port=port,
    )  # fmt: skip
