"""The hand-written challenge splits: sentiment/challenge.jsonl and
customer_service/challenge_questions.jsonl.

They judge models in the voice of real customers, so they must stay well formed,
balanced, grounded in the company documents word for word, and disjoint from every
generated split a model trains or tunes on.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from lmforge.data.bundled import COMPANY_DOCS, DATASETS_DIR, company_docs_dir, dataset_path

SENTIMENT_LABELS = {"positive", "neutral", "negative"}
GENERATED_SPLITS = ("train", "validation", "test")
QUESTION_FIELDS = {"question", "answer", "keywords", "source", "evidence", "topic"}


def read_jsonl(path: Path) -> list[dict]:
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            pytest.fail(f"{path.name} line {number} is not JSON: {error}")
    return records


def collapse(text: str) -> str:
    """Lower-cased, every run of whitespace one space: how texts and spans are compared."""
    return " ".join(text.split()).lower()


@pytest.fixture(scope="module")
def reviews() -> list[dict]:
    return read_jsonl(dataset_path("sentiment", "challenge"))


@pytest.fixture(scope="module")
def questions() -> list[dict]:
    return read_jsonl(dataset_path("customer_service", "challenge_questions"))


def test_dataset_path_resolves_the_challenge_splits() -> None:
    assert dataset_path("sentiment", "challenge") == DATASETS_DIR / "sentiment" / "challenge.jsonl"
    assert (
        dataset_path("customer_service", "challenge_questions")
        == DATASETS_DIR / "customer_service" / "challenge_questions.jsonl"
    )


def test_challenge_reviews_are_labeled_tagged_and_balanced(reviews: list[dict]) -> None:
    for number, record in enumerate(reviews, start=1):
        assert set(record) == {"text", "label", "kind"}, f"line {number}: {sorted(record)}"
        assert isinstance(record["text"], str) and record["text"].strip(), f"line {number}"
        assert record["label"] in SENTIMENT_LABELS, f"line {number}: {record['label']!r}"
        assert isinstance(record["kind"], str) and record["kind"].strip(), f"line {number}"
    labels = Counter(record["label"] for record in reviews)

    assert len(reviews) >= 180
    assert set(labels) == SENTIMENT_LABELS
    assert min(labels.values()) >= 60, labels


def test_challenge_reviews_are_not_separable_by_praise_words(reviews: list[dict]) -> None:
    # The point of the split: "love" or "perfect" must not give the label away.
    for word in ("love", "great", "perfect"):
        labels = {r["label"] for r in reviews if word in r["text"].lower()}

        assert labels == SENTIMENT_LABELS, f"reviews with {word!r} only carry {labels}"


def test_challenge_reviews_have_no_duplicates(reviews: list[dict]) -> None:
    texts = Counter(collapse(record["text"]) for record in reviews)

    assert not [text for text, count in texts.items() if count > 1]


def test_challenge_reviews_share_no_text_with_the_generated_splits(reviews: list[dict]) -> None:
    challenge = {collapse(record["text"]) for record in reviews}
    for split in GENERATED_SPLITS:
        generated = {collapse(r["text"]) for r in read_jsonl(dataset_path("sentiment", split))}

        assert generated, f"sentiment/{split} is empty"
        assert not challenge & generated, f"also in sentiment/{split}: {challenge & generated}"


def test_challenge_questions_are_well_formed(questions: list[dict]) -> None:
    for number, record in enumerate(questions, start=1):
        assert set(record) == QUESTION_FIELDS, f"line {number}: {sorted(record)}"
        assert all(
            isinstance(record[field], str) and record[field].strip()
            for field in QUESTION_FIELDS - {"keywords"}
        ), f"line {number}"
        assert 1 <= len(record["keywords"]) <= 3, f"line {number}: {record['keywords']}"
        assert all(isinstance(k, str) and k.strip() for k in record["keywords"]), f"line {number}"
        assert record["source"] in COMPANY_DOCS, f"line {number}: {record['source']!r}"

    assert len(questions) >= 60
    assert len({collapse(record["question"]) for record in questions}) == len(questions)
    assert {record["source"] for record in questions} == set(COMPANY_DOCS)


def test_every_keyword_is_in_its_evidence_and_its_answer(questions: list[dict]) -> None:
    for record in questions:
        evidence, answer = collapse(record["evidence"]), record["answer"].lower()
        for keyword in record["keywords"]:
            assert keyword.lower() in evidence, f"{keyword!r} not in {record['evidence']!r}"
            assert keyword.lower() in answer, f"{keyword!r} not in {record['answer']!r}"


def test_evidence_is_verbatim_in_the_named_company_document(questions: list[dict]) -> None:
    folder = company_docs_dir()
    docs = {name: collapse((folder / name).read_text(encoding="utf-8")) for name in COMPANY_DOCS}
    for record in questions:
        assert collapse(record["evidence"]) in docs[record["source"]], (
            f"{record['evidence']!r} is not in {record['source']}"
        )


def test_challenge_questions_share_no_text_with_the_generated_splits(
    questions: list[dict],
) -> None:
    generated = {
        collapse(message["content"])
        for split in GENERATED_SPLITS
        for dialog in read_jsonl(dataset_path("customer_service", split))
        for message in dialog["messages"]
        if message["role"] == "user"
    }
    generated |= {
        collapse(record["question"])
        for record in read_jsonl(dataset_path("customer_service", "test_questions"))
    }
    challenge = {collapse(record["question"]) for record in questions}

    assert generated
    assert not challenge & generated, f"also in a generated split: {challenge & generated}"
