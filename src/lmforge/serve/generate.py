"""Seeded, streaming text generation for one sequence with a KV cache.

Iterate a ``TextGeneration`` to get text as it is produced; afterwards its
``completion`` holds the whole text, the finish reason and token counts. The same seed
and prompt always give the same output.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from lmforge.errors import LmforgeError


@dataclass(frozen=True)
class SamplingParams:
    """How to pick tokens. ``temperature == 0`` means greedy decoding."""

    max_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problems = []
        if self.max_tokens < 1:
            problems.append(f"max_tokens must be >= 1, got {self.max_tokens}")
        if not 0.0 <= self.temperature <= 2.0:
            problems.append(f"temperature must be in [0, 2], got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            problems.append(f"top_p must be in (0, 1], got {self.top_p}")
        if any(not stop for stop in self.stop):
            problems.append("stop strings must not be empty")
        if problems:
            raise LmforgeError("invalid sampling options: " + "; ".join(problems) + ".")


@dataclass(frozen=True)
class Completion:
    """A finished generation."""

    text: str
    finish_reason: str  # "stop" (end token or stop string) | "length" (max_tokens)
    prompt_tokens: int
    completion_tokens: int
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0


def sample_next(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator
) -> int:
    """Pick the next token id from one position's logits ``(V,)`` (greedy at temperature 0)."""
    if temperature == 0.0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / temperature, dim=-1)  # (V,)
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        # Drop a token once the tokens ranked above it already cover top_p.
        drop = torch.cumsum(sorted_probs, dim=-1) - sorted_probs >= top_p
        sorted_probs[drop] = 0.0
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    # Sample on the CPU with a CPU generator so a seed means the same on every device.
    return int(torch.multinomial(probs.cpu(), 1, generator=generator))


def end_token_ids(model: Any, tokenizer: Any) -> set[int]:
    """Token ids that end a generation: the tokenizer's EOS and the model's configured ones."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(int(token) for token in configured)
    return ids


def context_length(model: Any) -> int | None:
    """The longest sequence (prompt + completion) the model accepts, if it says."""
    return getattr(model.config, "max_position_embeddings", None)


class TextGeneration:
    """One streaming generation. Iterate for text deltas, then read ``completion``."""

    def __init__(
        self, model: Any, tokenizer: Any, prompt_ids: Sequence[int], params: SamplingParams
    ) -> None:
        if not prompt_ids:
            raise LmforgeError("the prompt is empty; give the model some text to continue.")
        limit = context_length(model)
        if limit is not None and len(prompt_ids) >= limit:
            raise LmforgeError(
                f"the prompt has {len(prompt_ids)} tokens but the model's context is {limit}; "
                "shorten the prompt (or, in chat, /reset the conversation)."
            )
        self.model = model
        self.tokenizer = tokenizer
        self.prompt_ids = list(prompt_ids)
        self.params = params
        self.max_new = (
            params.max_tokens if limit is None else min(params.max_tokens, limit - len(prompt_ids))
        )
        self.completion: Completion | None = None

    def __iter__(self) -> Iterator[str]:
        params = self.params
        generator = torch.Generator()
        if params.seed is None:
            generator.seed()
        else:
            generator.manual_seed(params.seed)
        end_ids = end_token_ids(self.model, self.tokenizer)
        started = time.perf_counter()
        generated: list[int] = []
        emitted = 0
        text = ""
        finish_reason = "length"
        cache = None
        device = next(self.model.parameters()).device
        inputs = torch.tensor([self.prompt_ids], device=device)  # (1, T)
        with torch.inference_mode():
            while len(generated) < self.max_new:
                output = self.model(input_ids=inputs, cache=cache, use_cache=True, logits_to_keep=1)
                cache = output.cache
                logits = output.logits[0, -1]  # output.logits: (1, 1, V)
                token = sample_next(logits, params.temperature, params.top_p, generator)
                if token in end_ids:
                    finish_reason = "stop"
                    break
                generated.append(token)
                inputs = torch.tensor([[token]], device=device)  # (1, 1): the cache has the rest
                text = self.tokenizer.decode(generated, skip_special_tokens=True)
                cut = _first_stop(text, params.stop)
                if cut is not None:
                    text = text[:cut]
                    finish_reason = "stop"
                    break
                safe_end = len(text) - _held_back(text, params.stop)
                if safe_end > emitted:
                    yield text[emitted:safe_end]
                    emitted = safe_end
        if len(text) > emitted:
            yield text[emitted:]
        self.completion = Completion(
            text=text,
            finish_reason=finish_reason,
            prompt_tokens=len(self.prompt_ids),
            completion_tokens=len(generated),
            seconds=time.perf_counter() - started,
        )

    def run(self) -> Completion:
        """Generate to the end without streaming."""
        for _ in self:
            pass
        assert self.completion is not None
        return self.completion


def _first_stop(text: str, stops: Sequence[str]) -> int | None:
    positions = [pos for stop in stops if (pos := text.find(stop)) >= 0]
    return min(positions) if positions else None


def _held_back(text: str, stops: Sequence[str]) -> int:
    """How many trailing characters to withhold: a possible stop-string start or a
    partial UTF-8 character (decoded as U+FFFD until its last byte arrives)."""
    held = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:size]):
                held = max(held, size)
                break
    if text.endswith("\ufffd"):
        held = max(held, 1)
    return held
