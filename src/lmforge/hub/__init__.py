"""Model references: the embedded zoo, local directories, GGUF files, registry refs."""

from lmforge.hub.info import ModelInfo, describe
from lmforge.hub.load import (
    load_causal_lm,
    load_classifier,
    load_encoder,
    load_model,
    load_tokenizer,
)
from lmforge.hub.resolve import (
    ADAPTER,
    CAUSAL_LM,
    CLASSIFIER,
    ENCODER,
    GGUF,
    ResolvedModel,
    resolve,
)
from lmforge.hub.tiny import (
    build_tiny_causal_lm,
    build_tiny_classifier,
    build_tiny_encoder,
    zoo_tokenizer,
)
from lmforge.hub.zoo import ZOO, ZooEntry, zoo_model_dir

__all__ = [
    "ADAPTER",
    "CAUSAL_LM",
    "CLASSIFIER",
    "ENCODER",
    "GGUF",
    "ZOO",
    "ModelInfo",
    "ResolvedModel",
    "ZooEntry",
    "build_tiny_causal_lm",
    "build_tiny_classifier",
    "build_tiny_encoder",
    "describe",
    "load_causal_lm",
    "load_classifier",
    "load_encoder",
    "load_model",
    "load_tokenizer",
    "resolve",
    "zoo_model_dir",
    "zoo_tokenizer",
]
