"""``lmforge config``: show the run-config schema and check a config file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel
from rich.markup import escape

from lmforge.cli.console import console
from lmforge.compress.config import CompressConfig
from lmforge.config import RunConfig, json_schema, load_config
from lmforge.config.load import load_settings
from lmforge.errors import LmforgeError
from lmforge.federated.config import FederatedConfig
from lmforge.serve.config import ServeConfig

app = typer.Typer(
    help="Inspect and check configs: run configs (the YAML files `lmforge train` takes), "
    "and the compress and serve configs `lmforge compress|serve --config` take.",
    no_args_is_help=True,
)
# --kind: the config classes besides the run config
KINDS: dict[str, type[BaseModel]] = {"compress": CompressConfig, "serve": ServeConfig,
                                     "federated": FederatedConfig}  # fmt: skip
KIND_HELP = "Which config: run (lmforge train) or " + ", ".join(KINDS) + "."


def _kind(name: str) -> type[BaseModel] | None:
    if name == "run":
        return None
    if name not in KINDS:
        raise LmforgeError(f"--kind: unknown config kind {name!r}; choose from run, "
                           f"{', '.join(KINDS)}")  # fmt: skip
    return KINDS[name]


@app.command("schema")
def schema(kind: Annotated[str, typer.Option(help=KIND_HELP)] = "run") -> None:
    """Print the JSON schema of a config: every section, field, default and bound.

    Example: lmforge config schema > run-config.schema.json
    """
    model = _kind(kind)
    document = json_schema() if model is None else model.model_json_schema()
    console.out(json.dumps(document, indent=2), highlight=False)


@app.command("validate")
def validate(
    file: Annotated[Path, typer.Argument(help="YAML run config to check.")],
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Override a field, value parsed as YAML (repeatable): --set train.lr=1e-4.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the resolved config (defaults filled) as JSON.")
    ] = False,
    kind: Annotated[str, typer.Option(help=KIND_HELP)] = "run",
) -> None:
    """Check a config; list every problem at once, or print what the run would do.

    Example: lmforge config validate examples/train/sft_customer_service.yaml --set train.lr=1e-4
    """
    model = _kind(kind)
    if model is not None:
        settings = load_settings(file, model, overrides or ())
        if as_json:
            console.out(settings.model_dump_json(indent=2), highlight=False)
        else:
            console.print(f"[green]{escape(str(file))}: valid[/green]", soft_wrap=True)
        return
    config = load_config(file, overrides or ())
    if as_json:
        console.out(config.model_dump_json(indent=2), highlight=False)
        return
    console.print(f"[green]{escape(str(file))}: valid[/green]", soft_wrap=True)
    for section, text in _summary(config):
        console.print(f"  [bold]{section:<7}[/bold] {escape(text)}", soft_wrap=True)


def _summary(config: RunConfig) -> list[tuple[str, str]]:
    """One short line per section saying what the run will do."""
    model, task, data, train, output = (
        config.model,
        config.task,
        config.data,
        config.train,
        config.output,
    )
    if data.validation is not None:
        validation = f"validation {data.validation}"
    elif data.val_ratio > 0:
        validation = f"validation {data.val_ratio:.0%} of train"
    else:
        validation = "no validation"
    length = f"{train.epochs:g} epoch{'s' if train.epochs != 1 else ''}"
    if train.max_steps is not None:
        length += f", at most {train.max_steps} steps"
    batch = f"batch {train.batch_size}" + (
        f" x {train.grad_accum} accumulated" if train.grad_accum > 1 else ""
    )
    where = str(output.dir) if output.dir else "$LMFORGE_HOME/runs/<run-id>"
    register = f", registered as {output.register_as}" if output.register_as else ""
    tabular = data.columns is not None
    sources = f"{data.train} (format {data.format}; {validation})"
    if train.continual is not None:
        stages = train.continual.stages
        sources = (f"{len(stages)} stages: {', '.join(s.name for s in stages)} (format "
                   f"{data.format}; replay {train.continual.replay:g}, ewc "
                   f"{train.continual.ewc:g})")  # fmt: skip
    return [
        (
            "model",
            f"{model.ref} (dtype {model.dtype})" if model.ref else "built from the task settings",
        ),
        ("task", task.name if tabular else f"{task.name}, max_length {task.max_length}"),
        ("data", sources),
        (
            "train",
            f"{length}, {batch}, lr {train.lr:g} ({train.scheduler}), precision {train.precision}",
        ),
        ("output", f"{where}, experiment {output.experiment!r}{register}"),
    ]
