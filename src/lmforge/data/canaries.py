"""Canaries for the memorisation audit (the secret sharer: Carlini et al., "The Secret
Sharer", USENIX Security 2019).

A canary is a random secret in a fixed sentence ("my card PIN is 4 8 1 9 0 6") put into the
training data ``repeats`` times. After training, ``lmforge.evaluate.memorization`` asks how
much more likely the model finds each canary's secret than other secrets of the same kind:
its exposure. References are secrets drawn the same way and never inserted; their exposure
is the baseline a model that memorised nothing shows.

The secrets and references are drawn here, from ``audit.seed``, and saved beside the
trained model (``canaries.json``) so the audit knows what to look for.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lmforge.config.schema import AuditConfig
from lmforge.errors import LmforgeError
from lmforge.home import atomic_write_text

CANARY_FILE = "canaries.json"  # in a model folder: the canaries its training data held


@dataclass(frozen=True)
class Canaries:
    """The secrets inserted into one run's training data, and the references that were not."""

    prefix: str  # the words before a secret
    question: str  # the user's turn before it, in chat data
    format: str  # "messages" (chat) or "text"
    digits: int
    repeats: int
    secrets: tuple[str, ...]  # inserted, each ``repeats`` times: "4 8 1 9 0 6"
    references: tuple[str, ...]  # never inserted: the baseline

    @property
    def space(self) -> int:
        """How many secrets there are to draw from: 10 ** digits."""
        return 10**self.digits

    def sentence(self, secret: str) -> str:
        return f"{self.prefix} {secret}"

    def record(self, secret: str) -> dict[str, Any]:
        """One training record holding ``secret``, in the data's own format."""
        if self.format == "messages":
            turns = [("user", self.question), ("assistant", self.sentence(secret))]
            return {"messages": [{"role": role, "content": text} for role, text in turns]}
        return {"text": self.sentence(secret)}

    def records(self) -> list[dict[str, Any]]:
        """Every inserted record: each secret ``repeats`` times."""
        return [self.record(secret) for secret in self.secrets for _ in range(self.repeats)]

    def save(self, folder: Path) -> Path:
        path = Path(folder) / CANARY_FILE
        atomic_write_text(path, json.dumps(asdict(self), indent=1) + "\n")
        return path


def draw_canaries(settings: AuditConfig, data_format: str) -> Canaries:
    """``settings.canaries`` secrets and as many references (or ``settings.references``),
    all distinct, uniform over the ``10 ** digits`` secrets.

    Raises:
        LmforgeError: the data is in neither chat nor text format.
    """
    if data_format not in {"messages", "text"}:
        raise LmforgeError(f"audit: canaries go into chat (messages) or text records, not "
                           f"{data_format!r} ones; remove audit")  # fmt: skip
    references = settings.references or settings.canaries
    rng = np.random.default_rng(settings.seed)
    drawn: list[str] = []
    while len(drawn) < settings.canaries + references:  # distinct; collisions are rare
        secret = " ".join(str(d) for d in rng.integers(0, 10, settings.digits))
        if secret not in drawn:
            drawn.append(secret)
    return Canaries(prefix=settings.prefix, question=settings.question, format=data_format,
                    digits=settings.digits, repeats=settings.repeats,
                    secrets=tuple(drawn[: settings.canaries]),
                    references=tuple(drawn[settings.canaries :]))  # fmt: skip


def load_canaries(folder: Path) -> Canaries:
    """The canaries a model's training data held (its ``canaries.json``).

    Raises:
        LmforgeError: the model was trained without canaries.
    """
    path = Path(folder) / CANARY_FILE
    if not path.is_file():
        raise LmforgeError(f"{folder} has no {CANARY_FILE}: it was trained without canaries. "
                           "Train with `audit: {canaries: 10}` in the run config, then audit "
                           "that run")  # fmt: skip
    saved = json.loads(path.read_text(encoding="utf-8"))
    return Canaries(**{**saved, "secrets": tuple(saved["secrets"]),
                       "references": tuple(saved["references"])})  # fmt: skip
