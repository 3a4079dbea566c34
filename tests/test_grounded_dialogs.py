"""The grounded support dialogs (scripts/make_grounded_dialogs.py): each record's system
prompt is what ``lmforge serve --kb`` builds, its answer cites the passage holding the
fact, and no held-out question leaks into training."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lmforge.data.bundled import DATASETS_DIR, dataset_path
from lmforge.retrieve.kb import Hit, KnowledgeBase
from lmforge.serve.understand import Grounding, attribute

ROOT = Path(__file__).resolve().parents[1]
SPLITS = ("grounded_train", "grounded_validation")


def read(split: str) -> list[dict[str, Any]]:
    lines = dataset_path("customer_service", split).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def chunks(tiny_encoder: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """company/*.md chunked as the quickstart's kb step chunks them (128 tokens, 32
    overlapping, MiniLM's tokenizer; the tiny encoder shares it), by passage id."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LMFORGE_HOME", str(tmp_path_factory.mktemp("grounded-home")))
        kb = KnowledgeBase.create("brightnest", embed_ref=str(tiny_encoder), chunk_tokens=128,
                                  overlap=32)  # fmt: skip
        kb.add([DATASETS_DIR / "company"])
    return {chunk["id"]: chunk for chunk in kb.chunks}


def dialog_system_prompt() -> str:
    first = dataset_path("customer_service", "train").read_text().splitlines()[0]
    return str(json.loads(first)["messages"][0]["content"])


@pytest.mark.parametrize("split", SPLITS)
def test_records_are_what_the_server_builds_and_cite_the_passage_holding_the_fact(
    split: str, chunks: dict[str, Any]
) -> None:
    system = dialog_system_prompt()
    records = read(split)
    assert len(records) >= 50
    for record in records:
        roles = [m["role"] for m in record["messages"]]
        assert roles == ["system", "user", "assistant"], record
        hits = [Hit(rank, 0.0, chunks[i]) for rank, i in enumerate(record["sources"], start=1)]
        assert len(hits) == 3
        assert record["messages"][0]["content"] == Grounding.system_prompt(system, hits)
        answer = record["messages"][2]["content"]
        passages = [f"{h.chunk['title'] or ''}\n{h.chunk['text']}" for h in hits]
        if record["cited"] is None:  # the passages miss the fact: the answer says so
            assert record["kind"] == "unanswerable" and record["keywords"] == ["not sure"]
            assert "not sure" in answer and "support@brightnesthome.com" in answer
            assert not re.search(r"\[\d\]", answer)
            continue
        # The server's citation code reads the marker, and that passage holds every fact.
        assert attribute(answer, passages)[record["cited"] - 1] == "marker"
        assert re.findall(r"\[(\d)\]", answer) == [str(record["cited"])]
        held = " ".join(passages[record["cited"] - 1].lower().split())
        assert all(keyword.lower() in held for keyword in record["keywords"]), record


def test_train_mixes_ranks_distractors_and_unanswerable_questions() -> None:
    records = read("grounded_train")
    kinds = {r["kind"] for r in records}
    assert kinds == {"retrieved", "distractors", "unanswerable"}
    assert {r["cited"] for r in records} == {1, 2, 3, None}
    unanswerable = sum(r["cited"] is None for r in records) / len(records)
    assert 0.05 < unanswerable < 0.3
    # Distractors carry another number of the same kind as the answer's (the refund
    # delay beside the return window): here, other prices beside a price question.
    prices = [r for r in records if r["kind"] == "distractors"
              and all(k.startswith("$") for k in r["keywords"])]  # fmt: skip
    assert prices
    for record in prices[:10]:
        system = record["messages"][0]["content"]
        passages = re.split(r"\n\n\[\d\] ", system)[1:]
        others = [p for n, p in enumerate(passages, start=1) if n != record["cited"]]
        assert all("$" in p for p in others), record["sources"]


def test_training_questions_never_come_from_held_out_data() -> None:
    held_out = set()
    for split in ("validation", "test"):
        for record in read(split):
            held_out |= {m["content"] for m in record["messages"] if m["role"] == "user"}
    held_out |= {r["question"] for r in read("test_questions")}
    challenge = DATASETS_DIR / "customer_service" / "challenge_questions.jsonl"
    if challenge.is_file():  # written by hand; whatever its fields, its questions
        for line in challenge.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            held_out |= {v for k, v in record.items() if k in ("question", "text", "prompt")}
    train_turns = {
        m["content"] for r in read("train") for m in r["messages"] if m["role"] == "user"
    }
    questions = [r["messages"][1]["content"] for r in read("grounded_train")]
    assert not set(questions) & held_out
    assert set(questions) <= train_turns


@pytest.mark.integration
def test_the_generator_rewrites_the_committed_files_byte_for_byte(tmp_path: Path) -> None:
    """Integration (about 30 s on 2 cores): it embeds the documents and every question
    with the real all-MiniLM-L6-v2."""
    script = ROOT / "scripts" / "make_grounded_dialogs.py"
    subprocess.run([sys.executable, str(script), "--out", str(tmp_path)], check=True)
    for split in SPLITS:
        committed = dataset_path("customer_service", split).read_bytes()
        assert (tmp_path / f"{split}.jsonl").read_bytes() == committed, split
