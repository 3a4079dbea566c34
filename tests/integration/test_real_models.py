"""The real embedded models, end to end: SmolLM2 answers, MiniLM ranks, chat remembers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
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


@pytest.fixture
def demo_threads() -> Iterator[None]:
    """Torch on every core, as `make demo` runs, even when the tests run on two processes
    with one thread each (tests/conftest.py): the adapter's weights depend on how the
    matmuls split their sums, and trained on one thread the adapted model answered the
    return window with "14 days" instead of the 45 it answers on two."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.solo  # make test runs it alone after the others, on every core
@pytest.mark.usefixtures("demo_threads")
def test_quickstart_runs_the_pipeline_serves_the_promoted_model_and_then_is_cached() -> None:
    from rich.console import Console

    from lmforge.pipeline.quickstart import ADAPT_FACT, KB_QUESTIONS, REGISTERED, run_quickstart
    from lmforge.track import get_alias, get_client

    console = Console(record=True, width=200)
    result = run_quickstart(console)
    shown = console.export_text()
    assert result.pipeline_status == "succeeded"
    ran = {"data", "adapt", "compress", "eval-before", "eval-after", "safety", "register", "kb",
           "deploy"}  # fmt: skip
    assert set(result.steps) == ran
    # Adapted on the dialogs and the grounded dialogs, the INT8 model answers more held-out
    # questions with the knowledge base (measured 18/33 -> 22/33 keyword accuracy, seeds
    # 42/1/2 of the same recipe 22, 27, 24, with per-row INT8 scales and batch-invariant
    # decoding; 2-4 answers move with the CPU's INT8 rounding), and as served its
    # citations point at the passage holding the fact (measured 22/22).
    before, after = result.outputs["eval-before"], result.outputs["eval-after"]
    assert after["keyword_accuracy"] >= before["keyword_accuracy"] + 0.09, (before, after)
    assert after["keyword_accuracy"] >= 0.6, after
    assert after["citation_precision"] >= 0.8, after["metrics"]
    assert after["citation_precision"] >= after["generated_citation_precision"]
    # The demo question retrieves the window's passage for both models; the base model
    # answers something else ("1 year"), the adapter made the 45-day answer far likelier
    # (measured -19.1 -> -13.8 nats through INT8 on an AVX2-only EPYC) and the likeliest
    # window. The greedy answer is shown, not asserted: INT8 kernels differ across CPUs.
    assert "faq.md#18" in result.passages, result.passages
    assert ADAPT_FACT not in result.answer_before
    fact = ADAPT_FACT.split()[0]
    assert result.window_after[fact] - result.window_before[fact] > 2.5, result.window_after
    assert max(result.window_after, key=result.window_after.__getitem__) == fact
    assert "log-probability of" in shown and result.answer_after
    # Compressed to INT8 (measured -74.8%), evaluated, registered and promoted.
    rows = result.outputs["compress"]["report"]
    assert float(rows[1]["size vs fp32"].rstrip("%")) < -70
    assert set(result.outputs["eval-after"]["metrics"]) >= {"token_f1", "keyword_accuracy"}
    assert "held-out questions (33)" in shown and "95% paired bootstrap" in shown
    register = result.outputs["register"]
    assert register["promoted"] and get_alias(REGISTERED, "production") == register["version"]
    card = Path(register["card"]).read_text()
    assert "## Compute and energy" in card and "unsafe_prompt_block_rate" in card
    # The knowledge base, scored on held-out questions (measured recall@5 0.93).
    assert result.outputs["kb"]["metrics"]["recall@5"] >= 0.85
    # Served over HTTP: the adapted answer, and a grounded one citing products.md.
    for (_, fact), answer, citations in zip(
        KB_QUESTIONS, result.grounded_answers, result.citations, strict=True
    ):
        assert fact in answer, answer
        assert {c["source"] for c in citations} == {"products.md"}
    assert "web chat page: http://127.0.0.1:" in shown
    # The pipeline run holds one child run per step.
    client = get_client()
    children = client.search_runs(
        [client.get_experiment_by_name("quickstart-pipeline").experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'",
    )
    assert len(children) == len(ran)

    # A second run through the command, untracked: every step but deploy cached (its time
    # is measured in benchmarks/bench_pipeline.py), and nothing registered again.
    again = runner.invoke(app, ["quickstart", "--no-track", "--no-serve"])
    assert again.exit_code == 0, again.output
    assert "pipeline quickstart: succeeded" in again.stdout
    table = {line.split()[1]: line.split()[3] for line in again.stdout.splitlines()
             if line.startswith("│") and line.split()[1] in ran}  # fmt: skip
    assert {step for step, status in table.items() if status == "cached"} == ran - {"deploy"}
    assert get_alias(REGISTERED, "production") == register["version"]


def test_smollm2_writes_code_that_passes_the_easy_problems() -> None:
    from lmforge.data.bundled import dataset_path
    from lmforge.evaluate import evaluate_model

    data = dataset_path("code_problems", "test")
    result = evaluate_model(SMOLLM2, data, "code", max_examples=3, max_tokens=160, track=False)
    # Measured: 3 of the 33 problems pass (cp-001 to cp-003, the one-liners), greedy.
    assert result.metrics["pass@1"] >= 2 / 3, [r["status"] for r in result.examples]
    assert {r["status"] for r in result.examples} <= {"passed", "failed"}
