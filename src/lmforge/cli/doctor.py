"""``lmforge doctor``: can this machine run lmforge? The checks in one table."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from lmforge.cli.console import console

STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red"}


def doctor(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Check the CPU, the llama.cpp build (with a real decode in a child process), torch,
    the embedded models, the MLflow store and Chromium. Exits 1 when a check fails.

    Example: lmforge doctor
    """
    from lmforge.doctor import run_checks

    checks = run_checks()
    if as_json:
        typer.echo(json.dumps([check.as_dict() for check in checks], indent=2))
    else:
        table = Table(title="lmforge doctor")
        table.add_column("check", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("detail", overflow="fold")
        for check in checks:
            table.add_row(check.name, f"[{STYLE[check.status]}]{check.status}[/]", check.detail)
        console.print(table)
    if any(check.status == "fail" for check in checks):
        raise typer.Exit(code=1)
