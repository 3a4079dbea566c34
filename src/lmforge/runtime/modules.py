"""Helpers on loaded torch modules that training, compression and serving share."""

from __future__ import annotations

from typing import Any


def unwrap(model: Any) -> Any:
    """The plain transformers model inside DDP/FSDP/peft wrappers (LoRA layers stay in)."""
    while hasattr(model, "module") and not hasattr(model, "get_output_embeddings"):
        model = model.module
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model
