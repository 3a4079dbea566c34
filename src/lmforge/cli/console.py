"""Shared rich consoles: results go to stdout, progress and errors to stderr; and the
number formats every command prints with.

Off a terminal (piped into a file, ``tee`` or a CI log) rich lays output out for 80
columns, cutting run ids and paths to "3e3a55…" in exactly the logs users copy them
from; there the consoles are as wide as ``COLUMNS`` says, or ``PIPED_WIDTH``.
"""

from __future__ import annotations

import math
import os

from rich.console import Console, ConsoleDimensions

PIPED_WIDTH = 200
# Metrics that count things print as integers (a token count of 1862, not 1862.0000).
_COUNT_NAMES = frozenset({"tokens", "examples", "queries", "steps", "passages"})


class _Console(Console):
    """A ``Console`` that is ``PIPED_WIDTH`` wide when its stream is not a terminal."""

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self._width is not None or self.is_terminal or os.environ.get("COLUMNS", "").isdigit():
            return size
        return ConsoleDimensions(PIPED_WIDTH, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


console = _Console()
err_console = _Console(stderr=True)


def format_metric(name: str, value: float) -> str:
    """A metric for a table: counts as integers, large values with 2 decimals, else 4."""
    if _is_count(name) and float(value).is_integer():
        return str(int(value))
    return format_score(value)


def format_score(value: float) -> str:
    """A score, loss or rate: 4 decimals below 100, 2 above (perplexity 49731.67)."""
    if math.isfinite(value) and abs(value) >= 100:
        return f"{value:.2f}"
    return f"{value:.4f}"


def format_rate(count: float, seconds: float, unit: str) -> str | None:
    """``"N unit/s"`` to at least two significant figures (never a rounded "0"), or None
    when ``seconds`` is too short (under 0.1 s) to measure a rate by."""
    if seconds < 0.1 or count <= 0:
        return None
    rate = count / seconds
    return f"{rate:,.0f} {unit}/s" if rate >= 10 else f"{rate:.2g} {unit}/s"


def _is_count(name: str) -> bool:
    return name.rsplit("/", 1)[-1] in _COUNT_NAMES
