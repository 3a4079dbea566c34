"""How a pipeline run shows on the console: a rule per step, the step's messages, a
progress bar for long steps, and the summary table at the end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from lmforge.pipeline.runner import Events, PipelineResult
from lmforge.pipeline.steps import StepRecord
from lmforge.progress import ProgressReporter

STATUS_STYLE = {"ran": "green", "cached": "cyan", "skipped": "yellow", "failed": "red",
                "planned": "white"}  # fmt: skip
# The outputs worth a glance in the summary, by step type.
SUMMARY_OUTPUTS = {
    "data": ("records",),
    "train": ("final_loss", "steps"),
    "eval": ("metrics",),
    "compress": ("methods",),
    "export": ("format",),
    "register": ("ref", "promoted", "alias"),
    "kb": ("chunks", "metrics"),
    "deploy": ("url", "command"),
}


class ConsoleEvents(Events):
    """Prints each step as it starts and ends, with a progress bar for long steps."""

    def __init__(self, console: Console, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self.bar: ProgressReporter | None = None

    def step_started(self, record: StepRecord, index: int, total: int) -> None:
        if not self.quiet:
            self.console.rule(f"[bold]{index + 1}/{total} {record.name}[/bold] ({record.type})")

    def step_finished(self, record: StepRecord) -> None:
        self._end_bar()
        if self.quiet:
            return
        style = STATUS_STYLE.get(record.status, "white")
        detail = record.reason or f"{record.seconds:.1f} s"
        self.console.print(f"[{style}]{record.status}[/{style}] {record.name}: {detail}",
                           highlight=False)  # fmt: skip

    def log(self, step: str, message: str) -> None:
        if not self.quiet:
            self.console.print(f"  {message}", highlight=False, markup=False)

    def progress(self, step: str, done: int, total: int, detail: str) -> None:
        if self.quiet:
            return
        if self.bar is None:
            self.bar = ProgressReporter(self.console, f"  {step}")
            self.bar.start()
        self.bar(done, total, detail)

    def _end_bar(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def print_summary(console: Console, result: PipelineResult) -> None:
    """The steps table: status, time, the step's MLflow run and its main outputs."""
    table = Table(title=f"pipeline {result.name}: {result.status} ({result.seconds:.0f} s)")
    for column in ("step", "status", "seconds", "step run id", "result"):
        table.add_column(column, overflow="fold")
    for record in result.steps:
        style = STATUS_STYLE.get(record.status, "white")
        table.add_row(record.name, f"[{style}]{record.status}[/{style}]", f"{record.seconds:.1f}",
                      record.run_id or "", summary_text(record))  # fmt: skip
    console.print(table)
    if result.run_id:
        console.print(f"pipeline run: {result.run_id} (see it with `lmforge runs show "
                      f"{result.run_id}` or `lmforge ui`)", highlight=False)  # fmt: skip
    if result.reason:
        console.print(f"[bold]{result.status}[/bold]: {result.reason}", highlight=False)


def summary_text(record: StepRecord) -> str:
    """A step's main outputs in one short line."""
    if record.status == "skipped":
        return record.reason
    shown = []
    for key in SUMMARY_OUTPUTS.get(record.type, ()):
        value = record.outputs.get(key)
        if value in ("", None, {}, []):
            continue
        if isinstance(value, dict):
            shown.append(", ".join(f"{Path(k).name} {_number(v)}" for k, v in value.items()))
        else:
            shown.append(f"{key} {_number(value)}")
    return "; ".join(shown)


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)
