"""``lmforge agent``: the support agent, a served model that acts on Brightnest Home's
orders through four tools (``lmforge.agent``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from lmforge.cli.console import console, err_console
from lmforge.cli.generate import MODEL_HELP
from lmforge.errors import LmforgeError

app = typer.Typer(
    no_args_is_help=True,
    help="The support agent: a model that looks up orders, tracks shipments, starts returns "
    "and hands over to a person, through tools over Brightnest Home's order database.",
)


@app.command("run")
def run(
    ref: Annotated[str | None, typer.Argument(help=MODEL_HELP + " (omit with --url)")] = None,
    message: Annotated[
        list[str] | None,
        typer.Option(
            "--message",
            "-m",
            help="A customer message; repeat for more turns. "
            "Without it, turns are read from the terminal until an empty line.",
        ),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            help="An OpenAI-compatible server to use instead of serving REF here, "
            "e.g. http://127.0.0.1:8000/v1"
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="The model name at --url (default: its first model).")
    ] = None,
    db: Annotated[
        Path | None,
        typer.Option(
            help="The order database (default $LMFORGE_HOME/agent/orders.db, made "
            "from the bundled orders on first use; returns and tickets persist)."
        ),
    ] = None,
    max_steps: Annotated[int, typer.Option(min=1, help="Model calls per customer turn.")] = 4,
    max_tokens: Annotated[int, typer.Option(min=1, help="Tokens per model reply.")] = 256,
    log: Annotated[
        Path | None,
        typer.Option(
            help="Append every tool call and result here as JSON Lines (default "
            "$LMFORGE_HOME/agent/calls.jsonl)."
        ),
    ] = None,
) -> None:
    """Talk to the support agent: each customer turn runs model -> tool -> model until the
    model answers (or --max-steps). Only the four declared tools ever run, each with
    arguments checked against its schema; every call and result is printed and logged.

    Example: lmforge agent run smollm2-135m-instruct -m "Where is my order BN-6632761?"
    """
    import openai

    from lmforge.agent.loop import ToolStep, openai_complete
    from lmforge.agent.support import call_log, default_database, open_orders, support_agent
    from lmforge.serve.config import ServeConfig
    from lmforge.serve.server import background_server

    if (ref is None) == (url is None):
        raise LmforgeError("agent run: give a model REF to serve here, or --url of a running "
                           "server (not both)")  # fmt: skip
    log_path = log or default_database().parent / "calls.jsonl"
    write_log = call_log(log_path)

    def on_step(step: ToolStep) -> None:
        mark = "" if step.executed else "  (refused, not run)"
        console.print(f"  [cyan]tool[/cyan] {step.name}({step.arguments}){mark}", highlight=False)
        console.print(f"    -> {json.dumps(step.result, ensure_ascii=False)}", highlight=False)
        write_log(step)

    async def converse(base_url: str, name: str | None) -> None:
        # closed within the event loop that opened its connections
        async with openai.AsyncOpenAI(base_url=base_url, api_key="unused",
                                      max_retries=1) as client:  # fmt: skip
            if name is None:
                name = (await client.models.list()).data[0].id
            agent = support_agent(openai_complete(client, name, max_tokens=max_tokens),
                                  open_orders(db), max_steps=max_steps,
                                  on_step=on_step)  # fmt: skip
            history: list[dict[str, Any]] = []
            for text in message or _typed_turns():
                console.print(f"[bold]customer[/bold] {text}", highlight=False)
                turn = await agent.turn(history, text)
                history += turn.messages
                limit = "  (step limit reached)" if turn.stopped == "step_limit" else ""
                console.print(f"[bold]agent[/bold] {turn.answer}{limit}", highlight=False)

    if url is not None:
        asyncio.run(converse(url, model))
        return
    assert ref is not None
    with contextlib.ExitStack() as stack:
        with console.status(f"Loading {ref} ..."):
            base = stack.enter_context(
                background_server(ServeConfig(model=ref, served_name="agent"))
            )
        asyncio.run(converse(base + "/v1", "agent"))
    err_console.print(f"tool calls logged in {log_path}")


def _typed_turns() -> Any:
    """Customer turns typed at the terminal, until an empty line or end of input."""
    while True:
        try:
            text = input("> " if sys.stdin.isatty() else "").strip()
        except EOFError:
            return
        if not text:
            return
        yield text
