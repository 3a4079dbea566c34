"""The memorisation audit: how much a language model memorised the canaries its training
data held (the secret sharer: Carlini et al., "The Secret Sharer", USENIX Security 2019).

A canary's exposure is ``log2 |R| - log2 rank``: ``R`` is every secret of its kind (10^6 six-
digit PINs), ``rank`` the canary's place among them when they are ordered by how likely the
model finds them after the same words. A model that never saw the canary ranks it
anywhere, so its exposure averages ``log2 e`` (about 1.44 bits); one that memorised it ranks
it first, exposure ``log2 |R|`` (19.9 bits for six digits).

Ranking a million secrets one by one takes a million forward passes. Two ways around it:

- Sampled: score a uniform sample of candidates; the share at least as likely as the
  canary estimates ``rank / |R|``. Good where many secrets outrank the canary; it cannot
  show more than ``log2`` of the sample size.
- Exact, where the canary is likely: walk the secrets digit by digit and drop every prefix
  already less likely than the canary (adding digits only lowers a log-likelihood). For a
  memorised canary almost every prefix drops at once, so the secrets that outrank it are
  counted exactly in a few batched passes. The walk gives up past ``budget`` prefixes.

Each secret gets the exact rank when the walk finishes and the sampled estimate otherwise
(``method``); the paper (section 4.3) fits a skew-normal to the sample instead, which on
small models here understated a memorised canary's exposure by several bits.

The references are secrets drawn like the canaries and never inserted: their exposure is
the baseline, measured on the same model.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from lmforge.data.canaries import Canaries, load_canaries
from lmforge.data.chat import chat_text
from lmforge.errors import LmforgeError
from lmforge.hub import resolve
from lmforge.hub.load import load_causal_lm
from lmforge.progress import ProgressFn

RANDOM_EXPOSURE = 1.0 / math.log(2.0)  # E[-log2 U] for U uniform on (0, 1]: about 1.44 bits


@dataclass(frozen=True)
class Exposure:
    """One secret's result."""

    secret: str
    inserted: bool  # a canary (in the training data) or a reference (never in it)
    log_likelihood: float  # log p(secret | the words before it), in nats
    exposure: float  # bits: log2 |R| - log2 rank
    method: str  # "exact" (the digit walk counted the rank) or "sampled"
    exposure_sampled: float  # bits, from the share of sampled candidates at least as likely


@dataclass(frozen=True)
class MemorizationReport:
    model: str
    space: int  # how many secrets of this kind there are
    candidates: int  # sampled to estimate ranks
    repeats: int  # how many times each canary was in the training data
    exposures: list[Exposure]

    def summary(self) -> dict[str, Any]:
        """Mean, median and largest exposure of the canaries and of the references."""
        groups = {"canaries": [e for e in self.exposures if e.inserted],
                  "references": [e for e in self.exposures if not e.inserted]}  # fmt: skip
        out: dict[str, Any] = {"space_bits": math.log2(self.space),
                               "random_expectation": RANDOM_EXPOSURE}  # fmt: skip
        for name, rows in groups.items():
            values = np.array([e.exposure for e in rows])
            sampled = np.array([e.exposure_sampled for e in rows])
            out[name] = {"count": len(rows), "mean": float(values.mean()),
                         "median": float(np.median(values)), "max": float(values.max()),
                         "mean_sampled": float(sampled.mean()),
                         "exact": sum(e.method == "exact" for e in rows)}  # fmt: skip
        out["excess_bits"] = out["canaries"]["mean"] - out["references"]["mean"]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "space": self.space, "candidates": self.candidates,
                "repeats": self.repeats, "summary": self.summary(),
                "exposures": [asdict(e) for e in self.exposures]}  # fmt: skip


