"""``lmforge images``: text-image models on image files: zero-shot classification (CLIP),
image indexes (``images index build|add|remove|list``) and search by sentence or picture."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from lmforge.cli.console import console, err_console
from lmforge.progress import ProgressReporter

app = typer.Typer(
    help="Text-image models (CLIP): classify images, index them, search them by text or image.",
    no_args_is_help=True,
)
index_app = typer.Typer(help="Image indexes: pictures embedded for search.", no_args_is_help=True)
app.add_typer(index_app, name="index")

SOURCES_HELP = "Folders of images, JSON Lines files of {image, text}, or image files."
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@index_app.command("build")
def index_build(
    name: Annotated[str, typer.Argument(help="The index's name, e.g. digits.")],
    sources: Annotated[list[Path], typer.Argument(help=SOURCES_HELP)],
    model: Annotated[str, typer.Option(help="The text-image model that embeds the images.")],
    index_type: Annotated[
        str, typer.Option("--index", help="auto (exact to 20,000 images, then HNSW), flat, hnsw.")
    ] = "auto",
    replace: Annotated[bool, typer.Option(help="Rebuild an existing index of that name.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Embed every image of the sources into a new index (batched, with progress).

    Example: lmforge images index build digits ~/.lmforge/datasets/digits/test.jsonl
    --model run:RUN_ID
    """
    from lmforge.retrieve.images import ImageIndex

    with ProgressReporter(err_console, "embedding") as progress:
        index = ImageIndex.create(name, model_ref=model, index_type=index_type,
                                  replace=replace, sources=sources, progress=progress)  # fmt: skip
    _print_stats(index.stats(), as_json)


@index_app.command("add")
def index_add(
    name: Annotated[str, typer.Argument(help="An existing index.")],
    sources: Annotated[list[Path], typer.Argument(help=SOURCES_HELP)],
    as_json: JsonOption = False,
) -> None:
    """Add images to an index (a source already in it is skipped: remove it first).

    Example: lmforge images index add digits more_pictures/
    """
    from lmforge.retrieve.images import ImageIndex

    index = ImageIndex.open(name)
    with ProgressReporter(err_console, "embedding") as progress:
        report = index.add(sources, progress=progress)
    if as_json:
        typer.echo(json.dumps({"added": report.added, "sources": report.sources,
                               "skipped_sources": report.skipped_sources,
                               "stats": index.stats()}, indent=2))  # fmt: skip
        return
    for skipped in report.skipped_sources:
        err_console.print(f"skipped {skipped}: already indexed", highlight=False)
    console.print(f"{report.added} images added to '{name}' ({len(index.items)} in all)")


@index_app.command("remove")
def index_remove(
    name: Annotated[str, typer.Argument(help="An existing index.")],
    what: Annotated[str, typer.Argument(help="A source as it was added, or one image id.")],
) -> None:
    """Remove a source's images, or one image, from an index.

    Example: lmforge images index remove digits more_pictures/
    """
    from lmforge.retrieve.images import ImageIndex

    removed, count = ImageIndex.open(name).remove(what)
    console.print(f"removed {removed}: {count} image{'s' if count != 1 else ''}")


@index_app.command("list")
def index_list(
    name: Annotated[str | None, typer.Argument(help="One index: list its sources.")] = None,
    as_json: JsonOption = False,
) -> None:
    """The image indexes (or one index's sources) with their model and size."""
    from lmforge.retrieve.images import ImageIndex, list_image_indexes

    if name is not None:
        index = ImageIndex.open(name)
        sources = list(index.manifest["sources"].values())
        if as_json:
            typer.echo(json.dumps({"stats": index.stats(), "sources": sources}, indent=2))
            return
        _print_stats(index.stats(), False)
        for source in sources:
            console.print(f"  {source['path']}: {source['images']} images", highlight=False)
        return
    rows = list_image_indexes()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="image indexes")
    for column in ("name", "images", "model", "index"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], str(row["images"]), row["model"], row["index"])
    console.print(table)


