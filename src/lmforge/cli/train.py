"""``lmforge train`` and ``lmforge merge``: adapt a model, and fold an adapter into it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from lmforge.cli.console import console, err_console, format_metric
from lmforge.cli.settings import with_flags
from lmforge.errors import LmforgeError
from lmforge.progress import ProgressReporter


def train(
    config_file: Path = typer.Argument(..., help="Run config YAML (see examples/train/)."),
    overrides: list[str] = typer.Option([], "--set", help="Override a field: --set train.lr=1e-4"),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue a run from its last checkpoint: --resume RUN_DIR, or bare --resume "
        "for the newest unfinished run.",
    ),
    run_dir: Path | None = typer.Argument(
        None, help="With --resume: the run directory to continue.", show_default=False
    ),
    nproc: int = typer.Option(1, "--nproc", help="Processes (torchrun; gloo on CPU, nccl on GPU)."),
    nnodes: int = typer.Option(1, "--nnodes", help="Machines taking part (multi-node)."),
    node_rank: int = typer.Option(0, "--node-rank", help="This machine's index (multi-node)."),
    master_addr: str = typer.Option("127.0.0.1", "--master-addr", help="Rank-0 machine address."),
    master_port: int = typer.Option(29500, "--master-port", help="Rank-0 machine port."),
    no_track: bool = typer.Option(False, "--no-track", help="Do not log to MLflow."),
) -> None:
    """Train a model as a run config says: SFT, continued pretraining, MLM,
    classification or regression, with full fine-tuning, LoRA or frozen layers.

    Every run is an MLflow run; outputs go to $LMFORGE_HOME/runs/RUN_ID/ (the model or
    adapter in model/, checkpoints in checkpoints/).

    Example: lmforge train examples/train/sft_customer_service.yaml --set train.max_steps=20
    """
    from lmforge.config import load_config
    from lmforge.train.distributed import check_strategy

    config = load_config(config_file, overrides)  # validate before launching processes
    check_strategy(config.train.strategy)
    if run_dir is not None and not resume:
        raise LmforgeError(
            f"unexpected argument {run_dir}: to continue that run, pass --resume {run_dir}"
        )
    if (nproc > 1 or nnodes > 1) and config.train.continual is not None:
        raise LmforgeError("--nproc: a continual sequence trains in one process (each stage "
                           "would need the processes to agree on the replay draw); run it "
                           "without --nproc/--nnodes")  # fmt: skip
    if nproc > 1 or nnodes > 1:
        from lmforge.train.distributed import launch

        argv = ["train", str(config_file)]
        for override in overrides:
            argv += ["--set", override]
        if resume:
            argv += ["--resume", *([str(run_dir)] if run_dir else [])]
        if no_track:
            argv.append("--no-track")
        rendezvous = []
        if nnodes > 1:
            rendezvous = [
                f"--nnodes={nnodes}",
                f"--node-rank={node_rank}",
                f"--master-addr={master_addr}",
                f"--master-port={master_port}",
            ]
        raise typer.Exit(code=launch(nproc, argv, rendezvous))
    resume_from: Path | bool | None = (run_dir or True) if resume else None
    if config.train.continual is not None:
        if resume:
            raise LmforgeError("--resume: a continual sequence cannot be resumed yet; start "
                               "the remaining stages as a new sequence from the last stage's "
                               "model (model.init_from)")  # fmt: skip
        _train_sequence(config, track=not no_track)
        return
    _train_here(config, resume_from, track=not no_track)


def _train_sequence(config: Any, *, track: bool) -> None:
    """Train a continual sequence's stages, one progress bar each, and list them."""
    from lmforge.train.continual import train_sequence

    stages = config.train.continual.stages
    bars: list[ProgressReporter] = []

    def on_stage(index: int, stage: Any) -> None:
        if bars:
            bars[-1].stop()
        err_console.print(f"stage {index + 1}/{len(stages)}: [bold]{stage.name}[/bold]")
        bars.append(ProgressReporter(err_console, stage.name, unit="step"))
        bars[-1].start()

    def on_fisher(index: int, stage: Any) -> None:
        bars[-1].stop()
        bars.append(ProgressReporter(err_console, f"{stage.name}: EWC Fisher information",
                                     unit="example"))  # fmt: skip
        bars[-1].start()

    def progress(step: int, total: int, message: str) -> None:
        bars[-1](step, total, message)

    try:
        result = train_sequence(config, track=track, progress=progress, on_stage=on_stage,
                                on_fisher=on_fisher)  # fmt: skip
    finally:
        if bars:
            bars[-1].stop()
    table = Table(title=f"continual sequence {result.sequence_id}")
    for column in ("stage", "run", "steps", "final train loss", "model"):
        table.add_column(column, overflow="fold")
    for stage, stage_result in zip(stages, result.stages, strict=True):
        table.add_row(stage.name, stage_result.run_id, str(stage_result.steps),
                      f"{stage_result.final_loss:.4f}", str(stage_result.model_dir))  # fmt: skip
    console.print(table)
    console.print(f"Score it: lmforge eval continual {result.sequence_dir}")


