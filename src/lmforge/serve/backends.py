"""The serving-backend registry: what runs the generation model behind the API.

One entry per backend is the single source of its name, the one line the docs and
``lmforge serve --help`` show, the model kinds it serves (``auto`` picks the first
backend that serves the model's kind), and which options it honours. ``ServeConfig``,
the CLI and the error messages read them from here::

    register_backend(ServingBackend("my-backend", "what it runs", kinds=("causal-lm",),
                                    engine=my_engine))

``my_engine(base, adapters, config)`` gets the resolved model, its resolved LoRA
adapters by name and the whole ``ServeConfig``, and returns a ``GenerationBackend``
(``serve/requests.py``). Built-in backends name their code by import path, so reading
a serve config never imports torch or llama.cpp.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lmforge.config.section import unknown_name
from lmforge.errors import LmforgeError


@dataclass(frozen=True)
class ServingBackend:
    """A registered serving backend.

    Attributes:
        name: what ``backend`` (``--backend``) calls it.
        summary: one line for ``--help`` and the docs.
        kinds: the model kinds it serves (``causal-lm``, ``gguf``).
        engine: ``(base, adapters, config) -> GenerationBackend``, or its import path
            ``"package.module:function"``.
        preflight: ``(base, adapters=, quantize=) -> None``, run before anything loads;
            raises ``LmforgeError`` when the backend cannot serve it here (not installed, a
            build this CPU cannot run, a model already quantized).
        adapters: serves LoRA adapters by name.
        quantize: honours ``quantize: int8``.
        export_hint: how to make a model it serves from one it does not.
        options_hint: what to do instead of the options it does not honour.
    """

    name: str
    summary: str
    kinds: tuple[str, ...]
    engine: Callable[..., Any] | str
    preflight: Callable[..., None] | str | None = None
    adapters: bool = True
    quantize: bool = True
    export_hint: str = ""
    options_hint: str = ""

    def load(self, base: Any, adapters: dict[str, Any], config: Any) -> Any:
        """The engine serving ``base`` (with ``adapters``) under ``config``."""
        return _code(self.engine)(base, adapters, config)

    def check(self, base: Any, *, adapters: bool, quantize: str) -> None:
        """Refuse a model or options this backend cannot serve, before anything loads.

        Raises:
            LmforgeError: naming ``backend`` and the fix.
        """
        if base.kind not in self.kinds:
            served = " and ".join(_KIND_WORDS.get(kind, kind) for kind in self.kinds)
            hint = f" ({self.export_hint})" if self.export_hint else ""
            raise LmforgeError(
                f"backend: {self.name} serves {served}; '{base.ref}' is a {base.kind} model{hint}"
            )
        honoured = {"adapters": self.adapters, "quantize": self.quantize}
        unsupported = [option for option, yes in honoured.items() if not yes]
        if (adapters and not self.adapters) or (quantize != "none" and not self.quantize):
            raise LmforgeError(
                f"backend: {self.name} takes no {' or '.join(unsupported)}: {self.options_hint}"
            )
        if self.preflight is not None:
            _code(self.preflight)(base, adapters=adapters, quantize=quantize)


_KIND_WORDS = {
    "gguf": ".gguf files",
    "causal-lm": "causal language models",
    "adapter": "LoRA adapters",
    "encoder": "encoders",
    "classifier": "classifiers",
    "clip": "text-image models",
}
_BACKENDS: dict[str, ServingBackend] = {}


def register_backend(backend: ServingBackend) -> ServingBackend:
    """Add ``backend`` to the registry (replacing one of the same name)."""
    _BACKENDS[backend.name] = backend
    return backend


def backend_names() -> tuple[str, ...]:
    """Every registered backend, in registration order (``auto`` picks the first fit)."""
    return tuple(_BACKENDS)


def pick_backend(base: Any, name: str, *, adapters: bool, quantize: str) -> ServingBackend:
    """The backend ``name`` names for the resolved model ``base`` (``auto``: the first
    registered backend that serves its kind), checked against the options.

    Raises:
        LmforgeError: an unknown backend, or a model or options it cannot serve.
    """
    if name == "auto":
        fits = [backend for backend in _BACKENDS.values() if base.kind in backend.kinds]
        if not fits:
            raise LmforgeError(
                f"model: no serving backend serves {base.kind} models ('{base.ref}'); "
                f"the backends are {', '.join(_BACKENDS)}"
            )
        backend = fits[0]
    elif name in _BACKENDS:
        backend = _BACKENDS[name]
    else:
        raise unknown_name("backend", "backend", name, ["auto", *sorted(_BACKENDS)])
    backend.check(base, adapters=adapters, quantize=quantize)
    return backend


def backend_help() -> str:
    """``backend``'s description: ``auto`` and each registered backend's summary."""
    listed = "; ".join(f"{b.name}: {b.summary}" for b in _BACKENDS.values())
    return f"auto: the first of these that serves the model's kind; {listed}."


def markdown_table() -> str:
    """The backends as a markdown table (docs/serving.md holds a copy a test compares)."""
    lines = ["| backend | what it runs | model kinds | LoRA adapters | `quantize: int8` |",
             "|---|---|---|---|---|"]  # fmt: skip
    for b in _BACKENDS.values():
        kinds = ", ".join(b.kinds)
        lines.append(f"| `{b.name}` | {b.summary} | {kinds} | {_yes(b.adapters)} | "
                     f"{_yes(b.quantize)} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _code(code: Callable[..., Any] | str) -> Callable[..., Any]:
    if isinstance(code, str):
        module, _, function = code.partition(":")
        return getattr(importlib.import_module(module), function)
    return code


# auto takes the first fit: llama.cpp for .gguf files, torch for the rest
register_backend(ServingBackend(
    "llamacpp", "GGUF files through llama.cpp (quantized at export)",
    kinds=("gguf",), engine="lmforge.serve.llamacpp:llamacpp_engine",
    preflight="lmforge.serve.llamacpp:preflight", adapters=False, quantize=False,
    export_hint="export it with `lmforge export REF --format gguf`",
    options_hint="merge adapters and pick the quantization at export "
    "(`lmforge export REF --format gguf --quant`)",
))  # fmt: skip
register_backend(ServingBackend(
    "torch", "transformers models in PyTorch, LoRA adapters by name, int8 "
    "(a .gguf file is de-quantized)",
    kinds=("causal-lm", "adapter", "encoder", "classifier", "clip", "gguf"),
    engine="lmforge.serve.server:torch_engine", preflight="lmforge.serve.server:torch_preflight",
))  # fmt: skip
