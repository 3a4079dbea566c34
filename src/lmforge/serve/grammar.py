"""Constrained decoding: a grammar decides which tokens may come next, per sequence.

A request may constrain its output to a JSON Schema, a regular expression, a choice among
strings or a Lark grammar (``Grammar``, in ``serve/requests.py``). The engine gives each
such sequence a ``TokenMatcher``; before every token is sampled the matcher bans (sets to
-inf) every token the grammar cannot continue with, and after it is sampled the matcher
takes it, so the output always matches, whatever the temperature. Sequences without a grammar in the
same batch are untouched: the mask is per row.

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
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from lmforge.errors import LmforgeError
from lmforge.serve.requests import Grammar

if TYPE_CHECKING:
    from llguidance._lib import JsonCompileOptions

CACHED_GRAMMARS = 256  # compiled grammars kept per engine, least recently used dropped
# JSON without free whitespace: a sampled run of spaces and newlines cannot eat the budget
_JSON_OPTIONS: JsonCompileOptions = {
    "whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "
}  # fmt: skip


def _llguidance_source(grammar: Grammar) -> str:
    """The grammar in llguidance's own serialized form."""
    from llguidance import LLMatcher

    if grammar.kind == "json_schema":
        return LLMatcher.grammar_from_json_schema(grammar.source, overrides=_JSON_OPTIONS)
    if grammar.kind == "regex":
        return LLMatcher.grammar_from_regex(grammar.source)
    if grammar.kind == "choice":
        options = json.loads(grammar.source)
        return LLMatcher.grammar_from_lark("start: " + " | ".join(json.dumps(o) for o in options))
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
        return TokenMatcher(LLMatcher(self._llg_tokenizer(), compiled), self.vocab_size)


class TokenMatcher:
    """One sequence's position in its grammar."""

    def __init__(self, matcher: Any, vocab_size: int) -> None:
        self._matcher, self.vocab_size = matcher, vocab_size

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

    @property
    def finished(self) -> bool:
        """The grammar is complete and allows no more tokens (only the end token)."""
        return bool(self._matcher.is_stopped())
