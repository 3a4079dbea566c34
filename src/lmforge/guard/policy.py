"""What the guard blocks, when, and what it redacts: a policy file and the ``Guard`` using it.

A policy file (YAML) looks like::

    input:                       # user messages, checked before the model runs
      block: [harassment, hate, self-harm, sexual, violence, illicit, prompt-injection]
    output:                      # the model's answer, checked as it streams
      block: [harassment, hate, self-harm, sexual, violence, illicit]
    thresholds:                  # probability above which a category counts
      default: 0.5
      prompt-injection: 0.6
    pii: redact                  # redact | off: emails, phones, cards, CN IDs and mobiles

Every key is optional; leaving one out keeps the default shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lmforge.errors import LmforgeError
from lmforge.guard.classifier import CATEGORIES, SafetyClassifier
from lmforge.guard.pii import redact

OUTPUT_DEFAULT = tuple(c for c in CATEGORIES if c != "prompt-injection")


@dataclass(frozen=True)
class GuardPolicy:
    input_block: tuple[str, ...] = CATEGORIES
    output_block: tuple[str, ...] = OUTPUT_DEFAULT
    thresholds: dict[str, float] = field(default_factory=dict)
    default_threshold: float = 0.5
    pii: str = "redact"

    def threshold(self, category: str) -> float:
        return self.thresholds.get(category, self.default_threshold)

    @classmethod
    def from_file(cls, path: Path) -> GuardPolicy:
        """Read a policy file.

        Raises:
            LmforgeError: naming the file, the key and what is allowed.
        """
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise LmforgeError(f"--guard {path}: cannot read the policy ({error})") from error
        if not isinstance(raw, dict):
            raise LmforgeError(f"--guard {path}: expected a mapping of input/output/thresholds/pii")
        problems = [
            f"unknown key {k!r}" for k in raw if k not in {"input", "output", "thresholds", "pii"}
        ]

        def categories(section: str, default: tuple[str, ...]) -> tuple[str, ...]:
            value = (raw.get(section) or {}).get("block", list(default))
            unknown = [c for c in value if c not in CATEGORIES]
            if unknown:
                problems.append(f"{section}.block: unknown categories {unknown}")
            return tuple(value)

        input_block = categories("input", CATEGORIES)
        output_block = categories("output", OUTPUT_DEFAULT)
        thresholds = dict(raw.get("thresholds") or {})
        default = float(thresholds.pop("default", 0.5))
        for name, value in thresholds.items():
            if name not in CATEGORIES or not 0.0 < float(value) <= 1.0:
                problems.append(f"thresholds.{name}: need a category and a value in (0, 1]")
        pii = raw.get("pii", "redact")
        if isinstance(pii, bool):  # YAML reads a bare off/on as a boolean
            pii = "redact" if pii else "off"
        if not isinstance(pii, str) or pii not in {"redact", "off"}:
            problems.append(f"pii: {pii!r} is not redact or off")
        if problems:
            raise LmforgeError(
                f"--guard {path}: "
                + "; ".join(problems)
                + f". Categories: {', '.join(CATEGORIES)}."
            )
        return cls(input_block, output_block, {k: float(v) for k, v in thresholds.items()},
                   default, str(pii))  # fmt: skip


class Guard:
    """Moderation, blocking decisions and PII redaction under one policy."""

    def __init__(self, policy: GuardPolicy | None = None, classifier: Any = None) -> None:
        self.policy = policy or GuardPolicy()
        self.classifier = classifier or SafetyClassifier()

    def moderate(self, texts: list[str]) -> list[dict[str, Any]]:
        """OpenAI moderation results: flagged, categories and category_scores per text."""
        results = []
        for scores in self.classifier.scores(texts):
            flags = {c: scores[c] >= self.policy.threshold(c) for c in CATEGORIES}
            results.append({"flagged": any(flags.values()), "categories": flags,
                            "category_scores": scores})  # fmt: skip
        return results

    def blocked(self, text: str, direction: str) -> list[str]:
        """The categories of ``text`` this policy blocks for ``input`` or ``output``."""
        block = self.policy.input_block if direction == "input" else self.policy.output_block
        if not block or not text.strip():
            return []
        scores = self.classifier.scores([text])[0]
        return [c for c in block if scores[c] >= self.policy.threshold(c)]

    def redact(self, text: str) -> str:
        return redact(text)[0] if self.policy.pii == "redact" else text
