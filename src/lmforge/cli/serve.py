"""``lmforge serve``: an OpenAI-compatible HTTP server for a model."""

from __future__ import annotations

import gc
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from lmforge.cli.console import err_console
from lmforge.cli.generate import MODEL_HELP
from lmforge.cli.settings import load_with_flags, with_flags
from lmforge.errors import LmforgeError
from lmforge.serve.config import ServeConfig, flag

# each serve setting's flag, for errors the library words with the setting's name
SERVE_FLAGS = {setting: flag(setting) for setting in ServeConfig.model_fields} | {"model": "REF"}


def _help(setting: str) -> str:
    return ServeConfig.model_fields[setting].description or ""


def serve(
    ref: Annotated[str | None, typer.Argument(help=MODEL_HELP + " (or model: in --config)")] = None,
    config_file: Annotated[
        Path | None,
        typer.Option("--config", help="A serve config YAML; flags and --set override it."),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="KEY=VALUE", help="Override a setting: --set max_batch=8."),
    ] = None,
    host: Annotated[str | None, typer.Option(envvar="LMFORGE_HOST", help=_help("host"))] = None,
    port: Annotated[int | None, typer.Option(envvar="LMFORGE_PORT", help=_help("port"))] = None,
    max_batch: Annotated[int | None, typer.Option(help=_help("max_batch"))] = None,
    max_queue: Annotated[int | None, typer.Option(help=_help("max_queue"))] = None,
    max_model_len: Annotated[int | None, typer.Option(help=_help("max_model_len"))] = None,
    max_tokens_limit: Annotated[int | None, typer.Option(help=_help("max_tokens_limit"))] = None,
    served_name: Annotated[str | None, typer.Option(help=_help("served_name"))] = None,
    adapter: Annotated[
        list[str] | None,
        typer.Option(
            help="A LoRA adapter of REF as NAME=REF (repeatable); requests pick it "
            "by putting NAME in 'model'."
        ),
    ] = None,
    embed: Annotated[str | None, typer.Option(help=_help("embed"))] = None,
    guard: Annotated[str | None, typer.Option(help=_help("guard"))] = None,
    kb: Annotated[str | None, typer.Option(help=_help("kb"))] = None,
    kb_top_k: Annotated[int | None, typer.Option(help=_help("kb_top_k"))] = None,
    kb_hybrid: Annotated[bool | None, typer.Option(help=_help("kb_hybrid"))] = None,
    kb_verify_citations: Annotated[
        bool | None, typer.Option(help=_help("kb_verify_citations"))
    ] = None,
    classifier: Annotated[
        list[str] | None,
        typer.Option(
            help="A text classifier to serve on /v1/classify and /v1/explain, as REF "
            "or NAME=REF (repeatable)."
        ),
    ] = None,
    images: Annotated[
        list[str] | None,
        typer.Option(help=_help("images") + " Repeatable, or comma-separated."),
    ] = None,
    image_model: Annotated[str | None, typer.Option(help=_help("image_model"))] = None,
    scorer: Annotated[
        list[str] | None,
        typer.Option(help="A tabular model to serve on /v1/score/NAME, as NAME=REF (repeatable)."),
    ] = None,
    drift_threshold: Annotated[float | None, typer.Option(help=_help("drift_threshold"))] = None,
    compile_scorers: Annotated[bool | None, typer.Option(help=_help("compile_scorers"))] = None,
    sentiment: Annotated[str | None, typer.Option(help=_help("sentiment"))] = None,
    agent: Annotated[bool | None, typer.Option(help=_help("agent"))] = None,
    escalate_after: Annotated[int | None, typer.Option(help=_help("escalate_after"))] = None,
    negative_labels: Annotated[
        str | None, typer.Option(help=_help("negative_labels") + " Comma-separated.")
    ] = None,
    quantize: Annotated[str | None, typer.Option(help="none, or " + _help("quantize"))] = None,
    backend: Annotated[str | None, typer.Option(help=_help("backend"))] = None,
    api_key_required: Annotated[
        bool | None, typer.Option(help=_help("api_key_required") + " (lmforge keys create)")
    ] = None,
    rate_limit: Annotated[int | None, typer.Option(help=_help("rate_limit"))] = None,
    store: Annotated[str | None, typer.Option(help=_help("store"))] = None,
    drain_seconds: Annotated[int | None, typer.Option(help=_help("drain_seconds"))] = None,
    compute_niceness: Annotated[int | None, typer.Option(help=_help("compute_niceness"))] = None,
    max_body_bytes: Annotated[int | None, typer.Option(help=_help("max_body_bytes"))] = None,
    access_log: Annotated[bool | None, typer.Option(help=_help("access_log"))] = None,
    log_prompts: Annotated[bool | None, typer.Option(help=_help("log_prompts"))] = None,
) -> None:
    """Serve REF behind an OpenAI-compatible API (chat, completions, models).

    Every setting can come from a YAML file (--config; `lmforge config schema --kind
    serve` lists them); the flags given replace its values, then --set.

    Example: lmforge serve smollm2-135m-instruct --port 8000, then point any OpenAI client
    at http://127.0.0.1:8000/v1.

    Example: lmforge serve run:RUN_ID --served-name fraud (a tabular model: POST
    /v1/score/fraud with a transaction's fields)
    """
    labels = None
    if negative_labels is not None:
        labels = [label.strip() for label in negative_labels.split(",") if label.strip()]
    flags = {
        "model": ref, "served_name": served_name, "host": host, "port": port,
        "adapters": _named_refs("--adapter", adapter, required=True),
        "embed": embed, "guard": guard, "kb": kb, "kb_top_k": kb_top_k, "kb_hybrid": kb_hybrid,
        "kb_verify_citations": kb_verify_citations,
        "classifiers": _named_refs("--classifier", classifier, required=False),
        "images": [n.strip() for spec in images for n in spec.split(",") if n.strip()]
        if images else None,
        "image_model": image_model,
        "scorers": _named_refs("--scorer", scorer, required=True),
        "drift_threshold": drift_threshold, "compile_scorers": compile_scorers,
        "sentiment": sentiment, "escalate_after": escalate_after, "negative_labels": labels,
        "agent": agent,
        "quantize": quantize, "backend": backend, "max_batch": max_batch,
        "max_queue": max_queue, "max_model_len": max_model_len,
        "max_tokens_limit": max_tokens_limit, "api_key_required": api_key_required,
        "rate_limit": rate_limit, "store": store, "drain_seconds": drain_seconds,
        "compute_niceness": compute_niceness,
        "max_body_bytes": max_body_bytes,
        "access_log": access_log,
        "log_prompts": log_prompts,
    }  # fmt: skip
    config = load_with_flags(ServeConfig, config_file, flags, overrides or (), SERVE_FLAGS)
    try:
        run_server(config)
    except LmforgeError as error:
        raise with_flags(error, SERVE_FLAGS) from None


