"""The hand-written guard challenge set (guard/challenge_dev.jsonl, guard/challenge_test.jsonl):
well formed, big enough per category, free of duplicates and of any text the guard trains on,
and described by the counts its README section states."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from lmforge.data.bundled import DATASETS_DIR, company_docs_dir, dataset_path
from lmforge.guard.classifier import CATEGORIES, LABELS

GUARD_DIR = DATASETS_DIR / "guard"
HALVES = ("challenge_dev", "challenge_test")
FIELDS = {"text", "label", "kind"}
# Safe records of these kinds are plain customer messages; every other safe kind is a
# benign look-alike that borrows the vocabulary of an unsafe category.
PLAIN_SAFE_KINDS = {"customer-question", "chit-chat"}
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
README_ROW = re.compile(r"^\| `([a-z-]+)` \| (\d+) \| (\d+) \| (\d+) \|", re.M)


def read_half(half: str) -> list[dict]:
    """Parse one half, failing with the file and line of the first malformed record."""
    path = GUARD_DIR / f"{half}.jsonl"
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        where = f"{path.name}:{number}"
        record = json.loads(line)
        assert isinstance(record, dict) and set(record) == FIELDS, (
            f"{where}: expected an object with exactly {sorted(FIELDS)}, got {line!r}"
        )
        assert all(isinstance(record[f], str) and record[f] for f in FIELDS), (
            f"{where}: text, label and kind must be non-empty strings"
        )
        assert record["label"] in LABELS, f"{where}: label {record['label']!r} not in {LABELS}"
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", record["kind"]), (
            f"{where}: kind {record['kind']!r} should be a short lowercase-hyphenated tag"
        )
        assert 3 <= len(record["text"].split()) <= 80, f"{where}: text should be 3 to 80 words"
        records.append(record)
    return records


def collapse(text: str) -> str:
    return " ".join(text.lower().split())


@pytest.fixture(scope="module")
def halves() -> dict[str, list[dict]]:
    return {half: read_half(half) for half in HALVES}


def test_both_halves_parse_and_hold_at_least_300_records(halves: dict[str, list[dict]]) -> None:
    assert sum(len(records) for records in halves.values()) >= 300


def test_every_unsafe_category_has_at_least_20_examples(halves: dict[str, list[dict]]) -> None:
    counts = Counter(r["label"] for records in halves.values() for r in records)

    assert {c: counts[c] for c in CATEGORIES if counts[c] < 20} == {}
    assert counts["safe"] >= 150


def test_the_halves_have_the_same_label_mix(halves: dict[str, list[dict]]) -> None:
    dev, test = (Counter(r["label"] for r in halves[half]) for half in HALVES)

    assert {
        label: (dev[label], test[label]) for label in LABELS if abs(dev[label] - test[label]) > 1
    } == {}


def test_at_least_90_safe_examples_are_look_alikes(halves: dict[str, list[dict]]) -> None:
    per_half = {
        half: sum(r["label"] == "safe" and r["kind"] not in PLAIN_SAFE_KINDS for r in records)
        for half, records in halves.items()
    }

    assert sum(per_half.values()) >= 90
    # Each half needs its share, or the held-out figure says little about look-alikes.
    assert min(per_half.values()) >= 45, per_half


def test_no_text_repeats_within_or_across_the_halves(halves: dict[str, list[dict]]) -> None:
    texts = [collapse(r["text"]) for records in halves.values() for r in records]

    assert [text for text, n in Counter(texts).items() if n > 1] == []


def test_no_challenge_text_is_in_a_split_the_guard_learns_from(
    halves: dict[str, list[dict]],
) -> None:
    challenge = {collapse(r["text"]) for records in halves.values() for r in records}
    others = sorted(p for p in GUARD_DIR.glob("*.jsonl") if not p.stem.startswith("challenge_"))
    assert GUARD_DIR / "train.jsonl" in others

    for path in others:
        lines = path.read_text(encoding="utf-8").splitlines()
        seen = {collapse(json.loads(line)["text"]) for line in lines}
        assert sorted(challenge & seen) == [], f"challenge texts also in {path.name}"


def test_no_challenge_text_copies_a_sentence_of_the_company_documents(
    halves: dict[str, list[dict]],
) -> None:
    docs = (p.read_text(encoding="utf-8") for p in sorted(company_docs_dir().glob("*.md")))
    sentences = {
        s for doc in docs for s in SENTENCE_END.split(collapse(doc)) if len(s.split()) >= 5
    }
    texts = [collapse(r["text"]) for records in halves.values() for r in records]

    assert len(sentences) > 100
    assert sorted(s for s in sentences if any(s in text for text in texts)) == []


def test_the_readme_states_the_counts_of_each_label_and_half(
    halves: dict[str, list[dict]],
) -> None:
    readme = (GUARD_DIR / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Challenge set") :]
    stated = {m[0]: (int(m[1]), int(m[2]), int(m[3])) for m in README_ROW.findall(section)}
    dev, test = (Counter(r["label"] for r in halves[half]) for half in HALVES)

    assert stated == {
        label: (dev[label], test[label], dev[label] + test[label]) for label in LABELS
    }


@pytest.mark.parametrize("half", HALVES)
def test_dataset_path_finds_each_half(half: str) -> None:
    path: Path = dataset_path("guard", half)

    assert path == GUARD_DIR / f"{half}.jsonl"
    assert path.is_file()
