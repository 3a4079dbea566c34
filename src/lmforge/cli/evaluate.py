"""``lmforge eval``: score a model on a labeled file; ``lmforge eval compare`` puts two
evaluation runs side by side with bootstrap confidence intervals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from typer.core import TyperArgument, TyperCommand, TyperOption

from lmforge.cli.console import console, err_console, format_metric, format_score
from lmforge.cli.groups import default_command_group
from lmforge.progress import ProgressReporter

DEFAULT_COMMAND = "model"

app = typer.Typer(
    cls=default_command_group(DEFAULT_COMMAND),
    no_args_is_help=True,
    help="Evaluate models: task metrics with confidence intervals, logged to MLflow.\n\n"
    "Example: lmforge eval smollm2-135m-instruct --data bundled_questions.jsonl --task qa",
)


class TaskHelpCommand(TyperCommand):
    """A command whose options' help names the registered evaluation tasks: ``{tasks}``
    (all of them), ``{asking}`` (those that ask the model a question) and ``{grounded}``
    (those a knowledge base can ground) are filled in each time the help is shown, from
    the registry (``lmforge.evaluate.tasks``). Not when the CLI starts: importing the
    registry (numpy and the evaluation code) would add 0.14 s to every command's 0.33."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help_templates = {
            param.name: param.help
            for param in self.params
            if isinstance(param, TyperOption | TyperArgument) and param.help
        }

    def format_help(self, ctx: Any, formatter: Any) -> None:
        from lmforge.evaluate.tasks import eval_tasks  # see the class docstring

        tasks = eval_tasks()
        names = {
            "{tasks}": _one_of([t.name for t in tasks]),
            "{asking}": _one_of([t.name for t in tasks if t.asks]),
            "{grounded}": "/".join(t.name for t in tasks if t.grounded),
        }
        for param in self.params:
            text = self.help_templates.get(param.name)
            if text and isinstance(param, TyperOption | TyperArgument):
                for field, value in names.items():
                    text = text.replace(field, value)
                param.help = text
        super().format_help(ctx, formatter)


def _one_of(names: list[str]) -> str:
    """``"a, b or c"``."""
    return " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


