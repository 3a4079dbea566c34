"""Sentence embeddings from an encoder, pooled the way its sentence-transformers config says."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from lmforge.hub.load import load_encoder
from lmforge.hub.resolve import resolve
from lmforge.progress import ProgressFn
from lmforge.runtime.onnx import OnnxModel, is_onnx_dir
from lmforge.runtime.pooling import pool, pooling_config


class SentenceEmbedder:
    """Embeds texts with an encoder such as all-MiniLM-L6-v2.

    Pooling (mean, CLS or max), normalization and the maximum sequence length are read
    from the model folder's sentence-transformers files when present; otherwise mean
    pooling over at most 256 tokens, unnormalized. A directory written by ``lmforge export
    --format onnx`` runs through onnxruntime, on ``threads`` threads (``native_threads()``
    by default; a torch model follows torch's own setting).
    """

    def __init__(self, ref: str = "all-minilm-l6-v2", *, threads: int | None = None) -> None:
        self.model_ref = ref
        resolved = resolve(ref)
        self.onnx: OnnxModel | None = None
        self.model: Any  # a transformers encoder, or the OnnxModel
        if is_onnx_dir(resolved.path):
            self.onnx = OnnxModel(resolved.path, threads=threads)
            self.model, self.tokenizer = self.onnx, self.onnx.tokenizer
        else:
            self.model, self.tokenizer = load_encoder(resolved)
        self.pooling, self.normalize, self.max_length = pooling_config(resolved.path)

    @property
    def dimension(self) -> int:
        return int(self.model.config.hidden_size)

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        progress: ProgressFn | None = None,
        unit: str = "texts",
    ) -> np.ndarray:
        """Return one float32 vector per text, shape ``(N, D)``, in the order given.

        Texts are batched by length (longest first), so a batch pads little; ``progress``
        is called after each batch with (texts embedded, texts, ``unit``).
        """
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            vectors[rows] = self._encode_batch([texts[i] for i in rows])
            if progress is not None:
                progress(start + len(rows), len(texts), unit)
        return vectors

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        if self.onnx is not None:
            return self.onnx.embed(texts, len(texts))
        with torch.inference_mode():
            batch = self.tokenizer(
                texts, padding=True, truncation=True, max_length=self.max_length,
                return_tensors="pt",
            )  # fmt: skip
            hidden = self.model(**batch).last_hidden_state  # (B, T, D)
            pooled = pool(hidden, batch["attention_mask"], self.pooling, self.normalize)
            return pooled.float().numpy()  # (B, D)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of every row of ``a`` (N, D) with every row of ``b`` (M, D)."""
    a = a / np.clip(np.linalg.norm(a, axis=1, keepdims=True), 1e-12, None)
    b = b / np.clip(np.linalg.norm(b, axis=1, keepdims=True), 1e-12, None)
    return a @ b.T  # (N, M)
