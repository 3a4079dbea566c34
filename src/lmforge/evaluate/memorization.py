"""The memorisation audit: how much a language model memorised the canaries its training
data held (the secret sharer: Carlini et al., "The Secret Sharer", USENIX Security 2019).

A canary's exposure is ``log2 |R| - log2 rank``: ``R`` is every secret of its kind (10^6 six-
digit PINs), ``rank`` the canary's place among them when they are ordered by how likely the
model finds them after the same words. A model that never saw the canary ranks it
anywhere, so its exposure averages ``log2 e`` (about 1.44 bits); one that memorised it ranks
it first, exposure ``log2 |R|`` (19.9 bits for six digits).

Ranking a million secrets takes a million forward passes, so the rank is estimated, as the
paper does, from a uniform sample of candidates: their log-likelihoods are fitted with a
skew-normal distribution, and the exposure is ``-log2`` of the fitted probability that a
random secret is at least as likely as the canary (capped at ``log2 |R|``). The share of
the sample that is at least as likely (``exposure_sampled``, capped at ``log2`` of the
sample size) is reported beside it as a check on the fit.

The references are secrets drawn like the canaries and never inserted: their exposure is
the baseline, measured on the same model.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from lmforge.data.canaries import Canaries, load_canaries
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
    exposure: float  # bits, from the fitted distribution of the candidates
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
                         "mean_sampled": float(sampled.mean())}  # fmt: skip
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
    batch_size: int = 256,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> MemorizationReport:
    """The exposure of every canary (and reference) the model's ``canaries.json`` names.

    Args:
        ref: the trained model: a run (``run:ID`` or its folder), a model folder, a
            registry reference.
        candidates: random secrets sampled to estimate ranks (more: a finer estimate).

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
    tail = _fitted_tail(sampled)
    cap = math.log2(canaries.space)
    exposures = []
    for index, (secret, score) in enumerate(zip(secrets, own, strict=True)):
        share = (np.count_nonzero(sampled >= score) + 1) / (candidates + 1)
        exposures.append(Exposure(
            secret=secret, inserted=index < len(canaries.secrets),
            log_likelihood=float(score),
            exposure=min(cap, -math.log2(max(tail(score), 1.0 / canaries.space))),
            exposure_sampled=-math.log2(share),
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
        text = tokenizer.apply_chat_template(canaries.record(probe)["messages"], tokenize=False)
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


def _fitted_tail(samples: np.ndarray) -> Any:
    """``score -> P(a random secret's log-likelihood >= score)`` under a skew-normal
    fitted to the sampled candidates' (the paper's estimate beyond the sample's reach)."""
    from scipy.stats import skewnorm

    shape, location, scale = skewnorm.fit(samples)
    return lambda score: float(skewnorm.sf(score, shape, location, scale))