def audit_memorization(
    ref: str,
    *,
    candidates: int = 4000,
    budget: int = 2048,
    batch_size: int = 256,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> MemorizationReport:
    """The exposure of every canary (and reference) the model's ``canaries.json`` names.

    Args:
        ref: the trained model: a run (``run:ID`` or its folder), a model folder, a
            registry reference.
        candidates: random secrets sampled to estimate ranks (more: a finer estimate).
        budget: the most digit prefixes the exact walk keeps before it gives up.

    Raises:
        LmforgeError: the model was trained without canaries, or is not a causal LM.
    """
    resolved = resolve(ref)
    canaries = load_canaries(resolved.path)
    if candidates < 100:
        raise LmforgeError(f"--candidates: {candidates} is too few to estimate a rank; "
                           "use at least 100 (the default is 4000)")  # fmt: skip
    model, tokenizer = load_causal_lm(resolved)
    context, encode = _tokens(canaries, tokenizer)
    secrets = [*canaries.secrets, *canaries.references]
    pool = _candidates(canaries, candidates, seed, exclude=set(secrets))
    scores = _log_likelihoods(model, context, [encode(s) for s in [*pool, *secrets]],
                              batch_size=batch_size, progress=progress)  # fmt: skip
    sampled, own = scores[:candidates], scores[candidates:]
    layout = _digit_tokens(canaries, encode)
    exposures = []
    for index, (secret, score) in enumerate(zip(secrets, own, strict=True)):
        beaten_by = int(np.count_nonzero(sampled >= score))
        sampled_bits = -math.log2((beaten_by + 1) / (candidates + 1))
        rank = None
        if layout is not None and beaten_by < 10:  # too few in the sample to tell
            rank = _exact_rank(model, context, layout, canaries.digits, float(score),
                               budget=budget, batch_size=batch_size)  # fmt: skip
        exposures.append(Exposure(
            secret=secret, inserted=index < len(canaries.secrets), log_likelihood=float(score),
            exposure=math.log2(canaries.space / rank) if rank else sampled_bits,
            method="exact" if rank else "sampled", exposure_sampled=sampled_bits,
        ))  # fmt: skip
    return MemorizationReport(model=ref, space=canaries.space, candidates=candidates,
                              repeats=canaries.repeats, exposures=exposures)  # fmt: skip


def _candidates(canaries: Canaries, count: int, seed: int, *, exclude: set[str]) -> list[str]:
    """``count`` secrets drawn uniformly (another random stream than the canaries', which
    ``audit.seed`` drew), none of them a canary or a reference: each is ranked against
    the rest of the space."""
    rng = np.random.default_rng([seed, 1])
    pool: list[str] = []
    while len(pool) < count:
        for digits in rng.integers(0, 10, (count, canaries.digits)):
            secret = " ".join(map(str, digits))
            if secret not in exclude and len(pool) < count:
                pool.append(secret)
    return pool


def _tokens(canaries: Canaries, tokenizer: Any) -> tuple[list[int], Any]:
    """The token ids before a secret (as training saw them: chat records through the
    model's chat template), and a function from a secret to its own token ids.

    Raises:
        LmforgeError: the tokenizer merges the secret into the words before it.
    """
    probe = canaries.secrets[0]
    if canaries.format == "messages":
        text = chat_text(tokenizer, canaries.record(probe)["messages"])
    else:
        text = canaries.sentence(probe)
    before = text[: text.rindex(canaries.sentence(probe)) + len(canaries.prefix)]
    context = tokenizer(before, add_special_tokens=False)["input_ids"]

    def encode(secret: str) -> list[int]:
        ids = tokenizer(f"{before} {secret}", add_special_tokens=False)["input_ids"]
        if ids[: len(context)] != context:
            raise LmforgeError(f"audit: the tokenizer joins the secret {secret!r} to the words "
                               f"before it ({canaries.prefix!r}); end audit.prefix with a "
                               "word")  # fmt: skip
        return list(ids[len(context) :])

    return list(context), encode


@dataclass(frozen=True)
class _Digits:
    """How a digit after the words before a secret is tokenized: the same ``shared`` tokens
    (SmolLM2's tokenizer: a space) then one token of its own, ``own[d]``."""

    shared: list[int]
    own: list[int]

    def tokens(self, digits: torch.Tensor) -> torch.Tensor:
        """``(B, k)`` digits -> ``(B, k * (len(shared) + 1))`` tokens."""
        own = torch.tensor(self.own)[digits][..., None]  # (B, k, 1)
        shared = torch.tensor(self.shared, dtype=torch.long).expand(*digits.shape, -1)
        return torch.cat([shared, own], dim=-1).flatten(1)


def _digit_tokens(canaries: Canaries, encode: Callable[[str], list[int]]) -> _Digits | None:
    """How digits are tokenized, when each is shared tokens plus one of its own wherever
    it stands (the exact walk needs that); else None."""
    single = [encode(str(d)) for d in range(10)]
    shared = single[0][:-1]
    if any(ids[:-1] != shared for ids in single):
        return None
    layout = _Digits(shared, [ids[-1] for ids in single])
    for secret in canaries.secrets:
        expected = layout.tokens(torch.tensor([[int(d) for d in secret.split()]]))[0]
        if encode(secret) != expected.tolist():
            return None
    return layout


@torch.no_grad()
def _exact_rank(
    model: Any,
    context: Sequence[int],
    layout: _Digits,
    digits: int,
    threshold: float,
    *,
    budget: int,
    batch_size: int,
) -> int | None:
    """How many secrets the model finds at least as likely as ``threshold`` (a secret's
    own log-likelihood, so the count includes it: its rank), by walking the digits and
    dropping each prefix already below the threshold; None past ``budget`` prefixes."""
    threshold -= 1e-4  # the same secret scored in another batch differs in the last bits
    out = model(input_ids=torch.tensor([list(context)]), use_cache=True)
    first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)  # predicts the 1st token
    prefixes = torch.zeros((1, 0), dtype=torch.long)  # (P, k) digits so far
    scores = torch.zeros(1)  # (P,) their log-likelihoods
    for _ in range(digits):
        if len(prefixes) > budget:
            return None
        grown, grown_scores = [], []
        for start in range(0, len(prefixes), batch_size):
            chunk = prefixes[start : start + batch_size]
            step = _next_digit(model, out.past_key_values, first, layout, chunk)  # (B, 10)
            total = scores[start : start + batch_size, None] + step
            rows, columns = (total >= threshold).nonzero(as_tuple=True)
            grown.append(torch.cat([chunk[rows], columns[:, None]], dim=1))
            grown_scores.append(total[rows, columns])
        prefixes, scores = torch.cat(grown), torch.cat(grown_scores)
    return max(1, len(prefixes))


