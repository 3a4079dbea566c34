"""``lmforge models``: what models exist here, and what one of them is."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from lmforge.cli.console import console

app = typer.Typer(help="List and inspect models.", no_args_is_help=True)


def human_size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def human_count(count: int | None) -> str:
    if count is None:
        return "-"
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f}{unit}"
    return str(count)


@app.command("list")
def list_models(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the embedded zoo, converted models and registered model versions.

    Example: lmforge models list
    """
    from lmforge.hub.catalog import list_models as catalog

    entries = catalog()
    if as_json:
        typer.echo(json.dumps([entry.as_dict() for entry in entries], indent=2))
        return
    table = Table(title="Models")
    table.add_column("model", no_wrap=True)
    for column in ("kind", "source", "parameters", "size on disk", "status"):
        table.add_column(column)
    for entry in entries:
        table.add_row(
            entry.ref,
            entry.kind,
            entry.source,
            human_count(entry.parameters),
            human_size(entry.size_bytes),
            entry.status,
        )
    console.print(table)


@app.command("show")
def show(
    ref: str = typer.Argument(..., help="Model: zoo name, path, registry:NAME@ALIAS or run:ID."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show what a model reference resolves to: kind, path, size, architecture.

    Example: lmforge models show smollm2-135m-instruct
    """
    from lmforge.hub import describe, resolve

    info = describe(resolve(ref))
    if as_json:
        typer.echo(json.dumps(info.as_dict(), indent=2))
        return
    table = Table(title=ref, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for field, value in info.as_dict().items():
        if field == "parameters":
            value = f"{human_count(value)} ({value:,})" if value else "-"
        elif field == "size_bytes":
            field, value = "size on disk", human_size(value)
        table.add_row(field.replace("_", " "), "-" if value is None else str(value))
    console.print(table)
