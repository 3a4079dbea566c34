"""A loaded text classifier that answers with label probabilities.

One class for everything that asks a classifier a question: ``POST /v1/classify``,
sentiment scoring of chat sessions, and the explainers (which call ``predict_proba`` on
thousands of perturbed texts, so it batches).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from lmforge.hub.load import load_classifier
from lmforge.hub.resolve import resolve
from lmforge.runtime.onnx import OnnxModel, is_onnx_dir

# Classifier inputs are sentences or short paragraphs; longer texts are truncated.
MAX_LENGTH = 256


class TextClassifier:
    """A sequence classifier from ``lmforge train`` (task ``classify``), a compressed copy,
    or its ONNX export, loaded for inference.

    Example:
        classifier = TextClassifier("runs/<run-id>/model")
        classifier.classify(["Great lock, easy setup."])  # [{"positive": 0.97, ...}]
    """

    def __init__(self, ref: str) -> None:

        self.model_ref = ref
        resolved = resolve(ref)
        self.onnx: OnnxModel | None = None
        self.model: Any  # a transformers sequence classifier, or the OnnxModel
        if is_onnx_dir(resolved.path):
            self.onnx = OnnxModel(resolved.path)
            self.model, self.tokenizer = self.onnx, self.onnx.tokenizer
        else:
            self.model, self.tokenizer = load_classifier(resolved)
        config = self.model.config
        self.labels: list[str] = [str(config.id2label[i]) for i in range(int(config.num_labels))]

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Softmax probabilities, shape ``(N, L)`` with columns in ``self.labels`` order."""
        if self.onnx is not None:
            rows = self.onnx.classify(texts, batch_size)
            return np.array([[row[label] for label in self.labels] for row in rows], np.float32)

        chunks = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = self.tokenizer(
                    list(texts[start : start + batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=MAX_LENGTH,
                    return_tensors="pt",
                )
                logits = self.model(**batch).logits.float()  # (B, L)
                chunks.append(torch.softmax(logits, dim=-1).numpy())
        if not chunks:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return np.concatenate(chunks)

    def classify(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Each text's probabilities by label name, most likely first."""
        results = []
        for row in self.predict_proba(texts):
            ranked = sorted(zip(self.labels, row.tolist(), strict=True), key=lambda p: -p[1])
            results.append(dict(ranked))
        return results
