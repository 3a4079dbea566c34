"""``lmforge keys``: API keys for ``lmforge serve`` (stored hashed in serve.db)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import typer
from rich.table import Table

from lmforge.cli.console import console

app = typer.Typer(help="API keys for lmforge serve.", no_args_is_help=True)
StoreOption = Annotated[
    str | None,
    typer.Option("--store", help="The serve store's URL or SQLite file (as `lmforge serve "
                 "--store`; default: $LMFORGE_STORE_URL, else $LMFORGE_HOME/serve.db)."),
]  # fmt: skip


def _when(timestamp: float | None) -> str:
    return dt.datetime.fromtimestamp(timestamp).isoformat(timespec="seconds") if timestamp else ""


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="A label for the key, e.g. web-app.")],
    store: StoreOption = None,
) -> None:
    """Create a key and print it once; once any key exists, the server demands one.

    Example: lmforge keys create web-app
    """
    from lmforge.serve.store import ServeStore

    record, plain = ServeStore(store).create_key(name)
    console.print(plain, highlight=False)
    typer.echo(f"key {record.id} ({name}) created; it is shown only now.", err=True)


@app.command("list")
def list_keys(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    store: StoreOption = None,
) -> None:
    """List keys (never the keys themselves)."""
    from lmforge.serve.store import ServeStore

    keys = ServeStore(store).list_keys()
    if as_json:
        rows = [{"id": k.id, "name": k.name, "shown": k.shown, "created": _when(k.created),
                 "revoked": _when(k.revoked) or None} for k in keys]  # fmt: skip
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("id", "name", "key", "created", "revoked")
    for k in keys:
        table.add_row(k.id, k.name, k.shown, _when(k.created), _when(k.revoked))
    console.print(table)


@app.command("revoke")
def revoke(
    key: Annotated[str, typer.Argument(help="The key's id or name.")], store: StoreOption = None
) -> None:
    """Revoke a key: requests with it get HTTP 401 from then on."""
    from lmforge.serve.store import ServeStore

    record = ServeStore(store).revoke_key(key)
    typer.echo(f"key {record.id} ({record.name}) revoked.")
