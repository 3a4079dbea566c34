"""What the guard blocks, when, and what it redacts: a policy file and the ``Guard`` using it.

A policy file (YAML) looks like::

    input:                       # user messages, checked before the model runs
      block: [harassment, hate, self-harm, sexual, violence, illicit, prompt-injection]
    output:                      # the model's answer, checked as it streams
      block: [harassment, hate, self-harm, sexual, violence, illicit]
    thresholds:                  # probability from which a category counts
      default: 0.5               # (left out: the classifier's own, per category)
      prompt-injection: 0.6
    pii: redact                  # redact | off: emails, phones, cards, CN IDs and mobiles
    pii_allow:                   # e-mails and phones kept as they are: your own contacts
      - support@brightnesthome.com
      - 1-800-555-0142

Every key is optional; leaving one out keeps the default shown. Thresholds: a category
named under ``thresholds`` uses that value; the others use ``thresholds.default`` when the
file gives one, else the threshold the classifier chose for that category on its
validation split (``classifier.json``), else 0.5.

Policies that ship with lmforge (``assets/guard/*.yaml``) are named by their file stem:
``--guard brightnest``; ``--guard default`` is the policy with every key left out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lmforge.errors import LmforgeError
from lmforge.guard.classifier import CATEGORIES, DEFAULT_THRESHOLD, SafetyClassifier, shipped_dir
from lmforge.guard.pii import EMAIL, redact

OUTPUT_DEFAULT = tuple(c for c in CATEGORIES if c != "prompt-injection")
KEYS = ("input", "output", "thresholds", "pii", "pii_allow")


def bundled_policies() -> dict[str, Path]:
    """The policy files that ship with lmforge, by name (``brightnest`` -> its YAML)."""
    return {path.stem: path for path in sorted(shipped_dir().glob("*.yaml"))}


@dataclass(frozen=True)
class GuardPolicy:
    input_block: tuple[str, ...] = CATEGORIES
    output_block: tuple[str, ...] = OUTPUT_DEFAULT
    thresholds: dict[str, float] = field(default_factory=dict)
    default_threshold: float | None = None  # None: the classifier's per-category ones
    pii: str = "redact"
    pii_allow: tuple[str, ...] = ()

    def threshold(self, category: str, calibrated: Mapping[str, float] | None = None) -> float:
        """This policy's threshold for ``category``, given the classifier's own ones."""
        if category in self.thresholds:
            return self.thresholds[category]
        if self.default_threshold is not None:
            return self.default_threshold
        return (calibrated or {}).get(category, DEFAULT_THRESHOLD)

    @classmethod
    def load(cls, spec: str) -> GuardPolicy:
        """``default``, the name of a bundled policy (``brightnest``), or a policy file.

        Raises:
            LmforgeError: neither a file nor a bundled name (listing the bundled ones), or
                a bad policy file.
        """
        if spec == "default":
            return cls()
        path = Path(spec)
        if path.is_file():
            return cls.from_file(path)
        bundled = bundled_policies()
        if spec in bundled:
            return cls.from_file(bundled[spec])
        raise LmforgeError(
            f"guard policy {spec!r}: no such file, and not a bundled policy; pass a policy "
            f"YAML, 'default', or one of: {', '.join(bundled) or '(none)'}"
        )

    @classmethod
    def from_file(cls, path: Path) -> GuardPolicy:
        """Read a policy file.

        Raises:
            LmforgeError: naming the file, the key and what is allowed.
        """
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise LmforgeError(f"guard policy {path}: cannot read it ({error})") from error
        if not isinstance(raw, dict):
            raise LmforgeError(f"guard policy {path}: expected a mapping of {'/'.join(KEYS)}")
        problems = [f"unknown key {k!r}" for k in raw if k not in KEYS]

        def categories(section: str, default: tuple[str, ...]) -> tuple[str, ...]:
            value = (raw.get(section) or {}).get("block", list(default))
            unknown = [c for c in value if c not in CATEGORIES]
            if unknown:
                problems.append(f"{section}.block: unknown categories {unknown}")
            return tuple(value)

        input_block = categories("input", CATEGORIES)
        output_block = categories("output", OUTPUT_DEFAULT)
        thresholds = dict(raw.get("thresholds") or {})
        default = thresholds.pop("default", None)
        for name, value in [
            *thresholds.items(),
            *([("default", default)] if default is not None else []),
        ]:
            if (name not in CATEGORIES and name != "default") or not _probability(value):
                problems.append(f"thresholds.{name}: need a category and a value in (0, 1]")
        pii = raw.get("pii", "redact")
        if isinstance(pii, bool):  # YAML reads a bare off/on as a boolean
            pii = "redact" if pii else "off"
        if not isinstance(pii, str) or pii not in {"redact", "off"}:
            problems.append(f"pii: {pii!r} is not redact or off")
        pii_allow = raw.get("pii_allow") or []
        if not isinstance(pii_allow, list):
            problems.append(f"pii_allow: expected a list of e-mails and phone numbers, got "
                            f"{pii_allow!r}")  # fmt: skip
            pii_allow = []
        for index, entry in enumerate(pii_allow):
            if not _contact(entry):
                problems.append(
                    f"pii_allow[{index}]: {entry!r} is neither an e-mail address nor a phone "
                    "number (7+ digits with spaces, dashes, dots, parentheses or a leading +); "
                    "quote phone numbers in YAML"
                )
        if problems:
            raise LmforgeError(
                f"guard policy {path}: "
                + "; ".join(problems)
                + f". Categories: {', '.join(CATEGORIES)}."
            )
        return cls(input_block, output_block, {k: float(v) for k, v in thresholds.items()},
                   None if default is None else float(default), str(pii),
                   tuple(str(entry) for entry in pii_allow))  # fmt: skip


def _probability(value: Any) -> bool:
    try:
        return 0.0 < float(value) <= 1.0
    except (TypeError, ValueError):
        return False


def _contact(entry: Any) -> bool:
    """An e-mail address, or a phone number: 7+ digits and only phone punctuation."""
    if not isinstance(entry, str):
        return False
    if "@" in entry:
        return EMAIL.fullmatch(entry) is not None
    return re.fullmatch(r"\+?[\d\s().-]+", entry) is not None and (
        sum(c.isdigit() for c in entry) >= 7
    )


class Guard:
    """Moderation, blocking decisions and PII redaction under one policy."""

    def __init__(self, policy: GuardPolicy | None = None, classifier: Any = None) -> None:
        self.policy = policy or GuardPolicy()
        self.classifier = classifier or SafetyClassifier()

    def threshold(self, category: str) -> float:
        """The policy's threshold, falling back on the classifier's calibrated one."""
        return self.policy.threshold(category, getattr(self.classifier, "thresholds", None))

    def moderate(self, texts: list[str]) -> list[dict[str, Any]]:
        """OpenAI moderation results: flagged, categories and category_scores per text."""
        results = []
        for scores in self.classifier.scores(texts):
            flags = {c: scores[c] >= self.threshold(c) for c in CATEGORIES}
            results.append({"flagged": any(flags.values()), "categories": flags,
                            "category_scores": scores})  # fmt: skip
        return results

    def blocked(self, text: str, direction: str) -> list[str]:
        """The categories of ``text`` this policy blocks for ``input`` or ``output``."""
        block = self.policy.input_block if direction == "input" else self.policy.output_block
        if not block or not text.strip():
            return []
        scores = self.classifier.scores([text])[0]
        return [c for c in block if scores[c] >= self.threshold(c)]

    def redact(self, text: str) -> str:
        """``text`` with personal data redacted, except the policy's ``pii_allow``."""
        return redact(text, self.policy.pii_allow)[0] if self.policy.pii == "redact" else text
