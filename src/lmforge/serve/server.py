"""Build what the server serves from model references."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from lmforge.errors import LmforgeError
from lmforge.guard.policy import Guard
from lmforge.serve.api.base import OpenAIHandler
from lmforge.serve.config import ServeConfig
from lmforge.serve.engine import Engine, GenerationBackend
from lmforge.serve.understand import UnderstandingSpec, load_understanding

BackendFactory = Callable[..., GenerationBackend]
BACKENDS: dict[str, BackendFactory] = {}


def register_backend(name: str, factory: BackendFactory) -> None:
    """Make ``lmforge serve --backend NAME`` build its engine with
    ``factory(model, tokenizer, max_batch=, max_queue=, max_len=)``."""
    BACKENDS[name] = factory


def build_handler(config: ServeConfig) -> OpenAIHandler:
    """Load ``config.model`` (plus LoRA ``config.adapters`` by name) into an engine behind
    the OpenAI handler.

    ``quantize: int8`` runs every linear layer with dynamic INT8 after SmoothQuant
    calibration on the bundled support dialogs (``hub/smoothquant.py``): the model
    ``lmforge compress --method int8-dynamic`` writes, several times faster on CPUs with
    VNNI; LoRA matrices stay fp32. ``backend``: ``torch``, ``llamacpp`` (GGUF files through
    llama.cpp), or ``auto``: llamacpp for a ``.gguf`` file, torch for everything else.

    Raises:
        LmforgeError: a reference does not resolve, an adapter belongs to another base,
            or a name is used twice (naming the setting).
    """
    from lmforge.hub import load_causal_lm, load_tokenizer
    from lmforge.hub.embed import SentenceEmbedder

    ref, served_name, embed, quantize = config.model, config.name, config.embed, config.quantize
    max_tokens_limit = config.max_tokens_limit
    sizes = {"max_batch": config.max_batch, "max_queue": config.max_queue,
             "max_len": config.max_model_len}  # fmt: skip
    spec = understanding_of(config)
    base, resolved = resolve_served(ref, served_name, config.adapters)
    backend = pick_backend(base, config.backend, adapters=bool(resolved), quantize=quantize)
    if base.model_kind in {"encoder", "classifier"} and (embed is not None or resolved):
        raise LmforgeError(f"model: '{ref}' is an {base.model_kind}: it takes no embed or "
                           "adapters")  # fmt: skip
    if base.model_kind == "classifier":  # a classification server
        spec = replace(spec, classifiers={served_name: ref, **spec.classifiers})
        return OpenAIHandler(None, served_name, understanding=load_understanding(spec))
    extras = load_understanding(spec)
    if base.model_kind == "encoder":  # an embedding server
        return OpenAIHandler(None, served_name, embedder=SentenceEmbedder(ref),
                             understanding=extras)  # fmt: skip
    embedder = SentenceEmbedder(embed) if embed is not None else None
    guardrails = load_guard(config.guard)
    if backend == "llamacpp":
        from lmforge.serve.llamacpp import LlamaCppModel

        engine = BACKENDS[backend](LlamaCppModel(base.path), load_tokenizer(base), **sizes)
        return OpenAIHandler(
            engine, served_name, max_tokens_limit=max_tokens_limit, embedder=embedder,
            embed_name=embed, guard=guardrails, understanding=extras,
        )  # fmt: skip
    model, tokenizer = load_causal_lm(base)
    if resolved:
        from peft import PeftModel

        for index, (name, adapter) in enumerate(resolved.items()):
            if index == 0:
                model = PeftModel.from_pretrained(model, adapter.path, adapter_name=name)
            else:
                model.load_adapter(adapter.path, adapter_name=name)
        model.eval()
    if quantize == "int8":
        from lmforge.data.calibration import calibration_texts
        from lmforge.hub.smoothquant import quantize_int8

        model = quantize_int8(model, calibration_texts(tokenizer))
    engine = BACKENDS[backend](model, tokenizer, **sizes)
    return OpenAIHandler(
        engine, served_name, adapters=list(resolved), max_tokens_limit=max_tokens_limit,
        embedder=embedder, embed_name=embed, guard=guardrails, understanding=extras,
    )  # fmt: skip


def understanding_of(config: ServeConfig) -> UnderstandingSpec:
    """The grounding, classification and sentiment settings of ``config``."""
    return UnderstandingSpec(
        kb=config.kb, kb_top_k=config.kb_top_k, kb_hybrid=config.kb_hybrid,
        classifiers=dict(config.classifiers), sentiment=config.sentiment,
        escalate_after=config.escalate_after, negative_labels=tuple(config.negative_labels),
    )  # fmt: skip


def pick_backend(base: Any, backend: str, *, adapters: bool, quantize: str) -> str:
    """The backend ``backend`` names for ``base`` (``auto``: llamacpp for GGUF files).

    Raises:
        LmforgeError: an unknown backend, or options the backend cannot honour.
    """
    if backend == "auto":
        backend = "llamacpp" if base.kind == "gguf" else "torch"
    if backend not in BACKENDS:
        known = ", ".join(["auto", *sorted(BACKENDS)])
        raise LmforgeError(f"backend: unknown {backend!r}; known: {known}")
    if backend == "llamacpp":
        from lmforge.hub.load import import_llama_cpp

        import_llama_cpp()  # not installed: say how, before anything loads
        if base.kind != "gguf":
            raise LmforgeError(
                f"backend: llamacpp serves .gguf files; '{base.ref}' is a {base.kind} model "
                "(export it with `lmforge export REF --format gguf`)"
            )
        from lmforge.hub.llamacpp_check import ensure_llama_cpp_runs

        ensure_llama_cpp_runs(base.path)  # a build this CPU cannot run dies here, not later
        if adapters or quantize != "none":
            raise LmforgeError(
                "backend: llamacpp takes no adapters or quantize: merge adapters and "
                "pick the quantization at export (`lmforge export REF --format gguf --quant`)"
            )
    elif base.kind != "gguf" and (adapters or quantize != "none"):
        from lmforge.hub.quantized import is_quantized_dir, read_quant_meta

        if is_quantized_dir(base.path):
            scheme = read_quant_meta(base.path).get("scheme")
            raise LmforgeError(
                f"model: '{base.ref}' is already quantized ({scheme}, by lmforge compress): it "
                "takes no quantize, and LoRA adapters need the fp32 model. Serve it as it is, "
                "or serve its fp32 source with adapters or quantize."
            )
    return backend


def load_guard(spec: str | None) -> Guard | None:
    """``guard``: None (no filtering), ``default``, a bundled policy's name, or a file."""
    if spec is None:
        return None
    from lmforge.guard.policy import GuardPolicy

    return Guard(GuardPolicy.load(spec))


def resolve_served(
    ref: str, served_name: str, adapters: Mapping[str, str]
) -> tuple[Any, dict[str, Any]]:
    """Resolve the base and each adapter, checking the adapters belong to that base.

    Raises:
        LmforgeError: naming the adapter at fault (``adapters.NAME``) and the fix.
    """
    from lmforge.hub import resolve

    base = resolve(ref, progress=False)
    if base.kind == "gguf":
        from lmforge.hub.load import check_gguf

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


def _llamacpp(model: Any, tokenizer: Any, **options: Any) -> GenerationBackend:
    from lmforge.serve.llamacpp import llamacpp_engine

    return llamacpp_engine(model, tokenizer, **options)


register_backend("torch", Engine)
register_backend("llamacpp", _llamacpp)
