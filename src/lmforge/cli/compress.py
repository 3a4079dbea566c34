"""``lmforge export``: write a model as a merged transformers directory or a GGUF file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lmforge.cli.console import console, err_console

MODEL_HELP = "Model: a zoo name, a local path, registry:NAME@ALIAS or run:RUN_ID."


def export(
    ref: Annotated[str, typer.Argument(help=MODEL_HELP)],
    fmt: Annotated[str, typer.Option("--format", help="hf or gguf.")],
    out: Annotated[Path, typer.Option("--out", help="The directory (hf) or file (gguf).")],
    quant: Annotated[
        str | None, typer.Option(help="gguf only: f32, f16, q8_0 (default) or q4_0.")
    ] = None,
    measure: Annotated[
        bool, typer.Option(help="Measure size, speed and held-out perplexity (causal LMs).")
    ] = True,
    report: Annotated[
        Path | None, typer.Option(help="Also write the measured table as markdown here.")
    ] = None,
) -> None:
    """Export a model; LoRA adapters are merged into their base first.

    GGUF files run in llama.cpp (and `lmforge serve FILE.gguf`); the table compares
    the export with the fp32 source on this CPU. Each export is an MLflow run in the
    'compress' experiment.

    Example: lmforge export smollm2-135m-instruct --format gguf --quant q4_0 --out smollm2.gguf
    """
    from rich.table import Table

    from lmforge.compress.export import export_model, markdown_table

    with err_console.status(f"Exporting {ref} as {fmt}..."):
        result = export_model(ref, fmt, out, quant=quant, measure=measure)
    console.print(f"exported to {result.path}")
    if result.run_id:
        console.print(f"MLflow run {result.run_id} (experiment 'compress')")
    if result.rows:
        table = Table(*result.rows[0], title="size, speed (batch 1, this CPU) and quality")
        for row in result.rows:
            table.add_row(*row.values())
        console.print(table)
        if report is not None:
            report.write_text(markdown_table(result.rows), encoding="utf-8")
            console.print(f"report written to {report}")
