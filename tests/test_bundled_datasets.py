"""The bundled datasets: present, well formed, consistent with the company documents,
and exactly what scripts/make_datasets.py writes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from lmforge.data.bundled import DATASETS_DIR, company_docs_dir, dataset_path, list_bundled
from lmforge.data.digits import digits_dir
from lmforge.errors import LmforgeError
from lmforge.evaluate.sandbox import run_many

ROOT = Path(__file__).resolve().parents[1]
SPLITS = ("train", "validation", "test")
MINIMUM_RECORDS = {
    ("customer_service", "train"): 120,
    ("customer_service", "validation"): 15,
    ("customer_service", "test"): 15,
    ("customer_service", "test_questions"): 25,
    ("sentiment", "train"): 1200,
    ("sentiment", "validation"): 120,
    ("sentiment", "test"): 120,
    ("domain_text", "train"): 180,
    ("domain_text", "validation"): 20,
    ("domain_text", "test"): 20,
    ("property", "train"): 200,
    ("property", "validation"): 25,
    ("property", "test"): 25,
    ("kb_queries", "dev"): 80,
    ("kb_queries", "test"): 40,
    ("preference", "train"): 200,
    ("preference", "validation"): 100,
    ("preference", "test"): 100,
    ("preference", "test_questions"): 35,
}
KB_SPLITS = ("dev", "test")
# Bundled files written by hand, which no generator script writes.
HAND_WRITTEN = (
    "guard/challenge_dev.jsonl",
    "guard/challenge_test.jsonl",
    "sentiment/challenge.jsonl",
    "customer_service/challenge_questions.jsonl",
    "tool_dialogs/agent_test.jsonl",  # tests/test_agent.py checks it against the tools
)
# Written by scripts/make_grounded_dialogs.py (it needs a knowledge base, so
# tests/test_grounded_dialogs.py checks those files instead).
GROUNDED = ("customer_service/grounded_train.jsonl", "customer_service/grounded_validation.jsonl")
KB_SOURCES = {"policies.md", "products.md", "faq.md", "troubleshooting.md"}
# Topics whose answer another document states too: products.md repeats every reset
# procedure, and policies, FAQ and troubleshooting all give the support contacts.
KB_SHARED_TOPICS = {"factory_reset", "support_contact"}
HEADING = re.compile(r"^#{1,6} .*$", re.M)
SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s")
SENTIMENT_LABELS = {"positive", "neutral", "negative"}
MONEY = re.compile(r"\$\d+(?:,\d{3})*(?:\.\d\d)?")


def read(name: str, split: str) -> list[dict]:
    lines = dataset_path(name, split).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def record_key(record: dict) -> str:
    return json.dumps(record["messages"]) if "messages" in record else record["text"]


def company_text() -> str:
    """All company documents, with line breaks as plain spaces ("8\na.m." reads "8 a.m.")."""
    texts = (p.read_text(encoding="utf-8") for p in company_docs_dir().glob("*.md"))
    return " ".join(" ".join(text.split()) for text in texts)


def collapse(text: str) -> str:
    return " ".join(text.split())


def company_docs() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in company_docs_dir().glob("*.md")}


def assistant_text(split: str) -> str:
    return " ".join(
        m["content"]
        for record in read("customer_service", split)
        for m in record["messages"]
        if m["role"] == "assistant"
    )


def test_list_bundled_names_every_dataset_and_split() -> None:
    assert list_bundled() == {
        "code_problems": ["train", "test"],
        "customer_service": [
            "train",
            "validation",
            "test",
            "challenge_questions",
            "grounded_train",
            "grounded_validation",
            "test_questions",
        ],
        "digits": ["train", "validation", "test"],  # written on first use
        "domain_text": ["train", "validation", "test"],
        "guard": [
            "train",
            "validation",
            "test",
            "challenge_dev",
            "challenge_test",
            "train_handwritten",
        ],
        "kb_queries": ["dev", "test"],
        "preference": ["train", "validation", "test", "test_questions"],
        "property": ["train", "validation", "test"],
        "sentiment": ["train", "validation", "test", "challenge"],
        "tool_dialogs": ["train", "validation", "agent_test"],
    }


@pytest.mark.parametrize(("name", "split"), sorted(MINIMUM_RECORDS), ids="/".join)
def test_each_split_has_enough_records_and_every_line_parses(name: str, split: str) -> None:
    records = read(name, split)

    assert len(records) >= MINIMUM_RECORDS[name, split]
    assert all(isinstance(record, dict) for record in records)


@pytest.mark.parametrize("split", SPLITS)
def test_dialogs_are_valid_chats_in_messages_format(split: str) -> None:
    system_prompts = set()
    for record in read("customer_service", split):
        messages = record["messages"]
        roles = [m["role"] for m in messages]
        user_turns = roles.count("user")

        assert set(record) == {"messages", "topic"}
        assert all(set(m) == {"role", "content"} for m in messages)
        assert all(isinstance(m["content"], str) and m["content"].strip() for m in messages)
        assert roles[0] == "system"
        assert roles[1:] == ["user", "assistant"] * user_turns
        assert 2 <= user_turns <= 4
        system_prompts.add(messages[0]["content"])
    assert len(system_prompts) == 1
    assert "Brightnest Home" in system_prompts.pop()


def test_held_out_dialogs_never_reuse_a_training_user_message() -> None:
    def user_messages(split: str) -> set[str]:
        return {
            m["content"]
            for record in read("customer_service", split)
            for m in record["messages"]
            if m["role"] == "user"
        }

    train = user_messages("train")

    assert not train & user_messages("validation")
    assert not train & user_messages("test")


def test_every_topic_is_in_every_dialog_split() -> None:
    topics = {split: {r["topic"] for r in read("customer_service", split)} for split in SPLITS}

    assert len(topics["train"]) >= 10
    assert topics["validation"] == topics["train"] == topics["test"]


def test_test_question_keywords_are_in_the_docs_the_answer_and_the_training_dialogs() -> None:
    docs = company_text().lower()
    taught = assistant_text("train").lower()
    train_questions = {
        m["content"]
        for record in read("customer_service", "train")
        for m in record["messages"]
        if m["role"] == "user"
    }
    for record in read("customer_service", "test_questions"):
        assert set(record) == {"question", "answer", "keywords"}
        assert record["question"] not in train_questions
        assert record["keywords"]
        for keyword in record["keywords"]:
            assert keyword.lower() in docs, f"{keyword!r} is not in the company documents"
            assert keyword.lower() in record["answer"].lower()
            assert keyword.lower() in taught, f"no training dialog teaches {keyword!r}"


def test_every_amount_of_money_in_the_dialogs_is_in_the_company_docs() -> None:
    docs = company_text()
    for split in SPLITS:
        amounts = set(MONEY.findall(assistant_text(split)))

        assert amounts
        assert amounts <= set(MONEY.findall(docs)), amounts - set(MONEY.findall(docs))


@pytest.mark.parametrize("split", SPLITS)
def test_sentiment_labels_are_known_and_balanced(split: str) -> None:
    records = read("sentiment", split)
    labels = Counter(record["label"] for record in records)

    assert set(labels) == SENTIMENT_LABELS
    assert all(set(record) == {"text", "label"} for record in records)
    assert min(labels.values()) >= 0.25 * len(records)


def test_sentiment_labels_are_not_given_away_by_one_word() -> None:
    records = read("sentiment", "train")
    for word in ("recommend", "but", "not", "love", "disappointing", "great", "perfect"):
        labels = {r["label"] for r in records if re.search(rf"\b{word}\b", r["text"], re.I)}

        assert len(labels) >= 2, f"every review with {word!r} has the same label"


@pytest.mark.parametrize("word", ["love", "great", "perfect", "not", "never"])
def test_sentiment_praise_and_negation_words_are_balanced_across_verdicts(word: str) -> None:
    # The template data once put "love" only in complaints ("I love that ..., but ..."),
    # and the classifier learned "love" as a negative word.
    records = read("sentiment", "train")
    labels = Counter(r["label"] for r in records if re.search(rf"\b{word}", r["text"], re.I))

    assert labels["positive"] >= 0.25 * labels.total(), labels
    assert labels["negative"] >= 0.25 * labels.total(), labels


def test_sentiment_train_has_short_casual_and_long_reviews() -> None:
    texts = [r["text"] for r in read("sentiment", "train")]

    assert sum(len(t.split()) <= 3 for t in texts) >= 40
    assert sum(len(t.split()) >= 30 for t in texts) >= 40
    assert sum(t == t.lower() for t in texts) >= 0.1 * len(texts)


@pytest.mark.parametrize("split", SPLITS)
def test_domain_paragraphs_are_60_to_200_words(split: str) -> None:
    for record in read("domain_text", split):
        assert set(record) == {"text"}
        assert 60 <= len(record["text"].split()) <= 200


@pytest.mark.parametrize("split", SPLITS)
def test_property_labels_are_positive_hours(split: str) -> None:
    for record in read("property", split):
        assert set(record) == {"text", "label"}
        assert isinstance(record["label"], float)
        assert 0 < record["label"] < 100
        assert "mAh" in record["text"]


@pytest.mark.parametrize("name", ["customer_service", "sentiment", "domain_text", "property"])
def test_splits_share_no_record(name: str) -> None:
    keys = {split: [record_key(r) for r in read(name, split)] for split in SPLITS}

    for split in SPLITS:
        assert len(set(keys[split])) == len(keys[split]), f"duplicates within {split}"
    assert not set(keys["train"]) & set(keys["validation"])
    assert not set(keys["train"]) & set(keys["test"])
    assert not set(keys["validation"]) & set(keys["test"])


@pytest.mark.parametrize("split", SPLITS)
def test_preference_pairs_read_as_the_dpo_task_reads_them(split: str) -> None:
    from lmforge.data.records import read_records

    records, report = read_records(dataset_path("preference", split))
    assert report.format == "preference" and report.rows_skipped == 0
    raw = read("preference", split)
    kinds = Counter(row["rejected_kind"] for row in raw)
    assert kinds["wrong_fact"] == kinds["rude"] == kinds["off_topic"] == len(raw) / 3
    for record, row in zip(records, raw, strict=True):
        (keyword,) = row["keywords"]
        assert keyword in record["chosen"]
        assert record["chosen"] != record["rejected"]
        if row["rejected_kind"] == "wrong_fact":
            assert keyword not in record["rejected"]
        if row["rejected_kind"] == "rude":
            assert keyword in record["rejected"]  # the right fact, said rudely


def test_preference_splits_ask_the_same_facts_in_different_words() -> None:
    def questions(split: str) -> set[str]:
        return {row["messages"][-1]["content"] for row in read("preference", split)}

    train, validation, test = (questions(split) for split in SPLITS)
    assert not train & validation and not train & test and not validation & test
    held_out = read("preference", "test_questions")
    assert {row["question"] for row in held_out} == test
    facts = {row["keywords"][0] for row in read("preference", "train")}
    assert {row["keywords"][0] for row in held_out} <= facts
    docs = " ".join(company_docs().values())
    for row in held_out:
        assert row["keywords"][0] in docs and row["keywords"][0] in row["answer"]


def test_kb_query_counts_are_the_documented_sizes() -> None:
    readme = (DATASETS_DIR / "README.md").read_text(encoding="utf-8")
    dev, test = (len(read("kb_queries", split)) for split in KB_SPLITS)

    assert 80 <= dev <= 100
    assert 40 <= test <= 50
    assert f"dev {dev} / test {test} labeled search queries" in collapse(readme)


@pytest.mark.parametrize("split", KB_SPLITS)
def test_kb_queries_are_well_formed_and_cover_every_document(split: str) -> None:
    records = read("kb_queries", split)
    queries = [record["query"] for record in records]

    for record in records:
        assert set(record) == {"query", "source", "evidence", "topic"}
        assert all(isinstance(value, str) and value.strip() for value in record.values())
        assert record["source"] in KB_SOURCES
        assert 2 <= len(record["evidence"].split()) <= 12, record["evidence"]
        assert collapse(record["evidence"]).lower() not in record["query"].lower()
    assert len(set(queries)) == len(queries)
    assert {record["source"] for record in records} == KB_SOURCES
    assert len({record["topic"] for record in records}) >= 10


@pytest.mark.parametrize("split", KB_SPLITS)
def test_kb_evidence_is_one_passage_of_its_source_document(split: str) -> None:
    docs = company_docs()
    for record in read("kb_queries", split):
        doc, evidence = docs[record["source"]], record["evidence"]
        pattern = r"\s+".join(re.escape(word) for word in evidence.split())
        matches = list(re.finditer(pattern, doc))
        sections = {
            ([h.group() for h in HEADING.finditer(doc, 0, m.start())] or [""])[-1] for m in matches
        }

        assert collapse(evidence) in collapse(doc), f"{evidence!r} is not in {record['source']}"
        assert len(sections) == 1, f"{evidence!r} is in several sections: {sections}"
        for match in matches:
            assert not SENTENCE_END.search(match.group()), f"{evidence!r} spans two sentences"
            assert "\n\n" not in match.group() and "#" not in match.group()


@pytest.mark.parametrize("split", KB_SPLITS)
def test_kb_evidence_is_in_no_other_document_outside_the_shared_topics(split: str) -> None:
    docs = {name: collapse(text).lower() for name, text in company_docs().items()}
    shared = 0
    for record in read("kb_queries", split):
        evidence = collapse(record["evidence"]).lower()
        others = [name for name in docs if name != record["source"] and evidence in docs[name]]
        if record["topic"] in KB_SHARED_TOPICS:
            shared += 1
        else:
            assert not others, f"{record['evidence']!r} is also in {others}"
    assert shared <= 0.2 * len(read("kb_queries", split))


def test_kb_test_queries_ask_the_dev_facts_in_unseen_wording() -> None:
    def words(query: str) -> str:
        return " ".join(re.findall(r"[a-z0-9]+", query.lower()))

    dev, test = (read("kb_queries", split) for split in KB_SPLITS)

    assert not {words(r["query"]) for r in dev} & {words(r["query"]) for r in test}
    assert {(r["source"], r["evidence"]) for r in test} == {
        (r["source"], r["evidence"]) for r in dev
    }


def test_code_problem_train_split_is_the_documented_size_and_well_formed() -> None:
    train = read("code_problems", "train")

    assert [r["id"] for r in train] == [f"cpt-{number:03d}" for number in range(1, 63)]
    assert len({r["entry_point"] for r in train}) == len(train)
    for r in train:
        assert sorted(r) == ["entry_point", "id", "prompt", "solution", "tests"], r["id"]
        assert f"`{r['entry_point']}(" in r["prompt"], r["id"]
        assert f"def {r['entry_point']}(" in r["solution"], r["id"]
        assert r["entry_point"] in r["tests"], r["id"]


def test_code_problem_train_split_shares_no_function_with_the_held_out_test_split() -> None:
    train, test = read("code_problems", "train"), read("code_problems", "test")

    for field in ("entry_point", "id", "prompt", "tests", "solution"):
        assert not {r[field] for r in train} & {r[field] for r in test}, field


def test_every_train_solution_passes_its_tests_and_returning_none_fails_them() -> None:
    train = read("code_problems", "train")
    stubs = [f"def {r['entry_point']}(*args, **kwargs):\n    return None\n" for r in train]

    solved = run_many([(r["solution"], r["tests"]) for r in train], timeout_s=10)
    stubbed = run_many([(stub, r["tests"]) for stub, r in zip(stubs, train, strict=True)])

    failures = {r["id"]: s.output for r, s in zip(train, solved, strict=True) if not s.passed}
    assert not failures
    assert not [r["id"] for r, s in zip(train, stubbed, strict=True) if s.status != "failed"]


def test_dataset_path_resolves_every_bundled_split() -> None:
    for name, splits in list_bundled().items():
        for split in splits:
            path = dataset_path(name, split)

            folder = digits_dir() if name == "digits" else DATASETS_DIR / name
            assert path == folder / f"{split}.jsonl"
            assert path.is_file()
    assert dataset_path("sentiment") == DATASETS_DIR / "sentiment" / "train.jsonl"


def test_dataset_path_names_the_known_datasets_when_the_name_is_unknown() -> None:
    with pytest.raises(LmforgeError, match="no bundled dataset 'reviews'") as caught:
        dataset_path("reviews")

    assert "customer_service" in str(caught.value)
    assert "sentiment" in str(caught.value)


def test_dataset_path_names_the_known_splits_when_the_split_is_unknown() -> None:
    with pytest.raises(LmforgeError, match="no split 'dev'") as caught:
        dataset_path("sentiment", "dev")

    assert "train, validation, test" in str(caught.value)


def test_company_docs_are_bundled() -> None:
    folder = company_docs_dir()

    assert sorted(p.name for p in folder.glob("*.md")) == [
        "faq.md",
        "policies.md",
        "products.md",
        "troubleshooting.md",
    ]


def test_example_configs_point_at_bundled_files() -> None:
    for config in sorted((ROOT / "examples").glob("**/*.yaml")):
        data = yaml.safe_load(config.read_text(encoding="utf-8")).get("data", {})
        if not isinstance(data, dict):  # a compress config's corpus, not a data section
            continue
        for key in ("train", "validation"):
            if "assets/datasets" in str(data.get(key, "")):
                assert (config.parent / data[key]).resolve().is_file(), f"{config}: data.{key}"


def test_generator_rewrites_the_committed_files_byte_for_byte(tmp_path: Path) -> None:
    subfolders = {"make_guard_dataset.py": "guard", "make_code_problems.py": "code_problems"}
    for script in ("make_datasets.py", *subfolders):
        out = tmp_path / subfolders[script] if script in subfolders else tmp_path
        subprocess.run(
            [sys.executable, str(ROOT / "scripts" / script), "--out", str(out)],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def files(folder: Path) -> dict[str, bytes]:
        return {
            str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()
        }

    written, committed = files(tmp_path), files(DATASETS_DIR)
    for name in (*HAND_WRITTEN, *GROUNDED):  # tests/test_*challenge*.py check these
        committed.pop(name)
    committed.pop("digits/README.md")  # the digits are written by lmforge.data.digits
    assert sorted(written) == sorted(committed)
    changed = [name for name in written if written[name] != committed[name]]
    assert not changed, f"rerun `python scripts/make_datasets.py`; these differ: {changed}"
