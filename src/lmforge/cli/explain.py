"""``lmforge explain``: which words made a text classifier choose its label, and how
faithful that explanation is; ``lmforge explain eval`` measures it over a dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from lmforge.cli.console import console, err_console
from lmforge.cli.groups import default_command_group
from lmforge.errors import LmforgeError
from lmforge.progress import ProgressReporter

MODEL_HELP = "A text classifier: a local path, registry:NAME@ALIAS or run:RUN_ID."
DEFAULT_COMMAND = "text"
TOP_WORDS = 10


app = typer.Typer(
    cls=default_command_group(DEFAULT_COMMAND),
    no_args_is_help=True,
    help="Explain a text classifier's predictions (LIME, integrated gradients) and score "
    "how faithful the explanations are.\n\n"
    'Example: lmforge explain runs/<run-id>/model "The app crashes daily." --method both '
    "--html why.html",
)


@app.command(DEFAULT_COMMAND)
def text(
    ref: Annotated[str, typer.Argument(help=MODEL_HELP)],
    text: Annotated[str, typer.Argument(help="The text to explain.")],
    method: Annotated[
        str,
        typer.Option(help="lime (perturb words), ig (integrated gradients) or both."),
    ] = "lime",
    samples: Annotated[int, typer.Option(help="LIME: perturbed texts.")] = 1000,
    steps: Annotated[int, typer.Option(help="ig: interpolation steps.")] = 50,
    label: Annotated[
        str | None, typer.Option(help="The label to explain (default: the predicted one).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (a list of them with --method both).")
    ] = False,
    html: Annotated[
        Path | None, typer.Option(help="Also write a self-contained HTML page here.")
    ] = None,
) -> None:
    """Explain one prediction word by word (the default command: `explain REF TEXT`).

    Prints the words with the largest weights (positive: support the label) and the
    faithfulness numbers: comprehensiveness (higher is better), sufficiency (lower is
    better) and AOPC of deletion (higher is better).

    Example: lmforge explain runs/<run-id>/model "Battery died in a week." --method ig
    """
    from lmforge.explain import METHODS, explain_text, render_html
    from lmforge.home import atomic_write_text
    from lmforge.hub.classifier import TextClassifier

    if method not in (*METHODS, "both"):
        raise LmforgeError(f"--method: unknown {method!r}; pick lime, ig or both.")
    methods = list(METHODS) if method == "both" else [method]
    with err_console.status(f"Loading {ref}..."):
        classifier = TextClassifier(ref)
    explanations = []
    for name in methods:
        with err_console.status(f"Explaining with {name}..."):
            explanations.append(
                explain_text(classifier, text, name, label=label, num_samples=samples, steps=steps)
            )
    for explanation in explanations:
        _warn_if_unconverged(explanation)
    if html is not None:
        atomic_write_text(html, render_html(explanations))
    if as_json:
        payload = [e.to_dict() for e in explanations]
        typer.echo(json.dumps(payload[0] if len(payload) == 1 else payload, indent=2))
    else:
        for explanation in explanations:
            _print_explanation(explanation)
        _print_faithfulness(explanations)
    if html is not None:
        err_console.print(f"HTML written to {html}")


@app.command("row")
def row(
    ref: Annotated[str, typer.Argument(help="A tabular model (task tabular or lightgbm).")],
    input_json: Annotated[
        str | None, typer.Option("--input", help="The row as a JSON object of feature values.")
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(help="A CSV or Parquet file (or dataset:NAME/SPLIT) to take the row from."),
    ] = None,
    index: Annotated[int, typer.Option(help="With --data: the row's position (0-based).")] = 0,
    steps: Annotated[int, typer.Option(help="FT-Transformer: integrated gradients steps.")] = 64,
    top: Annotated[int, typer.Option(help="Features to show.")] = TOP_WORDS,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Explain a tabular model's decision on one row: each feature's share of the log-odds
    (integrated gradients for the FT-Transformer, TreeSHAP for LightGBM).

    Example: lmforge explain row run:RUN_ID --data dataset:creditcard/test --index 541
    """
    from lmforge.evaluate.tabular import table_row
    from lmforge.explain import explain_model_row
    from lmforge.hub.tabular import load_tabular, resolve_tabular

    if (input_json is None) == (data is None):
        raise typer.BadParameter("give the row as --input JSON or as --data FILE --index N",
                                 param_hint="--input")  # fmt: skip
    model = load_tabular(resolve_tabular(ref).path)
    if input_json is not None:
        try:
            values = json.loads(input_json)
        except json.JSONDecodeError as error:
            raise typer.BadParameter(f"not JSON: {error}", param_hint="--input") from None
    else:
        assert data is not None
        values = table_row(model, data, index)
    explanation = explain_model_row(model, values, steps=steps, ref=ref)
    if as_json:
        typer.echo(json.dumps(explanation.to_dict(), indent=2))
        return
    details = explanation.details
    probability = explanation.probabilities[explanation.label]
    console.print(
        f"[bold]{explanation.method}[/bold]: p({escape(explanation.label)}) = {probability:.4f}, "
        f"threshold {details['threshold']:.4g}: decision '{escape(details['decision'])}'",
        highlight=False,
    )
    table = Table("feature", "value", f"log-odds of '{escape(explanation.label)}'")
    for name, weight in explanation.top(top):
        colour = "green" if weight > 0 else "red"
        table.add_row(name, escape(str(values[name])), f"[{colour}]{weight:+.4f}[/{colour}]")
    console.print(table)


