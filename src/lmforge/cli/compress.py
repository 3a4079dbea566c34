"""``lmforge compress`` (quantize, distill, prune the vocabulary) and ``lmforge export``
(a merged transformers directory or a GGUF file)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lmforge.cli.console import console, err_console
from lmforge.cli.settings import load_with_flags, with_flags
from lmforge.compress.config import CompressConfig
from lmforge.compress.methods import method_names
from lmforge.errors import LmforgeError
from lmforge.progress import ProgressReporter

MODEL_HELP = "Model: a zoo name, a local path, registry:NAME@ALIAS or run:RUN_ID."
# each compress setting's flag, for errors the library words with the setting's name
COMPRESS_FLAGS = {"model": "MODEL", "methods": "--method", "data": "--data",
                  "eval_data": "--eval-data", "student_layers": "--student-layers",
                  "epochs": "--epochs", "measure": "--measure"}  # fmt: skip
EXPORT_FLAGS = {"format": "--format", "quant": "--quant", "out": "--out"}


def _methods_help() -> str:
    return (", ".join(method_names()) + ", or a chain of them in order, e.g. "
            "distill,prune-vocab,int8-dynamic (a quantization comes last).")  # fmt: skip


def compress(
    ref: Annotated[str | None, typer.Argument(help=MODEL_HELP + " (or model: in --config)")] = None,
    method: Annotated[str | None, typer.Option(help=_methods_help())] = None,
    out: Annotated[Path | None, typer.Option("--out", help="The directory to write.")] = None,
    config_file: Annotated[
        Path | None,
        typer.Option("--config", help="A compress config YAML; flags and --set override it."),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="KEY=VALUE", help="Override a setting: --set epochs=2."),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(help=CompressConfig.model_fields["data"].description),
    ] = None,
    eval_data: Annotated[
        Path | None,
        typer.Option(help=CompressConfig.model_fields["eval_data"].description),
    ] = None,
    student_layers: Annotated[
        int | None, typer.Option(help=CompressConfig.model_fields["student_layers"].description)
    ] = None,
    epochs: Annotated[
        float | None, typer.Option(help=CompressConfig.model_fields["epochs"].description)
    ] = None,
    measure: Annotated[
        bool | None, typer.Option(help=CompressConfig.model_fields["measure"].description)
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Also write the measured table as markdown here.")
    ] = None,
) -> None:
    """Make a model smaller: quantize it, distill it into fewer layers, or drop the
    vocabulary a domain never uses, or a chain of these.

    The result loads wherever the source did (lmforge serve, generate, train's
    model.ref for fp32 results). The table compares it with the fp32 source on this
    CPU; each run is an MLflow run in the 'compress' experiment. Every setting can come
    from a YAML file (--config; `lmforge config schema --kind compress` lists them).

    Example: lmforge compress smollm2-135m-instruct --method int8-dynamic --out smollm2-int8
    """
    if out is None:
        raise LmforgeError("--out: say where to write the compressed model, e.g. --out small")
    methods = [m.strip() for m in method.split(",") if m.strip()] if method is not None else None
    flags = {"model": ref, "methods": methods, "data": data, "eval_data": eval_data,
             "student_layers": student_layers, "epochs": epochs, "measure": measure}  # fmt: skip
    config = load_with_flags(CompressConfig, config_file, flags, overrides or (), COMPRESS_FLAGS)
    # the engine loads on use, so `lmforge --help` starts in well under a second
    from lmforge.compress.run import compress_model

    try:
        with ProgressReporter(err_console, f"compress {config.model}") as progress:
            result = compress_model(config, out, progress=progress)
    except LmforgeError as error:
        raise with_flags(error, COMPRESS_FLAGS) from None
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

    try:
        with err_console.status(f"Exporting {ref} as {fmt}..."):
            result = export_model(ref, fmt, out, quant=quant, measure=measure)
    except LmforgeError as error:
        raise with_flags(error, EXPORT_FLAGS) from None
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
