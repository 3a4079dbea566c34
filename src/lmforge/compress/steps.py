"""The built-in compress methods' code, each a function of one ``MethodStep``
(registered by import path in ``compress/methods.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lmforge.compress.corpus import corpus_texts
from lmforge.compress.distill import distill
from lmforge.compress.methods import MethodStep
from lmforge.compress.prune_vocab import prune_vocabulary
from lmforge.compress.quantize import copy_extras, quantize_model, save_quantized
from lmforge.data.calibration import calibration_texts
from lmforge.home import atomic_dir
from lmforge.hub import resolve
from lmforge.hub.load import load_model


def int8_dynamic_step(step: MethodStep) -> Path:
    return _quantize(step, "int8-dynamic")


def int8_step(step: MethodStep) -> Path:
    return _quantize(step, "int8")


def int4_step(step: MethodStep) -> Path:
    return _quantize(step, "int4")


def _quantize(step: MethodStep, scheme: str) -> Path:
    model, tokenizer = load_model(resolve(str(step.source)))
    calibration = _calibration(tokenizer, step.config) if scheme == "int8-dynamic" else []
    model, meta = quantize_model(model, scheme, calibration=calibration)
    with atomic_dir(step.out) as tmp:
        save_quantized(model, tokenizer, {**meta, "source": step.ref}, tmp)
        copy_extras(step.source, tmp)  # sentence-transformers pooling, the training config
    return step.out


def _calibration(tokenizer: Any, config: Any) -> list[list[int]]:
    """Token ids of a few in-domain texts: ``data`` when given, else the bundled dialogs."""
    if config.data is None:
        return calibration_texts(tokenizer)
    texts = corpus_texts(config.data, tokenizer)[:32]
    return [list(tokenizer(t, add_special_tokens=False)["input_ids"])[:512] for t in texts]


def prune_vocab_step(step: MethodStep) -> Path:
    kept = prune_vocabulary(step.source, step.config.data, step.out)
    step.tracker.log_metrics({"prune_vocab/kept_tokens": float(kept)})
    return step.out


def distill_step(step: MethodStep) -> Path:
    kind = str(resolve(str(step.source)).model_kind)
    model_dir, run_id = distill(step.source, step.out, step.config, kind=kind, track=step.track)
    step.tracker.log_params({"distill_run_id": run_id})
    return model_dir