@app.command("search")
def search(
    name: Annotated[str, typer.Argument(help="An image index.")],
    query: Annotated[str | None, typer.Argument(help="A sentence describing the picture.")] = None,
    image: Annotated[
        Path | None, typer.Option(help="Search by this picture instead of a sentence.")
    ] = None,
    k: Annotated[int, typer.Option("-k", "--top-k", min=1, help="Results to show.")] = 5,
    as_json: JsonOption = False,
) -> None:
    """The images nearest to a sentence (or, with --image, to a picture).

    Example: lmforge images search digits "a thin, upright one" -k 5
    """
    from lmforge.data.images import open_image
    from lmforge.errors import LmforgeError
    from lmforge.retrieve.images import ImageIndex

    if (query is None) == (image is None):
        raise LmforgeError("give a sentence to search for or --image PATH, not both or neither")
    index = ImageIndex.open(name)
    if image is not None:
        hits = index.search_image(open_image(image), k)
    else:
        hits = index.search_text(str(query), k)
    if as_json:
        typer.echo(json.dumps([hit.to_dict() for hit in hits], indent=2))
        return
    table = Table(title=f"'{name}': {query if image is None else image}")
    for column in ("rank", "score", "id", "caption"):
        table.add_column(column)
    for hit in hits:
        table.add_row(str(hit.rank), f"{hit.score:.3f}", hit.item["id"],
                      hit.item.get("caption", ""))  # fmt: skip
    console.print(table)


def _print_stats(stats: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(stats, indent=2))
        return
    console.print(f"image index '{stats['name']}': {stats['images']} images from "
                  f"{stats['sources']} source(s), {stats['dimension']} dimensions "
                  f"({stats['index']}), model {stats['model']}", highlight=False)  # fmt: skip


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
    from lmforge.hub.clip import DEFAULT_LABEL_TEMPLATES, load_clip, zero_shot

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


@app.command("generate")
def generate(
    model: Annotated[
        str,
        typer.Argument(
            help="A diffusion model: a diffusers pipeline folder "
            "(Stable Diffusion), run: or registry: ref."
        ),
    ],
    prompt: Annotated[str, typer.Argument(help="What to draw (a label model: one of its labels).")],
    n: Annotated[int, typer.Option("--n", min=1, max=64, help="Images to generate.")] = 1,
    steps: Annotated[int, typer.Option(min=1, max=1000, help="Denoising steps.")] = 25,
    guidance: Annotated[
        float, typer.Option(min=0.0, help="Classifier-free guidance scale (1: none).")
    ] = 3.0,
    seed: Annotated[int, typer.Option(help="Image i starts from the noise of seed + i.")] = 0,
    sampler: Annotated[str, typer.Option(help="ddim or dpm (DPM-Solver++).")] = "ddim",
    out: Annotated[Path, typer.Option(help="Folder the PNG files go to.")] = Path("generated"),
    as_json: JsonOption = False,
) -> None:
    """Draw images from a prompt with a text-to-image model; the same seed gives the same
    images.

    Example: lmforge images generate run:RUN_ID "a thick, right-leaning seven" --n 4
    --steps 25 --guidance 3 --seed 7 --out sevens/
    """
    from lmforge.home import atomic_file
    from lmforge.hub.diffusion import GenerationSettings, ImageGenerator

    settings = GenerationSettings(steps=steps, guidance=guidance, seed=seed, sampler=sampler)
    generator = ImageGenerator(model)
    with ProgressReporter(err_console, "denoising", unit="step") as progress:
        images = generator.generate([prompt] * n, settings, on_step=progress)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, image in enumerate(images):
        path = out / f"{seed + index:06d}.png"
        with atomic_file(path) as tmp:
            image.save(tmp, format="PNG")
        paths.append(str(path))
    if as_json:
        typer.echo(json.dumps({"model": model, "prompt": prompt, "images": paths,
                               "steps": steps, "guidance": guidance, "seed": seed,
                               "sampler": sampler}, indent=2))  # fmt: skip
        return
    for written in paths:
        console.print(written, highlight=False)
