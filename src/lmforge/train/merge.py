"""Merge a LoRA adapter into its base model and save a plain transformers model."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

from lmforge.errors import LmforgeError
from lmforge.home import atomic_dir
from lmforge.hub import ResolvedModel, load_tokenizer, resolve
from lmforge.hub.load import load_classification_adapter, quiet_transformers


def merge_adapter(adapter_dir: Path, out_dir: Path) -> Path:
    """Write base + adapter, merged, to ``out_dir`` (with tokenizer and chat template).

    Raises:
        LmforgeError: ``adapter_dir`` is not an adapter, or its base cannot be found.
    """

    adapter = resolve(str(adapter_dir))
    if adapter.kind != "adapter" or adapter.base is None:
        raise LmforgeError(
            f"{adapter_dir} is a {adapter.kind} model, not a PEFT adapter directory; pass the "
            "directory holding adapter_config.json (a LoRA run's RUN_DIR/model)."
        )
    quiet_transformers()
    merged = load_adapter_model(adapter).merge_and_unload()
    tokenizer = load_tokenizer(adapter)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        config = adapter.path / "lmforge_config.yaml"
        if config.is_file():
            shutil.copy(config, tmp / "lmforge_config.yaml")
    return out_dir


def load_adapter_model(adapter: ResolvedModel) -> Any:
    """Base model with the head class the adapter was trained for, plus the adapter."""
    assert adapter.base is not None
    if adapter.task_type == "SEQ_CLS":
        return load_classification_adapter(adapter)
    if adapter.task_type == "CAUSAL_LM":
        base = AutoModelForCausalLM.from_pretrained(adapter.base.path)
    else:
        base = AutoModelForMaskedLM.from_pretrained(adapter.base.path)
    return PeftModel.from_pretrained(base, adapter.path).eval()