@app.command(DEFAULT_COMMAND, cls=TaskHelpCommand)
def model(
    ref: Annotated[str, typer.Argument(help="The model: zoo name, path, registry: or run: ref.")],
    data: Annotated[
        Path,
        typer.Option(help="A JSON Lines file with the task's fields, or bundled:NAME/SPLIT."),
    ],
    task: Annotated[str, typer.Option(help="{tasks}.")],
    max_examples: Annotated[
        int | None, typer.Option(min=1, help="Score only the first N examples.")
    ] = None,
    max_tokens: Annotated[int, typer.Option(min=1, help="Longest generated answer.")] = 128,
    system: Annotated[
        str | None, typer.Option(help="A system prompt before every question.")
    ] = None,
    template: Annotated[
        str | None, typer.Option(help="A prompt template: file or registered name.")
    ] = None,
    kb: Annotated[
        str | None,
        typer.Option(
            help="{grounded}: answer with this knowledge base's passages in the system "
            "prompt, as `lmforge serve --kb` does (qa adds citation_precision)."
        ),
    ] = None,
    kb_top_k: Annotated[int, typer.Option(min=1, help="Passages per question with --kb.")] = 3,
    label_template: Annotated[
        list[str] | None,
        typer.Option(
            help="zero-shot: a prompt made from each label, e.g. 'a photo of a {label}'; "
            "repeat it to average several per label."
        ),
    ] = None,
    clip_model: Annotated[
        str | None,
        typer.Option(
            help="image-generation: a text-image model (task clip) scoring how well each "
            "image matches its prompt (CLIPScore)."
        ),
    ] = None,
    save_threshold: Annotated[
        bool,
        typer.Option(
            "--save-threshold",
            help="tabular-classification: save the cheapest threshold on this data with the "
            "model (serving decides with it); choose it on validation data, not the test set.",
        ),
    ] = False,
    track: Annotated[bool, typer.Option(help="Log the run to MLflow.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Score a model on a data file (the default command: `eval REF --data F --task T`).

    Generation tasks decode greedily; code answers run against the problem's tests in a
    sandboxed subprocess (time and memory limits, no network). With --kb, each question
    gets the knowledge base's top passages, and qa reports citation_precision: of the right
    answers, the share whose cited passage holds the keywords. Prints each metric with a
    95% interval (Wilson for accuracy, keyword_accuracy and citation_precision, else
    bootstrap) and logs a run whose examples.jsonl holds every example's score.

    Example: lmforge eval smollm2-135m-instruct --task code --data problems.jsonl

    Example: lmforge eval registry:brightnest-support@production --task qa --kb brightnest
    --data test_questions.jsonl

    Example: lmforge eval run:RUN_ID --task image-retrieval --data bundled:digits/test

    Example: lmforge eval run:RUN_ID --task tabular-classification --data test.parquet
    """
    from lmforge.evaluate.runner import evaluate_model
    from lmforge.evaluate.tasks import eval_task
    from lmforge.track.prompts import load_prompt

    entry = eval_task(task)  # an unknown task fails before the template or the model loads
    if save_threshold and entry.predict_table is None:
        raise typer.BadParameter("only tabular-classification chooses a threshold",
                                 param_hint="--save-threshold")  # fmt: skip
    prompt = load_prompt(template) if template else None
    with ProgressReporter(err_console, "eval") as progress:
        result = evaluate_model(
            ref, data, task, max_examples=max_examples, max_tokens=max_tokens, system=system,
            template=prompt, track=track, kb=kb, kb_top_k=kb_top_k, progress=progress,
            label_templates=label_template or None, clip_model=clip_model,
        )  # fmt: skip
    saved = None
    if save_threshold:
        from lmforge.evaluate.tabular import save_threshold as keep_threshold

        saved = keep_threshold(ref, result.metrics["best_threshold"], chosen_on=str(data))
    if as_json:
        typer.echo(json.dumps({"task": task, "model": ref, "data": str(data), "kb": kb,
                               "saved_threshold": saved.threshold if saved else None,
                               "metrics": result.metrics, "intervals": result.intervals,
                               "examples": len(result.examples), "run_id": result.run_id,
                               "seconds": result.seconds}, indent=2))  # fmt: skip
        return
    grounded = f", passages from kb '{kb}'" if kb else ""
    table = Table(title=f"{ref} on {data.name} ({task}, {len(result.examples)} examples"
                  f"{grounded})")  # fmt: skip
    for column in ("metric", "value", "95% CI"):
        table.add_column(column)
    for name, value in result.metrics.items():
        low, high = result.intervals[name]
        table.add_row(name, format_metric(name, value),
                      f"{format_metric(name, low)} to {format_metric(name, high)}")  # fmt: skip
    console.print(table)
    if saved is not None:
        console.print(f"saved threshold {saved.threshold:.4g} with the model: a score at or "
                      "above it is flagged when served")  # fmt: skip
    if result.run_id:
        console.print(f"MLflow run {result.run_id}: compare runs with "
                      f"`lmforge eval compare {result.run_id} OTHER_RUN`")  # fmt: skip


@app.command("compare")
def compare(
    run_a: Annotated[str, typer.Argument(help="An `lmforge eval` run id (the baseline).")],
    run_b: Annotated[str, typer.Argument(help="Another eval run id of the same task.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Two evaluation runs side by side: B - A for each metric with a 95% bootstrap
    interval (paired over examples when both runs scored the same ones).

    Example: lmforge eval compare 3f2a... 9c1b...
    """
    from dataclasses import asdict

    from lmforge.evaluate.compare import compare_runs

    task, diffs = compare_runs(run_a, run_b)
    if as_json:
        typer.echo(json.dumps({"task": task, "metrics": [asdict(d) for d in diffs]}, indent=2))
        return
    print_diffs(f"{task}: A={run_a[:12]} vs B={run_b[:12]}", diffs)


SEQUENCE_HELP = "A continual sequence: the folder `lmforge train` printed, or its run id."


@app.command("continual")
def continual(
    sequence: Annotated[str, typer.Argument(help=SEQUENCE_HELP)],
    max_tokens: Annotated[
        int, typer.Option("--max-tokens", min=1, help="Longest generated answer (asking tasks).")
    ] = 128,
    no_track: Annotated[
        bool, typer.Option("--no-track", help="Do not log to the sequence's MLflow run.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The accuracy matrix of a continual sequence (every stage's model on every stage's
    test data), average forgetting and backward transfer (Chaudhry et al., 2018), logged to
    the sequence's run with a heat map.

    Example: lmforge eval continual ~/.lmforge/runs/continual-3f2a...
    """
    from lmforge.evaluate.continual import score_sequence

    with ProgressReporter(err_console, "scoring", unit="model x data") as progress:
        scores = score_sequence(sequence, track=not no_track, progress=progress,
                                max_tokens=max_tokens)  # fmt: skip
    if as_json:
        typer.echo(json.dumps({"stages": scores.stages, "metric": scores.metric,
                               "matrix": scores.matrix, **scores.summary()}, indent=2))  # fmt: skip
        return
    table = Table(title=f"{scores.metric}: the model after each stage (rows) on each stage's "
                  "test data (columns)")  # fmt: skip
    table.add_column("model after")
    for name in scores.stages:
        table.add_column(name, justify="right")
    for name, row in zip(scores.stages, scores.matrix, strict=True):
        table.add_row(name, *(f"{value:.3f}" for value in row))
    console.print(table)
    for key, value in scores.summary().items():
        console.print(f"{key.replace('_', ' ')}: {value:+.4f}" if key == "backward_transfer"
                      else f"{key.replace('_', ' ')}: {value:.4f}")  # fmt: skip


def print_diffs(title: str, diffs: list[Any], a: str = "A", b: str = "B") -> None:
    """A table of metric differences with their intervals and which side is better."""
    table = Table(title=title)
    for column in ("metric", a, b, f"{b} - {a}", "95% CI", "better"):
        table.add_column(column)
    for diff in diffs:
        better = {"A": a, "B": b}.get(diff.better, "no clear difference")
        table.add_row(diff.metric, format_score(diff.a), format_score(diff.b), f"{diff.diff:+.4f}",
                      f"{diff.low:+.4f} to {diff.high:+.4f}", better)  # fmt: skip
    console.print(table)
    if diffs and not diffs[0].paired:
        console.print("[dim]The runs scored different examples: unpaired bootstrap.[/dim]")
