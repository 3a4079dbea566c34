"""``lmforge compress``: a chain of methods from a source model to a smaller one.

Each method turns one model directory into a new one, so chains compose:
``distill,prune-vocab,int8-dynamic`` distills a student, drops the vocabulary a domain
corpus never uses, then quantizes. A quantization must come last (its output holds
integer weights that no other method reads). The run is one MLflow run (experiment
``compress``) tagged with its source, and ends with a table comparing the source in
fp32 with the result: size, speed on this CPU and held-out quality
(``compress/measure.py``).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmforge.compress import measure as m
from lmforge.compress.config import CompressConfig
from lmforge.compress.corpus import corpus_texts
from lmforge.compress.distill import trained_validation
from lmforge.compress.export import markdown_table, source_tags
from lmforge.compress.methods import MethodStep, check_chain, compress_method
from lmforge.data.bundled import dataset_path
from lmforge.data.records import read_records
from lmforge.errors import LmforgeError
from lmforge.home import atomic_dir
from lmforge.hub import resolve
from lmforge.hub.classifier import TextClassifier
from lmforge.hub.load import load_model
from lmforge.hub.quantized import QUANT_FILE, is_quantized_dir, read_quant_meta
from lmforge.hub.resolve import ADAPTER, GGUF
from lmforge.progress import ProgressFn
from lmforge.track import start_run
from lmforge.train.merge import merge_adapter

QUALITY = {"causal-lm": "held-out perplexity", "classifier": "accuracy", "encoder": "cosine"}


@dataclass
class CompressResult:
    path: Path
    run_id: str | None
    rows: list[dict[str, str]] = field(default_factory=list)


def parse_methods(text: str) -> list[str]:
    """``"distill,int8"`` -> ``["distill", "int8"]``, checked as a chain.

    Raises:
        LmforgeError: an unknown method, one twice, or a quantization before another
            method (naming ``methods[i]``).
    """
    methods = [method.strip() for method in text.split(",") if method.strip()]
    problems = check_chain(methods)
    if problems:
        raise LmforgeError("\n".join(problems))
    return methods


def compress_model(
    config: CompressConfig, out: Path, *, track: bool = True, progress: ProgressFn | None = None
) -> CompressResult:
    """Run ``config.methods`` in order on ``config.model`` and write the result to ``out``;
    ``progress`` hears of each method (and the measurement) as it starts, and the end.

    Raises:
        LmforgeError: an already-quantized or GGUF source, a method the model kind does
            not support, or a missing corpus; nothing is written to ``out`` then.
    """
    problems = config.needs()
    if problems:
        raise LmforgeError("\n".join(problems))
    ref, methods = config.model, config.methods
    resolved = resolve(ref)
    kind = _check_source(ref, resolved)
    for index, name in enumerate(methods):
        if kind not in compress_method(name).kinds:
            raise LmforgeError(f"methods[{index}]: {name} does not handle a {kind} ('{ref}')")
    out = Path(out)
    tags = source_tags("compress", ref, resolved, out)
    with start_run("compress", run_name="compress-" + "+".join(methods), tags=tags,
                   enabled=track) as tracker:  # fmt: skip
        tracker.log_params({"source": ref, "methods": ",".join(methods), "kind": kind,
                            "data": str(config.data or ""),
                            "eval_data": str(config.eval_data or "")})  # fmt: skip
        with tempfile.TemporaryDirectory(prefix=".compress-", dir=_work_parent(out)) as work:
            current = _fp32_dir(resolved, Path(work) / "source")
            source_dir = current
            stages = len(methods) + int(config.measure)
            for index, name in enumerate(methods):
                if progress is not None:
                    progress(index, stages, name)
                step = MethodStep(current, Path(work) / f"{index}-{name}", ref, config, tracker,
                                  track)  # fmt: skip
                current = compress_method(name).run(step)
            _record_chain(current, ref, methods)
            with atomic_dir(out) as tmp:
                for item in current.iterdir():
                    shutil.move(str(item), tmp / item.name)
            rows: list[dict[str, str]] = []
            if config.measure:
                if progress is not None:
                    progress(len(methods), stages, "measuring")
                rows = _measure(kind, source_dir, out, config, tracker)
            if progress is not None:
                progress(stages, stages, "done")
        if rows:
            report = out / "REPORT.md"
            report.write_text(markdown_table(rows), encoding="utf-8")
            tracker.log_artifact(report)
        return CompressResult(out, tracker.run_id, rows)


def _check_source(ref: str, resolved: Any) -> str:
    if resolved.kind == GGUF:
        raise LmforgeError(
            f"'{ref}' is a GGUF file, already quantized for llama.cpp; compress the "
            "transformers model it was exported from (a zoo name or model directory)."
        )
    if is_quantized_dir(resolved.path):
        meta = read_quant_meta(resolved.path)
        raise LmforgeError(
            f"'{ref}' is already quantized ({meta.get('scheme')}, see {resolved.path}/"
            f"lmforge_compress.json); quantizing it again would compound the rounding. "
            f"Compress its fp32 source instead: {meta.get('source', 'the model it came from')}."
        )
    kind = str(resolved.model_kind)
    if kind not in QUALITY:
        raise LmforgeError(f"model: compress handles causal LMs, classifiers and encoders; "
                           f"'{ref}' is a {kind}")  # fmt: skip
    return kind


def _work_parent(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    return out.parent


def _fp32_dir(resolved: Any, target: Path) -> Path:
    """The source as a plain transformers directory (a LoRA adapter merged in)."""
    if resolved.kind == ADAPTER:
        merge_adapter(resolved.path, target)
        return target
    return Path(resolved.path)


def _record_chain(path: Path, ref: str, methods: list[str]) -> None:
    """Every compressed directory says where it came from and how."""
    meta = read_quant_meta(path)
    meta.update({"source": ref, "methods": methods})
    (path / QUANT_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def _measure(
    kind: str, source: Path, out: Path, config: CompressConfig, tracker: Any
) -> list[dict[str, str]]:
    source_model, tokenizer = load_model(resolve(str(source)))
    result_model, result_tokenizer = load_model(resolve(str(out)))
    source_label, result_label = f"{config.model} (fp32)", "+".join(config.methods)
    source_size, result_size = _weights_size(source), _weights_size(out)
    if kind == "causal-lm":
        before: Any = m.measure_torch(source_model, tokenizer, source_label, source_size)
        after: Any = m.measure_torch(result_model, result_tokenizer, result_label, result_size)
    elif kind == "classifier":
        records = _eval_records(source, config)
        before = m.measure_classifier(source_model, tokenizer, source_label, source_size, records)
        after = m.measure_classifier(result_model, result_tokenizer, result_label, result_size,
                                     records)  # fmt: skip
        before.quality = classifier_accuracy(source, records)
        after.quality = classifier_accuracy(out, records)
    else:
        texts = _eval_texts(config)
        before = m.measure_encoder(source_model, tokenizer, source_label, source_size, texts)
        after = m.measure_encoder(result_model, result_tokenizer, result_label, result_size,
                                  texts, reference=source_model)  # fmt: skip
    tracker.log_metrics({**before.metrics("source"), **after.metrics("compressed")})
    return [before.row(before), after.row(before)]


def _weights_size(path: Path) -> int:
    """Bytes of the weight files (safetensors/bin), what a deployment ships."""
    files = [f for f in path.rglob("*") if f.suffix in {".safetensors", ".bin"}]
    return sum(f.stat().st_size for f in files)


def _eval_records(source: Path, config: CompressConfig) -> list[dict[str, Any]]:
    path = config.eval_data or trained_validation(source)
    if path is None:
        raise LmforgeError(
            "eval_data: measuring a classifier needs labeled held-out data (text + label); "
            "give a file, or set measure: false"
        )
    records, _ = read_records(Path(path), format="labeled", source_name="eval_data")
    return records


def classifier_accuracy(model_dir: Path, records: list[dict[str, Any]]) -> float:
    """Accuracy of the classifier in ``model_dir`` on labeled ``records``, scored as
    ``lmforge eval --task classification`` scores it (``TextClassifier``: its batches,
    its truncation).

    The table's speed runs in batches of 32, and a dynamic INT8 model quantizes each
    batch's activations with one scale for the whole batch, padding included, so a
    review's label can depend on which reviews share its batch: the compressed sentiment
    classifier of 2026-12-02 got 170/210 challenge reviews right in batches of 32 and
    168/210 in ``lmforge eval``'s batches of 64 (fp32 gives the same labels in any
    batching). Scoring accuracy one way makes the two commands report the same figure.
    """
    classifier = TextClassifier(str(model_dir))
    probabilities = classifier.predict_proba([str(r["text"]) for r in records])  # (N, L)
    predicted = [classifier.labels[int(row.argmax())] for row in probabilities]
    right = sum(p == str(r["label"]) for p, r in zip(predicted, records, strict=True))
    return right / len(records)


def _eval_texts(config: CompressConfig) -> list[str]:
    path = config.eval_data or dataset_path("sentiment", "test")
    return corpus_texts(Path(path), None)[:256]
