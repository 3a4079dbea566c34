"""One progress protocol for long work, and the reporter that shows it.

Training, evaluation, explanation batches, knowledge-base builds and pipeline steps all
report progress the same way: a ``ProgressFn`` called with ``(done, total, detail)``,
``detail`` a short text such as ``"loss 2.3142, 1,204 tok/s"`` or ``"examples"``.

``ProgressReporter`` shows it. On a terminal it is a rich progress bar that disappears
when the work ends. Anywhere else (a CI log, ``make demo > log``, ``| tee``) a bar would
show nothing until the end, so it prints plain lines instead, at a bounded rate: the
first call, then whenever another tenth of the total is done or 30 seconds have passed,
and the last; a nine-minute training step prints about a dozen lines, not a silent gap.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

ProgressFn = Callable[[int, int, str], None]
"""``(done, total, detail)``: ``done`` of ``total`` units finished; ``detail`` a short text."""

PLAIN_EVERY_SHARE = 0.1  # off a terminal: a line per tenth of the work...
PLAIN_EVERY_SECONDS = 30.0  # ...or per 30 seconds, whichever comes first


class ProgressReporter:
    """A ``ProgressFn`` that shows ``label`` and the counts on ``console``.

    Use it as a context manager (the bar or the lines end with the block), or call
    ``start``/``stop``. ``unit`` names what is counted (``step``: "step 3/10").
    """

    def __init__(
        self, console: Console, label: str, *, unit: str = "", enabled: bool = True
    ) -> None:
        self.console, self.label, self.unit, self.enabled = console, label, unit, enabled
        self._bar: Progress | None = None
        self._task: Any = None
        self._last_line_at = 0.0
        self._last_line_share = -1.0
        self._last_done = -1

    def __enter__(self) -> ProgressReporter:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if self.enabled and self.console.is_terminal and self._bar is None:
            counts = TextColumn(f"{self.unit}{' ' if self.unit else ''}"
                                "{task.completed}/{task.total}")  # fmt: skip
            self._bar = Progress(TextColumn(f"[bold]{self.label}"), BarColumn(), counts,
                                 TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                                 console=self.console, transient=True)  # fmt: skip
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=None, detail="")

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __call__(self, done: int, total: int, detail: str = "") -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=total, detail=detail)
            return
        if not self.console.is_terminal:
            self._plain_line(done, total, detail)

    def _plain_line(self, done: int, total: int, detail: str) -> None:
        now = time.monotonic()
        share = done / total if total else 0.0
        due = (
            self._last_done < 0  # the first report
            or (total and done >= total and self._last_done < total)  # the last
            or share - self._last_line_share >= PLAIN_EVERY_SHARE
            or now - self._last_line_at >= PLAIN_EVERY_SECONDS
        )
        if not due or done == self._last_done:
            return
        self._last_line_at, self._last_line_share, self._last_done = now, share, done
        counted = f"{self.unit} {done}/{total}" if self.unit else f"{done}/{total}"
        percent = f" ({share:.0%})" if total else ""
        self.console.print(f"{self.label}: {counted}{percent}{'  ' + detail if detail else ''}",
                           highlight=False, markup=False, soft_wrap=True)  # fmt: skip