def _next_digit(
    model: Any, context_cache: Any, first: torch.Tensor, layout: _Digits, prefixes: torch.Tensor
) -> torch.Tensor:
    """``(B, 10)``: log p(next digit is d | context, prefix) for each of ``B`` prefixes."""
    shared = torch.tensor(layout.shared, dtype=torch.long).expand(len(prefixes), -1)
    tokens = torch.cat([layout.tokens(prefixes), shared], dim=1)  # then the next digit's own
    if tokens.shape[1] == 0:  # the first digit of single-token digits
        return first[layout.own].expand(len(prefixes), -1)
    cache = copy.deepcopy(context_cache)
    cache.batch_repeat_interleave(len(prefixes))
    logits = model(input_ids=tokens, cache=cache, use_cache=True).logits.float()
    predicted = torch.cat([first.expand(len(prefixes), 1, -1),
                           torch.log_softmax(logits, dim=-1)], dim=1)  # (B, T + 1, V)  # fmt: skip
    own = predicted[:, tokens.shape[1], layout.own]  # (B, 10)
    for i in range(tokens.shape[1] - len(layout.shared), tokens.shape[1]):  # shared tokens
        own = own + predicted[:, i].gather(-1, tokens[:, i, None])
    return own


@torch.no_grad()
def _log_likelihoods(
    model: Any,
    context: Sequence[int],
    secrets: Sequence[Sequence[int]],
    *,
    batch_size: int,
    progress: ProgressFn | None = None,
) -> np.ndarray:
    """``log p(secret | context)`` for each secret, in nats. The context runs once; its
    key/value cache is copied for each batch of secrets of one length."""
    out = model(input_ids=torch.tensor([context]), use_cache=True)
    first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
    scores = np.empty(len(secrets))
    by_length: dict[int, list[int]] = {}
    for index, tokens in enumerate(secrets):
        by_length.setdefault(len(tokens), []).append(index)
    done = 0
    for indices in by_length.values():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            ids = torch.tensor([list(secrets[i]) for i in chunk])  # (B, L)
            total = first[ids[:, 0]]
            if ids.shape[1] > 1:
                cache = copy.deepcopy(out.past_key_values)
                cache.batch_repeat_interleave(len(chunk))
                logits = model(input_ids=ids, cache=cache, use_cache=True).logits
                steps = torch.log_softmax(logits[:, :-1].float(), dim=-1)
                total = total + steps.gather(-1, ids[:, 1:, None]).squeeze(-1).sum(-1)
            scores[chunk] = total.numpy()
            done += len(chunk)
            if progress is not None:
                progress(done, len(secrets), "secrets scored")
    return scores
