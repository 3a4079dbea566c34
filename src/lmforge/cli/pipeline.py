"""``lmforge pipeline``: run a pipeline file (cached, resumable, tracked), plan it, or
compile it for Kubeflow Pipelines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from lmforge.cli.console import console, err_console

app = typer.Typer(
    help="Run the lifecycle as a pipeline of cached, tracked steps.\n\n"
    "Example: lmforge pipeline run examples/pipelines/quickstart.yaml",
    no_args_is_help=True,
)


@app.command("run")
def run(
    file: Annotated[Path, typer.Argument(help="The pipeline YAML file.")],
    resume: Annotated[
        bool, typer.Option(help="Continue the last run, which failed, from the failed step.")
    ] = False,
    dry_run: Annotated[bool, typer.Option(help="Print the plan; run nothing.")] = False,
    force: Annotated[bool, typer.Option(help="Run every step, even cached ones.")] = False,
    track: Annotated[bool, typer.Option(help="Log the runs to MLflow.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    quiet: Annotated[bool, typer.Option(help="Print only the summary.")] = False,
) -> None:
    """Run a pipeline's steps in order; unchanged steps are skipped (cached).

    Each step is a child MLflow run under one pipeline run. A failed step stops the run;
    fix the cause and add --resume to continue from it. A register step whose promotion
    gate refuses the new version ends the run as "not promoted", with the reason.

    Example: lmforge pipeline run examples/pipelines/quickstart.yaml --dry-run
    """
    from dataclasses import asdict

    from lmforge.pipeline.load import load_pipeline
    from lmforge.pipeline.report import ConsoleEvents, print_summary
    from lmforge.pipeline.runner import run_pipeline

    pipeline = load_pipeline(file)
    result = run_pipeline(pipeline, resume=resume, dry_run=dry_run, force=force, track=track,
                          events=ConsoleEvents(console, quiet or as_json))  # fmt: skip
    if as_json:
        typer.echo(json.dumps(asdict(result), indent=2, default=str))
        return
    if dry_run:
        table = Table(title=f"plan for pipeline {pipeline.spec.name}")
        for column in ("#", "step", "type", "after", "plan"):
            table.add_column(column)
        for index, record in enumerate(result.steps, start=1):
            after = ", ".join(pipeline.upstream[record.name]) or "-"
            table.add_row(str(index), record.name, record.type, after, record.reason)
        console.print(table)
        return
    print_summary(console, result)


@app.command("compile")
def compile_(
    file: Annotated[Path, typer.Argument(help="The pipeline YAML file.")],
    image: Annotated[
        str, typer.Option(help="Container image with lmforge installed, run by every step.")
    ],
    out: Annotated[
        Path | None, typer.Option(help="Where to write the Kubeflow YAML (default: NAME.kfp.yaml).")
    ] = None,
    target: Annotated[str, typer.Option(help="kfp (Kubeflow Pipelines v2).")] = "kfp",
    tracking_uri: Annotated[
        str | None,
        typer.Option(help="MLflow server every step logs to (sets LMFORGE_TRACKING_URI)."),
    ] = None,
) -> None:
    """Compile a pipeline to Kubeflow Pipelines v2 YAML: one container task per step,
    each running `lmforge pipeline step` in IMAGE.

    Example: lmforge pipeline compile examples/pipelines/quickstart.yaml --image
    ghcr.io/acme/lmforge:0.1 --tracking-uri http://mlflow.mlops:5000
    """
    from lmforge.errors import LmforgeError
    from lmforge.pipeline.kfp import compile_kfp
    from lmforge.pipeline.load import load_pipeline

    if target != "kfp":
        raise LmforgeError(f"--target {target!r}: the one target is kfp (Kubeflow Pipelines v2)")
    pipeline = load_pipeline(file)
    out = out or Path(f"{pipeline.spec.name}.kfp.yaml")
    compile_kfp(pipeline, out, image=image, tracking_uri=tracking_uri)
    console.print(f"wrote {out} ({len(pipeline.order)} steps, image {image})")


@app.command("step")
def step(
    name: Annotated[str, typer.Option("--step", help="The step to run.")],
    file: Annotated[Path | None, typer.Argument(help="The pipeline YAML file.")] = None,
    spec_text: Annotated[
        str | None, typer.Option(help="The pipeline YAML itself (instead of FILE).")
    ] = None,
    base_dir: Annotated[
        Path, typer.Option(help="With --spec-text: the folder relative paths start from.")
    ] = Path("."),
    upstream: Annotated[
        list[str] | None,
        typer.Option(help="JSON records an upstream step's run printed (repeatable, merged)."),
    ] = None,
    outputs_file: Annotated[
        Path | None, typer.Option(help="Write this step's and the upstream records here (JSON).")
    ] = None,
    track: Annotated[bool, typer.Option(help="Log the step's runs to MLflow.")] = True,
) -> None:
    """Run one step of a pipeline, given its upstream steps' records: what each
    Kubeflow container runs. Prints (or writes) the records for the steps after it.

    Example: lmforge pipeline step pipeline.yaml --step data --outputs-file data.json
    """
    from lmforge.errors import LmforgeError
    from lmforge.home import atomic_write_text
    from lmforge.pipeline.load import load_pipeline, parse_pipeline
    from lmforge.pipeline.report import ConsoleEvents
    from lmforge.pipeline.runner import run_single_step

    if (file is None) == (spec_text is None):
        raise LmforgeError("give the pipeline as FILE or as --spec-text, not both or neither")
    if file is not None:
        pipeline = load_pipeline(file)
    else:
        assert spec_text is not None
        pipeline = parse_pipeline(spec_text, base_dir.resolve() / "pipeline.yaml")
    merged: dict[str, Any] = {}
    for index, text in enumerate(upstream or []):
        try:
            merged.update(json.loads(text))
        except (json.JSONDecodeError, TypeError, ValueError) as err:
            raise LmforgeError(f"--upstream #{index + 1} is not a JSON object of step "
                               f"records: {err}") from None  # fmt: skip
    records = run_single_step(pipeline, name, merged, track=track, events=ConsoleEvents(console))
    text = json.dumps(records, default=str)
    if outputs_file is not None:
        atomic_write_text(outputs_file, text)
        err_console.print(f"wrote {outputs_file}")
    else:
        typer.echo(text)
