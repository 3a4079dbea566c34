"""Build what the server serves from model references."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import uvicorn
from peft import PeftModel

from lmforge.agent.support import open_orders
from lmforge.data.calibration import calibration_texts
from lmforge.errors import LmforgeError
from lmforge.guard.policy import Guard, GuardPolicy
from lmforge.hub import load_causal_lm, resolve
from lmforge.hub.diffusion import ImageGenerator
from lmforge.hub.embed import SentenceEmbedder
from lmforge.hub.load import check_gguf
from lmforge.hub.quantized import is_quantized_dir, read_quant_meta
from lmforge.hub.resolve import SCORED_KINDS
from lmforge.hub.smoothquant import quantize_int8
from lmforge.retrieve.images import ImageIndex
from lmforge.serve.api.base import OpenAIHandler
from lmforge.serve.app import create_app
from lmforge.serve.backends import pick_backend
from lmforge.serve.config import ServeConfig
from lmforge.serve.engine import Engine
from lmforge.serve.scoring import Scorer
from lmforge.serve.series_scoring import SeriesScorer
from lmforge.serve.understand import UnderstandingSpec, load_understanding


def build_handler(config: ServeConfig) -> OpenAIHandler:
    """Load ``config.model`` (plus LoRA ``config.adapters`` by name) into the engine of
    its serving backend (``serve/backends.py``) behind the OpenAI handler.

    An encoder is served as an embedding server, a classifier as a classification server;
    a generation model runs on ``config.backend`` (``auto``: llamacpp for a ``.gguf``
    file, torch for everything else).

    Raises:
        LmforgeError: a reference does not resolve, an adapter belongs to another base,
            or a name is used twice (naming the setting).
    """
    ref, served_name, embed = config.model, config.name, config.embed
    spec = understanding_of(config)
    base, resolved = resolve_served(ref, served_name, config.adapters)
    images = {name: ImageIndex.open(name) for name in config.images}
    for index in images.values():
        index.warm_up()
    image_models = {}
    if config.image_model is not None:
        image_models[config.image_model] = ImageGenerator(config.image_model)

    def scorer(scorer_ref: str) -> Scorer | SeriesScorer:
        kind = Scorer if resolve(scorer_ref, progress=False).kind == "tabular" else SeriesScorer
        return kind(scorer_ref, drift_threshold=config.drift_threshold,
                    compile=config.compile_scorers)  # fmt: skip

    scorers = {name: scorer(scorer_ref) for name, scorer_ref in config.scorers.items()}
    if base.model_kind in SCORED_KINDS:  # a scoring server
        if served_name in scorers:
            raise LmforgeError(f"scorers: '{served_name}' is already the served model's name")
        if embed is not None or resolved or images or image_models:
            raise LmforgeError(
                f"model: '{ref}' is a {base.model_kind} model: it serves /v1/score/{served_name} "
                "alone; "
                "to serve it beside a chat model, pass it in scorers (--scorer NAME=REF)"
            )
        # One torch thread: a row's forward pass and its integrated gradients are small ops
        # that a second thread only synchronises (16 steps took 4.0 ms on one thread, 8.3 ms
        # on two, on this 2-core machine with a training run beside it), and the other core
        # serves HTTP.
        torch.set_num_threads(1)
        scorers[served_name] = scorer(ref)
        return OpenAIHandler(None, served_name, scorers=scorers)
    if base.model_kind == "diffusion":  # an image generation server
        if embed is not None or resolved or images or image_models:
            raise LmforgeError(
                f"model: '{ref}' is a text-to-image model: it serves /v1/images/generations "
                "alone; to serve it beside a chat model, pass it as image_model "
                "(--image-model) and the chat model as model"
            )
        return OpenAIHandler(None, served_name, image_models={served_name: ImageGenerator(base)},
                             understanding=load_understanding(spec), scorers=scorers)  # fmt: skip
    if base.model_kind == "clip":  # an image search server
        if not images or embed is not None or resolved:
            raise LmforgeError(
                f"model: '{ref}' is a text-image model: it serves image indexes; pass "
                "images: [NAME] (--images NAME, built with `lmforge images index build`) "
                "and no embed or adapters"
            )
        return OpenAIHandler(None, served_name, images=images, image_models=image_models,
                             understanding=load_understanding(spec), scorers=scorers)  # fmt: skip
    backend = pick_backend(base, config.backend, adapters=bool(resolved),
                           quantize=config.quantize)  # fmt: skip
    if base.model_kind in {"encoder", "classifier"} and (embed is not None or resolved):
        raise LmforgeError(f"model: '{ref}' is an {base.model_kind}: it takes no embed or "
                           "adapters")  # fmt: skip
    if base.model_kind == "classifier":  # a classification server
        spec = replace(spec, classifiers={served_name: ref, **spec.classifiers})
        return OpenAIHandler(None, served_name, understanding=load_understanding(spec),
                             images=images, image_models=image_models,
                             scorers=scorers)  # fmt: skip
    extras = load_understanding(spec)
    if base.model_kind == "encoder":  # an embedding server
        return OpenAIHandler(None, served_name, embedder=SentenceEmbedder(ref),
                             understanding=extras, images=images,
                             image_models=image_models, scorers=scorers)  # fmt: skip
    embedder = SentenceEmbedder(embed) if embed is not None else None
    return OpenAIHandler(
        backend.load(base, resolved, config), served_name, adapters=list(resolved),
        max_tokens_limit=config.max_tokens_limit, embedder=embedder, embed_name=embed,
        guard=load_guard(config.guard), understanding=extras, images=images,
        image_models=image_models, scorers=scorers,
        system_fingerprint=system_fingerprint(base, resolved, backend.name, config.quantize),
        agent_db=open_orders() if config.agent else None,
    )  # fmt: skip


def system_fingerprint(base: Any, adapters: Mapping[str, Any], backend: str, quantize: str) -> str:
    """OpenAI's ``system_fingerprint``: ``fp_`` and 10 hex digits that change whenever the
    served weights (path and modification time of the model and each adapter), the backend
    or the quantisation change, so a client can tell that the same seed may answer
    differently."""
    import hashlib
    import json

    from lmforge import __version__

    def stamp(path: Any) -> list[Any]:
        return [str(path), Path(path).stat().st_mtime_ns if Path(path).exists() else None]

    identity = {"model": stamp(base.path),
                "adapters": {name: stamp(a.path) for name, a in sorted(adapters.items())},
                "backend": backend, "quantize": quantize, "lmforge": __version__}  # fmt: skip
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return f"fp_{digest[:10]}"


def torch_engine(base: Any, adapters: dict[str, Any], config: ServeConfig) -> Engine:
    """The torch backend: the transformers model with its LoRA adapters by name,
    ``quantize: int8`` run as SmoothQuant + dynamic INT8 calibrated on the bundled support
    dialogs (the model ``lmforge compress --method int8-dynamic`` writes, several times
    faster on CPUs with VNNI; LoRA matrices stay fp32)."""
    model, tokenizer = load_causal_lm(base)
    if isinstance(model, PeftModel):
        # An adapter served as the model (``lmforge serve run:ID`` of a LoRA run): merged,
        # since the runner sends requests without an adapter name through the base
        model = model.merge_and_unload()
    for index, (name, adapter) in enumerate(adapters.items()):
        if index == 0:
            model = PeftModel.from_pretrained(model, adapter.path, adapter_name=name)
        else:
            model.load_adapter(adapter.path, adapter_name=name)
    model.eval()
    if config.quantize == "int8":
        model = quantize_int8(model, calibration_texts(tokenizer))
    return Engine(model, tokenizer, max_batch=config.max_batch, max_queue=config.max_queue,
                  max_len=config.max_model_len, niceness=config.compute_niceness)  # fmt: skip


def torch_preflight(base: Any, *, adapters: bool, quantize: str) -> None:
    """Refuse adapters or ``quantize`` on a model ``lmforge compress`` already quantized.

    Raises:
        LmforgeError: naming ``model`` and what to serve instead.
    """
    if (adapters or quantize != "none") and is_quantized_dir(base.path):
        scheme = read_quant_meta(base.path).get("scheme")
        raise LmforgeError(
            f"model: '{base.ref}' is already quantized ({scheme}, by lmforge compress): it "
            "takes no quantize, and LoRA adapters need the fp32 model. Serve it as it is, "
            "or serve its fp32 source with adapters or quantize."
        )


def understanding_of(config: ServeConfig) -> UnderstandingSpec:
    """The grounding, classification and sentiment settings of ``config``."""
    return UnderstandingSpec(
        kb=config.kb, kb_top_k=config.kb_top_k, kb_hybrid=config.kb_hybrid,
        kb_verify_citations=config.kb_verify_citations,
        classifiers=dict(config.classifiers), sentiment=config.sentiment,
        escalate_after=config.escalate_after, negative_labels=tuple(config.negative_labels),
    )  # fmt: skip


def load_guard(spec: str | None) -> Guard | None:
    """``guard``: None (no filtering), ``default``, a bundled policy's name, or a file."""
    if spec is None:
        return None
    return Guard(GuardPolicy.load(spec))


