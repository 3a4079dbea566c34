"""The content-safety classifier: MiniLM with a LoRA adapter and a softmax head, with a
threshold per category.

Eight classes: ``safe`` and seven flagged categories. The features are the sentence
embedding of all-MiniLM-L6-v2 (mean-pooled, normalized) with a small LoRA adapter
fine-tuned on the bundled labeled messages (``assets/datasets/guard``). (An
alt-profanity-check score used to be a second feature; it cost a third of the latency and
lowered recall on the hand-written challenge set, so it was dropped: benchmarks/RESULTS.md,
"guard: ablation".) A linear softmax head scores the eight classes; a category
counts as flagged when its probability reaches its threshold, chosen per category on the
validation split and written into ``classifier.json`` (a policy file overrides them).

Only the adapter, the head and the thresholds ship in the package (``assets/guard``, well
under a megabyte); the base MiniLM comes from its PyPI package and the adapter is merged
into it at load time, so scoring costs one MiniLM forward pass, run the way
``classifier.json``'s ``encoder_quantization`` says (``guard/encoder.py``: onnxruntime
INT8 by default); the thresholds in that file were chosen with that encoder.
``lmforge guard train`` retrains everything and writes to ``$LMFORGE_HOME/guard``, never
into the installed package (which may be read-only, and is shared by every user of it);
the guard loads the weights found there in place of the shipped ones.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import torch
from peft import LoraConfig, get_peft_model
from safetensors.numpy import load_file, save_file

from lmforge.errors import LmforgeError
from lmforge.guard.encoder import check_quantization, load_embedder
from lmforge.home import atomic_dir, lmforge_home
from lmforge.hub.embed import SentenceEmbedder
from lmforge.runtime.pooling import pool

CATEGORIES = ("harassment", "hate", "self-harm", "sexual", "violence", "illicit",
              "prompt-injection")  # fmt: skip
LABELS = ("safe", *CATEGORIES)
EMBED_MODEL = "all-minilm-l6-v2"
ADAPTER_DIR = "adapter"  # the LoRA adapter's folder inside a weights directory
DEFAULT_THRESHOLD = 0.5


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
        embedder: embeds texts (``encode(texts) -> (N, D)``); by default MiniLM with the
            directory's adapter merged in.
    """

    def __init__(self, weights_dir: Path | None = None, embedder: Any = None) -> None:
        weights_dir = weights_dir or default_weights_dir()
        self.weights_dir = weights_dir
        meta_path = weights_dir / "classifier.json"
        if not meta_path.is_file():
            raise LmforgeError(
                f"guard: no classifier in {weights_dir} (classifier.json missing); "
                "rebuild it with `lmforge guard train`."
            )
        self.meta = json.loads(meta_path.read_text())
        features = self.meta.get("features", ["embedding"])
        if features != ["embedding"]:
            raise LmforgeError(
                f"guard: {meta_path} was trained with features {features}; this lmforge "
                "reads only ['embedding'] (the profanity feature was dropped); retrain it "
                "with `lmforge guard train`."
            )
        check_quantization(self.meta.get("encoder_quantization"),
                           f"guard: {meta_path} encoder_quantization",
                           "retrain with `lmforge guard train`")  # fmt: skip
        tensors = load_file(weights_dir / "classifier.safetensors")
        self.weight, self.bias = tensors["weight"], tensors["bias"]  # (L, F), (L,)
        self.labels: list[str] = self.meta["labels"]
        # per-category thresholds chosen on the validation split (older files have none)
        self.thresholds: dict[str, float] = dict(self.meta.get("thresholds", {}))
        if embedder is None:
            adapter = self.meta.get("adapter")
            embedder = load_embedder(self.meta["embed_model"],
                                     weights_dir / adapter if adapter else None,
                                     self.meta.get("encoder_quantization"))  # fmt: skip
        self.embedder = embedder

    def features_of(self, texts: Sequence[str]) -> np.ndarray:
        """The head's input for each text, shape ``(N, F)``."""
        return np.asarray(self.embedder.encode(list(texts)))  # (N, D)

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Softmax over ``self.labels`` for each text, shape ``(N, L)``."""
        return _softmax(self.features_of(texts) @ self.weight.T + self.bias)

    def scores(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Per text, the probability of each flagged category."""
        if not texts:
            return []
        return [
            {label: float(p) for label, p in zip(self.labels, row, strict=True) if label != "safe"}
            for row in self.probabilities(texts)
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
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise LmforgeError(f"{path}:{number}: not JSON ({error.msg})") from error
        if (
            not isinstance(row, dict)
            or not isinstance(row.get("text"), str)
            or (row.get("label") not in LABELS)
        ):
            raise LmforgeError(
                f"{path}:{number}: expected {{'text': str, 'label': one of {', '.join(LABELS)}}}"
            )
        texts.append(row["text"])
        labels.append(LABELS.index(row["label"]))
    return texts, labels


@dataclass(frozen=True)
class TrainSettings:
    """How ``train_classifier`` fits the adapter and the head (saved in classifier.json).

    Measured in round 1 of issue 16 (with the since-dropped profanity feature, on the
    152-message validation split of then) at thresholds of 0.5: a frozen MiniLM
    with a linear head flags 0.48 of the unsafe messages there; these settings (a rank-8
    adapter on the attention projections, six epochs) flag 0.85 at a benign
    false-positive rate of 0.13, where four epochs at 5e-4 with plain class balancing
    (which gives ``safe`` one eighth of the weight, not half) flagged 0.87 at 0.22.
    """

    epochs: int = 6
    lora_rank: int = 8
    lora_targets: tuple[str, ...] = ("query", "key", "value")
    learning_rate: float = 1e-3  # the adapter's
    head_learning_rate: float = 1e-2
    batch_size: int = 16
    safe_share: float = 0.5  # of the loss weight, the rest split evenly over categories
    # the shared threshold: the most recall within this benign false-positive rate on the
    # validation split. 0.03 was tried in round 3 (validation then held round 3's harder
    # look-alikes): threshold 0.80, validation recall 0.61 against 0.76 at 0.05 (0.65).
    max_benign_fpr: float = 0.05
    # how the saved encoder runs, and so how the thresholds are chosen: one of
    # ``encoder.QUANTIZATIONS``
    encoder_quantization: str | None = "onnx-int8"
    seed: int = 0


def train_classifier(
    data_dir: Path | None = None,
    out_dir: Path | None = None,
    *,
    settings: TrainSettings | None = None,
    progress: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """Fine-tune the adapter and the head, choose thresholds, evaluate, save to ``out_dir``.

    Reads from ``data_dir``: ``train.jsonl`` and, when present, ``train_handwritten.jsonl``
    (training); ``validation.jsonl`` when present (thresholds: without it every category
    keeps 0.5); ``test.jsonl`` (the held-out figures).

    Args:
        data_dir: the bundled messages by default.
        out_dir: where the weights go; ``$LMFORGE_HOME/guard`` by default, which the
            guard then loads in place of the shipped weights.
        settings: epochs, LoRA rank, learning rates...; ``TrainSettings()`` by default.
        progress: called with a line of text after each epoch.

    Returns:
        Held-out metrics: precision and recall per category, accuracy, and the flagged
        (any category vs safe) precision and recall, under the chosen thresholds.
    """
    settings = settings or TrainSettings()
    check_quantization(settings.encoder_quantization, "guard train: encoder_quantization",
                       "set it to one of those")  # fmt: skip
    data_dir = data_dir or dataset_dir()
    out_dir = out_dir or user_dir()
    train_texts, train_labels = read_labeled(data_dir / "train.jsonl")
    if (data_dir / "train_handwritten.jsonl").is_file():
        more_texts, more_labels = read_labeled(data_dir / "train_handwritten.jsonl")
        train_texts, train_labels = train_texts + more_texts, train_labels + more_labels
    test_texts, test_labels = read_labeled(data_dir / "test.jsonl")

    torch.manual_seed(settings.seed)
    embedder = SentenceEmbedder(EMBED_MODEL)
    lora = LoraConfig(r=settings.lora_rank, lora_alpha=2 * settings.lora_rank,
                      lora_dropout=0.1, target_modules=list(settings.lora_targets))  # fmt: skip
    encoder = get_peft_model(embedder.model, lora)
    head = torch.nn.Linear(embedder.dimension, len(LABELS))

    def embed(texts: list[str]) -> torch.Tensor:
        batch = embedder.tokenizer(texts, padding=True, truncation=True,
                                   max_length=embedder.max_length, return_tensors="pt")  # fmt: skip
        hidden = encoder(**batch).last_hidden_state  # (B, T, D)
        return pool(hidden, batch["attention_mask"], embedder.pooling, embedder.normalize)

    targets = torch.tensor(train_labels)
    counts = torch.bincount(targets, minlength=len(LABELS)).clamp(min=1).float()
    shares = torch.full((len(LABELS),), (1 - settings.safe_share) / len(CATEGORIES))
    shares[0] = settings.safe_share
    class_weights = shares * counts.sum() / counts  # each class's total weight ∝ its share
    optimizer = torch.optim.AdamW(
        [{"params": [p for p in encoder.parameters() if p.requires_grad],
          "lr": settings.learning_rate},
         {"params": head.parameters(), "lr": settings.head_learning_rate}],
        weight_decay=0.01,
    )  # fmt: skip
    steps = settings.epochs * math.ceil(len(train_texts) / settings.batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)
    order = torch.Generator().manual_seed(settings.seed)
    encoder.train()
    for epoch in range(settings.epochs):
        total = 0.0
        permutation = torch.randperm(len(train_texts), generator=order).tolist()
        for start in range(0, len(permutation), settings.batch_size):
            rows = permutation[start : start + settings.batch_size]
            inputs = embed([train_texts[i] for i in rows])
            loss = torch.nn.functional.cross_entropy(head(inputs), targets[rows],
                                                     weight=class_weights)  # fmt: skip
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(rows)
        if progress is not None:
            progress(f"epoch {epoch + 1}/{settings.epochs}: loss {total / len(train_texts):.3f}")
    encoder.eval()

    weight = head.weight.detach().numpy().astype(np.float32)
    bias = head.bias.detach().numpy().astype(np.float32)
    meta: dict[str, Any] = {
        "labels": list(LABELS), "embed_model": EMBED_MODEL, "adapter": ADAPTER_DIR,
        "features": ["embedding"], "encoder_quantization": settings.encoder_quantization,
        "training": asdict(settings),
        "train_examples": len(train_texts), "test_examples": len(test_texts),
    }  # fmt: skip
    with atomic_dir(out_dir) as staging:
        encoder.save_pretrained(str(staging / ADAPTER_DIR))
        _name_the_base(staging / ADAPTER_DIR)
        save_file({"weight": weight, "bias": bias}, str(staging / "classifier.safetensors"))
        (staging / "classifier.json").write_text(json.dumps(meta, indent=2) + "\n")
        # score with the saved artifact, as the guard will: the adapter merged into MiniLM
        classifier = SafetyClassifier(staging)
        thresholds = {c: DEFAULT_THRESHOLD for c in CATEGORIES}
        if (data_dir / "validation.jsonl").is_file():
            val_texts, val_labels = read_labeled(data_dir / "validation.jsonl")
            val_probabilities = classifier.probabilities(val_texts)
            thresholds = choose_thresholds(val_probabilities, val_labels, settings.max_benign_fpr)
            meta["validation_examples"] = len(val_texts)
            meta["validation_metrics"] = flag_rates(val_probabilities, val_labels, thresholds)
        metrics = evaluate_predictions(
            test_labels, flagged_labels(classifier.probabilities(test_texts), thresholds)
        )
        meta.update(thresholds=thresholds, test_metrics=metrics)
        (staging / "classifier.json").write_text(json.dumps(meta, indent=2) + "\n")
    return metrics


def _name_the_base(adapter_dir: Path) -> None:
    """Point the saved adapter at the zoo name of its base (peft writes a local path, which
    differs on every machine); ``lmforge.hub.resolve`` finds the base from it."""
    config_path = adapter_dir / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = EMBED_MODEL
    config["target_modules"] = sorted(config["target_modules"])  # peft saves a set
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (adapter_dir / "README.md").unlink(missing_ok=True)  # peft's blank model card


def flagged_labels(probabilities: np.ndarray, thresholds: dict[str, float]) -> list[int]:
    """Per text, the label index of the most probable category at or above its threshold,
    or 0 (``safe``) when none is."""
    cut = np.array([thresholds.get(c, DEFAULT_THRESHOLD) for c in CATEGORIES])  # (C,)
    category_scores = probabilities[:, 1:]  # (N, C)
    over = np.where(category_scores >= cut, category_scores, -1.0)
    best = over.argmax(axis=1)
    return [int(b) + 1 if over[i, b] >= 0 else 0 for i, b in enumerate(best)]


def flag_rates(
    probabilities: np.ndarray, labels: Sequence[int], thresholds: dict[str, float]
) -> dict[str, float]:
    """Unsafe recall (an unsafe text gets any flag) and benign false-positive rate."""
    flagged = np.array(flagged_labels(probabilities, thresholds)) > 0
    unsafe = np.array(labels) > 0
    return {
        "unsafe_recall": float(flagged[unsafe].mean()) if unsafe.any() else 0.0,
        "benign_fpr": float(flagged[~unsafe].mean()) if (~unsafe).any() else 0.0,
    }


THRESHOLD_GRID = tuple(round(0.2 + 0.05 * i, 2) for i in range(15))  # 0.2 ... 0.9


def choose_thresholds(
    probabilities: np.ndarray, labels: Sequence[int], max_benign_fpr: float = 0.05
) -> dict[str, float]:
    """Thresholds with the highest unsafe recall at a benign false-positive rate of at most
    ``max_benign_fpr`` on labeled texts (the validation split): one threshold shared by
    every category, the lowest on the grid 0.2-0.9 within the limit (the highest when none
    is).

    One shared threshold, not one per category: the validation split has 10-17 unsafe
    messages per category, and a greedy per-category search over them (round 1 of issue
    16) spent the whole false-positive budget on whichever category it visited first
    (harassment at 0.9, recall 0.27 on the template test split) and did not carry over to
    the challenge set (benign FPR 0.13 there against 0.05 on validation).
    """
    for value in THRESHOLD_GRID:
        thresholds = {c: value for c in CATEGORIES}
        if flag_rates(probabilities, labels, thresholds)["benign_fpr"] <= max_benign_fpr:
            return thresholds
    return {c: THRESHOLD_GRID[-1] for c in CATEGORIES}


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
