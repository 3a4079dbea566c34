"""The compress-method registry: each method's name, what it needs and the code it runs.

One entry per method is the single source of its name, the one line ``--help`` and the
docs show, the model kinds it handles, whether it quantizes (a quantization comes last
in a chain) and whether it reads a corpus (``data``). ``CompressConfig``, the CLI and
the error messages read them from here. A method turns one model directory into a new
one, so methods chain::

    register_method(CompressMethod("my-method", "what it does", run=my_function))

``my_function(step)`` gets a ``MethodStep`` and returns the directory it wrote. Built-in
methods name their code by import path (``compress/steps.py``), so reading a compress
config never imports torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmforge.config.section import did_you_mean
from lmforge.errors import LmforgeError

KINDS = ("causal-lm", "classifier", "encoder")  # model kinds compress measures


@dataclass
class MethodStep:
    """One method's turn in a chain: the directory it reads and the one it writes.

    Attributes:
        source: the current model directory (fp32, adapters merged).
        out: where to write the result.
        ref: the chain's source model as the user named it (recorded in the result).
        config: the whole ``CompressConfig``.
        tracker: the compress run's tracker (``log_params``, ``log_metrics``).
    """

    source: Path
    out: Path
    ref: str
    config: Any
    tracker: Any
    track: bool = True


@dataclass(frozen=True)
class CompressMethod:
    """A registered compress method.

    Attributes:
        name: what ``methods`` and ``--method`` call it.
        summary: one line for ``--help`` and the docs.
        code: the function that writes ``step.out`` (or a directory inside it) and returns
            that directory, or its import path ``"package.module:function"``.
        kinds: model kinds it handles.
        quantization: it writes integer weights, so nothing can follow it in a chain.
        corpus: what it reads ``data`` for, or ``""`` when it needs none.
    """

    name: str
    summary: str
    code: Callable[[MethodStep], Path] | str
    kinds: tuple[str, ...] = KINDS
    quantization: bool = False
    corpus: str = ""

    def run(self, step: MethodStep) -> Path:
        code = self.code
        if isinstance(code, str):
            module, _, function = code.partition(":")
            code = getattr(importlib.import_module(module), function)
        return Path(code(step))


_METHODS: dict[str, CompressMethod] = {}


def register_method(method: CompressMethod) -> CompressMethod:
    """Add ``method`` to the registry (replacing one of the same name)."""
    _METHODS[method.name] = method
    return method


def method_names() -> tuple[str, ...]:
    """Every registered method, in registration order."""
    return tuple(_METHODS)


def quantization_names() -> tuple[str, ...]:
    return tuple(name for name, method in _METHODS.items() if method.quantization)


def compress_method(name: str, where: str = "methods") -> CompressMethod:
    """The method called ``name``.

    Raises:
        LmforgeError: no such method, naming the setting ``where`` and the valid names.
    """
    if name not in _METHODS:
        hint = did_you_mean(name, _METHODS)
        raise LmforgeError(f"{where}: unknown method {name!r}; choose from "
                           f"{', '.join(_METHODS)}" + (f" ({hint})" if hint else ""))  # fmt: skip
    return _METHODS[name]


def check_chain(methods: list[str]) -> list[str]:
    """Problems with ``methods`` as a chain, one line each naming ``methods[i]``."""
    if not methods:
        return [f"methods: is empty; give one or more of {', '.join(_METHODS)}"]
    problems = []
    for index, name in enumerate(methods):
        try:
            compress_method(name, where=f"methods[{index}]")
        except LmforgeError as error:
            problems.append(str(error))
    if problems:
        return problems
    for index, name in enumerate(methods):
        if name in methods[:index]:
            problems.append(f"methods[{index}]: names {name!r} a second time; each method runs "
                            "once")  # fmt: skip
    quantizations = [i for i, name in enumerate(methods) if _METHODS[name].quantization]
    if len(quantizations) > 1 or (quantizations and quantizations[0] != len(methods) - 1):
        problems.append(
            f"methods[{quantizations[0]}]: one quantization ({', '.join(quantization_names())}) "
            "at most, and last (nothing reads a quantized model's integer weights), e.g. "
            "[distill, prune-vocab, int8-dynamic]"
        )
    return problems


def markdown_table() -> str:
    """The methods as a markdown table (docs/compress.md holds a copy a test compares)."""
    lines = ["| method | what it does | needs `data` |", "|---|---|---|"]
    for method in _METHODS.values():
        lines.append(f"| `{method.name}` | {method.summary} | {method.corpus} |")
    return "\n".join(lines) + "\n"


# docs/compress.md holds the table these make (markdown_table)
register_method(CompressMethod(
    "distill",
    "a student with `student_layers` (3) of the model's layers, taken evenly from first to "
    "last, learns the model's temperature-scaled outputs plus the hard labels: a run of "
    "the `distill` task in the training engine",
    "lmforge.compress.steps:distill_step",
    corpus="labeled text (classifier), text or dialogs (causal LM) the student learns from",
))  # fmt: skip
register_method(CompressMethod(
    "prune-vocab",
    "keeps the tokens `data` uses, the special tokens and the single characters; slices "
    "the embedding (and a language-model head) and rewrites the tokenizer",
    "lmforge.compress.steps:prune_vocab_step",
    corpus="a domain corpus whose tokens are kept",
))  # fmt: skip
register_method(CompressMethod(
    "int8-dynamic",
    "INT8 weights per output channel and INT8 activations quantized per row on the fly "
    "(fbgemm's dynamic quantization); LLaMA models get SmoothQuant first "
    "(activation outliers moved into the weights, calibrated on `data` or the bundled "
    "dialogs) and fused q/k/v and gate/up projections",
    "lmforge.compress.steps:int8_dynamic_step",
    quantization=True,
))  # fmt: skip
register_method(CompressMethod(
    "int8", "weight-only INT8 per output channel, fp32 activations",
    "lmforge.compress.steps:int8_step", quantization=True,
))  # fmt: skip
register_method(CompressMethod(
    "int4",
    "weight-only INT4 in groups of 32 with a scale and an offset per group (llama.cpp's "
    "Q4_1 layout)",
    "lmforge.compress.steps:int4_step", quantization=True,
))  # fmt: skip
