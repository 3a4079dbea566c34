"""The real embedded models, end to end: SmolLM2 answers, MiniLM ranks, chat remembers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lmforge.cli.main import app

pytestmark = pytest.mark.integration
runner = CliRunner()
SMOLLM2 = "smollm2-135m-instruct"


def test_smollm2_knows_the_capital_of_france() -> None:
    result = runner.invoke(
        app,
        [
            "generate",
            SMOLLM2,
            "What is the capital of France?",
            "--temperature",
            "0",
            "--max-tokens",
            "30",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert "Paris" in payload["text"]
    assert payload["finish_reason"] == "stop"


def test_minilm_ranks_a_paraphrase_above_an_unrelated_sentence() -> None:
    from lmforge.retrieve import SentenceEmbedder, cosine_similarity

    embedder = SentenceEmbedder("all-minilm-l6-v2")
    vectors = embedder.encode(
        [
            "How do I return a damaged product?",
            "What is the procedure to send back an item that arrived broken?",
            "The football match ended in a draw last night.",
        ]
    )
    assert vectors.shape == (3, 384)
    scores = cosine_similarity(vectors[:1], vectors[1:])[0]
    assert scores[0] > scores[1] + 0.3, scores


def _chat(lines: list[str], tmp_path: Path) -> list[dict[str, str]]:
    """Run the real `lmforge chat` with lines on a pipe; return the saved conversation."""
    saved = tmp_path / "chat.json"
    script = "\n".join([*lines, f"/save {saved}"]) + "\n"
    command = [
        sys.executable,
        "-m",
        "lmforge.cli.main",
        "chat",
        SMOLLM2,
        "--temperature",
        "0",
        "--max-tokens",
        "40",
    ]
    done = subprocess.run(
        command, input=script, capture_output=True, text=True, timeout=300, env=os.environ.copy()
    )
    assert done.returncode == 0, done.stderr
    return json.loads(saved.read_text())["messages"]


def test_scripted_chat_remembers_a_fact_from_the_first_turn(tmp_path: Path) -> None:
    messages = _chat(
        [
            "I have a dog named Biscuit.",
            "What is the capital of Italy?",
            "What is the name of my dog?",
        ],
        tmp_path,
    )
    answers = [m["content"] for m in messages if m["role"] == "assistant"]
    assert len(answers) == 3
    assert "Rome" in answers[1]
    assert "Biscuit" in answers[2]
    # Control: without the first turn the model cannot know the name.
    control = _chat(["What is the capital of Italy?", "What is the name of my dog?"], tmp_path)
    assert "Biscuit" not in control[-1]["content"]


def test_corrupt_converted_weights_are_detected_and_reconverted() -> None:
    from lmforge.hub.zoo import cache_problem, cached_dir, zoo_model_dir

    model_dir = zoo_model_dir(SMOLLM2, progress=False)
    weights = model_dir / "model.safetensors"
    with weights.open("r+b") as handle:  # a crash mid-write leaves a truncated file
        handle.truncate(weights.stat().st_size // 3)
    assert cache_problem(cached_dir(SMOLLM2)) is not None
    assert zoo_model_dir(SMOLLM2, progress=False) == model_dir
    assert cache_problem(model_dir) is None
    leftovers = [p.name for p in model_dir.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_quickstart_shows_chat_similarity_adaptation_and_logs_runs() -> None:
    from rich.console import Console

    from lmforge.pipeline.quickstart import ADAPT_FACT, KB_FACT, run_quickstart

    console = Console(record=True, width=200)
    result = run_quickstart(console)
    shown = console.export_text()
    assert "Paris" in result.answer and "Paris" in shown
    assert "I forgot my password" in shown
    assert next(iter(result.similarities)).startswith("I forgot my password")
    # The LoRA step: only the adapted model knows the company's return window.
    assert ADAPT_FACT not in result.answer_before
    assert ADAPT_FACT in result.answer_after, result.answer_after
    assert "SmolLM2 + LoRA, after" in shown
    assert "fp32 (merged LoRA) vs INT8" in shown and "int8-dynamic" in shown
    size_change = float(result.compress_rows[1]["size vs fp32"].rstrip("%"))
    assert size_change < -70  # measured -74.8%
    assert ADAPT_FACT in result.compressed_answer, result.compressed_answer
    assert "Logged MLflow run" in shown
    # It ends by serving the adapted model: asked over HTTP, it answers as it did in process.
    assert ADAPT_FACT in result.served_answer, result.served_answer
    # The bundled knowledge base: built, scored on held-out questions, and grounding a
    # served answer that cites the passages it came from.
    assert result.kb_recall_at_5 >= 0.85  # measured 0.93
    assert KB_FACT in result.grounded_answer, result.grounded_answer
    assert {c["source"] for c in result.citations} == {"products.md"}
    assert "6. A knowledge base of Brightnest Home's documents" in shown
    assert "web chat page: http://127.0.0.1:" in shown
    runs = runner.invoke(app, ["runs", "list", "--json"])
    assert runs.exit_code == 0, runs.output
    quickstart_runs = [r for r in json.loads(runs.stdout) if r.get("experiment") == "quickstart"]
    assert {r["run_id"] for r in quickstart_runs} >= {result.run_id, result.adapt_run_id}


def test_quickstart_command_runs_end_to_end_without_tracking() -> None:
    result = runner.invoke(app, ["quickstart", "--no-track", "--no-serve"])
    assert result.exit_code == 0, result.output
    assert "SmolLM2 + LoRA, after" in result.stdout