def run_server(config: ServeConfig) -> None:
    """Check what can fail early, then listen and load the model in the background."""
    import uvicorn

    from lmforge.hub import resolve
    from lmforge.hub.resolve import SCORED_KINDS
    from lmforge.serve.api.base import OpenAIHandler
    from lmforge.serve.app import ServerOptions, create_app
    from lmforge.serve.backends import pick_backend
    from lmforge.serve.engine import check_niceness
    from lmforge.serve.server import build_handler, resolve_served
    from lmforge.serve.store import ServeStore

    store = ServeStore(config.store)  # an unreachable store fails before listening
    if config.compute_niceness:
        check_niceness()
    if config.kb is not None:
        from lmforge.retrieve.kb import KnowledgeBase

        KnowledgeBase.open(config.kb)  # a missing knowledge base fails before listening
    if config.images:
        from lmforge.retrieve.images import ImageIndex

        for name in config.images:
            ImageIndex.open(name)  # and a missing image index

    # bad references and options fail here, before listening
    base, _ = resolve_served(config.model, config.name, config.adapters)
    if base.model_kind not in {"diffusion", *SCORED_KINDS}:  # served alone: images, scoring
        pick_backend(base, config.backend, adapters=bool(config.adapters),
                     quantize=config.quantize)  # fmt: skip
    for image_ref in filter(None, [config.image_model]):
        image_model = resolve(image_ref, progress=False)
        if image_model.model_kind != "diffusion":
            raise LmforgeError(f"image_model: '{image_ref}' is a {image_model.model_kind} "
                               "model, not a text-to-image (diffusion) model")  # fmt: skip
    for name, scorer_ref in config.scorers.items():
        scorer_model = resolve(scorer_ref, progress=False)
        if scorer_model.model_kind not in SCORED_KINDS:
            raise LmforgeError(f"scorers.{name}: '{scorer_ref}' is a {scorer_model.model_kind} "
                               "model, not a scoring one (task tabular, lightgbm, timeseries "
                               "or a timeseries baseline)")  # fmt: skip
    if config.guard is not None:
        from lmforge.guard.policy import GuardPolicy

        GuardPolicy.load(config.guard)  # and a bad policy file or name

    def load() -> OpenAIHandler:
        handler = build_handler(config)
        # What loading made (modules, models, compiled kernels) lives as long as this server
        # process: frozen out of the cycle collector's sight, a full collection scans only
        # what requests allocate. Unfrozen, one paused a scoring server for 320 ms under
        # 200 requests a second (docs/tabular.md).
        gc.collect()
        gc.freeze()
        return handler

    err_console.print(
        f"Serving {config.model} as '{config.name}' on http://{config.host}:{config.port}/v1 "
        f"(GET /ready says when the model is loaded; Ctrl-C stops)",
        highlight=False,
    )
    access = logging.getLogger("lmforge.access")
    access.addHandler(logging.StreamHandler(sys.stderr))
    access.setLevel(logging.INFO)
    access.propagate = False
    options = ServerOptions(
        require_keys=config.api_key_required, rate_limit=config.rate_limit,
        max_body_bytes=config.max_body_bytes, access_log=config.access_log,
        log_prompts=config.log_prompts,
    )  # fmt: skip
    app = create_app(load, options, store)
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning",
                timeout_graceful_shutdown=config.drain_seconds)  # fmt: skip


def _named_refs(option: str, specs: list[str] | None, *, required: bool) -> dict[str, str] | None:
    """``NAME=REF`` options as a dict (None when the option is not given); a bare ``REF``
    (when ``required`` is false) is served under its own reference."""
    if not specs:
        return None
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
