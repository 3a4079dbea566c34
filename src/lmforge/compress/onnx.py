"""``lmforge export --format onnx``: check and load the source model, then export it
through ``lmforge.runtime.onnx`` (which also runs the result)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lmforge.errors import LmforgeError
from lmforge.hub import load_classifier, load_encoder
from lmforge.hub.resolve import ADAPTER, ENCODER, ResolvedModel
from lmforge.runtime.onnx import OUTPUTS, QUANTS, export_network, import_onnxruntime


def export_onnx(resolved: ResolvedModel, out: Path, *, quant: str | None) -> None:
    """Export an encoder or sequence classifier to the ONNX directory ``out``.

    Args:
        resolved: the source model, from ``lmforge.hub.resolve``.
        out: the directory to write; an existing one is replaced only once the export
            has loaded in onnxruntime.
        quant: ``int8`` (onnxruntime dynamic quantization) or ``none``/None (fp32).

    Raises:
        LmforgeError: a causal LM or adapter, an unknown ``quant``, a missing package, or
            an export onnxruntime cannot run.
    """
    quant = quant or "none"
    if quant not in QUANTS:
        raise LmforgeError(
            f"quant: for format onnx must be one of {', '.join(QUANTS)}, not '{quant}'"
        )
    kind = resolved.model_kind
    if kind not in OUTPUTS:
        raise LmforgeError(
            f"'{resolved.ref}' is a {kind} model; ONNX export covers encoders and sequence "
            "classifiers. Export causal language models in format gguf."
        )
    if resolved.kind == ADAPTER:  # loading the base alone would silently drop the adapter
        raise LmforgeError(
            f"'{resolved.ref}' is a PEFT adapter; merge it first with `lmforge export "
            f"{resolved.ref} --format hf --out MERGED`, then export MERGED with --format onnx."
        )
    out = Path(out)
    if out.resolve() == resolved.path.resolve():
        raise LmforgeError(f"out: {out} is the source model's own directory; pass a new directory.")
    import_onnxruntime(export=True)
    network, tokenizer = _load(resolved)
    export_network(network, tokenizer, out, kind=kind, quant=quant, source=resolved.ref,
                   pooling_from=resolved.path)  # fmt: skip


def _load(resolved: ResolvedModel) -> tuple[Any, Any]:
    """The source network in fp32 and eval mode, and its tokenizer."""
    load = load_encoder if resolved.model_kind == ENCODER else load_classifier
    network, tokenizer = load(resolved)
    return network.to(torch.float32).eval(), tokenizer
