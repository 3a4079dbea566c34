"""The guard's encoder: MiniLM with the guard's LoRA adapter merged in, run one of three ways.

``classifier.json``'s ``encoder_quantization`` says which, and the thresholds in that file
were chosen with it:

- ``onnx-int8`` (what ``guard train`` writes by default): the merged encoder exported to
  ONNX with dynamic INT8 weights (``runtime.onnx.export_network``, as ``lmforge export
  --format onnx --quant int8`` does) and run by onnxruntime. The export takes about 15
  seconds; it is cached under
  ``$LMFORGE_HOME/cache/guard-onnx``, keyed by the adapter's files and the exporter's
  version, so it happens once per adapter.
- ``int8-dynamic``: torch, with every linear layer swapped for a dynamic INT8 one.
- None: torch in fp32.

Measured one message at a time on 2 cores (benchmarks/RESULTS.md, "guard: latency per
message by encoder and threads"): onnxruntime INT8 took p50 4.9 ms and p99 14.9 ms on 2
threads against torch INT8's 10.7 and 25.0; torch spends most of a short message in
per-module Python overhead.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel

from lmforge.errors import LmforgeError
from lmforge.home import lmforge_home
from lmforge.hub import resolve
from lmforge.hub.embed import SentenceEmbedder
from lmforge.hub.quantized import dynamic_int8_linear, int8_rows
from lmforge.runtime.onnx import export_network, is_onnx_dir

# how the encoder runs once loaded (classifier.json's "encoder_quantization"; None: fp32)
QUANTIZATIONS = (None, "int8-dynamic", "onnx-int8")
# bump when the export changes, so cached exports are made again
EXPORT_VERSION = "1"


def load_embedder(
    embed_model: str,
    adapter_dir: Path | None,
    quantization: str | None = None,
    *,
    threads: int | None = None,
) -> SentenceEmbedder:
    """A ``SentenceEmbedder`` whose encoder has the LoRA adapter in ``adapter_dir`` merged
    in (no adapter: the plain encoder), run as ``quantization`` says (module docstring).

    Args:
        threads: onnxruntime's threads for ``onnx-int8`` (``native_threads()`` by
            default); the torch encoders follow torch's setting.

    Raises:
        LmforgeError: a quantization not in ``QUANTIZATIONS``.
    """
    check_quantization(quantization, "guard: encoder quantization", "pass one of those")
    if quantization == "onnx-int8":
        return SentenceEmbedder(str(onnx_export(embed_model, adapter_dir)), threads=threads)
    embedder = SentenceEmbedder(embed_model)
    if adapter_dir is not None:
        with_adapter = PeftModel.from_pretrained(embedder.model, str(adapter_dir))
        embedder.model = with_adapter.merge_and_unload().eval()
    if quantization == "int8-dynamic":
        quantize_encoder(embedder.model)
    return embedder


def check_quantization(value: Any, where: str, fix: str) -> None:
    """Raise ``LmforgeError`` naming ``where`` and ``fix`` unless ``value`` is in
    ``QUANTIZATIONS``."""
    if value not in QUANTIZATIONS:
        raise LmforgeError(
            f"{where}: {value!r} is not one of {', '.join(map(str, QUANTIZATIONS))} "
            f"(None: fp32); {fix}"
        )


def onnx_export(embed_model: str, adapter_dir: Path | None) -> Path:
    """The ONNX INT8 export of ``embed_model`` with ``adapter_dir`` merged in: from the
    cache, or exported into it first.

    Two processes exporting the same adapter at once both succeed: each writes its own
    temporary folder and renames it into place (``home.atomic_dir``).
    """
    folder = lmforge_home() / "cache" / "guard-onnx" / export_key(embed_model, adapter_dir)
    if not is_onnx_dir(folder):
        # A plain line on stderr, as the zoo's first conversion: the first guarded message
        # would otherwise wait 15-30 s in silence.
        print(f"Exporting the guard's encoder to ONNX INT8 under {folder} (once)...",
              file=sys.stderr, flush=True)  # fmt: skip
        started = time.perf_counter()
        folder.parent.mkdir(parents=True, exist_ok=True)
        merged = load_embedder(embed_model, adapter_dir)  # fp32 torch
        export_network(merged.model.float().eval(), merged.tokenizer, folder, kind="encoder",
                       quant="int8", source=f"{embed_model} + {adapter_dir}",
                       pooling_from=resolve(embed_model, progress=False).path)  # fmt: skip
        print(f"Exported in {time.perf_counter() - started:.0f} s.", file=sys.stderr, flush=True)
    return folder


def export_key(embed_model: str, adapter_dir: Path | None) -> str:
    """A name for the export of ``embed_model`` + the adapter: a hash of the model name,
    the adapter's files, torch's version (its exporter writes the graph) and
    ``EXPORT_VERSION``."""
    digest = hashlib.sha256(f"{embed_model}\0{torch.__version__}\0{EXPORT_VERSION}".encode())
    if adapter_dir is not None:
        for item in sorted(p for p in Path(adapter_dir).rglob("*") if p.is_file()):
            digest.update(f"\0{item.relative_to(adapter_dir)}\0".encode())
            digest.update(item.read_bytes())
    return f"{embed_model}-{digest.hexdigest()[:16]}"


def quantize_encoder(model: Any) -> int:
    """Swap every ``nn.Linear`` of ``model`` for a dynamic INT8 one, in place: weights INT8
    per output channel, activations quantized per row on the fly (the layer of
    ``lmforge compress --method int8-dynamic``). Embeddings and layer norms stay fp32.
    Returns how many layers were swapped.
    """
    swapped = 0
    with torch.no_grad():
        for name, module in list(model.named_modules()):
            if not isinstance(module, torch.nn.Linear):
                continue
            q, scale = int8_rows(module.weight.detach().float())
            bias = module.bias.detach().float().clone() if module.bias is not None else None
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, dynamic_int8_linear(q, scale, bias))
            swapped += 1
    return swapped
