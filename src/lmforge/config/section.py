"""The base of every config section, and the "did you mean" hint its errors use."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

from lmforge.errors import LmforgeError


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, not silently dropped."""

    # coerce_numbers_to_str: `--set data.fields.label=1` or `experiment: 2024` mean strings.
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


def did_you_mean(word: str, choices: Iterable[object]) -> str:
    """Return ``"did you mean 'x'?"`` for the choice closest to ``word``, or ``""``."""
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else ""


def unknown_name(setting: str, kind: str, name: str, names: Iterable[str]) -> LmforgeError:
    """``setting: unknown KIND 'name' (did you mean 'x'?); choose one of a, b``: the error a
    registry raises for a name it does not hold."""
    names = list(names)
    hint = did_you_mean(name, names)
    return LmforgeError(f"{setting}: unknown {kind} {name!r}{f' ({hint})' if hint else ''}; "
                        f"choose one of {', '.join(names)}")  # fmt: skip
