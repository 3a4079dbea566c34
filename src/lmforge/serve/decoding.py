"""Per-sequence token choice: from a sequence's row of logits to its next token and text.

The engine (``serve/engine.py``) schedules sequences and runs the model; for each
sequence's row of logits it asks the ``SequenceDecoder`` for the next token, its
log-probability, and the text it adds. Every sequence samples with its own state (seeded
generator, penalties, stop strings, its grammar's position), so a request's output does
not depend on what it was batched with under greedy decoding. ``RunningSequence`` is that
state, together with the fields the engine schedules by.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from lmforge.serve.generate import _first_stop, _held_back, sample_next
from lmforge.serve.grammar import TokenMatcher, closing_reserve
from lmforge.serve.requests import Request, TokenLogprob


@dataclass
class RunningSequence:
    """One request being generated: its sampling state, its output so far, and where the
    engine has it (the prompt still to prefill, the token to feed next)."""

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
    prefix_offset: int = 0  # incremental detokenization: see SequenceDecoder._append_text
    read_offset: int = 0
    matcher: TokenMatcher | None = None  # where the output is in its grammar, if it has one
    end_token: int | None = None  # the end token that finished it, if one did
    bias: tuple[torch.Tensor, torch.Tensor] | None = None  # logit_bias ids, values (built once)


def start_sequence(
    request: Request, cached_tokens: int, matcher: TokenMatcher | None = None
) -> RunningSequence:
    """A sequence for ``request`` whose slot already holds its first ``cached_tokens``
    prompt tokens (the rest are prefilled in the engine's next step), constrained by
    ``matcher`` when the request has a grammar."""
    generator = torch.Generator()
    if request.params.seed is None:
        generator.seed()  # from the OS, leaving torch's global generator alone
    else:
        generator.manual_seed(request.params.seed)
    return RunningSequence(
        request,
        generator,
        cached_tokens=cached_tokens,
        prompt_left=list(request.prompt_ids[cached_tokens:]),
        matcher=matcher,
    )


class SequenceDecoder:
    """Chooses each sequence's next token and turns its tokens into text.

    Args:
        tokenizer: the model's tokenizer.
        end_ids: the token ids that end a sequence (``end_token_ids``).
    """

    def __init__(self, tokenizer: Any, end_ids: set[int]) -> None:
        self.tokenizer = tokenizer
        self.end_ids = end_ids

    def constrain(self, sequence: RunningSequence, logits: torch.Tensor, left: int) -> None:
        """Apply the request's ``logit_bias``, ``ignore_eos`` and grammar to ``logits`` (V,)
        in place, so that sampling and the reported log-probabilities see the same
        distribution. ``left``: the tokens the sequence may still generate, this one
        included; a JSON answer in its last ``closing_reserve`` tokens is steered to close."""
        bias = sequence.request.params.logit_bias
        if bias and sequence.bias is None:
            inside = [(token, value) for token, value in bias if token < logits.numel()]
            device = logits.device
            ids = torch.tensor([token for token, _ in inside], dtype=torch.long, device=device)
            values = torch.tensor([value for _, value in inside], dtype=logits.dtype, device=device)
            sequence.bias = (ids, values)
        if sequence.bias is not None:
            logits[sequence.bias[0]] += sequence.bias[1]
        if sequence.request.params.ignore_eos:
            logits[sorted(self.end_ids)] = float("-inf")
        matcher = sequence.matcher
        if matcher is not None:
            matcher.mask(logits)
            reserve = closing_reserve(sequence.request.params.max_tokens)
            if matcher.closers is not None and left <= reserve and not matcher.finished:
                matcher.steer(logits, self.tokenizer.decode(matcher.tokens))

    def pick(self, sequence: RunningSequence, logits: torch.Tensor) -> int:
        """The next token, sampled from ``logits`` as ``constrain`` left them; with a
        grammar, the matcher takes it (and a complete grammar ends the sequence)."""
        matcher = sequence.matcher
        if matcher is not None and matcher.finished:
            return min(self.end_ids)
        if not bool(torch.isfinite(logits).any()):  # logit_bias banned all the grammar allows
            return min(self.end_ids)
        token = self._sample(sequence, logits)
        if matcher is not None and token not in self.end_ids:
            matcher.accept(token)
        return token

    def logprob(self, logits: torch.Tensor, token: int, top: int) -> TokenLogprob:
        """``token``'s log-probability under ``logits`` (V,), with the ``top`` likeliest."""
        logprobs = torch.log_softmax(logits.float(), dim=-1)  # (V,)
        alternatives: tuple[tuple[str, float], ...] = ()
        if top:
            values, ids = torch.topk(logprobs, top)
            alternatives = tuple(
                (self.tokenizer.decode([int(i)]), float(v))
                for v, i in zip(values, ids, strict=True)
                if v > float("-inf")  # a token the grammar or logit_bias ruled out
            )
        return TokenLogprob(self.tokenizer.decode([token]), float(logprobs[token]), alternatives)

    def add_token(self, sequence: RunningSequence, token: int) -> bool:
        """Append ``token`` (not an end token) to ``sequence`` and its text; returns
        whether the text reached a stop string (the text is then cut before it)."""
        sequence.tokens.append(token)
        sequence.counts[token] = sequence.counts.get(token, 0) + 1
        self._append_text(sequence)
        cut = _first_stop(sequence.text, sequence.request.params.stop)
        if cut is None:
            return False
        sequence.text = sequence.text[:cut]
        return True

    def safe_end(self, sequence: RunningSequence) -> int:
        """How much of the text may be sent: all but what could be the start of a stop
        string or an incomplete character."""
        return len(sequence.text) - _held_back(sequence.text, sequence.request.params.stop)

    def _append_text(self, sequence: RunningSequence) -> None:
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

    def _sample(self, sequence: RunningSequence, logits: torch.Tensor) -> int:
        """Sample with the sequence's generator after its presence and frequency penalties."""
        params = sequence.request.params
        if sequence.counts and (params.presence_penalty or params.frequency_penalty):
            ids = torch.tensor(list(sequence.counts))
            counts = torch.tensor(list(sequence.counts.values()), dtype=logits.dtype)
            logits = logits.clone()
            logits[ids] -= params.presence_penalty + params.frequency_penalty * counts
        return sample_next(logits, params.temperature, params.top_p, sequence.generator)