def _train_here(config: Any, resume_from: Path | bool | None, *, track: bool) -> None:
    import os

    from lmforge.train.loop import train as run_training

    is_main = int(os.environ.get("RANK", "0")) == 0
    # The bar starts with the run: a run that fails to start (nothing to resume, a bad
    # model) leaves only its error, not a "step 0/None loss nan" line.
    progress = ProgressReporter(err_console, "train", unit="step", enabled=is_main)

    def on_start(run_id: str, run_dir: Path) -> None:
        err_console.print(f"run [bold]{run_id}[/bold] -> {run_dir}", soft_wrap=True)
        progress.start()

    try:
        result = run_training(
            config, resume=resume_from, track=track, progress=progress, on_start=on_start
        )
    except LmforgeError as error:
        raise with_flags(error, {"resume": "--resume", "nproc": "--nproc"}) from None
    finally:
        progress.stop()
    if not is_main:
        return
    table = Table(title=f"run {result.run_id}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("", overflow="fold")  # the model's path holds the run id: never cut it
    rows = {
        "steps": str(result.steps),
        "final train loss": f"{result.final_loss:.4f}",
        **{
            f"eval {key}": format_metric(key, value)
            for key, value in result.eval_metrics.items()
            if isinstance(value, float)
        },
        "effective tokens/s": f"{result.tokens_per_second:.0f}",
        "train time": f"{result.train_seconds:.1f} s",
        "peak memory": f"{result.peak_memory_mb:.0f} MB",
        "trainable parameters": f"{result.trainable_parameters:,} of {result.total_parameters:,}",
        "model": str(result.model_dir),
    }
    if result.steps == 0:  # fitted in one call (trees): no steps, tokens or parameters
        for key in ("steps", "final train loss", "effective tokens/s", "trainable parameters"):
            rows.pop(key)
    for key, value in rows.items():
        table.add_row(key, value)
    console.print(table)
    if "confusion_matrix" in result.eval_metrics:
        console.print(
            f"confusion matrix (rows: true, columns: predicted): "
            f"{result.eval_metrics['confusion_matrix']}"
        )
    console.print(f"Try it: lmforge models show run:{result.run_id}")


def merge(
    adapter_dir: Path = typer.Argument(..., help="A PEFT adapter directory (e.g. RUN_DIR/model)."),
    out_dir: Path = typer.Argument(..., help="Where to write the merged model."),
) -> None:
    """Fold a LoRA adapter into its base model: a plain transformers model directory.

    Example: lmforge merge ~/.lmforge/runs/RUN_ID/model ./support-bot-merged
    """
    from lmforge.train.merge import merge_adapter

    with err_console.status(f"Merging {adapter_dir}..."):
        merged = merge_adapter(adapter_dir, out_dir)
    console.print(f"merged model written to {merged}")
