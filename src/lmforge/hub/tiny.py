"""Tiny random models with the real zoo tokenizers, for fast tests and dry runs.

Two layers, width 64: they load and run in milliseconds, exercise the same code paths
as the real models, and produce gibberish.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    LlamaConfig,
    LlamaForCausalLM,
)

from lmforge.home import atomic_dir
from lmforge.hub.zoo import ZOO, cache_problem, cached_dir, package_source


def zoo_tokenizer(name: str) -> Any:
    """Load a zoo model's tokenizer without converting its weights."""
    entry = ZOO[name]
    source = package_source(entry)
    if source.is_dir():
        return AutoTokenizer.from_pretrained(source)
    if cache_problem(cached_dir(name)) is None:
        return AutoTokenizer.from_pretrained(cached_dir(name))
    return AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)


def build_tiny_causal_lm(
    out_dir: Path, *, seed: int = 0, tokenizer: Any = None, context: int = 512
) -> Path:
    """Save a 2-layer LLaMA with SmolLM2's tokenizer and chat template to ``out_dir``."""
    tokenizer = tokenizer or zoo_tokenizer("smollm2-135m-instruct")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=context,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    return _save(model, tokenizer, out_dir)


def build_tiny_encoder(out_dir: Path, *, seed: int = 0) -> Path:
    """Save a 2-layer BERT with MiniLM's tokenizer to ``out_dir``."""
    return _build_tiny_bert(BertModel, out_dir, seed)


def build_tiny_classifier(
    out_dir: Path, *, labels: tuple[str, ...] = ("negative", "neutral", "positive"), seed: int = 0
) -> Path:
    """Save a 2-layer BERT sequence classifier with MiniLM's tokenizer to ``out_dir``.

    Its weights start at 10x BERT's init scale: at 0.02 the random head gives every
    text the same label, and tests comparing labels would prove nothing.
    """
    return _build_tiny_bert(
        BertForSequenceClassification, out_dir, seed,
        id2label=dict(enumerate(labels)),
        label2id={label: index for index, label in enumerate(labels)},
        initializer_range=0.2,
    )  # fmt: skip


def _build_tiny_bert(model_class: Any, out_dir: Path, seed: int, **extra: Any) -> Path:
    tokenizer = zoo_tokenizer("all-minilm-l6-v2")
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        **extra,
    )
    torch.manual_seed(seed)
    return _save(model_class(config), tokenizer, out_dir)


def _save(model: Any, tokenizer: Any, out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return out_dir
