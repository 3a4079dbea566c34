"""``lmforge images``: text-image models (CLIP) on image files: zero-shot classification."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from lmforge.cli.console import console

app = typer.Typer(help="Text-image models (CLIP): classify images.", no_args_is_help=True)


@app.command("classify")
def classify(
    model: Annotated[str, typer.Argument(help="A text-image model: path, registry: or run: ref.")],
    images: Annotated[list[Path], typer.Argument(help="Image files (PNG, JPEG, WebP, ...).")],
    labels: Annotated[str, typer.Option(help="The labels, comma-separated: 'cat,dog,bird'.")],
    template: Annotated[
        list[str] | None,
        typer.Option(
            help="A prompt made from each label ({label} is replaced); repeat it to "
            "average several. Default: 'a photo of a {label}'."
        ),
    ] = None,
    top: Annotated[int, typer.Option(min=1, help="Labels shown per image.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Zero-shot classification: each image's most probable labels, by how close the image
    is to a prompt made from each label.

    Example: lmforge images classify run:RUN_ID digit.png --labels zero,one,two,three,four,
    five,six,seven,eight,nine --template "a {label}"
    """
    from lmforge.data.images import open_image
    from lmforge.errors import LmforgeError
    from lmforge.evaluate.image_tasks import DEFAULT_LABEL_TEMPLATES
    from lmforge.hub.clip import load_clip, zero_shot

    names = [label.strip() for label in labels.split(",") if label.strip()]
    if len(names) < 2:
        raise LmforgeError(f"--labels: {labels!r} gives {len(names)} label(s); give at least "
                           "two, comma-separated")  # fmt: skip
    templates = list(template or DEFAULT_LABEL_TEMPLATES)
    if any("{label}" not in t for t in templates):
        raise LmforgeError("--template: each needs {label} where the label goes, e.g. "
                           "'a photo of a {label}'")  # fmt: skip
    pictures = [open_image(path) for path in images]
    network, processor = load_clip(model)
    probabilities = zero_shot(network, processor, pictures, names, templates)  # (N, L)
    results: list[dict[str, Any]] = []
    for path, row in zip(images, probabilities, strict=True):
        ranked = sorted(zip(names, row.tolist(), strict=True), key=lambda x: -x[1])[:top]
        results.append({"image": str(path), "label": ranked[0][0],
                        "top": [{"label": n, "probability": p} for n, p in ranked]})  # fmt: skip
    if as_json:
        typer.echo(json.dumps(results, indent=2))
        return
    table = Table(title=f"{model}: zero-shot over {len(names)} labels")
    for column in ("image", "label", "probability", "next"):
        table.add_column(column)
    for result in results:
        best, rest = result["top"][0], result["top"][1:]
        table.add_row(result["image"], best["label"], f"{best['probability']:.3f}",
                      ", ".join(f"{r['label']} {r['probability']:.3f}" for r in rest))  # fmt: skip
    console.print(table)