@app.command("eval")
def evaluate(
    ref: Annotated[str, typer.Argument(help=MODEL_HELP)],
    data: Annotated[
        Path, typer.Argument(help="JSONL (or JSON, CSV, Parquet) with a 'text' field.")
    ],
    method: Annotated[
        str, typer.Option(help="Comma-separated: lime, ig, random (a random-ranking floor).")
    ] = "lime,ig",
    samples: Annotated[int, typer.Option(help="LIME: perturbed texts per explanation.")] = 1000,
    steps: Annotated[int, typer.Option(help="ig: interpolation steps.")] = 50,
    limit: Annotated[int | None, typer.Option(help="Explain only the first N texts.")] = None,
    track: Annotated[
        bool, typer.Option(help="Log an MLflow run in the 'explain' experiment.")
    ] = True,
) -> None:
    """Compare explanation methods by their mean faithfulness over a dataset.

    Every text is explained by every method; the run logs the means as
    <method>/<metric> and every explanation as explanations.jsonl.

    Example: lmforge explain eval runs/<run-id>/model reviews.jsonl --method lime,ig --limit 30
    """
    from lmforge.explain import evaluate_explanations, load_records
    from lmforge.hub.classifier import TextClassifier

    methods = [m.strip() for m in method.split(",") if m.strip()]
    records = load_records(data)
    with err_console.status(f"Loading {ref}..."):
        classifier = TextClassifier(ref)
    with ProgressReporter(err_console, "explain") as progress:
        result = evaluate_explanations(
            classifier,
            records,
            methods,
            num_samples=samples,
            steps=steps,
            limit=limit,
            track=track,
            progress=progress,
        )
    table = Table(
        "method",
        "texts",
        "comprehensiveness (higher better)",
        "sufficiency (lower better)",
        "aopc_deletion (higher better)",
        "seconds",
        title=f"mean faithfulness on {data.name}",
    )
    for row in result.rows:
        table.add_row(
            row["method"],
            str(row["n"]),
            f"{row['comprehensiveness']:.4f}",
            f"{row['sufficiency']:.4f}",
            f"{row['aopc_deletion']:.4f}",
            f"{row['seconds']:.2f}",
        )
    console.print(table)
    if result.run_id:
        console.print(f"MLflow run {result.run_id} (experiment 'explain')")


def _print_explanation(explanation: Any) -> None:
    probability = explanation.probabilities[explanation.label]
    console.print(
        f"[bold]{explanation.method}[/bold]: why '{escape(explanation.label)}' "
        f"(p={probability:.3f}; {explanation.seconds:.2f} s)",
        highlight=False,
    )
    table = Table("word", "weight")
    for word, weight in explanation.top(TOP_WORDS):
        colour = "green" if weight > 0 else "red"
        table.add_row(word, f"[{colour}]{weight:+.4f}[/{colour}]")
    console.print(table)


def _warn_if_unconverged(explanation: Any) -> None:
    from lmforge.explain.text import IG_DELTA_WARNING

    delta = explanation.details.get("convergence_delta")
    if delta is not None and abs(delta) > IG_DELTA_WARNING:
        steps = explanation.details["steps"]
        err_console.print(
            f"[yellow]warning:[/yellow] integrated gradients' convergence delta is {delta:+.3f}: "
            f"{steps} steps are too few for this text, so the weights do not add up to the "
            f"change in p({escape(explanation.label)}); try --steps {steps * 4}.",
            highlight=False,
            soft_wrap=True,
        )


def _print_faithfulness(explanations: list[Any]) -> None:
    table = Table("faithfulness", *(e.method for e in explanations))
    for metric, direction in (
        ("comprehensiveness", "higher"),
        ("sufficiency", "lower"),
        ("aopc_deletion", "higher"),
    ):
        values = [f"{e.faithfulness[metric]:.4f}" for e in explanations]
        table.add_row(f"{metric} ({direction} is more faithful)", *values)
    console.print(table)
