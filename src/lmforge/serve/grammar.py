"""Constrained decoding: a grammar decides which tokens may come next, per sequence.

A request may constrain its output to a JSON Schema, a regular expression, a choice among
strings or a Lark grammar (``Grammar``, in ``serve/requests.py``). The engine gives each
such sequence a ``TokenMatcher``; before every token is sampled the matcher bans (sets to
-inf) every token the grammar cannot continue with, and after it is sampled the matcher
takes it, so the output always matches, whatever the temperature. Sequences without a
grammar in the same batch are untouched: the mask is per row. In a JSON answer's last
tokens of budget (``closing_reserve``) ``TokenMatcher.steer`` picks, among the allowed
tokens, the one that closes it soonest, so a rambling answer still ends complete before
``max_tokens``.

The grammar engine is llguidance (Microsoft's, Rust, no dependencies beyond its wheel):
on the bench's schemas it compiled one in 0.76 ms and computed a 49,152-token mask in
0.005 ms (medians; unpacking and applying the mask here adds more).
xgrammar, the other maintained engine, pulls in triton and apache-tvm-ffi, and its mask
application is a ``torch.compile`` kernel; ``benchmarks/bench_structured.py`` measures both
(docs/serving.md has the figures). A grammar works on both backends: the engine samples
in Python for torch and llama.cpp alike.

``GrammarCompiler`` wraps one tokenizer (converting it costs about 0.6 s, once per
engine) and caches compiled grammars by their source, so the same schema is compiled once.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lmforge.data.tools import COMPACT_JSON, json_position
from lmforge.errors import LmforgeError
from lmforge.serve.requests import Grammar

CACHED_GRAMMARS = 256  # compiled grammars kept per engine, least recently used dropped
# JSON answers: in their last tokens of budget, decoding steers towards closing (see steer)
CLOSING_RESERVE = 64


def closing_reserve(max_tokens: int) -> int:
    """How many tokens before its budget ends a JSON answer starts closing: 64, or a
    quarter of a smaller budget."""
    return min(CLOSING_RESERVE, max_tokens // 4)


def _llguidance_source(grammar: Grammar) -> str:
    """The grammar in llguidance's own serialized form."""
    from llguidance import LLMatcher

    if grammar.kind == "json_schema":
        options: Any = COMPACT_JSON
        return LLMatcher.grammar_from_json_schema(grammar.source, overrides=options)
    if grammar.kind == "regex":
        return LLMatcher.grammar_from_regex(grammar.source)
    if grammar.kind == "choice":
        choices = json.loads(grammar.source)
        return LLMatcher.grammar_from_lark("start: " + " | ".join(json.dumps(c) for c in choices))
    return LLMatcher.grammar_from_lark(grammar.source)


class GrammarCompiler:
    """Compiles grammars for one tokenizer and makes per-sequence matchers.

    Args:
        tokenizer: the model's (fast) Hugging Face tokenizer.
        vocab_size: the width of the model's logits (may exceed ``len(tokenizer)``).
        end_ids: the tokens that end a sequence; allowed once the grammar is complete.
    """

    def __init__(self, tokenizer: Any, vocab_size: int, end_ids: set[int]) -> None:
        self.hf_tokenizer, self.vocab_size, self.end_ids = tokenizer, vocab_size, end_ids
        self._tokenizer: Any = None
        self._compiled: OrderedDict[Grammar, str] = OrderedDict()
        self._closing: Closers | None = None
        self._lock = threading.Lock()  # request threads check, the engine thread builds

    def _llg_tokenizer(self) -> Any:
        if self._tokenizer is None:
            import llguidance.hf

            try:
                self._tokenizer = llguidance.hf.from_tokenizer(
                    self.hf_tokenizer, n_vocab=self.vocab_size, eos_token=sorted(self.end_ids)
                )
            except ValueError as error:  # a slow (Python) tokenizer
                message = f"constrained decoding needs a fast tokenizer: {error}"
                raise LmforgeError(message) from error
        return self._tokenizer

    def check(self, grammar: Grammar) -> str:
        """Compile ``grammar`` (or take it from the cache) and return its compiled form.

        Raises:
            LmforgeError: the grammar is invalid or uses a feature the grammar
                engine does not support; the message names it.
        """
        with self._lock:
            compiled = self._compiled.get(grammar)
            if compiled is not None:
                self._compiled.move_to_end(grammar)
                return compiled
            from llguidance import LLMatcher

            try:
                compiled = _llguidance_source(grammar)
            except ValueError as error:
                raise LmforgeError(f"{grammar.describe()}: {error}") from error
            failed, messages = LLMatcher.validate_grammar_with_warnings(
                compiled, self._llg_tokenizer()
            )
            if failed:
                raise LmforgeError(f"{grammar.describe()}: unsupported or invalid: "
                                   f"{messages[0]}")  # fmt: skip
            self._compiled[grammar] = compiled
            while len(self._compiled) > CACHED_GRAMMARS:
                self._compiled.popitem(last=False)
            return compiled

    def matcher(self, grammar: Grammar) -> TokenMatcher:
        """A fresh matcher for one sequence (microseconds once the grammar is compiled)."""
        from llguidance import LLMatcher

        compiled = self.check(grammar)
        matcher = LLMatcher(self._llg_tokenizer(), compiled)
        closers = self._closers() if grammar.closes_json else None
        return TokenMatcher(matcher, self.vocab_size, closers)

    def _closers(self) -> Closers:
        """The vocabulary's JSON-closing tokens (built once)."""
        with self._lock:
            if self._closing is None:
                self._closing = Closers.of(self.hf_tokenizer, self.end_ids)
            return self._closing


