"""Files lmforge writes: atomic, and with the mode the user's umask gives a new file."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from lmforge.home import atomic_dir, atomic_file, atomic_write_text


@pytest.fixture(params=[0o022, 0o077], ids=["umask-022", "umask-077"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_written_files_and_folders_get_the_mode_the_umask_gives(tmp_path: Path, umask: int) -> None:
    text_file = tmp_path / "why.html"
    atomic_write_text(text_file, "<p>hi</p>")
    assert text_file.read_text(encoding="utf-8") == "<p>hi</p>"
    assert mode(text_file) == 0o666 & ~umask  # 0644 under 022, 0600 under 077

    with atomic_dir(tmp_path / "model") as staging:
        (staging / "config.json").write_text("{}")
    assert mode(tmp_path / "model") == 0o777 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "why.html"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "out.yaml"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(target, suffix=".tmp.yaml") as tmp:
        assert tmp.name.endswith(".tmp.yaml") and tmp.parent == tmp_path
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.yaml"]


def test_the_compiled_kubeflow_pipeline_is_readable_by_others_under_umask_022(
    tmp_path: Path,
) -> None:
    from typer.testing import CliRunner

    from lmforge.cli.main import app

    example = Path(__file__).parents[1] / "examples" / "pipelines" / "quickstart.yaml"
    out = tmp_path / "quickstart.kfp.yaml"
    old = os.umask(0o022)
    try:
        result = CliRunner().invoke(
            app, ["pipeline", "compile", str(example), "--image", "img:1", "--out", str(out)]
        )
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    assert mode(out) == 0o644