def resolve_served(
    ref: str, served_name: str, adapters: Mapping[str, str]
) -> tuple[Any, dict[str, Any]]:
    """Resolve the base and each adapter, checking the adapters belong to that base.

    Raises:
        LmforgeError: naming the adapter at fault (``adapters.NAME``) and the fix.
    """
    base = resolve(ref, progress=False)
    if base.kind == "gguf":
        check_gguf(base.path)
    if adapters and base.kind == "adapter":
        raise LmforgeError(
            f"adapters: need a base model to attach to, but '{base.ref}' is itself an "
            f"adapter; serve its base ('{base.base.ref if base.base else '?'}') with both "
            "adapters."
        )
    if served_name in adapters:
        raise LmforgeError(f"adapters: '{served_name}' is already the base model's name")
    resolved = {}
    for name, adapter_ref in adapters.items():
        adapter = resolve(adapter_ref, progress=False)
        if adapter.kind != "adapter" or adapter.base is None:
            raise LmforgeError(
                f"adapters.{name}: {adapter_ref} is not a LoRA adapter directory "
                "(it needs adapter_config.json)"
            )
        if adapter.base.path.resolve() != base.path.resolve():
            raise LmforgeError(
                f"adapters.{name}: {adapter_ref} was trained on '{adapter.base.ref}', "
                f"not on the served base '{base.ref}'; serve that base or retrain the adapter."
            )
        resolved[name] = adapter
    return base, resolved


@contextmanager
def background_server(config: ServeConfig, timeout: float = 600) -> Iterator[str]:
    """Serve ``config`` from this process: a uvicorn server in a thread, on a free
    loopback port. Yields the base URL (``http://127.0.0.1:PORT``) once the model is
    loaded, and stops the server afterwards (what ``lmforge agent run MODEL`` and the
    ``agent`` evaluation talk to with the ``openai`` client).

    Raises:
        LmforgeError: the model failed to load, or took longer than ``timeout`` seconds.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app(lambda: build_handler(config))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="lmforge-serve", daemon=True)
    thread.start()
    try:
        state = app.state.lmforge
        deadline = time.monotonic() + timeout
        while not (server.started and state.loaded.is_set()):
            if time.monotonic() > deadline or not thread.is_alive():
                raise LmforgeError(f"serving {config.model} did not start within {timeout:.0f} s")
            time.sleep(0.1)
        if state.handler is None:
            raise LmforgeError(f"serving {config.model}: the model failed to load: {state.error}")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
