"""``lmforge serve``: an OpenAI-compatible HTTP server for a model."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from lmforge.cli.console import err_console
from lmforge.cli.generate import MODEL_HELP
from lmforge.errors import LmforgeError


def serve(
    ref: Annotated[str, typer.Argument(help=MODEL_HELP)],
    host: Annotated[
        str, typer.Option(envvar="LMFORGE_HOST", help="Address to bind.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="LMFORGE_PORT", help="Port to listen on.")] = 8000,
    max_batch: Annotated[
        int, typer.Option(min=1, help="Sequences decoded together (continuous batching).")
    ] = 16,
    max_queue: Annotated[
        int, typer.Option(min=0, help="Requests waiting for a batch slot; more get HTTP 503.")
    ] = 256,
    max_model_len: Annotated[
        int | None, typer.Option(min=2, help="Longest prompt + completion; default: the model's.")
    ] = None,
    max_tokens_limit: Annotated[
        int, typer.Option(min=1, help="The most tokens one request may generate.")
    ] = 4096,
    served_name: Annotated[
        str | None, typer.Option(help="The model id clients send; default: REF.")
    ] = None,
    adapter: Annotated[
        list[str] | None,
        typer.Option(
            help="A LoRA adapter of REF as NAME=REF (repeatable); requests pick it "
            "by putting NAME in 'model'."
        ),
    ] = None,
    embed: Annotated[
        str | None,
        typer.Option(
            help="An encoder to serve on /v1/embeddings beside REF (e.g. all-minilm-l6-v2)."
        ),
    ] = None,
    guard: Annotated[
        str | None,
        typer.Option(
            help="Content filtering: 'default', a bundled policy ('brightnest') or a "
            "policy YAML (docs/serving.md)."
        ),
    ] = None,
    kb: Annotated[
        str | None,
        typer.Option(
            help="Ground chat answers in this knowledge base (lmforge kb build): passages "
            "for each user turn go into the prompt, citations come back in the response."
        ),
    ] = None,
    kb_top_k: Annotated[int, typer.Option(min=1, help="Passages per user turn.")] = 3,
    kb_hybrid: Annotated[
        bool, typer.Option(help="Retrieve with vectors + BM25 keywords (RRF).")
    ] = False,
    classifier: Annotated[
        list[str] | None,
        typer.Option(
            help="A text classifier to serve on /v1/classify and /v1/explain, as REF or "
            "NAME=REF (repeatable)."
        ),
    ] = None,
    sentiment: Annotated[
        str | None,
        typer.Option(
            help="Score every user turn with this classifier (a --classifier NAME or a REF) "
            "and flag conversations to escalate."
        ),
    ] = None,
    escalate_after: Annotated[
        int, typer.Option(min=1, help="Escalate after this many negative user turns in a row.")
    ] = 2,
    negative_labels: Annotated[
        str, typer.Option(help="The sentiment labels that count as negative, comma-separated.")
    ] = "negative",
    quantize: Annotated[
        str,
        typer.Option(
            help="none, or int8: SmoothQuant + dynamic INT8, the model `lmforge compress "
            "--method int8-dynamic` writes (several times faster on CPU)."
        ),
    ] = "none",
    backend: Annotated[
        str,
        typer.Option(help="auto (llamacpp for .gguf files, else torch), torch or llamacpp."),
    ] = "auto",
    api_key_required: Annotated[
        bool, typer.Option(help="Demand an API key even before any exists (lmforge keys create).")
    ] = False,
    rate_limit: Annotated[
        int, typer.Option(min=0, help="Requests per minute per API key (0: no limit).")
    ] = 0,
    max_body_bytes: Annotated[
        int, typer.Option(min=1, help="Largest request body accepted (HTTP 413 above).")
    ] = 1_000_000,
    access_log: Annotated[
        bool, typer.Option(help="One JSON line per request on stderr (no prompt text).")
    ] = True,
    log_prompts: Annotated[
        bool, typer.Option(help="Include prompts in the access log (off: privacy).")
    ] = False,
) -> None:
    """Serve REF behind an OpenAI-compatible API (chat, completions, models).

    Example: lmforge serve smollm2-135m-instruct --port 8000, then point any OpenAI client
    at http://127.0.0.1:8000/v1.
    """
    import uvicorn

    from lmforge.serve.app import ServerOptions, create_app
    from lmforge.serve.handler import OpenAIHandler
    from lmforge.serve.server import build_handler, pick_backend, resolve_served
    from lmforge.serve.understand import UnderstandingSpec

    name = served_name or ref
    adapters = _named_refs("--adapter", adapter or [], required=True)
    understanding = UnderstandingSpec(
        kb=kb, kb_top_k=kb_top_k, kb_hybrid=kb_hybrid,
        classifiers=_named_refs("--classifier", classifier or [], required=False),
        sentiment=sentiment, escalate_after=escalate_after,
        negative_labels=tuple(label.strip() for label in negative_labels.split(",") if label),
    )  # fmt: skip
    if kb is not None:
        from lmforge.retrieve.kb import KnowledgeBase

        KnowledgeBase.open(kb)  # a missing knowledge base fails before listening

    # bad references and options fail here, before listening
    base, _ = resolve_served(ref, name, adapters)
    pick_backend(base, backend, adapters=bool(adapters), quantize=quantize)
    if guard is not None:
        from lmforge.guard.policy import GuardPolicy

        GuardPolicy.load(guard)  # and a bad policy file or name

    def load() -> OpenAIHandler:
        return build_handler(
            ref, name, adapters=adapters, embed=embed, guard=guard, quantize=quantize,
            backend=backend,
            max_batch=max_batch, max_queue=max_queue, max_model_len=max_model_len,
            max_tokens_limit=max_tokens_limit, understanding=understanding,
        )  # fmt: skip

    err_console.print(
        f"Serving {ref} as '{name}' on http://{host}:{port}/v1 "
        f"(GET /ready says when the model is loaded; Ctrl-C stops)",
        highlight=False,
    )
    access = logging.getLogger("lmforge.access")
    access.addHandler(logging.StreamHandler(sys.stderr))
    access.setLevel(logging.INFO)
    access.propagate = False
    options = ServerOptions(
        require_keys=api_key_required, rate_limit=rate_limit, max_body_bytes=max_body_bytes,
        access_log=access_log, log_prompts=log_prompts,
    )  # fmt: skip
    uvicorn.run(create_app(load, options), host=host, port=port, log_level="warning")


def _named_refs(option: str, specs: list[str], *, required: bool) -> dict[str, str]:
    """``NAME=REF`` options as a dict; a bare ``REF`` (when ``required`` is false) is
    served under its own reference."""
    named: dict[str, str] = {}
    for spec in specs:
        name, sep, ref = spec.partition("=")
        if not sep and not required:
            name, ref = spec, spec
        elif not sep or not name or not ref:
            raise LmforgeError(f"{option} {spec!r}: expected NAME=REF, e.g. support=runs/abc/model")
        if name in named:
            raise LmforgeError(f"{option}: the name {name!r} is given twice")
        named[name] = ref
    return named
