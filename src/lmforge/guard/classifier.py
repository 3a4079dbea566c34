"""The content-safety classifier: MiniLM sentence embeddings and a linear softmax head.

Eight classes: ``safe`` and seven flagged categories. The head is trained here on the
bundled labeled prompts (``assets/datasets/guard``, with benign look-alikes such as
"how do I kill the process on the hub"), and its weights ship in the package
(``assets/guard``). ``lmforge guard train`` retrains it and reports precision and recall
per category on the held-out split; it writes to ``$LMFORGE_HOME/guard``, never into the
installed package (which may be read-only, and is shared by every user of it), and the
guard loads the weights found there in place of the shipped ones.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from lmforge.errors import LmforgeError
from lmforge.home import atomic_dir, lmforge_home

CATEGORIES = ("harassment", "hate", "self-harm", "sexual", "violence", "illicit",
              "prompt-injection")  # fmt: skip
LABELS = ("safe", *CATEGORIES)
EMBED_MODEL = "all-minilm-l6-v2"


def shipped_dir() -> Path:
    """The weights that ship in the package (never written by ``train_classifier``)."""
    return Path(str(files("lmforge").joinpath("assets/guard")))


def user_dir() -> Path:
    """Where ``lmforge guard train`` writes by default: ``$LMFORGE_HOME/guard``."""
    return lmforge_home() / "guard"


def default_weights_dir() -> Path:
    """The weights the guard loads: user-trained ones in ``$LMFORGE_HOME/guard`` when
    present, the shipped ones otherwise."""
    trained = user_dir()
    return trained if (trained / "classifier.json").is_file() else shipped_dir()


def dataset_dir() -> Path:
    return Path(str(files("lmforge").joinpath("assets/datasets/guard")))


class SafetyClassifier:
    """Scores texts for each category (softmax probabilities, ``safe`` left out).

    Args:
        weights_dir: a directory written by ``train_classifier``; by default
            ``default_weights_dir()`` (user-trained weights when present, else the shipped).
    """

    def __init__(self, weights_dir: Path | None = None, embedder: Any = None) -> None:
        from safetensors.numpy import load_file

        from lmforge.retrieve.embed import SentenceEmbedder

        weights_dir = weights_dir or default_weights_dir()
        self.weights_dir = weights_dir
        meta_path = weights_dir / "classifier.json"
        if not meta_path.is_file():
            raise LmforgeError(
                f"guard: no classifier in {weights_dir} (classifier.json missing); "
                "rebuild it with `lmforge guard train`."
            )
        self.meta = json.loads(meta_path.read_text())
        tensors = load_file(weights_dir / "classifier.safetensors")
        self.weight, self.bias = tensors["weight"], tensors["bias"]  # (L, D), (L,)
        self.labels: list[str] = self.meta["labels"]
        self.embedder = embedder or SentenceEmbedder(self.meta["embed_model"])

    def scores(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Per text, the probability of each flagged category."""
        if not texts:
            return []
        probabilities = _softmax(self.embedder.encode(list(texts)) @ self.weight.T + self.bias)
        return [
            {label: float(p) for label, p in zip(self.labels, row, strict=True) if label != "safe"}
            for row in probabilities
        ]


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def read_labeled(path: Path) -> tuple[list[str], list[int]]:
    """Texts and label indices from a guard jsonl file.

    Raises:
        LmforgeError: a line without text or with an unknown label (naming the line).
    """
    texts, labels = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not isinstance(row.get("text"), str) or row.get("label") not in LABELS:
            raise LmforgeError(
                f"{path}:{number}: expected {{'text': str, 'label': one of {', '.join(LABELS)}}}"
            )
        texts.append(row["text"])
        labels.append(LABELS.index(row["label"]))
    return texts, labels


def train_classifier(
    data_dir: Path | None = None, out_dir: Path | None = None, *, seed: int = 0
) -> dict[str, Any]:
    """Fit the head on ``data_dir``/train.jsonl, evaluate on test.jsonl, save to ``out_dir``.

    Args:
        data_dir: holds train.jsonl and test.jsonl; the bundled prompts by default.
        out_dir: where the weights go; ``$LMFORGE_HOME/guard`` by default, which the
            guard then loads in place of the shipped weights.

    Returns:
        Held-out metrics: precision and recall per category, accuracy, and the flagged
        (any category vs safe) precision and recall.
    """
    import torch
    from safetensors.numpy import save_file

    from lmforge.retrieve.embed import SentenceEmbedder

    data_dir = data_dir or dataset_dir()
    out_dir = out_dir or user_dir()
    train_texts, train_labels = read_labeled(data_dir / "train.jsonl")
    test_texts, test_labels = read_labeled(data_dir / "test.jsonl")
    embedder = SentenceEmbedder(EMBED_MODEL)
    features = torch.from_numpy(embedder.encode(train_texts))  # (N, D)
    targets = torch.tensor(train_labels)
    counts = torch.bincount(targets, minlength=len(LABELS)).clamp(min=1).float()
    class_weights = counts.sum() / (len(LABELS) * counts)  # balance the classes
    torch.manual_seed(seed)
    head = torch.nn.Linear(features.shape[1], len(LABELS))
    optimizer = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=500)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(head(features), targets, weight=class_weights)
        loss = loss + 1e-3 * head.weight.pow(2).sum()  # L2: the set is small
        loss.backward()
        return loss

    optimizer.step(closure)
    weight = head.weight.detach().numpy().astype(np.float32)
    bias = head.bias.detach().numpy().astype(np.float32)
    predicted = (embedder.encode(test_texts) @ weight.T + bias).argmax(axis=1)
    metrics = evaluate_predictions(test_labels, predicted.tolist())
    meta = {"labels": list(LABELS), "embed_model": EMBED_MODEL, "test_metrics": metrics,
            "train_examples": len(train_texts), "test_examples": len(test_texts)}  # fmt: skip
    with atomic_dir(out_dir) as staging:
        save_file({"weight": weight, "bias": bias}, str(staging / "classifier.safetensors"))
        (staging / "classifier.json").write_text(json.dumps(meta, indent=2) + "\n")
    return metrics


def evaluate_predictions(truth: Sequence[int], predicted: Sequence[int]) -> dict[str, Any]:
    """Precision and recall per category, and for flagged-vs-safe."""
    per_category = {}
    for index, label in enumerate(LABELS):
        if label == "safe":
            continue
        hits = sum(1 for t, p in zip(truth, predicted, strict=True) if t == p == index)
        claimed = sum(1 for p in predicted if p == index)
        actual = sum(1 for t in truth if t == index)
        per_category[label] = {
            "precision": hits / claimed if claimed else 0.0,
            "recall": hits / actual if actual else 0.0,
            "support": actual,
        }
    flagged_hits = sum(1 for t, p in zip(truth, predicted, strict=True) if t and p)
    return {
        "accuracy": sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(truth),
        "flagged_precision": flagged_hits / max(1, sum(1 for p in predicted if p)),
        "flagged_recall": flagged_hits / max(1, sum(1 for t in truth if t)),
        "categories": per_category,
    }
