"""benchmarks/common.append_result: a new row joins its benchmark's table, never the notes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

COMMON = Path(__file__).parents[1] / "benchmarks" / "common.py"


def _common(results: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    spec = importlib.util.spec_from_file_location("bench_common", COMMON)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "RESULTS", results)
    monkeypatch.setattr(module, "machine", lambda: "M")
    return module


def test_a_row_lands_under_its_table_above_notes_and_later_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text(
        "# Benchmark results\n\n## speed\n\n| date | x | machine | command |\n|---|---|---|---|\n"
        "| d | 1 | M | c |\n\n- a note below the table\n\n### a later table\n\n| k | v |\n"
        "|---|---|\n| a | b |\n\n## other\n\n| date | y | machine | command |\n|---|---|---|---|\n"
    )
    common = _common(results, monkeypatch)
    common.append_result("speed", {"x": "2"})  # type: ignore[attr-defined]
    common.append_result("other", {"y": "3"})  # type: ignore[attr-defined]
    common.append_result("new one", {"z": "4"})  # type: ignore[attr-defined]
    lines = results.read_text().splitlines()
    speed = lines.index("| d | 1 | M | c |")
    assert lines[speed + 1].startswith("| 20") and "| 2 | M |" in lines[speed + 1]
    assert lines[speed + 2 : speed + 4] == ["", "- a note below the table"]
    assert lines[lines.index("| a | b |") + 1] == ""  # the later table is untouched
    other = lines.index("## other")
    assert "| 3 | M |" in lines[other + 4] and lines[other + 2].startswith("| date | y |")
    new = lines.index("## new one")
    assert lines[new + 2] == "| date | z | machine | command |" and "| 4 | M |" in lines[new + 4]
