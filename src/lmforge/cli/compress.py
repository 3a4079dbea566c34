"""``lmforge compress`` (quantize, distill, prune the vocabulary) and ``lmforge export``
(a merged transformers directory or a GGUF file)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lmforge.cli.console import console, err_console

MODEL_HELP = "Model: a zoo name, a local path, registry:NAME@ALIAS or run:RUN_ID."


def compress(
    ref: Annotated[str, typer.Argument(help=MODEL_HELP)],
    method: Annotated[
        str,
        typer.Option(
            help="int8-dynamic, int8, int4, distill, prune-vocab, or a chain of them in "
            "order, e.g. distill,prune-vocab,int8-dynamic (a quantization comes last)."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="The directory to write.")],
    data: Annotated[
        Path | None,
        typer.Option(
            help="Corpus: what distill trains on, the domain prune-vocab keeps, "
            "calibration text for int8-dynamic (default: the bundled dialogs)."
        ),
    ] = None,
    eval_data: Annotated[
        Path | None,
        typer.Option(
            help="Held-out data for the quality column: labeled text for a "
            "classifier (default: its training run's validation file), texts for "
            "an encoder. Causal LMs use the bundled held-out dialogs."
        ),
    ] = None,
    student_layers: Annotated[
        int, typer.Option(help="distill: layers the student keeps, evenly spaced.")
    ] = 3,
    epochs: Annotated[
        float | None,
        typer.Option(help="distill: passes over --data (default: 6 for classifiers, 1 for LMs)."),
    ] = None,
    measure: Annotated[
        bool, typer.Option(help="Measure size, speed and quality before and after.")
    ] = True,
    report: Annotated[
        Path | None, typer.Option(help="Also write the measured table as markdown here.")
    ] = None,
) -> None:
    """Make a model smaller: quantize it, distill it into fewer layers, or drop the
    vocabulary a domain never uses, or a chain of these.

    The result loads wherever the source did (lmforge serve, generate, train's
    model.ref for fp32 results). The table compares it with the fp32 source on this
    CPU; each run is an MLflow run in the 'compress' experiment.

    Example: lmforge compress smollm2-135m-instruct --method int8-dynamic --out smollm2-int8
    """
    from lmforge.compress.run import CompressOptions, compress_model, parse_methods

    options = CompressOptions(data=data, eval_data=eval_data, student_layers=student_layers,
                              epochs=epochs)  # fmt: skip
    methods = parse_methods(method)
    with err_console.status(f"Compressing {ref} ({' -> '.join(methods)})..."):
        result = compress_model(ref, methods, out, options=options, measure=measure)
    console.print(f"compressed model written to {result.path}")
    _print_result(result.run_id, result.rows, report)


def export(
    ref: Annotated[str, typer.Argument(help=MODEL_HELP)],
    fmt: Annotated[str, typer.Option("--format", help="hf, gguf or onnx.")],
    out: Annotated[Path, typer.Option("--out", help="The directory (hf, onnx) or file (gguf).")],
    quant: Annotated[
        str | None,
        typer.Option(
            help="gguf: f32, f16, q8_0 (default), q4_1, q4_0, or q4_0_m (q4_0 with the "
            "most sensitive tensors in q4_1); onnx: none (default) or "
            "int8 (onnxruntime dynamic quantization)."
        ),
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
    from lmforge.compress.export import export_model

    with err_console.status(f"Exporting {ref} as {fmt}..."):
        result = export_model(ref, fmt, out, quant=quant, measure=measure)
    console.print(f"exported to {result.path}")
    _print_result(result.run_id, result.rows, report)


def _print_result(run_id: str | None, rows: list[dict[str, str]], report: Path | None) -> None:
    from rich.table import Table

    from lmforge.compress.export import markdown_table

    if run_id:
        console.print(f"MLflow run {run_id} (experiment 'compress')")
    if rows:
        table = Table(title="size, speed (this CPU) and quality vs the fp32 source")
        for column in rows[0]:
            table.add_column(column, overflow="fold")  # a narrow terminal wraps, never cuts
        for row in rows:
            table.add_row(*row.values())
        console.print(table)
        if report is not None:
            report.write_text(markdown_table(rows), encoding="utf-8")
            console.print(f"report written to {report}")
