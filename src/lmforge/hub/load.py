"""Load resolved models and tokenizers with transformers (and peft for adapters)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import gguf
import torch
from peft import PeftModel
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)
from transformers.utils import logging

from lmforge.errors import LmforgeError
from lmforge.hub.quantized import is_quantized_dir, load_quantized
from lmforge.hub.resolve import ADAPTER, CAUSAL_LM, CLASSIFIER, ENCODER, GGUF, ResolvedModel

if TYPE_CHECKING:
    import torch


def quiet_transformers() -> None:
    """Silence transformers' per-load progress bars and advisory warnings.

    lmforge shows its own progress; the one bar worth seeing (GGUF de-quantization on
    first use) is switched back on where it happens.
    """
    logging.set_verbosity_error()
    logging.disable_progress_bar()


def import_llama_cpp() -> Any:
    """llama-cpp-python, or an error that says how to install it."""
    try:
        import llama_cpp
    except ImportError as error:
        raise LmforgeError(
            f"running GGUF files through llama.cpp needs its Python binding ({error}): pip "
            "install 'lmforge[edge]' (llama-cpp-python compiles llama.cpp, a few minutes on "
            "2 cores)"
        ) from None
    return llama_cpp


def check_gguf(path: Path) -> None:
    """Read a GGUF file's header and tensor table.

    Raises:
        LmforgeError: the file is truncated or not GGUF, naming it and the fix.
    """
    try:
        gguf.GGUFReader(str(path))
    except Exception as error:  # the reader raises ValueError, struct.error, IndexError...
        raise LmforgeError(
            f"{path} is not a readable GGUF file ({type(error).__name__}: {error}); it may be "
            "truncated or corrupted: export it again with `lmforge export REF --format gguf`."
        ) from None


def load_tokenizer(model: ResolvedModel) -> Any:
    """Load the tokenizer that belongs to a resolved model (an adapter may carry its own)."""
    quiet_transformers()

    if model.kind == GGUF:
        return AutoTokenizer.from_pretrained(model.path.parent, gguf_file=model.path.name)
    if model.kind == ADAPTER:
        assert model.base is not None
        if (model.path / "tokenizer_config.json").is_file():
            return AutoTokenizer.from_pretrained(model.path)
        return load_tokenizer(model.base)
    return AutoTokenizer.from_pretrained(model.path)


def load_causal_lm(model: ResolvedModel, *, dtype: torch.dtype | None = None) -> tuple[Any, Any]:
    """Load a causal LM (zoo, HF directory, GGUF file, or base + PEFT adapter) for inference.

    Returns:
        ``(model, tokenizer)`` with the model in eval mode.

    Raises:
        LmforgeError: the reference is not a causal language model.
    """
    quiet_transformers()
    dtype = dtype or torch.float32  # bf16 is slower than fp32 on CPUs without native bf16
    if model.model_kind not in {CAUSAL_LM, GGUF}:
        raise LmforgeError(
            f"'{model.ref}' is a {model.model_kind} model, not a causal language model; "
            "text generation needs one, e.g. smollm2-135m-instruct."
        )
    if model.kind == GGUF:
        network: Any = AutoModelForCausalLM.from_pretrained(
            model.path.parent, gguf_file=model.path.name, dtype=dtype
        )
    elif _quantized(model):
        network = _load_quantized(model, AutoModelForCausalLM)
    elif model.kind == ADAPTER:
        assert model.base is not None
        base, _ = load_causal_lm(model.base, dtype=dtype)
        network = PeftModel.from_pretrained(base, model.path)
    else:
        network = AutoModelForCausalLM.from_pretrained(model.path, dtype=dtype)
    network.eval()
    return network, load_tokenizer(model)


def load_encoder(model: ResolvedModel) -> tuple[Any, Any]:
    """Load an encoder (e.g. MiniLM) without any task head, for embeddings."""
    quiet_transformers()
    if model.model_kind != ENCODER:
        raise LmforgeError(
            f"'{model.ref}' is a {model.model_kind} model, not an encoder; sentence "
            "embeddings need one, e.g. all-minilm-l6-v2."
        )
    if _quantized(model):
        network = _load_quantized(model, AutoModel)
    else:
        network = AutoModel.from_pretrained(model.path)
    network.eval()
    return network, load_tokenizer(model)


def load_classifier(model: ResolvedModel) -> tuple[Any, Any]:
    """Load a sequence classifier (a transformers or quantized directory, or a
    classification adapter merged into its base) for inference."""
    quiet_transformers()
    if model.model_kind != CLASSIFIER:
        raise LmforgeError(
            f"'{model.ref}' is a {model.model_kind} model, not a classifier; train one with "
            "`lmforge train examples/train/classify_sentiment.yaml`."
        )
    if _quantized(model):
        network = _load_quantized(model, AutoModelForSequenceClassification)
    elif model.kind == ADAPTER:
        network = load_classification_adapter(model).merge_and_unload()
    else:
        network = AutoModelForSequenceClassification.from_pretrained(model.path)
    network.eval()
    return network, load_tokenizer(model)


def load_classification_adapter(adapter: ResolvedModel) -> Any:
    """A classification adapter (peft ``SEQ_CLS``) on its base, unmerged; the head's size
    and label names come from the config.json saved beside the adapter."""
    assert adapter.base is not None
    config = AutoConfig.from_pretrained(adapter.path)
    base = AutoModelForSequenceClassification.from_pretrained(adapter.base.path, config=config)
    return PeftModel.from_pretrained(base, adapter.path).eval()


def load_model(model: ResolvedModel) -> tuple[Any, Any]:
    """Load any resolved model for inference, by its kind."""
    loaders = {CAUSAL_LM: load_causal_lm, GGUF: load_causal_lm, ENCODER: load_encoder,
               CLASSIFIER: load_classifier}  # fmt: skip
    return loaders[model.model_kind](model)


def _quantized(model: ResolvedModel) -> bool:

    return model.kind != GGUF and is_quantized_dir(model.path)


def _load_quantized(model: ResolvedModel, auto_class: Any) -> Any:

    return load_quantized(model.path, auto_class)
