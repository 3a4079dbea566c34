"""The progress reporter off a terminal: plain lines at a bounded rate, so a long step in a
CI log or `make demo > log` is never silent and never floods it."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from lmforge import progress as progress_module
from lmforge.progress import ProgressReporter


def piped() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=False, width=200), out


def test_plain_lines_every_tenth_and_the_last(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: 0.0)  # no 30 s lines
    console, out = piped()
    with ProgressReporter(console, "train", unit="step") as report:
        for step in range(1, 101):
            report(step, 100, f"loss {1 / step:.2f}")
    lines = out.getvalue().splitlines()
    assert lines[0] == "train: step 1/100 (1%)  loss 1.00"
    assert lines[-1] == "train: step 100/100 (100%)  loss 0.01"
    assert 10 <= len(lines) <= 12  # the first, one per tenth, the last


def test_a_slow_step_prints_every_30_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([0.0, 31.0, 45.0, 62.0])
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: next(clock))
    console, out = piped()
    report = ProgressReporter(console, "eval")
    for done in (1, 2, 3, 4):  # of 1000: no tenth is reached
        report(done, 1000, "examples")
    assert out.getvalue().splitlines() == [
        "eval: 1/1000 (0%)  examples",
        "eval: 2/1000 (0%)  examples",
        "eval: 4/1000 (0%)  examples",
    ]


def test_a_disabled_reporter_prints_nothing() -> None:
    console, out = piped()
    with ProgressReporter(console, "train", enabled=False) as report:
        report(1, 2, "")
    assert out.getvalue() == ""
