"""The continuous-batching engine: many requests, one model, one decode step at a time.

A background thread owns the model. Between two steps it admits waiting requests into
free cache slots and drops finished ones, so a request never waits for a whole batch to
end. A runner that batches prompts with decodes (llama.cpp) gets the new prompts in the
next decode step; the torch runner prefills each one at admission. Every sequence has
its own sampling state (seeded generator, penalties, stop strings), so a request's
output does not depend on what it was batched with under greedy decoding.

A finished sequence's cache slot is kept (least recently used first to go): a request
whose prompt starts with a kept sequence's tokens (the next turn of a conversation)
prefills only the new part. The same holds for a running sequence's prompt, which is
how ``n > 1`` completions share one prefill (the other choices wait one step for it).

Requests talk to the engine through ``emit`` callbacks, so the engine knows nothing of
HTTP or asyncio; the endpoint families in ``serve/api/`` turn events into OpenAI responses.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from lmforge.errors import LmforgeError
from lmforge.serve.generate import _first_stop, _held_back, end_token_ids, sample_next
from lmforge.serve.json_mode import JsonPrefix
from lmforge.serve.runner import SlotRunner

_JSON_SAMPLED_TRIES = 64  # JSON mode: candidates drawn from the distribution before a scan
_WORTH_WAITING = 16  # prompt tokens a request must be able to copy to wait a step for them


@dataclass(frozen=True)
class RequestParams:
    """Sampling and output options of one sequence (validated by the handler)."""

    max_tokens: int = 256
    temperature: float = 1.0  # 0 is greedy
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logprobs: bool = False
    top_logprobs: int = 0
    json_object: bool = False  # constrain the output to one JSON object


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token with its log-probability and the most likely alternatives."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass
class Event:
    """What a sequence produced since its last event; ``finish_reason`` set on the last."""

    text: str = ""
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None  # "stop" | "length" | "cancelled" | "error"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens whose cache was reused
    error: str | None = None


@dataclass
class Request:
    """A prompt to complete; ``emit`` is called from the engine thread."""

    prompt_ids: list[int]
    params: RequestParams
    emit: Callable[[Event], None]
    adapter: str | None = None  # a LoRA adapter loaded in the model; None: the base
    cancelled: threading.Event = field(default_factory=threading.Event)
    submitted: float = field(default_factory=time.perf_counter)


class QueueFull(LmforgeError):
    """The waiting queue is at ``max_queue``."""


@dataclass
class _Sequence:
    request: Request
    generator: torch.Generator
    cached_tokens: int
    tokens: list[int] = field(default_factory=list)  # generated ids
    counts: dict[int, int] = field(default_factory=dict)  # for the penalties
    text: str = ""
    emitted: int = 0  # characters of ``text`` already sent
    prompt_left: list[int] = field(default_factory=list)  # to prefill in the next step
    pending: list[TokenLogprob] = field(default_factory=list)
    next_token: int = -1  # sampled, not yet fed to the model
    last_token_at: float = 0.0
    prefix_offset: int = 0  # incremental detokenization: see _append_text
    read_offset: int = 0
    json: JsonPrefix | None = None  # the JSON read so far, under response_format json_object


def _ignore(name: str, seconds: float) -> None:
    pass


@dataclass
class EngineStats:
    """Counters the metrics endpoint reads, and ``observe(name, seconds)`` for latencies:
    ``queue`` (submitted to admitted), ``ttft`` (submitted to first token), ``itl``
    (between two tokens of a sequence), ``e2e`` (submitted to finished), ``step`` (one
    batched decode step)."""

    running: int = 0
    waiting: int = 0
    prompt_tokens: int = 0
    generation_tokens: int = 0
    observe: Callable[[str, float], None] = _ignore


class GenerationBackend(Protocol):
    """What the OpenAI handler needs from an engine.

    ``Engine`` below is the torch backend; a llama.cpp backend for GGUF files arrives
    with the compress issue and registers itself in ``serve/server.py`` the same way.
    """

    tokenizer: Any
    max_len: int
    stats: EngineStats

    def submit(self, request: Request) -> None: ...

    def call(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run other model work (guard, embeddings) on the engine's thread."""
        ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class Engine:
    """Continuous batching over a ``SlotRunner``.

    Args:
        model: a causal LM the runner supports.
        tokenizer: its tokenizer.
        max_batch: sequences decoded together at most.
        max_queue: requests waiting for a slot at most (more get ``QueueFull``).
        max_len: the longest prompt + completion; defaults to the model's context.
        kept_slots: finished sequences whose cache is kept for prefix reuse.
        runner_class: builds the cache and runs the model, ``runner_class(model, slots,
            max_len)``: ``SlotRunner`` (torch) or ``LlamaCppRunner`` (GGUF files).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_batch: int = 16,
        max_queue: int = 256,
        max_len: int | None = None,
        kept_slots: int | None = None,
        runner_class: Callable[..., Any] = SlotRunner,
    ) -> None:
        context = getattr(model.config, "max_position_embeddings", None) or 2048
        self.max_len = min(max_len or context, context)
        self.max_batch, self.max_queue = max_batch, max_queue
        kept = max_batch if kept_slots is None else kept_slots
        self.runner = runner_class(model, slots=max_batch + kept, max_len=self.max_len)
        self.max_len = self.runner.max_len
        self.tokenizer = tokenizer
        self.end_ids = end_token_ids(model, tokenizer)
        self.stats = EngineStats()
        self._waiting: deque[Request] = deque()
        self._running: list[_Sequence] = []  # running[i] lives in cache slot i
        self._slot_tokens: list[list[int]] = [[] for _ in range(self.runner.slots)]
        self._slot_adapter: list[str | None] = [None] * self.runner.slots
        self._slot_used: list[float] = [0.0] * self.runner.slots
        self._wake = threading.Condition()
        self._calls: deque[tuple[Callable[..., Any], tuple[Any, ...], Future[Any]]] = deque()
        self._stopping = False
        self._texts: list[str] | None = None
        self._thread = threading.Thread(target=self._loop, name="lmforge-engine", daemon=True)

    # --- public ---------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Cancel everything and end the engine thread."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout=30)

    def call(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` on the engine thread, between two decode steps.

        Every torch computation of the server (guard classifier, embeddings) goes
        through here, so one thread owns the CPU's OpenMP workers. PyTorch's OpenMP
        runtime gives each calling thread its own worker team; with a second team alive
        (even idle) on this 2-core machine, its workers stop spin-waiting and every
        parallel op of a decode step pays a sleep and a wake-up: batch-1 decode measured
        34 ms per token instead of 16.
        """
        future: Future[Any] = Future()
        with self._wake:
            if self._stopping:
                raise LmforgeError("the engine is stopping")
            self._calls.append((fn, args, future))
            self._wake.notify()
        return future

    def submit(self, request: Request) -> None:
        """Queue ``request``.

        Raises:
            QueueFull: ``max_queue`` requests are already waiting.
            LmforgeError: the prompt leaves no room in the context.
        """
        if len(request.prompt_ids) + 1 > self.max_len:
            raise LmforgeError(
                f"the prompt has {len(request.prompt_ids)} tokens but the context is "
                f"{self.max_len} tokens (prompt plus at least one generated token)"
            )
        with self._wake:
            if len(self._waiting) >= self.max_queue:
                raise QueueFull(f"the queue is full ({self.max_queue} waiting requests)")
            self._waiting.append(request)
            self.stats.waiting = len(self._waiting)
            self._wake.notify()

    # --- the loop -------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not (self._stopping or self._waiting or self._running or self._calls):
                    self._wake.wait()
                if self._stopping:
                    break
            self._run_calls()
            try:
                for sequence in [s for s in self._running if s.request.cancelled.is_set()]:
                    self._finish(sequence, "cancelled")
                self._admit()
                if self._running:
                    self._step()
            except Exception as error:  # a bug must not hang every client: fail them all
                for sequence in list(self._running):
                    self._finish(sequence, "error", error=f"{type(error).__name__}: {error}")
        for sequence in list(self._running):
            self._finish(sequence, "cancelled")
        for request in self._waiting:
            request.emit(Event(finish_reason="cancelled", prompt_tokens=len(request.prompt_ids)))
        for _, _, future in self._calls:
            future.set_exception(LmforgeError("the engine stopped"))

    def _run_calls(self) -> None:
        while True:
            with self._wake:
                if not self._calls:
                    return
                fn, args, future = self._calls.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except Exception as error:  # handed to the caller, who reports it
                future.set_exception(error)

    def _admit(self) -> None:
        while len(self._running) < self.max_batch:
            with self._wake:
                if not self._waiting or self._shares_a_pending_prompt(self._waiting[0]):
                    return
                request = self._waiting.popleft()
                self.stats.waiting = len(self._waiting)
            if request.cancelled.is_set():
                request.emit(Event(finish_reason="cancelled"))
                continue
            self.stats.observe("queue", time.perf_counter() - request.submitted)
            try:
                self._start(request)
            except Exception as error:  # out of the queue, not yet running: tell it here
                request.emit(Event(finish_reason="error", error=f"{type(error).__name__}: {error}"))
                continue
            if not getattr(self.runner, "batches_prompts", False):
                # A runner that runs prompts one by one anyway: prefill now and stream
                # the first token at once (time to first token), not after every prompt.
                self._step(prefill_only=True)

    def _shares_a_pending_prompt(self, request: Request) -> bool:
        """Whether ``request``'s prompt was admitted but not yet prefilled (the other
        choices of an ``n > 1`` request): it waits one step and then copies that cache
        instead of computing the same prompt again. Prompts that only share a beginning
        (a common system prompt) do not wait: that would admit one request per step."""
        for sequence in self._running:
            if sequence.prompt_left and sequence.request.adapter == request.adapter:
                prompt = sequence.request.prompt_ids
                shared = _shared_prefix(prompt, request.prompt_ids, len(prompt))
                whole = shared >= len(request.prompt_ids) - 1
                if whole and shared - sequence.cached_tokens >= _WORTH_WAITING:
                    return True
        return False

    def _start(self, request: Request) -> None:
        """Place ``request`` in the next free slot; its prompt is prefilled in the next step."""
        slot = len(self._running)
        reused = self._place(request.prompt_ids, request.adapter, slot)
        generator = torch.Generator()
        if request.params.seed is None:
            generator.seed()  # from the OS, leaving torch's global generator alone
        else:
            generator.manual_seed(request.params.seed)
        sequence = _Sequence(request, generator, cached_tokens=reused,
                             prompt_left=list(request.prompt_ids[reused:]))  # fmt: skip
        if request.params.json_object:
            sequence.json = JsonPrefix()
        self._running.append(sequence)
        self.stats.running = len(self._running)
        self.stats.prompt_tokens += len(request.prompt_ids)

    def _place(self, prompt: Sequence[int], adapter: str | None, slot: int) -> int:
        """Put the best cache for ``prompt`` into ``slot`` (the first free running slot);
        returns how many prompt tokens it already holds. A cache only serves requests
        for the same adapter: the adapter changes the keys and values."""
        best, best_shared = None, 0
        for candidate, tokens in enumerate(self._slot_tokens):
            if self._slot_adapter[candidate] != adapter:
                continue
            shared = _shared_prefix(tokens, prompt, self.runner.lengths[candidate])
            if shared > best_shared:
                best, best_shared = candidate, shared
        best_shared = min(best_shared, len(prompt) - 1)  # prefill at least one token
        if best is not None and best >= slot and best_shared > 0:  # a kept slot: move it
            self._swap(best, slot)
        else:
            self._swap(self._evictable(slot), slot)
            if best is not None and best_shared > 0:  # a running sequence's prompt
                self.runner.copy(best, slot)
            else:
                best_shared = 0
        self.runner.truncate(slot, best_shared)
        self._slot_tokens[slot] = list(prompt[:best_shared])
        self._slot_adapter[slot] = adapter
        return best_shared

    def _evictable(self, slot: int) -> int:
        """The least recently used slot not running (``slot`` itself is free)."""
        free = range(slot, self.runner.slots)
        return min(free, key=lambda s: self._slot_used[s])

    def _swap(self, a: int, b: int) -> None:
        self.runner.swap(a, b)
        self._slot_tokens[a], self._slot_tokens[b] = self._slot_tokens[b], self._slot_tokens[a]
        self._slot_used[a], self._slot_used[b] = self._slot_used[b], self._slot_used[a]
        self._slot_adapter[a], self._slot_adapter[b] = self._slot_adapter[b], self._slot_adapter[a]

    def _step(self, prefill_only: bool = False) -> None:
        """One model step: a new token for every decoding sequence and the prompts of the
        ones admitted since the last step, together (a runner with ``batches_prompts``
        runs them in one forward pass: llama.cpp does). ``prefill_only``: the prompts."""
        decoding = [s for s in self._running if not s.prompt_left]  # slots 0..k-1
        fresh = self._running[len(decoding) :]  # admitted last: the slots after them
        if prefill_only:
            decoding_rows, decoding = len(decoding), []
        else:
            decoding_rows = len(decoding)
        started = time.perf_counter()
        logits = self.runner.step(
            [s.next_token for s in decoding],
            [s.request.adapter for s in decoding],
            [(decoding_rows + i, s.prompt_left, s.request.adapter) for i, s in enumerate(fresh)],
        )  # (B, V): decode rows, then each prompt's last position
        now = time.perf_counter()
        for index, sequence in enumerate(decoding):
            self._slot_tokens[index].append(sequence.next_token)
            self.stats.observe("itl", now - sequence.last_token_at)
            sequence.last_token_at = now
        if decoding:
            self.stats.observe("step", now - started)
        for index, sequence in enumerate(fresh, start=decoding_rows):
            self._slot_tokens[index] = list(sequence.request.prompt_ids)
            sequence.prompt_left = []
            sequence.last_token_at = now
            self.stats.observe("ttft", now - sequence.request.submitted)
        self._advance(decoding + fresh, logits)

    def _advance(self, sequences: list[_Sequence], logits: torch.Tensor) -> None:
        """Sample each sequence's next token from its row of ``logits`` (B, V) and emit."""
        for sequence, row in zip(sequences, logits, strict=True):
            params = sequence.request.params
            token = self._pick(sequence, row)
            if params.logprobs:
                sequence.pending.append(self._logprob(row, token, params.top_logprobs))
            if token in self.end_ids:
                self._finish(sequence, "stop")
                continue
            sequence.tokens.append(token)
            sequence.counts[token] = sequence.counts.get(token, 0) + 1
            self.stats.generation_tokens += 1
            self._append_text(sequence)
            cut = _first_stop(sequence.text, params.stop)
            if cut is not None:
                sequence.text = sequence.text[:cut]
                self._finish(sequence, "stop")
                continue
            room = self.max_len - len(sequence.request.prompt_ids) - len(sequence.tokens)
            if len(sequence.tokens) >= params.max_tokens or room <= 0:
                self._finish(sequence, "length")
                continue
            sequence.next_token = token
            safe_end = len(sequence.text) - _held_back(sequence.text, params.stop)
            if safe_end > sequence.emitted or sequence.pending:
                self._emit(sequence, safe_end)

    def _append_text(self, sequence: _Sequence) -> None:
        """Extend ``sequence.text`` by its newest token without decoding it all again.

        Decoding a few tokens of context before the new ones and keeping only the extra
        text handles tokenizers whose pieces depend on their neighbours (leading
        spaces); a trailing U+FFFD means a character is still incomplete, so wait.
        """
        decode = self.tokenizer.decode
        tokens = sequence.tokens
        before = decode(
            tokens[sequence.prefix_offset : sequence.read_offset], skip_special_tokens=True
        )
        after = decode(tokens[sequence.prefix_offset :], skip_special_tokens=True)
        if len(after) > len(before) and not after.endswith("\ufffd"):
            sequence.text += after[len(before) :]
            sequence.prefix_offset, sequence.read_offset = sequence.read_offset, len(tokens)

    def _pick(self, sequence: _Sequence, logits: torch.Tensor) -> int:
        """The next token: sampled, and under JSON mode the likeliest one that keeps the
        text a valid prefix of a JSON object (the end token once the object is closed)."""
        if sequence.json is None:
            return self._sample(sequence, logits)
        if sequence.json.done:
            return min(self.end_ids)
        texts = self._token_texts()
        logits = logits.clone()
        for attempt in range(_JSON_SAMPLED_TRIES + len(texts)):
            if attempt < _JSON_SAMPLED_TRIES:
                token = self._sample(sequence, logits)
            else:  # rare: walk the whole vocabulary by likelihood
                token = int(torch.argmax(logits))
            trial = sequence.json.copy()
            if token not in self.end_ids and texts[token] and trial.feed_text(texts[token]):
                sequence.json = trial
                return token
            logits[token] = float("-inf")
        return min(self.end_ids)  # no token continues the JSON: end (the caller sees why)

    def _token_texts(self) -> list[str]:
        """Each token's text on its own (computed once, on the first JSON request)."""
        if self._texts is None:
            decode = self.tokenizer.decode
            self._texts = [
                decode([i], skip_special_tokens=True) for i in range(len(self.tokenizer))
            ]
        return self._texts

    def _sample(self, sequence: _Sequence, logits: torch.Tensor) -> int:
        params = sequence.request.params
        if sequence.counts and (params.presence_penalty or params.frequency_penalty):
            ids = torch.tensor(list(sequence.counts))
            counts = torch.tensor(list(sequence.counts.values()), dtype=logits.dtype)
            logits = logits.clone()
            logits[ids] -= params.presence_penalty + params.frequency_penalty * counts
        return sample_next(logits, params.temperature, params.top_p, sequence.generator)

    def _logprob(self, logits: torch.Tensor, token: int, top: int) -> TokenLogprob:
        logprobs = torch.log_softmax(logits.float(), dim=-1)  # (V,)
        alternatives: tuple[tuple[str, float], ...] = ()
        if top:
            values, ids = torch.topk(logprobs, top)
            alternatives = tuple(
                (self.tokenizer.decode([int(i)]), float(v))
                for v, i in zip(values, ids, strict=True)
            )
        return TokenLogprob(self.tokenizer.decode([token]), float(logprobs[token]), alternatives)

    def _emit(self, sequence: _Sequence, end: int, finish_reason: str | None = None) -> None:
        request = sequence.request
        event = Event(
            text=sequence.text[sequence.emitted : end],
            logprobs=sequence.pending,
            finish_reason=finish_reason,
            prompt_tokens=len(request.prompt_ids),
            completion_tokens=len(sequence.tokens),
            cached_tokens=sequence.cached_tokens,
        )
        sequence.emitted, sequence.pending = end, []
        request.emit(event)

    def _finish(self, sequence: _Sequence, reason: str, error: str | None = None) -> None:
        index = self._running.index(sequence)
        last = len(self._running) - 1
        self._swap(index, last)  # keep running sequences in slots 0..B-1
        self._running[index], self._running[last] = self._running[last], self._running[index]
        self._running.pop()
        self._slot_used[last] = time.perf_counter()
        self.stats.running = len(self._running)
        self.stats.observe("e2e", time.perf_counter() - sequence.request.submitted)
        if error is not None:
            sequence.request.emit(Event(finish_reason="error", error=error))
            return
        self._emit(sequence, len(sequence.text), finish_reason=reason)


def _shared_prefix(cached: Sequence[int], prompt: Sequence[int], length: int) -> int:
    """How many leading tokens ``prompt`` shares with a slot's first ``length`` tokens."""
    limit = min(length, len(cached), len(prompt))
    shared = 0
    while shared < limit and cached[shared] == prompt[shared]:
        shared += 1
    return shared
