"""How a sentence encoder's token states become one vector: the pooling its
sentence-transformers files describe."""

from __future__ import annotations

import json
from pathlib import Path

import torch


def pool(
    hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str, normalize: bool
) -> torch.Tensor:
    """One vector per sequence from token states ``(B, T, D)`` and their mask ``(B, T)``:
    ``mean`` over real tokens, the ``cls`` token's, or the ``max`` over real tokens."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    if pooling == "cls":
        pooled = hidden[:, 0]
    elif pooling == "max":
        pooled = hidden.masked_fill(mask == 0, float("-inf")).max(dim=1).values
    else:
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    if normalize:
        pooled = torch.nn.functional.normalize(pooled, dim=-1)
    return pooled  # (B, D)


def pooling_config(model_dir: Path) -> tuple[str, bool, int]:
    """``(pooling, normalize, max_length)`` from a model folder's sentence-transformers
    files; mean, unnormalized, 256 tokens where they are absent."""
    pooling, normalize, max_length = "mean", False, 256
    pooling_file = model_dir / "1_Pooling" / "config.json"
    if pooling_file.is_file():
        config = json.loads(pooling_file.read_text())
        if config.get("pooling_mode_cls_token"):
            pooling = "cls"
        elif config.get("pooling_mode_max_tokens"):
            pooling = "max"
    modules_file = model_dir / "modules.json"
    if modules_file.is_file():
        modules = json.loads(modules_file.read_text())
        normalize = any(module.get("type", "").endswith("Normalize") for module in modules)
    st_config = model_dir / "sentence_bert_config.json"
    if st_config.is_file():
        max_length = int(json.loads(st_config.read_text()).get("max_seq_length", max_length))
    return pooling, normalize, max_length
