"""Merge a LoRA adapter into its base model and save a plain transformers model (or, for a
UNet adapter, a diffusers pipeline folder)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

from lmforge.errors import LmforgeError
from lmforge.home import atomic_dir
from lmforge.hub import ResolvedModel, load_tokenizer, resolve
from lmforge.hub.diffusion import load_unet
from lmforge.hub.load import load_classification_adapter, quiet_transformers
from lmforge.hub.resolve import DIFFUSION


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
    if adapter.base.model_kind == DIFFUSION:
        return _merge_unet_adapter(adapter, Path(out_dir))
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


def _merge_unet_adapter(adapter: ResolvedModel, out_dir: Path) -> Path:
    """A diffusion pipeline folder: the base's parts with the adapter merged into its UNet."""
    assert adapter.base is not None
    base = adapter.base.path
    merged = PeftModel.from_pretrained(load_unet(base), adapter.path).merge_and_unload()
    with atomic_dir(out_dir) as tmp:
        for part in base.iterdir():
            if part.name != "unet":
                (shutil.copytree if part.is_dir() else shutil.copy2)(part, tmp / part.name)
        merged.save_pretrained(tmp / "unet")
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
