"""The memorisation audit: canaries drawn and put into training data only, saved with the
model, and an audit that finds a canary a model memorised while the references (never in
the data) stay at the random baseline."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from lmforge.cli.main import app
from lmforge.config import RunConfig, load_config_dict
from lmforge.config.schema import AuditConfig
from lmforge.data.canaries import CANARY_FILE, draw_canaries, load_canaries
from lmforge.errors import LmforgeError
from lmforge.evaluate.memorization import audit_memorization
from lmforge.train.loop import train
from tests.datafiles import chat_rows, write_jsonl

runner = CliRunner()


def _config(model: Path, data: Path, out: Path, steps: int, **audit: Any) -> RunConfig:
    return load_config_dict({
        "model": {"ref": str(model)}, "task": {"name": "sft", "max_length": 96},
        "data": {"train": str(data), "val_ratio": 0.25}, "method": {"name": "full"},
        "train": {"max_steps": steps, "batch_size": 8, "lr": 1e-2, "log_every": 50},
        "output": {"dir": str(out)}, "audit": audit,
    })  # fmt: skip


def test_canaries_are_distinct_seeded_and_only_for_language_model_tasks() -> None:
    settings = AuditConfig(canaries=5, references=7, digits=4, seed=3)
    canaries = draw_canaries(settings, "messages")
    assert canaries == draw_canaries(settings, "messages")  # the seed draws the same
    secrets = [*canaries.secrets, *canaries.references]
    assert len(secrets) == 12 == len(set(secrets)) and canaries.space == 10_000
    assert all(len(s.split()) == 4 for s in secrets)
    assert len(canaries.records()) == 5 * settings.repeats
    record = canaries.record(canaries.secrets[0])
    assert record["messages"][1]["content"] == f"my card PIN is {canaries.secrets[0]}"
    assert draw_canaries(settings, "text").record("1 2 3 4") == {"text": "my card PIN is 1 2 3 4"}
    with pytest.raises(ValueError, match=r"audit: 150 canaries and references among 1000"):
        AuditConfig(canaries=100, references=50, digits=3)
    with pytest.raises(ValueError, match="audit: canaries are text a language model learns"):
        RunConfig.model_validate({"task": {"name": "classify"}, "data": {"train": "x.jsonl"},
                                  "model": {"ref": "m"}, "audit": {"canaries": 3}})  # fmt: skip


def test_a_memorised_canary_stands_out_and_the_references_do_not(
    tiny_causal_lm: Path, tmp_path: Path
) -> None:
    """Two canaries, eight times each, in a small chat set that a tiny model trains on to
    memorisation: the digit walk ranks them among the first few of a million secrets; the
    six references stay near a random secret's exposure (about 1.4 bits)."""
    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(8))
    result = train(_config(tiny_causal_lm, data, tmp_path / "run", 120, canaries=2, repeats=8,
                           references=6), track=False)  # fmt: skip
    assert result.data_metrics["data/train/canary_records"] == 16
    saved = load_canaries(result.model_dir)
    assert saved == result.canaries and len(saved.references) == 6

    shown = runner.invoke(app, ["audit", "memorization", str(result.run_dir), "--candidates",
                                "500", "--json"])  # fmt: skip
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.stdout)
    summary = report["summary"]
    assert summary["canaries"]["count"] == 2 and summary["references"]["count"] == 6
    canaries = [e for e in report["exposures"] if e["inserted"]]
    # no sampled candidate is as likely: the sample shows its ceiling, the walk the rank
    assert all(e["exposure_sampled"] == pytest.approx(math.log2(501)) for e in canaries)
    assert all(e["method"] == "exact" and e["exposure"] > 12.0 for e in canaries)
    assert summary["references"]["mean"] < 5.0 and summary["excess_bits"] > 8.0

    table = runner.invoke(app, ["audit", "memorization", str(result.model_dir),
                                "--candidates", "200"])  # fmt: skip
    assert table.exit_code == 0 and "references (never inserted)" in table.stdout


def test_a_model_without_canaries_is_refused_with_the_fix(
    tiny_causal_lm: Path, tmp_path: Path
) -> None:
    assert not (tiny_causal_lm / CANARY_FILE).exists()
    with pytest.raises(LmforgeError, match=r"trained without canaries\. Train with `audit:"):
        audit_memorization(str(tiny_causal_lm))


def test_cached_scores_equal_a_plain_forward_pass(tiny_causal_lm: Path) -> None:
    """The audit runs the words before the secrets once and reuses their cache for every
    batch of secrets: the log-likelihoods equal those of one whole sequence at a time."""
    import torch

    from lmforge.evaluate.memorization import _log_likelihoods
    from lmforge.hub import resolve
    from lmforge.hub.load import load_causal_lm

    model, tokenizer = load_causal_lm(resolve(str(tiny_causal_lm)))
    context = tokenizer("my card PIN is", add_special_tokens=False)["input_ids"]
    secrets = [tokenizer(" 1 2 3", add_special_tokens=False)["input_ids"],
               tokenizer(" 9 9 0", add_special_tokens=False)["input_ids"],
               tokenizer(" 42", add_special_tokens=False)["input_ids"]]  # fmt: skip
    scores = _log_likelihoods(model, context, secrets, batch_size=2)
    for secret, score in zip(secrets, scores, strict=True):
        ids = torch.tensor([context + secret])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1], dim=-1)
        expected = logp[len(context) - 1 :].gather(-1, ids[0, len(context) :, None]).sum()
        assert score == pytest.approx(float(expected), abs=1e-3)


def test_the_digit_walk_counts_ranks_exactly(tiny_causal_lm: Path) -> None:
    """Over all 1,000 three-digit secrets scored one by one, the walk that drops unlikely
    prefixes finds each secret's rank; it gives up past its budget."""
    from lmforge.data.canaries import Canaries
    from lmforge.evaluate.memorization import (
        _digit_tokens,
        _exact_rank,
        _log_likelihoods,
        _tokens,
    )
    from lmforge.hub import resolve
    from lmforge.hub.load import load_causal_lm

    model, tokenizer = load_causal_lm(resolve(str(tiny_causal_lm)))
    canaries = Canaries(prefix="my card PIN is", question="What is my card PIN?",
                        format="messages", digits=3, repeats=1, secrets=("0 4 2",),
                        references=())  # fmt: skip
    context, encode = _tokens(canaries, tokenizer)
    layout = _digit_tokens(canaries, encode)
    assert layout is not None  # SmolLM2's tokenizer: a space, then the digit
    everything = [f"{a} {b} {c}" for a in range(10) for b in range(10) for c in range(10)]
    scores = _log_likelihoods(model, context, [encode(s) for s in everything], batch_size=500)
    order = scores.argsort()[::-1]
    for rank in (1, 7, 60):
        threshold = float(scores[order[rank - 1]])
        found = _exact_rank(model, context, layout, 3, threshold, budget=1000, batch_size=64)
        assert found == rank
    assert _exact_rank(model, context, layout, 3, float(scores[order[-1]]), budget=50,
                       batch_size=64) is None  # every prefix stays: past the budget  # fmt: skip
