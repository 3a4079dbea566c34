"""What passes between the OpenAI handler and a generation backend.

The endpoint families in ``serve/api/`` turn a request body into ``RequestParams``, wrap
the prompt in a ``Request`` and hand it to a ``GenerationBackend`` (the engine in
``serve/engine.py``), which answers through the request's ``emit`` callback with
``Event``s. ``EngineStats`` is what the backend counts for ``GET /metrics``. Nothing here
loads torch, so the HTTP layer can import these types without the model code.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from lmforge.errors import LmforgeError

GrammarKind = Literal["json_schema", "regex", "choice", "lark"]


@dataclass(frozen=True)
class Grammar:
    """What a sequence's output must match: ``source`` is the JSON Schema (as JSON text),
    the regular expression, the choices (a JSON list) or the Lark grammar."""

    kind: GrammarKind
    source: str

    @classmethod
    def json_schema(cls, schema: dict[str, Any] | bool) -> Grammar:
        return cls("json_schema", json.dumps(schema))  # key order kept: it is the output's

    @classmethod
    def choice(cls, options: list[str]) -> Grammar:
        return cls("choice", json.dumps(list(options)))

    @property
    def closes_json(self) -> bool:
        """Its answers are JSON (or hold JSON, as tool calls do), which ``steer`` can close."""
        return self.kind == "json_schema" or (self.kind == "lark" and "%json" in self.source)

    def describe(self) -> str:
        return {"json_schema": "JSON Schema", "regex": "regular expression",
                "choice": "choice", "lark": "grammar"}[self.kind]  # fmt: skip


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
    grammar: Grammar | None = None  # what the output must match (constrained decoding)
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, added to its logit)
    ignore_eos: bool = False  # never end before max_tokens (benchmarks: fixed lengths)
    # (text, grammar): the grammar starts once the output ends with the text (tool calls
    # under tool_choice "auto": free text, then constrained once a call is opened)
    grammar_after: tuple[str, Grammar] | None = None


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
    # on the last event: every token generated, the end token included when one ended it
    token_ids: tuple[int, ...] = ()


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


def _ignore(name: str, seconds: float) -> None:
    """The default ``EngineStats.observe``: no metrics registry is listening."""


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

    ``Engine`` in ``serve/engine.py`` is the one there is, over a torch or a llama.cpp
    runner; a backend registers itself in ``serve/backends.py`` (``register_backend``).
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
