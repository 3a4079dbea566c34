"""``lmforge audit``: how much a trained model memorised (the canary exposure test)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lmforge.cli.console import console, err_console
from lmforge.progress import ProgressReporter

MODEL_HELP = "A model trained with audit.canaries: run:RUN_ID, its folder, registry:NAME@ALIAS."
app = typer.Typer(help="Audit what a trained model memorised.", no_args_is_help=True)


@app.command("memorization")
def memorization(
    ref: Annotated[str, typer.Argument(help=MODEL_HELP)],
    candidates: Annotated[
        int, typer.Option(min=100, help="Random secrets sampled to estimate each rank.")
    ] = 4000,
    budget: Annotated[
        int, typer.Option(min=10, help="Most digit prefixes the exact rank walk keeps.")
    ] = 2048,
    seed: Annotated[int, typer.Option(help="Draws the candidates.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Also write the report as JSON here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Each canary's exposure (log2 of the secrets' space minus log2 of its rank by the
    model's likelihood), beside references that were never in the training data.

    Example: lmforge audit memorization run:3f2a... --candidates 4000
    """
    from lmforge.evaluate.memorization import audit_memorization
    from lmforge.home import atomic_write_text

    with ProgressReporter(err_console, "audit") as progress:
        report = audit_memorization(ref, candidates=candidates, budget=budget, seed=seed,
                                    progress=progress)  # fmt: skip
    record = report.to_dict()
    if out is not None:
        atomic_write_text(out, json.dumps(record, indent=2) + "\n")
    if as_json:
        typer.echo(json.dumps(record, indent=2))
        return
    summary = report.summary()
    table = Table(title=f"Exposure in bits ({summary['space_bits']:.1f} at most; each canary "
                        f"{report.repeats}x in training; {candidates} candidates)")  # fmt: skip
    for column in ("secrets", "count", "mean", "median", "max", "exact ranks", "mean (sampled)"):
        table.add_column(column, justify="left" if column == "secrets" else "right")
    for name, label in (("canaries", "canaries (inserted)"),
                        ("references", "references (never inserted)")):  # fmt: skip
        row = summary[name]
        numbers = [f"{row[key]:.2f}" for key in ("mean", "median", "max")]
        table.add_row(label, str(row["count"]), *numbers, str(row["exact"]),
                      f"{row['mean_sampled']:.2f}")  # fmt: skip
    console.print(table)
    console.print(f"canaries minus references: {summary['excess_bits']:+.2f} bits (a model "
                  f"that memorised nothing: about 0; a random secret averages "
                  f"{summary['random_expectation']:.2f} bits)", highlight=False)  # fmt: skip
