"""``lmforge registry``: registered model versions, their aliases, lineage and promotion."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from lmforge.cli.console import console

app = typer.Typer(
    help="The model registry: versions, aliases (production, staging), promotion, rollback "
    "and lineage.\n\nExample: lmforge registry promote support-bot/3 --alias production",
    no_args_is_help=True,
)
VERSION_HELP = "NAME/VERSION (e.g. support-bot/3), NAME@ALIAS, or registry:... of either."


def parse_version(text: str) -> tuple[str, int]:
    """``support-bot/3``, ``support-bot@production`` or ``registry:...`` -> (name, version).

    Raises:
        LmforgeError: another shape, or an unknown alias.
    """
    from lmforge.track.registry import REGISTRY_PREFIX, get_alias, parse_registry_ref

    name, alias, version = parse_registry_ref(REGISTRY_PREFIX + text.removeprefix(REGISTRY_PREFIX))
    if alias is not None:
        return name, get_alias(name, alias)
    assert version is not None
    return name, version


@app.command("list")
def list_versions(
    name: Annotated[str | None, typer.Argument(help="Only this registered model.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every registered version with its aliases and recorded metrics.

    Example: lmforge registry list support-bot
    """
    from lmforge.track.registry import list_registered

    versions = [v for v in list_registered() if name is None or v.name == name]
    if as_json:
        typer.echo(json.dumps([asdict(v) for v in versions], indent=2))
        return
    table = Table(title="Registered models")
    for column in ("version", "aliases", "created", "metrics", "pipeline"):
        table.add_column(column, overflow="fold")
    for v in versions:
        table.add_row(f"{v.name}/{v.version}", ", ".join(f"@{a}" for a in v.aliases),
                      _when(v.created_ms), _metrics(v.tags),
                      v.tags.get("lmforge.pipeline", ""))  # fmt: skip
    console.print(table)


@app.command("show")
def show(
    version: Annotated[str, typer.Argument(help=VERSION_HELP)],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """One version: where its files are, aliases, metrics, tags, and its model card.

    Example: lmforge registry show support-bot@production
    """
    from lmforge.track.registry import MODEL_CARD_FILE, get_version, resolve_registry_ref

    name, number = parse_version(version)
    info = get_version(name, number)
    files = resolve_registry_ref(info.ref)
    if as_json:
        typer.echo(json.dumps({**asdict(info), "files": str(files)}, indent=2))
        return
    console.print(f"[bold]{info.ref}[/bold]  aliases: "
                  f"{', '.join('@' + a for a in info.aliases) or 'none'}")  # fmt: skip
    console.print(f"files: {files}", highlight=False)
    console.print(f"run: {info.run_id}   created: {_when(info.created_ms)}")
    if info.description:
        console.print(info.description, highlight=False)
    console.print(f"metrics: {_metrics(info.tags) or 'none recorded'}", highlight=False)
    card = files / MODEL_CARD_FILE
    if card.is_file():
        from rich.markdown import Markdown

        console.rule(MODEL_CARD_FILE)
        console.print(Markdown(card.read_text(encoding="utf-8")))


@app.command("promote")
def promote(
    version: Annotated[str, typer.Argument(help=VERSION_HELP)],
    alias: Annotated[str, typer.Option(help="The alias to point at it.")] = "production",
) -> None:
    """Point an alias at a version (by hand, without a gate); rollback can undo it.

    Example: lmforge registry promote support-bot/3 --alias production
    """
    from lmforge.track.registry import promote as promote_version

    name, number = parse_version(version)
    previous = promote_version(name, number, alias)
    before = f" (was version {previous})" if previous is not None else ""
    console.print(f"{name}@{alias} -> version {number}{before}")


@app.command("rollback")
def rollback(
    name: Annotated[str, typer.Argument(help="The registered model.")],
    alias: Annotated[str, typer.Option(help="The alias to move back.")] = "production",
) -> None:
    """Point an alias back at the version it held before the current one.

    Example: lmforge registry rollback support-bot --alias production
    """
    from lmforge.track.registry import rollback as rollback_alias

    left, now = rollback_alias(name, alias)
    console.print(f"{name}@{alias} -> version {now} (rolled back from version {left})")


@app.command("lineage")
def lineage(
    version: Annotated[str, typer.Argument(help=VERSION_HELP)],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """What a version came from: data hashes, training config, code version, parent
    model, and the pipeline and step runs that made it.

    Example: lmforge registry lineage support-bot/3
    """
    from lmforge.track.registry import lineage as version_lineage

    name, number = parse_version(version)
    record = version_lineage(name, number)
    if as_json:
        typer.echo(json.dumps(record, indent=2))
        return
    _print_lineage(f"{name}/{number}", record, indent="")


def _print_lineage(title: str, record: dict, indent: str) -> None:
    if "error" in record:
        console.print(f"{indent}[red]{record['error']}[/red]", highlight=False)
        return
    console.print(f"{indent}[bold]{title}[/bold]")
    rows = [
        ("pipeline", f"{record.get('pipeline')} (run {record.get('pipeline_run_id')})"),
        ("pipeline file", record.get("pipeline_file")),
        ("code version", record.get("code_version")),
        ("parent model", record.get("parent_model") or "none"),
    ]
    config = record.get("config") or {}
    if config:
        method, train = config.get("method", {}), config.get("train", {})
        steps = train.get("max_steps") or f"{train.get('epochs')} epochs"
        rows.append(("training", f"task {config.get('task', {}).get('name')}, method "
                     f"{method.get('name')}, lr {train.get('lr')}, steps {steps}, "
                     f"seed {train.get('seed')}"))  # fmt: skip
    for key, value in rows:
        console.print(f"{indent}  {key}: {value}", highlight=False)
    console.print(f"{indent}  data:")
    for path, digest in record.get("data", {}).items():
        console.print(f"{indent}    {digest[:16]}  {path}", highlight=False)
    console.print(f"{indent}  steps:")
    for step, info in record.get("steps", {}).items():
        console.print(f"{indent}    {step} ({info['type']}, {info['status']}): "
                      f"run {info['run_id']}", highlight=False)  # fmt: skip
    if "parent" in record:
        _print_lineage(str(record.get("parent_model")), record["parent"], indent + "  ")


def _metrics(tags: dict[str, str]) -> str:
    """The recorded metrics, and the privacy budget of a model trained with one."""
    prefix = "lmforge.metric."
    shown = [f"{k[len(prefix):]}={float(v):.4g}" for k, v in sorted(tags.items())
             if k.startswith(prefix)]  # fmt: skip
    if "lmforge.privacy.epsilon" in tags:
        shown.append(f"epsilon={float(tags['lmforge.privacy.epsilon']):.3g} "
                     f"(delta {float(tags['lmforge.privacy.delta']):g})")  # fmt: skip
    return ", ".join(shown)


def _when(ms: int) -> str:
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")
