"""Explain one text classifier prediction with LIME or integrated gradients.

Both methods score the same units, the words LIME splits a text into (``words.py``),
in the same units, probability of the explained label, so their weights and their
faithfulness numbers can be set side by side.

Example:
    classifier = TextClassifier("runs/<run-id>/model")
    explanation = explain_text(classifier, "The app crashes every day.", method="ig")
    explanation.top(3)  # [("crashes", 0.41), ("every", 0.05), ("app", -0.03)]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from captum.attr import LayerIntegratedGradients
from lime.lime_text import LimeTextExplainer

from lmforge.errors import LmforgeError
from lmforge.explain.explanation import Explanation, pick_label
from lmforge.explain.faithfulness import faithfulness
from lmforge.explain.words import char_to_word, index_words
from lmforge.hub.classifier import MAX_LENGTH

if TYPE_CHECKING:
    from lmforge.hub.classifier import TextClassifier

METHODS: tuple[str, ...] = ("lime", "ig")
LIME_BATCH = 64
"""Perturbed texts per forward pass. Median seconds for 1000 samples of five reviews on
MiniLM-L6, 2 cores, two runs: 64: 2.97 / 2.98, 128: 3.08 / 2.89, 256: 3.18 / 3.12, 512:
3.82 / 3.79 (larger batches spill the caches; see benchmarks/RESULTS.md)."""
IG_BATCH = 50
"""Interpolation steps per forward/backward pass of integrated gradients."""
IG_DELTA_WARNING = 0.05
"""A ``|convergence_delta|`` above this means too few steps for the text (the CLI warns)."""
RANDOM_STATE = 0


def explain_text(
    classifier: TextClassifier,
    text: str,
    method: str = "lime",
    *,
    label: str | None = None,
    num_samples: int = 1000,
    steps: int = 50,
) -> Explanation:
    """Explain ``classifier``'s prediction on ``text`` word by word, with faithfulness.

    Args:
        classifier: A loaded text classifier.
        text: The text to explain.
        method: ``lime`` (perturb words, fit a local linear model) or ``ig`` (integrated
            gradients of the label's probability along the input word embeddings).
        label: The label to explain (default: the predicted one).
        num_samples: LIME's perturbed texts (reproducible: fixed random state).
        steps: Integrated gradients' interpolation steps.

    Returns:
        The explanation, its faithfulness numbers filled in.

    Raises:
        LmforgeError: unknown method or label, a text without words, bad sample or step
            counts, or integrated gradients on an ONNX or quantized model.
    """
    if method not in METHODS:
        raise LmforgeError(
            f"method: unknown explanation method {method!r}; pick one of {', '.join(METHODS)}."
        )
    check_text(text)
    predict = batched_predict(classifier)
    probabilities = predict([text])[0]  # (L,)
    label_index = pick_label(classifier.labels, label, probabilities)
    started = time.perf_counter()
    if method == "lime":
        weights, details = lime_weights(predict, text, label_index, num_samples)
    else:
        weights, details = ig_weights(classifier, text, label_index, steps)
    seconds = time.perf_counter() - started
    return Explanation(
        text=text,
        method=method,
        label=classifier.labels[label_index],
        probabilities=dict(zip(classifier.labels, probabilities.tolist(), strict=True)),
        weights=weights,
        faithfulness=faithfulness(predict, text, weights, label_index),
        seconds=seconds,
        model=classifier.model_ref,
        details=details,
    )


def check_text(text: str) -> None:
    """Raise a clear error for a text no explainer can split into words."""
    if not text or not text.strip():
        raise LmforgeError("text: empty; pass the sentence or paragraph to explain.")
    if not index_words(text).num_words():
        raise LmforgeError(
            f"text: no words in {text[:80]!r} (a word is a run of letters or digits); "
            "pass the sentence or paragraph to explain."
        )


def batched_predict(classifier: TextClassifier) -> Callable[[list[str]], np.ndarray]:
    """``classifier.predict_proba`` for many similar texts: each distinct text is run once,
    shortest first, so each batch pads to about its own length."""

    def predict(texts: Sequence[str]) -> np.ndarray:
        distinct = sorted(set(texts), key=len)
        probabilities = classifier.predict_proba(distinct, batch_size=LIME_BATCH)  # (D, L)
        row_of = {t: i for i, t in enumerate(distinct)}
        return probabilities[[row_of[t] for t in texts]]  # (N, L)

    return predict


def lime_weights(
    predict: Callable[[list[str]], np.ndarray], text: str, label_index: int, num_samples: int
) -> tuple[list[tuple[str, float]], dict[str, Any]]:
    """LIME's weight for every distinct word of ``text``, in order of first appearance.

    Raises:
        LmforgeError: ``num_samples`` is below 2.
    """
    if num_samples < 2:
        raise LmforgeError(
            f"num_samples: {num_samples} is too few for LIME's local model; pass at least 2 "
            "(1000 is the default, 5000 is LIME's own)."
        )
    words = index_words(text).inverse_vocab
    explainer = LimeTextExplainer(random_state=RANDOM_STATE, feature_selection="none")
    result = explainer.explain_instance(
        text,
        lambda texts: predict(list(texts)),
        labels=(label_index,),
        num_features=len(words),
        num_samples=num_samples,
    )
    weight_of = dict(result.as_map()[label_index])
    weights = [(str(word), float(weight_of.get(i, 0.0))) for i, word in enumerate(words)]
    return weights, {"num_samples": num_samples, "local_r2": float(result.score)}


def ig_weights(
    classifier: TextClassifier, text: str, label_index: int, steps: int
) -> tuple[list[tuple[str, float]], dict[str, Any]]:
    """Integrated gradients of ``p(label)`` along the input word embeddings, summed over
    each word's subword tokens (every occurrence), in order of first appearance.

    The baseline keeps the special tokens and replaces every other token with [PAD]:
    ``[CLS] [PAD] ... [PAD] [SEP]``. By completeness, all token attributions add up to
    ``p(x) - p(baseline)`` plus ``convergence_delta``; attributions of tokens outside any
    word (punctuation) are reported as ``non_word_attribution``.

    Raises:
        LmforgeError: ``steps`` is below 1, or the model is an ONNX export or quantized.
    """
    if steps < 1:
        raise LmforgeError(f"steps: {steps} is too few; pass at least 1 (50 is the default).")
    check_differentiable(classifier)
    model, tokenizer = classifier.model, classifier.tokenizer
    encoded = tokenizer(
        text,
        truncation=True,
        max_length=MAX_LENGTH,
        return_offsets_mapping=True,
        return_tensors="pt",
    )
    input_ids = encoded["input_ids"]  # (1, T)
    attention_mask = encoded["attention_mask"]  # (1, T)
    special = tokenizer.get_special_tokens_mask(
        input_ids[0].tolist(), already_has_special_tokens=True
    )
    keep = torch.tensor(special, dtype=torch.bool)[None]  # (1, T)
    baseline = torch.where(keep, input_ids, tokenizer.pad_token_id)  # (1, T)

    def label_probability(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits = model(input_ids=ids, attention_mask=mask).logits.float()  # (B, L)
        return torch.softmax(logits, dim=-1)[:, label_index]  # (B,)

    explainer = LayerIntegratedGradients(label_probability, model.get_input_embeddings())
    attributions, delta = explainer.attribute(
        input_ids,
        baselines=baseline,
        additional_forward_args=(attention_mask,),
        n_steps=steps,
        internal_batch_size=IG_BATCH,
        return_convergence_delta=True,
    )  # (1, T, H), (1,)
    token_scores = attributions.sum(-1)[0].detach().double().numpy()  # (T,)
    with torch.no_grad():
        baseline_probability = float(label_probability(baseline, attention_mask)[0])
    indexed = index_words(text)
    word_scores, non_word = _sum_by_word(
        token_scores,
        encoded["offset_mapping"][0].tolist(),
        char_to_word(indexed),
        indexed.num_words(),
    )
    weights = [(str(word), float(word_scores[i])) for i, word in enumerate(indexed.inverse_vocab)]
    details = {
        "steps": steps,
        "convergence_delta": float(delta[0]),
        "baseline_probability": baseline_probability,
        "non_word_attribution": non_word,
    }
    return weights, details


def _sum_by_word(
    token_scores: np.ndarray, offsets: list[list[int]], owner: np.ndarray, n_words: int
) -> tuple[np.ndarray, float]:
    """Add each token's score to the word its first character belongs to; return the
    per-word sums and the total of tokens in no word (punctuation; special tokens are 0)."""
    word_scores = np.zeros(n_words)  # (W,)
    non_word = 0.0
    for score, (start, end) in zip(token_scores, offsets, strict=True):
        word = int(owner[start]) if end > start else -1
        if word >= 0:
            word_scores[word] += score
        else:
            non_word += float(score)
    return word_scores, non_word


def check_differentiable(classifier: TextClassifier) -> None:
    """Raise a clear error unless gradients flow through the classifier's float weights
    (integrated gradients need them; ONNX exports and quantized models have none)."""
    if classifier.onnx is not None:
        raise LmforgeError(
            f"method 'ig': {classifier.model_ref!r} is an ONNX export, and integrated "
            "gradients need the PyTorch model's gradients; explain it with method 'lime', "
            "or pass the transformers model directory it was exported from."
        )
    quantized = [
        name
        for name, module in classifier.model.named_modules()
        if type(module).__module__.startswith(("lmforge.hub.quantized", "torch.ao"))
    ]
    embeddings = classifier.model.get_input_embeddings()
    if quantized or not isinstance(embeddings, torch.nn.Embedding):
        raise LmforgeError(
            f"method 'ig': {classifier.model_ref!r} is quantized (e.g. layer "
            f"{(quantized or ['embeddings'])[0]!r}), and integrated gradients need float "
            "weights; explain it with method 'lime', or pass the fp32 model it was "
            "compressed from."
        )
