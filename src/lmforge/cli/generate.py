"""``lmforge generate`` and ``lmforge chat``: talk to a model from the terminal."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from lmforge.cli.console import console, err_console
from lmforge.errors import LmforgeError

if TYPE_CHECKING:
    from lmforge.serve.generate import SamplingParams

MODEL_HELP = "Model: a zoo name, a local path, registry:NAME@ALIAS or run:RUN_ID."


def _load(ref: str) -> tuple[Any, Any, Any]:
    """Resolve and load a causal LM, with a spinner on stderr."""
    from lmforge.hub import load_causal_lm, resolve

    resolved = resolve(ref)
    with err_console.status(f"Loading {ref}..."):
        model, tokenizer = load_causal_lm(resolved)
    return resolved, model, tokenizer


def _sampling(
    max_tokens: int, temperature: float, top_p: float, seed: int | None, stop: Sequence[str] = ()
) -> SamplingParams:
    from lmforge.serve.generate import SamplingParams

    return SamplingParams(
        max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed, stop=tuple(stop)
    )


def generate(
    ref: str = typer.Argument(..., help=MODEL_HELP),
    prompt: str = typer.Argument(..., help="The prompt; '-' reads it from standard input."),
    max_tokens: int = typer.Option(256, "--max-tokens", help="Most tokens to generate."),
    temperature: float = typer.Option(0.7, help="0 means greedy decoding."),
    top_p: float = typer.Option(1.0, "--top-p", help="Nucleus sampling mass."),
    seed: int | None = typer.Option(None, help="Same seed + same prompt = same output."),
    stop: list[str] = typer.Option([], "--stop", help="Stop at this text (repeatable)."),
    system: str | None = typer.Option(None, help="System prompt (chat models)."),
    raw: bool = typer.Option(False, "--raw", help="Send the prompt as-is, without chat template."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON result with usage."),
) -> None:
    """Generate text from a prompt, streaming tokens to stdout.

    Chat models get the prompt as a user message in their chat template (use --raw for
    plain continuation).

    Example: lmforge generate smollm2-135m-instruct "What is the capital of France?" --temperature 0
    """
    from lmforge.data.chat import has_chat_template, render_chat
    from lmforge.serve.generate import TextGeneration

    from_stdin = prompt == "-"
    if from_stdin:
        prompt = sys.stdin.read()
    if not prompt.strip():
        # A chat template would wrap even nothing in a user turn, and the model would
        # answer a question nobody asked; an empty prompt is a quoting slip, not a request.
        given = "standard input ('-') was empty" if from_stdin else f"empty ({prompt!r})"
        raise LmforgeError(
            f"prompt: {given}; pass the text to continue, e.g. "
            f'lmforge generate {ref} "Once upon a time".'
        )
    params = _sampling(max_tokens, temperature, top_p, seed, stop)
    _, model, tokenizer = _load(ref)
    if raw or not has_chat_template(tokenizer):
        prompt_ids = tokenizer(prompt)["input_ids"]
    else:
        messages = [{"role": "system", "content": system}] if system else []
        prompt_ids = render_chat(
            tokenizer, [*messages, {"role": "user", "content": prompt}], model_ref=ref
        )
    generation = TextGeneration(model, tokenizer, prompt_ids, params)
    if as_json:
        result = generation.run()
        payload = {
            "model": ref,
            "text": result.text,
            "finish_reason": result.finish_reason,
            "usage": {
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens,
                "total_tokens": result.prompt_tokens + result.completion_tokens,
            },
            "seconds": round(result.seconds, 4),
            "tokens_per_second": round(result.tokens_per_second, 2),
        }
        typer.echo(json.dumps(payload, ensure_ascii=False))
        return
    for delta in generation:
        sys.stdout.write(delta)
        sys.stdout.flush()
    sys.stdout.write("\n")
    assert generation.completion is not None
    done = generation.completion
    err_console.print(
        f"[dim]{done.completion_tokens} tokens, {done.tokens_per_second:.1f} tok/s, "
        f"finish: {done.finish_reason}[/dim]"
    )


CHAT_COMMANDS = (
    "/reset          forget the conversation\n"
    "/system TEXT    set the system prompt (and reset)\n"
    "/save FILE      write the conversation as JSON\n"
    "/exit           leave"
)


def chat(
    ref: str = typer.Argument(..., help=MODEL_HELP),
    system: str | None = typer.Option(None, help="System prompt for the conversation."),
    max_tokens: int = typer.Option(256, "--max-tokens", help="Most tokens per answer."),
    temperature: float = typer.Option(0.7, help="0 means greedy decoding."),
    top_p: float = typer.Option(1.0, "--top-p", help="Nucleus sampling mass."),
    seed: int | None = typer.Option(None, help="Seed for reproducible answers."),
) -> None:
    """Chat with a model over several turns, using its chat template.

    Commands inside the chat: /reset, /system TEXT, /save FILE, /exit. When standard
    input is not a terminal, each line is one user message and each answer is printed
    on its own, so the chat is scriptable.

    Example: printf 'My name is Ada.\\nWhat is my name?\\n' | lmforge chat smollm2-135m-instruct
    """
    from lmforge.serve.chat import ChatSession

    interactive = sys.stdin.isatty()
    _, model, tokenizer = _load(ref)
    session = ChatSession(model, tokenizer, model_ref=ref, system=system)
    if interactive:
        err_console.print(f"Chatting with [bold]{ref}[/bold]. Commands:\n{CHAT_COMMANDS}")
    turn = 0
    while True:
        line = _read_line(interactive)
        if line is None:
            break
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            if not _chat_command(session, text):
                break
            continue
        params = _sampling(max_tokens, temperature, top_p, None if seed is None else seed + turn)
        turn += 1
        if interactive:
            console.print("[bold cyan]assistant>[/bold cyan] ", end="")
        try:
            for delta in session.ask(text, params):
                sys.stdout.write(delta)
                sys.stdout.flush()
        except LmforgeError as err:
            if not interactive:
                raise
            err_console.print(str(err), markup=False, style="red")
        except KeyboardInterrupt:
            if not interactive:
                raise
            # Ctrl-C stops this answer only; the unfinished turn is not kept.
            err_console.print("\n[dim]interrupted[/dim]")
        sys.stdout.write("\n")
        sys.stdout.flush()


def _read_line(interactive: bool) -> str | None:
    if interactive:
        try:
            return console.input("[bold green]you>[/bold green] ")
        except (EOFError, KeyboardInterrupt):
            return None
    line = sys.stdin.readline()
    return line if line else None


def _chat_command(session: Any, text: str) -> bool:
    """Run one /command; return False when the chat should end."""
    command, _, argument = text.partition(" ")
    argument = argument.strip()
    if command in {"/exit", "/quit"}:
        return False
    if command == "/reset":
        session.reset()
        err_console.print("[dim]conversation reset[/dim]")
    elif command == "/system":
        session.system = argument or None
        session.reset()
        err_console.print("[dim]system prompt set; conversation reset[/dim]")
    elif command == "/save":
        if not argument:
            err_console.print("[red]/save needs a file name, e.g. /save chat.json[/red]")
        else:
            session.save(Path(argument))
            err_console.print(f"[dim]saved to {argument}[/dim]")
    else:
        err_console.print(f"unknown command {command!r}. Commands:\n{CHAT_COMMANDS}", markup=False)
    return True
