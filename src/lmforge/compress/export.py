"""``lmforge export``: write a model in another format, measured and tracked.

- ``hf``: a plain transformers directory (a LoRA adapter is merged into its base).
- ``gguf``: one file for llama.cpp (LLaMA architecture; adapters merged first), in
  ``f32``, ``f16``, ``q8_0``, ``q4_1``, ``q4_0`` or ``q4_0_m`` (a q4_0/q4_1 mix).
- ``onnx``: an encoder or sequence classifier for onnxruntime (``model.onnx``, its
  tokenizer and config), fp32 (``none``) or dynamic ``int8`` (``compress/onnx.py``).

Each export is an MLflow run (experiment ``compress``) tagged with its source model, and
for causal LMs ends with a table comparing the source in fp32 with the export: size,
batch-1 decode speed on this CPU and held-out perplexity (``compress/measure.py``).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmforge.compress.measure import measure_gguf, measure_torch
from lmforge.compress.onnx import export_onnx
from lmforge.compress.to_gguf import export_gguf
from lmforge.errors import LmforgeError
from lmforge.home import atomic_dir
from lmforge.hub import load_causal_lm, resolve
from lmforge.hub.llamacpp_check import ensure_llama_cpp_runs
from lmforge.hub.quantized import is_quantized_dir, read_quant_meta
from lmforge.track import start_run
from lmforge.train.merge import merge_adapter

FORMATS = ("hf", "gguf", "onnx")
DEFAULT_QUANT = {"gguf": "q8_0", "onnx": "none"}


@dataclass
class ExportResult:
    path: Path
    run_id: str | None
    rows: list[dict[str, str]] = field(default_factory=list)


def export_model(
    ref: str,
    fmt: str,
    out: Path,
    *,
    quant: str | None = None,
    measure: bool = True,
    track: bool = True,
) -> ExportResult:
    """Export model ``ref`` to ``out`` in format ``fmt``.

    Raises:
        LmforgeError: an unknown format, a quantization the format does not have, or a
            model the format cannot hold.
    """

    if fmt not in FORMATS:
        raise LmforgeError(f"format: must be one of {', '.join(FORMATS)}, not '{fmt}'")
    if quant is not None and fmt not in DEFAULT_QUANT:
        raise LmforgeError(f"quant: applies to format gguf and onnx only, not '{fmt}'")
    resolved = resolve(ref)
    if fmt != "hf" and resolved.kind != "gguf" and is_quantized_dir(resolved.path):
        raise LmforgeError(
            f"'{ref}' is quantized by lmforge compress; format {fmt!r} converts fp32 "
            f"weights. Export its fp32 source instead: "
            f"{read_quant_meta(resolved.path).get('source', 'the model it came from')}."
        )
    out = Path(out)
    causal = resolved.model_kind in {"causal-lm", "gguf"}
    if fmt == "gguf" and not causal:
        raise LmforgeError(
            f"'{ref}' is a {resolved.model_kind} model; GGUF export holds causal language "
            "models (LLaMA architecture)."
        )
    quant = quant or DEFAULT_QUANT.get(fmt)
    tags = source_tags("export", ref, resolved, out)
    with start_run("compress", run_name=f"export-{fmt}" + (f"-{quant}" if quant else ""),
                   tags=tags, enabled=track) as tracker:  # fmt: skip
        tracker.log_params({"source": ref, "format": fmt, "quant": quant or "none"})
        rows: list[dict[str, str]] = []
        if fmt == "hf":
            _export_hf(resolved, out)
            if measure and causal:
                rows = _measure_hf(out)
        elif fmt == "onnx":
            _export_onnx(resolved, out, quant)
        else:
            model, tokenizer = load_causal_lm(resolved)
            model = _merged(model)

            export_gguf(model, tokenizer, out, quant or "q8_0")
            if measure:
                rows = _measure_gguf(model, tokenizer, ref, out, quant or "q8_0", tracker)
        if rows:
            report = out.parent / f"{out.name}.report.md" if fmt == "gguf" else out / "REPORT.md"
            report.write_text(markdown_table(rows), encoding="utf-8")
            tracker.log_artifact(report)
        return ExportResult(out, tracker.run_id, rows)


def source_tags(command: str, ref: str, resolved: Any, out: Path) -> dict[str, str]:
    """MLflow tags linking a compress/export run to its source model and, when the source
    came out of an lmforge training run, to that run (``lmforge.source_run_id``)."""
    tags = {"lmforge.command": command, "lmforge.source_model": ref,
            "lmforge.source_path": str(resolved.path), "lmforge.output_dir": str(out)}  # fmt: skip
    run_id = ref[len("run:") :] if ref.startswith("run:") else None
    summary = Path(resolved.path).parent / "metrics.json"  # RUN_DIR/model's run summary
    if run_id is None and summary.is_file():
        run_id = json.loads(summary.read_text(encoding="utf-8")).get("run_id")
    if run_id:
        tags["lmforge.source_run_id"] = str(run_id)
    return tags


def _export_onnx(resolved: Any, out: Path, quant: str | None) -> None:
    """ONNX of an encoder or classifier; a classifier's LoRA adapter is merged first."""
    if resolved.kind == "adapter" and resolved.task_type == "SEQ_CLS":
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".merge-", dir=out.parent) as work:
            merged = merge_adapter(resolved.path, Path(work) / "merged")
            export_onnx(resolve(str(merged)), out, quant=quant)
        return
    export_onnx(resolved, out, quant=quant)  # refuses causal LMs and encoder adapters


def _merged(model: Any) -> Any:
    """A peft model with its adapters folded in; any other model as it is."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


def _export_hf(resolved: Any, out: Path) -> None:

    if resolved.kind == "adapter":
        merge_adapter(resolved.path, out)
        return
    if resolved.kind == "gguf":
        model, tokenizer = load_causal_lm(resolved)
        with atomic_dir(out) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        return
    with atomic_dir(out) as tmp:  # already a transformers directory: copy its files
        for item in resolved.path.iterdir():
            if item.name.startswith(".") or item.name == "lmforge-cache.json":
                continue
            copy = shutil.copytree if item.is_dir() else shutil.copy2
            copy(item, tmp / item.name)


def _measure_hf(out: Path) -> list[dict[str, str]]:

    model, tokenizer = load_causal_lm(resolve(str(out)))
    row = measure_torch(model, tokenizer, "hf (fp32)", _size(out))
    return [row.row(row)]


def _measure_gguf(
    model: Any, tokenizer: Any, ref: str, out: Path, quant: str, tracker: Any
) -> list[dict[str, str]]:

    try:
        ensure_llama_cpp_runs(out)
    except LmforgeError as error:
        raise LmforgeError(
            f"{out} is written and complete, but measuring it needs llama.cpp, which cannot "
            f"run here (export again without measuring: measure=False, `lmforge export ... "
            f"--no-measure`). {error}"
        ) from None
    fp32_bytes = 4 * sum(p.numel() for p in model.parameters())
    source = measure_torch(model, tokenizer, f"{ref} (fp32, torch)", fp32_bytes)
    exported = measure_gguf(out, tokenizer, f"gguf {quant} (llama.cpp)")
    tracker.log_metrics({**source.metrics("source"), **exported.metrics("export")})
    return [source.row(source), exported.row(source)]


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def markdown_table(rows: list[dict[str, str]]) -> str:
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row[h] for h in header) + " |" for row in rows]
    return "\n".join(lines) + "\n"
