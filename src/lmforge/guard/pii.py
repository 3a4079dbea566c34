"""Find and redact personal data: emails, phone numbers, payment cards, Chinese resident
ID numbers and Chinese mobile numbers.

Card numbers must pass the Luhn check and ID numbers their ISO 7064 check digit, so
order numbers and other long digit runs are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
CN_MOBILE = re.compile(r"(?<!\d)(?:\+?86[- ]?)?1[3-9]\d(?:[- ]?\d{4}){2}(?!\d)")
CN_ID = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]?\d{3,4}(?!\d)"
)

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


@dataclass(frozen=True)
class Finding:
    kind: str  # email | phone | card | cn_id | cn_mobile
    start: int
    end: int


def luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def cn_id_ok(number: str) -> bool:
    """GB 11643 check digit of an 18-character resident ID."""
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == number[17].upper()


def find_pii(text: str) -> list[Finding]:
    """Every piece of personal data in ``text``, earliest first, never overlapping."""
    found: list[Finding] = []

    def add(kind: str, match: re.Match[str]) -> None:
        if all(match.end() <= f.start or match.start() >= f.end for f in found):
            found.append(Finding(kind, match.start(), match.end()))

    for match in EMAIL.finditer(text):
        add("email", match)
    for match in CN_ID.finditer(text):
        if cn_id_ok(match.group()):
            add("cn_id", match)
    for match in CN_MOBILE.finditer(text):
        add("cn_mobile", match)
    for match in CARD.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            add("card", match)
    for match in PHONE.finditer(text):
        if sum(c.isdigit() for c in match.group()) >= 7:
            add("phone", match)
    return sorted(found, key=lambda f: f.start)


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def allowed(value: str, allow: Sequence[str]) -> bool:
    """Whether ``value`` (an e-mail or a phone number found in a text) is one of ``allow``:
    e-mails compared ignoring case, phone numbers by their digits, where one may lack the
    other's leading country or trunk code (``800-555-0142`` is ``1-800-555-0142``)."""
    if "@" in value:
        return value.lower() in {a.lower() for a in allow if "@" in a}
    digits = _digits(value)
    for entry in allow:
        wanted = _digits(entry)
        if "@" in entry or not wanted:
            continue
        short, long = sorted((digits, wanted), key=len)
        if digits == wanted or (len(short) >= 10 and long.endswith(short)):
            return True
    return False


def redact(text: str, allow: Sequence[str] = ()) -> tuple[str, list[str]]:
    """``text`` with personal data replaced by ``[EMAIL]``, ``[PHONE]``... and the kinds found.

    Args:
        allow: e-mail addresses and phone numbers to keep (the deployment's own public
            contacts); see ``allowed``.
    """
    findings = [f for f in find_pii(text) if not (allow and allowed(text[f.start : f.end], allow))]
    for finding in reversed(findings):
        text = text[: finding.start] + f"[{finding.kind.upper()}]" + text[finding.end :]
    return text, [f.kind for f in findings]