@dataclass(frozen=True)
class Closers:
    """Tokens that finish a JSON answer: a closing quote (perhaps with brackets after it,
    as in ``"}``), closing brackets alone, and the end tokens."""

    quote: torch.Tensor  # ids, (Q,)
    brackets: torch.Tensor  # ids, (K,)
    end: torch.Tensor  # ids, (E,)

    @classmethod
    def of(cls, tokenizer: Any, end_ids: set[int]) -> Closers:
        pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        quote = [i for i, p in enumerate(pieces) if p and re.fullmatch(r'"[}\]]*', p)]
        brackets = [i for i, p in enumerate(pieces) if p and re.fullmatch(r"[}\]]+", p)]
        return cls(torch.tensor(quote, dtype=torch.long),
                   torch.tensor(brackets, dtype=torch.long),
                   torch.tensor(sorted(end_ids), dtype=torch.long))  # fmt: skip


class TokenMatcher:
    """One sequence's position in its grammar, and the tokens it has taken.

    ``closers``: for a JSON grammar, the tokens ``steer`` prefers when the budget runs low.
    """

    def __init__(self, matcher: Any, vocab_size: int, closers: Closers | None = None) -> None:
        self._matcher, self.vocab_size, self.closers = matcher, vocab_size, closers
        self.tokens: list[int] = []

    def allowed(self) -> torch.Tensor:
        """A boolean mask over the vocabulary: the tokens that may come next."""
        bits = np.frombuffer(self._matcher.compute_bitmask(), dtype=np.uint8)
        allowed = np.unpackbits(bits, bitorder="little")[: self.vocab_size].astype(bool)
        return torch.from_numpy(allowed)

    def mask(self, logits: torch.Tensor) -> None:
        """Set the logits of every token the grammar forbids next to -inf, in place."""
        allowed = self.allowed().to(logits.device)
        logits[: allowed.numel()].masked_fill_(~allowed, float("-inf"))
        logits[allowed.numel() :] = float("-inf")

    def accept(self, token: int) -> None:
        """Advance past ``token`` (one the mask allowed).

        Raises:
            LmforgeError: the grammar engine refused it (a bug: the mask allowed it).
        """
        if not self._matcher.consume_token(token):
            raise LmforgeError(f"grammar: token {token} refused: {self._matcher.get_error()}")
        self.tokens.append(token)

    def steer(self, logits: torch.Tensor, text: str) -> None:
        """Leave only one token in ``logits`` (V,), already masked: the one that brings a JSON
        answer (whose text so far is ``text``) nearest to its end. An end token if the
        answer may end here; else a closing quote on a string that holds a character (a
        key or a value), or a closing bracket after a value, when the grammar allows one;
        else the likeliest allowed token (greedy: a required key or value still to write,
        a string the schema keeps open).
        The engine calls it for a sequence's last ``closing_reserve`` tokens, so a
        sampled answer that rambles still closes before ``max_tokens`` cuts it."""
        assert self.closers is not None, "steer needs a JSON grammar"
        allowed = torch.isfinite(logits)
        if not bool(allowed.any()):  # logit_bias banned all the grammar allows
            return
        depth, string, done = json_position(text)
        candidates = self.closers.end
        if not bool(allowed[candidates].any()):
            if string:
                candidates = self.closers.quote
            elif string is None and done and depth:
                candidates = self.closers.brackets
            else:
                candidates = torch.empty(0, dtype=torch.long)
        candidates = candidates[allowed[candidates]]
        if candidates.numel():
            choice = int(candidates[logits[candidates].argmax()])
        else:
            choice = int(logits.argmax())
        logits.fill_(float("-inf"))
        logits[choice] = 0.0  # certain: log-probability 0

    @property
    def finished(self) -> bool:
        """The grammar is complete and allows no more tokens (only the end token)."""
        return bool(self._matcher.is_stopped())
