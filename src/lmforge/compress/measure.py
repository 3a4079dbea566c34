"""Size, speed and quality of a model, measured the same way for every format.

Causal LMs: quality is the perplexity of the assistant turns of the bundled held-out
support dialogs (the numbers ``benchmarks/bench_serve.py`` reports); speed is batch-1
greedy decoding on this CPU: the median time per output token and output tokens per
second, through lmforge's serving runner for torch models and through llama.cpp for
GGUF files.

Classifiers and encoders: speed is the median time of one batch of 32 held-out texts
and texts per second; quality is accuracy on labeled held-out texts (classifiers) or
the mean cosine similarity of each embedding to the fp32 source's (encoders).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import torch
from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

from lmforge.data.bundled import dataset_path
from lmforge.data.chat import render_chat
from lmforge.data.records import read_records
from lmforge.errors import LmforgeError
from lmforge.hardware import native_threads
from lmforge.hub.load import import_llama_cpp
from lmforge.hub.quantized import Int4Linear, Int8Linear, QuantizedEmbedding
from lmforge.runtime.pooling import pool
from lmforge.serve.runner import SlotRunner
from lmforge.tasks.base import IGNORE_INDEX, Example
from lmforge.tasks.causal_lm import collate_lm, lm_loss, lm_target_count
from lmforge.tasks.sft import encode_conversation

SPEED_PROMPT = "Tell me how to set up my smart thermostat, step by step."
SPEED_TOKENS = 32


@dataclass
class Measurement:
    """One row of a compress/export table."""

    label: str
    parameters: int
    size_bytes: int
    latency_ms: float  # median per output token, batch 1
    tokens_per_s: float
    perplexity: float

    def row(self, reference: Measurement) -> dict[str, str]:
        """The table row, with size and quality relative to ``reference`` (the fp32 source)."""
        change = self.perplexity / reference.perplexity - 1
        return {
            "model": self.label,
            "parameters": f"{self.parameters / 1e6:.1f}M",
            "size MB": f"{self.size_bytes / 1e6:.1f}",
            "size vs fp32": size_change(self.size_bytes, reference.size_bytes),
            "ms/token p50": f"{self.latency_ms:.1f}",
            "tokens/s": f"{self.tokens_per_s:.1f}",
            "held-out perplexity": f"{self.perplexity:.2f}",
            "perplexity change": f"{100 * change:+.1f}%",
        }

    def metrics(self, prefix: str) -> dict[str, float]:
        return {f"{prefix}/size_bytes": float(self.size_bytes),
                f"{prefix}/latency_ms_p50": self.latency_ms,
                f"{prefix}/tokens_per_s": self.tokens_per_s,
                f"{prefix}/perplexity": self.perplexity}  # fmt: skip


@dataclass
class BatchMeasurement:
    """One row of a compress table for a classifier (accuracy) or encoder (cosine)."""

    label: str
    parameters: int
    size_bytes: int
    latency_ms: float  # median per batch of BATCH texts
    texts_per_s: float
    quality_name: str  # "accuracy" or "cosine to fp32"
    quality: float

    def row(self, reference: BatchMeasurement) -> dict[str, str]:
        speedup = reference.latency_ms / self.latency_ms
        if self.quality_name == "accuracy":
            quality, change = (
                f"{100 * self.quality:.1f}%",
                f"{100 * (self.quality - reference.quality):+.1f} pt",
            )
        else:
            quality, change = f"{self.quality:.4f}", f"{self.quality - reference.quality:+.4f}"
        return {
            "model": self.label,
            "parameters": f"{self.parameters / 1e6:.1f}M",
            "size MB": f"{self.size_bytes / 1e6:.1f}",
            "size vs fp32": size_change(self.size_bytes, reference.size_bytes),
            f"ms/batch of {BATCH} p50": f"{self.latency_ms:.1f}",
            "speedup": f"{speedup:.2f}x",
            "texts/s": f"{self.texts_per_s:.1f}",
            self.quality_name: quality,
            "change": change,
        }

    def metrics(self, prefix: str) -> dict[str, float]:
        key = "accuracy" if self.quality_name == "accuracy" else "cosine"
        return {f"{prefix}/size_bytes": float(self.size_bytes),
                f"{prefix}/latency_ms_p50": self.latency_ms,
                f"{prefix}/texts_per_s": self.texts_per_s,
                f"{prefix}/{key}": self.quality}  # fmt: skip


BATCH = 32
MAX_LENGTH = 128


def size_change(size: float, reference: float) -> str:
    """``-92.7%`` for a smaller file, ``+0.8%`` for a larger one, ``0%`` for the same."""
    change = 100 * (size / reference - 1)
    return f"{change:+.1f}%" if round(change, 1) else "0%"


def measure_classifier(
    model: Any, tokenizer: Any, label: str, size_bytes: int, records: list[dict[str, Any]]
) -> BatchMeasurement:
    """Accuracy of a sequence classifier on labeled ``records`` and its batch latency."""
    label_ids = {str(name): int(index) for name, index in model.config.label2id.items()}
    unknown = sorted({str(r["label"]) for r in records} - set(label_ids))
    if unknown:
        raise LmforgeError(
            f"the evaluation data has labels {unknown} that the model does not know "
            f"(its labels: {sorted(label_ids)}); pass held-out data of the same task."
        )
    texts = [r["text"] for r in records]
    predictions, times = _batched(model, tokenizer, texts, lambda out, _: out.logits.argmax(-1))
    truth = torch.tensor([label_ids[str(r["label"])] for r in records])
    accuracy = float((torch.cat(predictions) == truth).float().mean())
    return _batch_measurement(model, label, size_bytes, times, len(texts), "accuracy", accuracy)


def measure_encoder(
    model: Any, tokenizer: Any, label: str, size_bytes: int, texts: list[str],
    reference: Any = None,
) -> BatchMeasurement:  # fmt: skip
    """Mean-pooled embeddings of ``texts``: their cosine similarity to ``reference``'s
    (the fp32 encoder; 1.0 when omitted) and the batch latency."""

    def pooled(out: Any, batch: Any) -> torch.Tensor:
        return pool(out.last_hidden_state, batch["attention_mask"], "mean", normalize=False)

    vectors, times = _batched(model, tokenizer, texts, pooled)
    cosine = 1.0
    if reference is not None:
        expected, _ = _batched(reference, tokenizer, texts, pooled)
        similarity = torch.nn.functional.cosine_similarity(torch.cat(vectors), torch.cat(expected))
        cosine = float(similarity.mean())
    return _batch_measurement(model, label, size_bytes, times, len(texts), "cosine to fp32", cosine)


def _batched(
    model: Any, tokenizer: Any, texts: list[str], read: Any
) -> tuple[list[Any], list[float]]:
    outputs, times = [], []
    with torch.inference_mode():
        for start in range(0, len(texts), BATCH):
            batch = tokenizer(texts[start : start + BATCH], padding=True, truncation=True,
                              max_length=MAX_LENGTH, return_tensors="pt")  # fmt: skip
            started = time.perf_counter()
            out = model(**batch)
            times.append(time.perf_counter() - started)
            outputs.append(read(out, batch))
    return outputs, times


def _batch_measurement(
    model: Any, label: str, size_bytes: int, times: list[float], count: int, name: str,
    quality: float,
) -> BatchMeasurement:  # fmt: skip
    full = times[:-1] or times  # the last batch may be short
    latency = 1000 * statistics.median(full)
    return BatchMeasurement(
        label, count_parameters(model), size_bytes, latency, count / sum(times), name, quality
    )


def count_parameters(model: Any) -> int:
    """Weights in the model, counting each quantized layer's integers as its parameters
    and shared (tied) tensors once."""
    seen: set[int] = set()
    total = 0
    for module in model.modules():
        tensors = list(module.parameters(recurse=False))
        if isinstance(module, Int8Linear | Int4Linear | QuantizedEmbedding):
            tensors = [module.qweight]
            factor = 2 if module.qweight.dtype.is_signed is False else 1
        elif isinstance(module, DynamicLinear):
            tensors, factor = ([] if getattr(module, "tied", False) else [module.weight()]), 1
        else:
            factor = 1
        for tensor in tensors:
            key = tensor.data_ptr() if not tensor.is_quantized else id(module)
            if key not in seen:
                seen.add(key)
                total += tensor.numel() * factor
    return total


def held_out_examples(tokenizer: Any, limit: int | None = None) -> list[Example]:
    """The bundled held-out support dialogs, encoded with assistant-only labels."""
    records, _ = read_records(dataset_path("customer_service", "test"), format="messages")
    return [encode_conversation(tokenizer, r["messages"]) for r in records[:limit]]


def measure_torch(model: Any, tokenizer: Any, label: str, size_bytes: int) -> Measurement:
    """Measure a transformers causal LM (fp32 or quantized in place)."""
    perplexity = torch_perplexity(model, tokenizer)
    prompt = render_chat(tokenizer, [{"role": "user", "content": SPEED_PROMPT}])
    runner = SlotRunner(model, slots=1, max_len=len(prompt) + SPEED_TOKENS + 1)
    token = int(runner.prefill(0, prompt).argmax())
    times = []
    for _ in range(SPEED_TOKENS):
        started = time.perf_counter()
        token = int(runner.decode([token])[0].argmax())
        times.append(time.perf_counter() - started)
    return _measurement(label, count_parameters(model), size_bytes, times, perplexity)


def torch_perplexity(model: Any, tokenizer: Any) -> float:
    """Held-out perplexity of a transformers causal LM (fp32 or quantized in place)."""
    examples = held_out_examples(tokenizer)
    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(examples), 4):
            batch = collate_lm(examples[start : start + 4], tokenizer.pad_token_id)
            total += float(lm_loss(model, batch))
            count += lm_target_count(batch)
    return math.exp(total / count)


def next_token_predictions(model: Any, tokenizer: Any) -> Any:
    """The top-1 next token of a causal LM at every assistant token of the held-out
    dialogs, teacher-forced: a 1-D tensor, one entry per position, in a fixed order.

    Each dialog runs alone, so no padding row enters a dynamic INT8 activation scale.
    Two models' predictions compared position by position give their top-1 agreement,
    the least noisy way to tell how far a quantized model drifts from its fp32 source:
    a greedy answer forks at its first flipped near-tie and differs from there on.
    """
    predictions = []
    with torch.inference_mode():
        for example in held_out_examples(tokenizer):
            targets = torch.tensor(example["labels"][1:])  # (T-1,)
            logits = model(input_ids=torch.tensor([example["input_ids"]])).logits[0, :-1]
            predictions.append(logits[targets != IGNORE_INDEX].argmax(-1))  # (A,)
    return torch.cat(predictions)


def answer_agreement(answers: list[list[str]], reference: list[list[str]]) -> tuple[float, float]:
    """How closely greedy ``answers`` follow ``reference``'s (each a list of tokens, the
    end token included when the answer stopped on it).

    Returns:
        ``(exact, prefix)``: the share of answers identical to the reference's, and the
        mean share of leading tokens they have in common (shared tokens over the longer
        of the two answers, so stopping early or running on both count as a difference).
    """
    if len(answers) != len(reference) or not answers:
        raise LmforgeError(f"answer_agreement needs as many answers as reference answers "
                           f"(got {len(answers)} and {len(reference)}), at least one")  # fmt: skip
    exact, prefix = 0, 0.0
    for answer, expected in zip(answers, reference, strict=True):
        shared = 0
        while shared < min(len(answer), len(expected)) and answer[shared] == expected[shared]:
            shared += 1
        exact += answer == expected
        prefix += shared / max(len(answer), len(expected), 1)
    return exact / len(answers), prefix / len(answers)


def measure_gguf(path: Path, tokenizer: Any, label: str) -> Measurement:
    """Measure a GGUF file through llama.cpp (llama-cpp-python)."""
    llama_cpp = import_llama_cpp()
    perplexity = gguf_perplexity(path, tokenizer)
    parameters = sum(int(np.prod(t.shape)) for t in _gguf_tensors(path))
    # logits_all: without it llama-cpp-python leaves `scores` empty (greedy would read 0s)
    decoder = llama_cpp.Llama(model_path=str(path), n_ctx=1024, n_threads=native_threads(),
                              logits_all=True, verbose=False)  # fmt: skip
    prompt = render_chat(tokenizer, [{"role": "user", "content": SPEED_PROMPT}])
    decoder.eval(prompt)
    times = []
    for _ in range(SPEED_TOKENS):
        token = int(np.argmax(decoder.scores[decoder.n_tokens - 1]))
        started = time.perf_counter()
        decoder.eval([token])
        times.append(time.perf_counter() - started)
    decoder.close()
    return _measurement(label, parameters, path.stat().st_size, times, perplexity)


def gguf_perplexity(path: Path, tokenizer: Any) -> float:
    """Held-out perplexity computed by llama.cpp itself (its kernels, its rounding)."""
    llama_cpp = import_llama_cpp()
    scorer = llama_cpp.Llama(model_path=str(path), n_ctx=4096, n_batch=512,
                             n_threads=native_threads(), logits_all=True,
                             verbose=False)  # fmt: skip
    total, count = 0.0, 0
    for example in held_out_examples(tokenizer):
        ids, labels = example["input_ids"], example["labels"]
        scorer.reset()
        scorer.eval(ids)
        logits = np.asarray(scorer.scores[: len(ids) - 1], dtype=np.float64)  # (T-1, V)
        targets = np.asarray(labels[1:])
        keep = targets != IGNORE_INDEX
        logits, targets = logits[keep], targets[keep]
        top = logits.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(logits - top).sum(axis=1)) + top[:, 0]
        total += float((log_norm - logits[np.arange(len(targets)), targets]).sum())
        count += int(keep.sum())
    scorer.close()
    return math.exp(total / count)


def _measurement(
    label: str, parameters: int, size_bytes: int, times: list[float], perplexity: float
) -> Measurement:
    return Measurement(label, parameters, size_bytes, 1000 * statistics.median(times),
                       len(times) / sum(times), perplexity)  # fmt: skip


def _gguf_tensors(path: Path) -> list[Any]:
    return list(gguf.GGUFReader(str(path)).tensors)
