"""``lmforge prompts``: prompt templates, versioned in the registry, and scored side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lmforge.cli.console import console, err_console
from lmforge.cli.evaluate import TaskHelpCommand, print_diffs

app = typer.Typer(
    help="Prompt templates (Jinja, with an optional system prompt), versioned in MLflow's "
    "prompt registry, and compared on the same data.\n\n"
    "Example: lmforge prompts eval bare.jinja expert.yaml --model smollm2-135m-instruct "
    "--data questions.jsonl --task qa",
    no_args_is_help=True,
)


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="The prompt's name in the registry.")],
    file: Annotated[Path, typer.Argument(help=".jinja/.j2/.txt (user message) or .yaml.")],
    message: Annotated[str, typer.Option(help="What changed in this version.")] = "",
) -> None:
    """Store a template file as the next version of a named prompt.

    Example: lmforge prompts create translate examples/prompts/translator.yaml
    """
    from lmforge.track.prompts import read_template_file, register_prompt

    template = read_template_file(file)
    version = register_prompt(name, template, message)
    console.print(f"prompt {name} version {version} (variables: "
                  f"{', '.join(sorted(template.variables())) or 'none'})")  # fmt: skip


@app.command("list")
def list_prompts(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every registered prompt, its newest version and variables."""
    from lmforge.track.prompts import list_prompts as registered

    rows = registered()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="Prompt templates")
    for column in ("name", "version", "aliases", "variables"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], str(row["version"]), ", ".join(row["aliases"]),
                      ", ".join(row["variables"]))  # fmt: skip
    console.print(table)


@app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="NAME, NAME/VERSION, NAME@ALIAS or a file.")],
) -> None:
    """Print a template's system and user parts."""
    from lmforge.track.prompts import load_prompt

    template = load_prompt(ref)
    console.print(
        f"[bold]{template.ref}[/bold]  variables: {', '.join(sorted(template.variables()))}"
    )
    if template.system:
        console.rule("system")
        console.print(template.system, markup=False, highlight=False)
    console.rule("user")
    console.print(template.user, markup=False, highlight=False)


@app.command("eval", cls=TaskHelpCommand)
def evaluate(
    templates: Annotated[list[str], typer.Argument(help="Two or more templates (files or names).")],
    model: Annotated[str, typer.Option(help="The chat model that answers.")],
    data: Annotated[Path, typer.Option(help="JSON Lines; fields fill the template variables.")],
    task: Annotated[str, typer.Option(help="{asking}.")] = "qa",
    max_examples: Annotated[int | None, typer.Option(min=1)] = None,
    max_tokens: Annotated[int, typer.Option(min=1)] = 128,
    track: Annotated[bool, typer.Option(help="Log each template's run to MLflow.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Score each template on the same data and model; compare each with the first
    (a paired bootstrap over the examples gives the 95% intervals).

    Example: lmforge prompts eval bare.jinja translator.yaml --model smollm2-135m-instruct
    --data pairs.jsonl --task generation
    """
    from lmforge.errors import LmforgeError
    from lmforge.evaluate.prompts import evaluate_prompts
    from lmforge.evaluate.tasks import eval_task, eval_tasks
    from lmforge.track.prompts import load_prompt

    if len(templates) < 2:
        raise LmforgeError("prompts eval: give at least two templates to compare")
    if not eval_task(task).asks:
        asking = ", ".join(t.name for t in eval_tasks() if t.asks)
        raise LmforgeError(f"--task {task!r}: templates shape the questions of the tasks "
                           f"that ask the model one: {asking}")  # fmt: skip
    loaded = [load_prompt(ref) for ref in templates]
    with err_console.status(f"Scoring {len(loaded)} templates with {model}..."):
        comparison = evaluate_prompts(loaded, model, data, task, max_examples=max_examples,
                                      max_tokens=max_tokens, track=track)  # fmt: skip
    if as_json:
        from dataclasses import asdict

        rows = [{"template": template.ref, "metrics": result.metrics,
                 "intervals": result.intervals, "run_id": result.run_id,
                 "vs_first": [asdict(d) for d in diffs]}
                for template, result, diffs in zip(loaded, comparison.results,
                                                   comparison.diffs, strict=True)]  # fmt: skip
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"{model} on {data.name} ({task})")
    table.add_column("#")
    table.add_column("template")
    for metric in comparison.results[0].metrics:
        table.add_column(f"{metric} (95% CI)")
    table.add_column("run id")
    for index, (template, result) in enumerate(zip(loaded, comparison.results, strict=True)):
        cells = [f"{v:.3f} ({result.intervals[k][0]:.3f}-{result.intervals[k][1]:.3f})"
                 for k, v in result.metrics.items()]  # fmt: skip
        table.add_row(str(index + 1), template.ref, *cells, result.run_id or "")
    console.print(table)
    for index, diffs in enumerate(comparison.diffs[1:], start=2):
        print_diffs(f"template {index} vs template 1", diffs, a="#1", b=f"#{index}")
