"""Quantize a model directory into a new one that ``lmforge serve``/``generate`` load.

- ``int8-dynamic``: INT8 weights and INT8 activations quantized per row (fbgemm's
  dynamic quantization, ``hub/quantized.linear_rows``); for LLaMA models SmoothQuant
  first moves activation outliers into the weights (``hub/smoothquant.py``), calibrated
  on a few texts.
- ``int8``: weight-only INT8, fp32 activations.
- ``int4``: weight-only INT4 in groups of 32.

Causal LMs get q/k/v and gate/up fused into one matmul each. The layer formats and the
on-disk layout live in ``hub/quantized.py``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from lmforge.errors import LmforgeError
from lmforge.hub.quantized import (
    QUANT_FILE,
    SCHEMES,
    WEIGHTS_FILE,
    fuse_projections,
    quantize_layers,
    quantized_state,
)
from lmforge.hub.smoothquant import ALPHA, smooth


def quantize_model(
    model: Any,
    scheme: str,
    *,
    calibration: Sequence[Sequence[int]] = (),
) -> tuple[Any, dict[str, Any]]:
    """Quantize a loaded fp32 model in place.

    Args:
        model: a transformers model (causal LM, encoder or classifier), adapters merged.
        scheme: ``int8-dynamic``, ``int8`` or ``int4``.
        calibration: token ids of a few in-domain texts (causal LMs, ``int8-dynamic``).

    Returns:
        ``(model, meta)``: the model and what ``lmforge_compress.json`` records.
    """

    if scheme not in SCHEMES:
        raise LmforgeError(f"scheme: quantization must be one of {', '.join(SCHEMES)}, "
                           f"not '{scheme}'")  # fmt: skip
    llama = getattr(model.config, "model_type", "") == "llama"
    meta: dict[str, Any] = {"scheme": scheme, "fused": llama}
    if llama and scheme == "int8-dynamic" and calibration:
        smooth(model, calibration)  # weight-only schemes keep activations fp32: no need
        meta["smoothquant_alpha"] = ALPHA
    if llama:
        fuse_projections(model)
    head = _classifier_head(model)
    outliers = "weights" if "smoothquant_alpha" in meta else "activations"
    meta["layers"] = quantize_layers(model, scheme, skip=head, outliers=outliers)
    return model, meta


def _classifier_head(model: Any) -> tuple[str, ...]:
    """A sequence classifier's final layer stays fp32: it is tiny and sets the labels."""
    names = [name for name, _ in model.named_modules()]
    return tuple(name for name in names if name in {"classifier", "score", "classifier.out_proj"})


_TOKENIZER_FILES = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                    "vocab.txt", "vocab.json", "merges.txt", "chat_template.jinja"}  # fmt: skip


def copy_extras(source: Path, target: Path) -> None:
    """Files beside the weights that describe the model (sentence-transformers pooling,
    the training config) travel with it."""
    for item in Path(source).iterdir():
        if item.name.startswith(".") or (target / item.name).exists():
            continue
        weights = item.suffix in {".safetensors", ".bin"} or item.name.endswith(".index.json")
        if weights or item.name in _TOKENIZER_FILES or item.name == "REPORT.md":
            continue
        copy = shutil.copytree if item.is_dir() else shutil.copy2
        copy(item, target / item.name)


def save_quantized(model: Any, tokenizer: Any, meta: dict[str, Any], out: Path) -> None:
    """Write config, tokenizer, integer weights and ``lmforge_compress.json`` into ``out``
    (an empty directory the caller renames into place)."""
    model.config.save_pretrained(out)
    generation = getattr(model, "generation_config", None)
    if generation is not None and getattr(model, "can_generate", lambda: False)():
        generation.save_pretrained(out)
    tokenizer.save_pretrained(out)
    save_file(quantized_state(model, meta["layers"]), str(out / WEIGHTS_FILE),
              metadata={"format": "pt", "lmforge": "quantized"})  # fmt: skip
    (out / QUANT_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
