"""What the CLI prints when its output is piped or logged: whole run ids and paths,
numbers in their right format, and no third-party progress bars or warnings."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from lmforge.cli.main import app
from tests.datafiles import chat_rows, write_jsonl

runner = CliRunner()  # its stdout is not a terminal, like `lmforge ... | tee log`


def _row(output: str, label: str) -> list[str]:
    """The cells of the table row that starts with ``label``."""
    line = next(line for line in output.splitlines() if f"│ {label} " in line)
    return [cell.strip() for cell in line.split("│")[1:-1]]


def _train_config(path: Path, model: Path, data: Path, **settings: Any) -> Path:
    config = {
        "model": {"ref": str(model)},
        "task": {"name": "sft", "max_length": 64},
        "data": {"train": str(data), "val_ratio": 0.2},
        "method": {"name": "lora", "lora_r": 4},
        "train": {"batch_size": 2, "max_steps": 1, "log_every": 1},
        "output": {"experiment": "cli-output", **settings},
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_piped_output_keeps_run_ids_and_paths_whole(
    home: Path, tiny_causal_lm: Path, tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(10))
    trained = runner.invoke(app, ["train", str(_train_config(tmp_path / "run.yaml",
                                                             tiny_causal_lm, data))])  # fmt: skip
    assert trained.exit_code == 0, trained.output
    (run_id,) = re.findall(r"run ([0-9a-f]{32}) ->", trained.stderr)
    assert "…" not in trained.stdout + trained.stderr
    # The model's path (it holds the run id) is printed whole, on one line.
    assert _row(trained.stdout, "model") == ["model", str(home / "runs" / run_id / "model")]
    assert f"run {run_id} -> {home / 'runs' / run_id}\n" in trained.stderr
    # A count prints as one: "eval tokens 61", not "61.0000".
    assert _row(trained.stdout, "eval tokens")[1].isdigit()
    # Off a terminal the progress bar is a plain line (issue 17: a piped run is not silent).
    assert re.search(r"^train: step 1/1 \(100%\)  loss \d+\.\d{4}, [\d,]+ tok/s$",
                     trained.stderr, re.MULTILINE), trained.stderr  # fmt: skip

    listed = runner.invoke(app, ["runs", "list"])
    assert listed.exit_code == 0, listed.output
    assert "…" not in listed.stdout
    row = next(line for line in listed.stdout.splitlines() if run_id in line).split()
    assert row[:2] == [run_id, "cli-output"] and "FINISHED" in row  # one row per run

    # COLUMNS, where set, still says how wide: two lines per run below 120 columns.
    narrow = runner.invoke(app, ["runs", "list"], env={"COLUMNS": "80"})
    assert narrow.exit_code == 0, narrow.output
    assert "run id" not in narrow.stdout
    assert any(line.startswith(f"{run_id}  FINISHED") for line in narrow.stdout.splitlines())


def test_resume_with_nothing_to_resume_prints_only_the_error(
    tiny_causal_lm: Path, tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(4))
    config = _train_config(tmp_path / "run.yaml", tiny_causal_lm, data,
                           dir=str(tmp_path / "never-made" / "run"))  # fmt: skip
    result = runner.invoke(app, ["train", str(config), "--no-track", "--resume"])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("error: resume (--resume): no unfinished run with a checkpoint")
    assert len(result.stderr.strip().splitlines()) == 1  # no "step 0/None ... loss nan" line


def test_eval_and_compare_print_scores_without_third_party_progress_bars(
    home: Path, tiny_causal_lm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)
    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(3))
    args = ["eval", str(tiny_causal_lm), "--data", str(data), "--task", "perplexity"]
    first, second = runner.invoke(app, args), runner.invoke(app, args)
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    # The tiny random model's perplexity is in the tens of thousands: 2 decimals, not 4.
    value, interval = _row(first.stdout, "perplexity")[1:]
    assert float(value) > 100 and re.fullmatch(r"\d+\.\d\d", value), value
    assert re.fullmatch(r"\d+\.\d\d to \d+\.\d\d", interval), interval

    ids = [re.findall(r"MLflow run ([0-9a-f]{32})", r.stdout)[0] for r in (first, second)]
    compared = runner.invoke(app, ["eval", "compare", *ids])
    assert compared.exit_code == 0, compared.output
    assert "perplexity" in compared.stdout
    for result in (first, second, compared):
        everything = result.stdout + result.stderr
        assert "Downloading artifacts" not in everything
        assert "Loading weights" not in everything


def test_kb_add_reports_the_encoders_rate_not_the_model_load(
    home: Path, tiny_encoder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lmforge.retrieve.kb as kb_module

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "returns.md").write_text("Returns are accepted within 45 days of delivery.")
    built = runner.invoke(app, ["kb", "build", "shop", str(docs), "--embed", str(tiny_encoder)])
    assert built.exit_code == 0, built.output

    class SlowEmbedder(kb_module.SentenceEmbedder):
        """Loads in 1 s, like MiniLM from a cold disk, and encodes in 0.25 s."""

        def __init__(self, ref: str) -> None:
            time.sleep(1.0)
            super().__init__(ref)

        def encode(self, *args: Any, **kwargs: Any) -> Any:
            time.sleep(0.25)
            return super().encode(*args, **kwargs)

    monkeypatch.setattr(kb_module, "_embedders", {})  # a fresh process: nothing loaded
    monkeypatch.setattr(kb_module, "SentenceEmbedder", SlowEmbedder)
    (tmp_path / "hours.md").write_text("Support is open weekdays from 9 to 5.")
    added = runner.invoke(app, ["kb", "add", "shop", str(tmp_path / "hours.md")])
    assert added.exit_code == 0, added.output
    assert "1 added, 0 updated, 0 unchanged; 1 passage embedded in " in added.stdout
    # One passage in ~0.25 s of encoding: about 4 a second, however long the load took
    # (counting the load it would read "1 passages/s", or "0" on a slower disk).
    rate = re.search(r"\(encoder: ([\d.]+) passages/s\)", added.stdout)
    assert rate is not None and 1.0 < float(rate[1]) <= 4.0, added.stdout


def test_a_quantized_model_loads_without_torch_warnings_in_a_piped_run(
    home: Path, tiny_causal_lm: Path, tmp_path: Path
) -> None:
    from lmforge.compress.config import CompressConfig
    from lmforge.compress.run import compress_model

    out = tmp_path / "int8"
    config = CompressConfig(model=str(tiny_causal_lm), methods=["int8-dynamic"], measure=False)
    compress_model(config, out, track=False)
    # A fresh process: torch warns about its quantized tensors once per process.
    result = subprocess.run(
        [sys.executable, "-m", "lmforge.cli.main", "generate", str(out), "Hello",
         "--max-tokens", "2", "--json"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["usage"]["completion_tokens"] <= 2
    assert "Warning" not in result.stderr, result.stderr
    assert "Loading weights" not in result.stderr
