"""The continuous-batching engine: many requests, one model, one decode step at a time.

A background thread owns the model. Between two steps it admits waiting requests into
free cache slots and drops finished ones, so a request never waits for a whole batch to
end. A runner that batches prompts with decodes (llama.cpp) gets the new prompts in the
next decode step; the torch runner prefills each one at admission. Choosing each
sequence's next token from its row of logits, and its text, is ``serve/decoding.py``'s
part: every sequence samples with its own state, so a request's output does not depend
on what it was batched with under greedy decoding.

A finished sequence's cache slot is kept (least recently used first to go): a request
whose prompt starts with a kept sequence's tokens (the next turn of a conversation)
prefills only the new part. The same holds for a running sequence's prompt, which is
how ``n > 1`` completions share one prefill (the other choices wait one step for it).

Requests talk to the engine through ``emit`` callbacks, so the engine knows nothing of
HTTP or asyncio; the endpoint families in ``serve/api/`` turn events into OpenAI responses.
The request and event types, and the ``GenerationBackend`` protocol this engine
implements, are in ``serve/requests.py``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

import torch

from lmforge.errors import LmforgeError
from lmforge.serve.decoding import RunningSequence, SequenceDecoder, start_sequence
from lmforge.serve.generate import end_token_ids
from lmforge.serve.grammar import GrammarCompiler
from lmforge.serve.requests import EngineStats, Event, QueueFull, Request
from lmforge.serve.runner import SlotRunner

_WORTH_WAITING = 16  # prompt tokens a request must be able to copy to wait a step for them
_LOWERED_SWITCH_SECONDS = 0.0005  # the GIL's hand-over interval beside a lowered engine


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
        niceness: run the engine thread, and the threads it starts (PyTorch's OpenMP
            workers), this much below the process's CPU priority (``lower_priority``).
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
        niceness: int = 0,
    ) -> None:
        if niceness:
            check_niceness()
        self.niceness = niceness
        self._switch_seconds = sys.getswitchinterval()  # what ``stop`` restores
        context = getattr(model.config, "max_position_embeddings", None) or 2048
        self.max_len = min(max_len or context, context)
        self.max_batch, self.max_queue = max_batch, max_queue
        kept = max_batch if kept_slots is None else kept_slots
        self.runner = runner_class(model, slots=max_batch + kept, max_len=self.max_len)
        self.max_len = self.runner.max_len
        self.tokenizer = tokenizer
        self.decoder = SequenceDecoder(tokenizer, end_token_ids(model, tokenizer))
        vocab = getattr(model, "vocab_size", None) or getattr(model.config, "vocab_size", None)
        self.grammars = GrammarCompiler(tokenizer, vocab or len(tokenizer), self.decoder.end_ids)
        self.stats = EngineStats()
        self._waiting: deque[Request] = deque()
        self._running: list[RunningSequence] = []  # running[i] lives in cache slot i
        self._slot_tokens: list[list[int]] = [[] for _ in range(self.runner.slots)]
        self._slot_adapter: list[str | None] = [None] * self.runner.slots
        self._slot_used: list[float] = [0.0] * self.runner.slots
        self._wake = threading.Condition()
        self._calls: deque[tuple[Callable[..., Any], tuple[Any, ...], Future[Any]]] = deque()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="lmforge-engine", daemon=True)

    # --- public ---------------------------------------------------------------------

    def start(self) -> None:
        if self.niceness:
            # the engine thread holds the GIL between torch ops; a waiting event loop gets
            # it after 0.5 ms instead of Python's 5 ms (until ``stop`` restores it)
            sys.setswitchinterval(_LOWERED_SWITCH_SECONDS)
        self._thread.start()

    def stop(self) -> None:
        """Cancel everything and end the engine thread."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout=30)
        if self.niceness:
            sys.setswitchinterval(self._switch_seconds)

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

    def run_here(self) -> None:
        """Run every submitted request to its end on the calling thread, for offline
        batched generation (GRPO's samples): the engine's own thread is never started, so
        the caller's OpenMP workers do all the work (see ``call``). An error in a step
        is raised here, after every running sequence is told.

        Raises:
            LmforgeError: the engine's thread is running.
        """
        if self._thread.is_alive():
            raise LmforgeError("run_here: the engine's thread is running; submit to it instead")
        while self._waiting or self._running:
            try:
                self._admit()
                if self._running:
                    self._step()
            except Exception as error:
                for sequence in list(self._running):
                    self._finish(sequence, "error", error=f"{type(error).__name__}: {error}")
                raise

    # --- the loop -------------------------------------------------------------------

    def _loop(self) -> None:
        if self.niceness:
            lower_priority(self.niceness)
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
        grammar = request.params.grammar
        matcher = self.grammars.matcher(grammar) if grammar is not None else None
        reused = self._place(request.prompt_ids, request.adapter, slot)
        self._running.append(start_sequence(request, cached_tokens=reused, matcher=matcher))
        self.stats.running = len(self._running)
        self.stats.prompt_tokens += len(request.prompt_ids)

    def _place(self, prompt: Sequence[int], adapter: str | None, slot: int) -> int:
        """Put the best cache for ``prompt`` into ``slot`` (the first free running slot);
        returns how many prompt tokens it already holds. A cache only serves requests
        for the same adapter: the adapter changes the keys and values."""
        best, best_shared = None, 0
        # A batch-invariant runner computes every prompt whole: a reused prefix was
        # computed in another forward pass, which gives other float bits.
        reusable = [] if getattr(self.runner, "batch_invariant", False) else self._slot_tokens
        for candidate, tokens in enumerate(reusable):
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

    def _advance(self, sequences: list[RunningSequence], logits: torch.Tensor) -> None:
        """Sample each sequence's next token from its row of ``logits`` (B, V) and emit."""
        for sequence, row in zip(sequences, logits, strict=True):
            params = sequence.request.params
            left = min(
                params.max_tokens - len(sequence.tokens),
                self.max_len - len(sequence.request.prompt_ids) - len(sequence.tokens),
            )
            self.decoder.constrain(sequence, row, left)  # in place: logprobs see it too
            token = self.decoder.pick(sequence, row)
            if params.logprobs:
                sequence.pending.append(self.decoder.logprob(row, token, params.top_logprobs))
            if token in self.decoder.end_ids:
                sequence.end_token = token
                self._finish(sequence, "stop")
                continue
            self.stats.generation_tokens += 1
            if self.decoder.add_token(sequence, token):  # the text reached a stop string
                self._finish(sequence, "stop")
                continue
            later = params.grammar_after
            if later is not None and sequence.matcher is None and sequence.text.endswith(later[0]):
                sequence.matcher = self.grammars.matcher(later[1])  # constrained from here
            room = self.max_len - len(sequence.request.prompt_ids) - len(sequence.tokens)
            if len(sequence.tokens) >= params.max_tokens or room <= 0:
                self._finish(sequence, "length")
                continue
            sequence.next_token = token
            safe_end = self.decoder.safe_end(sequence)
            if safe_end > sequence.emitted or sequence.pending:
                self._emit(sequence, safe_end)

    def _emit(self, sequence: RunningSequence, end: int, finish_reason: str | None = None) -> None:
        request = sequence.request
        token_ids: tuple[int, ...] = ()
        if finish_reason is not None:
            ended = () if sequence.end_token is None else (sequence.end_token,)
            token_ids = (*sequence.tokens, *ended)
        event = Event(
            text=sequence.text[sequence.emitted : end],
            logprobs=sequence.pending,
            finish_reason=finish_reason,
            prompt_tokens=len(request.prompt_ids),
            completion_tokens=len(sequence.tokens),
            cached_tokens=sequence.cached_tokens,
            token_ids=token_ids,
        )
        sequence.emitted, sequence.pending = end, []
        request.emit(event)

    def _finish(self, sequence: RunningSequence, reason: str, error: str | None = None) -> None:
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


def lower_priority(niceness: int) -> None:
    """Lower the calling thread's CPU priority by ``niceness`` (Linux's nice, per thread;
    threads it starts later inherit it).

    Why a server wants it: the HTTP event loop (requests, streams, the session store)
    shares the CPU with the engine thread and its OpenMP workers, which keep every core
    busy while requests run. At equal priority the loop waits behind them for a core and
    for the GIL, a few milliseconds at a time: on 2 cores under 16 streams, loading and
    saving a session in PostgreSQL took 4-6 ms at the median, 2 ms lowered by 10
    (docs/serving.md, "Scale out"). Lowered, the engine gives way whenever the loop has
    work, and the loop has little (its requests still wait for their tokens). The price:
    the engine also gives way to every other process on the machine.
    """
    thread = threading.get_native_id()
    current = os.getpriority(os.PRIO_PROCESS, thread)
    os.setpriority(os.PRIO_PROCESS, thread, min(19, current + niceness))


def check_niceness() -> None:
    """Raises LmforgeError where ``lower_priority`` cannot work: off Linux, priorities
    belong to processes, not threads."""
    if not sys.platform.startswith("linux"):
        raise LmforgeError("compute_niceness: lowering the model's threads needs Linux; set 0")
