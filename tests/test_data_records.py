"""Reading, validating and splitting training data (lmforge.data.records)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lmforge.data.records import (
    FORMATS,
    DataError,
    DataReport,
    detect_format,
    read_records,
    shuffle_records,
    split_records,
)
from lmforge.errors import LmforgeError

CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Where is my order?"},
    {"role": "assistant", "content": "It ships today."},
]

# One example per format, as rows of a file, and the canonical record each becomes.
EXAMPLES: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {
    "messages": (
        [{"messages": CHAT, "id": 7}],
        [{"messages": CHAT}],
    ),
    "alpaca": (
        [{"instruction": "Translate to French", "input": "cat", "output": "chat"}],
        [
            {
                "messages": [
                    {"role": "user", "content": "Translate to French\n\ncat"},
                    {"role": "assistant", "content": "chat"},
                ]
            }
        ],
    ),
    "text": (
        [{"text": "Once upon a time."}, {"text": "The end."}],
        [{"text": "Once upon a time."}, {"text": "The end."}],
    ),
    "labeled": (
        [{"text": "great", "label": "pos"}, {"text": "awful", "label": 0}],
        [{"text": "great", "label": "pos"}, {"text": "awful", "label": "0"}],
    ),
    "prompt": (
        [{"prompt": "Write add(a, b).", "tests": "assert add(1, 2) == 3"}],
        [
            {
                "messages": [{"role": "user", "content": "Write add(a, b)."}],
                "context": {"tests": "assert add(1, 2) == 3"},
            }
        ],
    ),
    "preference": (
        [{"prompt": "Refund time?", "chosen": "5 business days.", "rejected": "Never."}],
        [
            {
                "messages": [{"role": "user", "content": "Refund time?"}],
                "chosen": "5 business days.",
                "rejected": "Never.",
            }
        ],
    ),
}


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write ``rows`` in the file type ``path``'s suffix names."""
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    elif path.suffix == ".csv":
        columns = list(dict.fromkeys(key for row in rows for key in row))
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, columns)
            writer.writeheader()
            for row in rows:
                # CSV cells are text: a conversation goes in as JSON.
                writer.writerow(
                    {k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()}
                )
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def error_of(path: Path, **options: Any) -> str:
    with pytest.raises(DataError) as info:
        read_records(path, **options)
    return str(info.value)


def jsonl(tmp_path: Path, *lines: str, name: str = "train.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD_CHAT = json.dumps({"messages": CHAT[1:]})


# --- every format from every file type -------------------------------------------------


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".parquet"])
# the image formats need image files: tests/test_images.py reads them from each file type
@pytest.mark.parametrize("fmt", [fmt for fmt in FORMATS if not fmt.startswith("image_")])
def test_each_format_reads_from_each_file_type(tmp_path: Path, fmt: str, suffix: str) -> None:
    rows, expected = EXAMPLES[fmt]
    # Parquet columns have one type, so the int label becomes a string in that file.
    if suffix == ".parquet" and fmt == "labeled":
        rows = [{**row, "label": str(row["label"])} for row in rows]
    path = write(tmp_path / f"train{suffix}", rows)

    for given in ("auto", fmt):
        records, report = read_records(path, format=given)
        assert records == expected
        assert report == DataReport(
            path=str(path), format=fmt, rows_read=len(rows), rows_kept=len(rows)
        )


def test_detect_format_prefers_messages_then_alpaca_then_labeled_then_text() -> None:
    assert detect_format(["id", "messages", "text"]) == "messages"
    assert detect_format(["instruction", "input", "output", "text"]) == "alpaca"
    assert detect_format(["label", "text"]) == "labeled"
    assert detect_format(["text", "source"]) == "text"
    with pytest.raises(DataError, match="'body', 'stars' fit no data format"):
        detect_format(["body", "stars"])


def test_data_error_is_a_user_error() -> None:
    assert issubclass(DataError, LmforgeError)


def test_columns_that_fit_no_format_are_named_with_the_fix(tmp_path: Path) -> None:
    path = write(tmp_path / "reviews.csv", [{"body": "nice", "stars": "5"}])

    message = error_of(path)

    assert str(path.resolve()) in message
    assert "'body', 'stars'" in message
    assert "data.fields" in message and "data.format" in message


# --- field mapping ---------------------------------------------------------------------


def test_fields_map_the_files_columns_to_the_format(tmp_path: Path) -> None:
    path = write(tmp_path / "reviews.csv", [{"body": "nice", "stars": "5"}])

    records, report = read_records(path, fields={"text": "body", "label": "stars"})

    assert records == [{"text": "nice", "label": "5"}]
    assert report.format == "labeled"


def test_a_mapping_to_a_missing_column_names_the_key_and_the_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "reviews.jsonl", [{"body": "nice", "stars": 5}])

    message = error_of(path, fields={"text": "body", "label": "rating"})

    assert "data.fields.label: column 'rating' is not in the file" in message
    assert "'body', 'stars'" in message


def test_an_unknown_mapping_key_suggests_the_right_one(tmp_path: Path) -> None:
    path = write(tmp_path / "reviews.jsonl", [{"body": "nice"}])

    message = error_of(path, fields={"txt": "body"})

    assert "data.fields.txt: unknown name (did you mean 'text'?)" in message


def test_bad_rows_in_mapped_columns_name_the_column_and_the_mapping(tmp_path: Path) -> None:
    path = jsonl(tmp_path, '{"body": "ok", "stars": 1}', '{"body": "", "stars": 2}')

    message = error_of(path, fields={"text": "body", "label": "stars"})

    assert f"{path} line 2: field 'body' (data.fields.text): expected non-empty text" in message


def test_a_format_the_file_does_not_have_names_expected_and_found_columns(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "train.jsonl", [{"text": "hello"}])

    message = error_of(path, format="messages")

    assert "format 'messages' needs column(s) 'messages'" in message
    assert "the file has 'text'" in message
    assert "data.format" in message and "data.fields.messages" in message


def test_a_label_kind_needs_a_label_column(tmp_path: Path) -> None:
    path = write(tmp_path / "train.jsonl", [{"text": "hello"}])

    message = error_of(path, label_kind="class")

    assert "format 'labeled' needs column(s) 'text' and 'label'" in message


# --- alpaca ----------------------------------------------------------------------------


def test_alpaca_becomes_messages_with_optional_input_and_system(tmp_path: Path) -> None:
    path = write(
        tmp_path / "alpaca.jsonl",
        [
            {"instruction": "Say hi", "input": "", "output": "hi"},
            {"instruction": "Say hi", "output": "hi", "system": "Be kind."},
            {"instruction": "Sum", "input": "1 2", "output": "3", "system": ""},
        ],
    )

    records, _ = read_records(path)

    assert [record["messages"] for record in records] == [
        [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "hi"}],
        [
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": "Say hi"},
            {"role": "assistant", "content": "hi"},
        ],
        [{"role": "user", "content": "Sum\n\n1 2"}, {"role": "assistant", "content": "3"}],
    ]


# --- bad rows --------------------------------------------------------------------------

BAD_ROWS = [
    ('{"text": "no messages"}', "field 'messages': missing; this row has 'text'"),
    ('{"messages": "hello"}', "field 'messages': expected a list of"),
    ('{"messages": []}', "field 'messages': expected a list of {'role'"),
    (
        '{"messages": [{"role": "bot", "content": "hi"}]}',
        "field 'messages'[0]: expected {'role': system|user|assistant, 'content': str}, "
        "got object {'role': 'bot', 'content': 'hi'}",
    ),
    (
        '{"messages": [{"role": "user", "content": 5}]}',
        "field 'messages'[0]: expected",
    ),
    (
        '{"messages": [{"role": "user", "content": "hi"}]}',
        "field 'messages': expected at least one user and one assistant message, got ['user']",
    ),
    (
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": '
        '"yo"}, {"role": "user", "content": "bye"}]}',
        "field 'messages': expected the last message to be the assistant's",
    ),
    ('{"messages": ', "invalid JSON: Expecting value at column 14"),
    ("[1, 2]", "expected a JSON object {...}, got list [1, 2]"),
]


@pytest.mark.parametrize(("line", "expected"), BAD_ROWS)
def test_each_bad_row_fails_naming_file_line_and_field(
    tmp_path: Path, line: str, expected: str
) -> None:
    path = jsonl(tmp_path, GOOD_CHAT, line, GOOD_CHAT)

    message = error_of(path, format="messages")

    assert f"{path} line 2: {expected}" in message
    assert message.startswith(f"data.train: {path.resolve()}: 1 bad row")
    assert message.endswith(
        "fix these rows, map your columns with data.fields, or set data.on_error: skip to drop them"
    )


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"text": 42, "label": "pos"}, "field 'text': expected a string, got integer 42"),
        ({"text": "   ", "label": "pos"}, "field 'text': expected non-empty text, got '   '"),
        ({"text": "hi", "label": None}, "field 'label': missing; got null"),
        ({"text": "hi", "label": [1]}, "field 'label': expected a class label"),
        ({"text": "hi", "label": "meh"}, "field 'label': expected one of 'neg', 'pos', got 'meh'"),
    ],
)
def test_bad_labeled_rows_name_field_and_value(
    tmp_path: Path, row: dict[str, Any], expected: str
) -> None:
    path = write(tmp_path / "train.jsonl", [{"text": "ok", "label": "pos"}, row])

    message = error_of(path, labels=["pos", "neg"])

    assert f"{path} line 2: {expected}" in message


def test_csv_and_parquet_bad_rows_are_named_by_data_row(tmp_path: Path) -> None:
    rows = [{"text": "ok", "label": "pos"}, {"text": "", "label": "pos"}]
    for suffix in (".csv", ".parquet"):
        path = write(tmp_path / f"train{suffix}", rows)

        message = error_of(path)

        assert f"{path} row 2: field 'text': expected non-empty text, got ''" in message


def test_json_list_items_that_are_not_objects_are_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "train.json"
    path.write_text('[{"text": "ok"}, "oops"]', encoding="utf-8")

    assert f"{path} row 2: expected a JSON object" in error_of(path)


def test_invalid_json_list_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "train.json"
    path.write_text('[\n  {"text": "ok"},\n  {"text": }\n]', encoding="utf-8")

    assert "line 3 column 12: invalid JSON (Expecting value)" in error_of(path)


def test_one_pretty_printed_object_is_not_a_data_file(tmp_path: Path) -> None:
    path = tmp_path / "train.json"
    path.write_text('{\n  "text": "ok"\n}\n', encoding="utf-8")

    assert "one JSON object spread over several lines" in error_of(path)


def test_at_most_ten_bad_rows_are_listed(tmp_path: Path) -> None:
    path = jsonl(tmp_path, GOOD_CHAT, *['{"messages": []}'] * 14)

    message = error_of(path)

    assert "14 bad rows" in message
    assert f"{path} line 11:" in message and f"{path} line 12:" not in message
    assert "... and 4 more" in message


def test_skip_drops_bad_rows_and_counts_them_by_reason(tmp_path: Path) -> None:
    path = jsonl(
        tmp_path,
        '{"text": "good", "label": "pos"}',
        '{"text": "no label"}',
        '{"text": "no label either"}',
        '{"text": "odd", "label": "meh"}',
        "{broken",
        "",  # blank lines are not rows
        '{"text": "fine", "label": "neg"}',
    )

    records, report = read_records(path, on_error="skip", labels=["pos", "neg"])

    assert records == [{"text": "good", "label": "pos"}, {"text": "fine", "label": "neg"}]
    assert report.rows_read == 6
    assert report.rows_kept == 2
    assert report.rows_skipped == 4
    assert report.skip_reasons == {
        "missing field 'label'": 2,
        "label not in label set": 1,
        "invalid JSON": 1,
    }


def test_skip_still_fails_when_every_row_is_bad(tmp_path: Path) -> None:
    path = jsonl(tmp_path, '{"text": "a", "label": "x"}', '{"text": "b", "label": "y"}')

    message = error_of(path, on_error="skip", labels=["pos"])

    assert "2 bad rows" in message
    assert "every row is bad" in message


def test_a_file_nothing_can_be_read_from_lists_its_lines(tmp_path: Path) -> None:
    path = jsonl(tmp_path, "not json", "nor this")

    message = error_of(path, on_error="skip")

    assert f"{path} line 1: invalid JSON" in message
    assert f"{path} line 2: invalid JSON" in message


# --- undecodable bytes -----------------------------------------------------------------


def test_invalid_utf8_in_json_lines_is_reported_by_line(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(b'{"text": "ok"}\n{"text": "caf\xe9"}\n{"text": "ok"}\n')

    message = error_of(path)
    records, report = read_records(path, on_error="skip")

    assert f"{path} line 2: undecodable bytes (not UTF-8)" in message
    assert records == [{"text": "ok"}, {"text": "ok"}]
    assert report.skip_reasons == {"undecodable bytes": 1}


def test_invalid_utf8_in_csv_is_reported_by_line_or_skipped(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_bytes(b"text,label\nfine,pos\ncaf\xe9,neg\nalso fine,neg\n")

    message = error_of(path)
    records, report = read_records(path, on_error="skip")

    assert f"{path} line 3: undecodable bytes (not UTF-8)" in message
    assert records == [{"text": "fine", "label": "pos"}, {"text": "also fine", "label": "neg"}]
    assert (report.rows_read, report.rows_skipped) == (3, 1)
    assert report.skip_reasons == {"undecodable bytes": 1}


def test_invalid_utf8_in_a_json_list_fails_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "train.json"
    path.write_bytes(b'[\n{"text": "ok"},\n{"text": "caf\xe9"}\n]')

    assert "line 3: undecodable bytes (not UTF-8)" in error_of(path, on_error="skip")


# --- labels ----------------------------------------------------------------------------


def test_class_labels_become_strings(tmp_path: Path) -> None:
    path = write(
        tmp_path / "train.jsonl",
        [
            {"text": "a", "label": 1},
            {"text": "b", "label": True},
            {"text": "c", "label": 2.0},
            {"text": "d", "label": " pos "},
        ],
    )

    records, _ = read_records(path, label_kind="class")

    assert [record["label"] for record in records] == ["1", "true", "2", "pos"]


def test_csv_cells_stay_text(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("text,label\nNA,007\n123,null\n", encoding="utf-8")

    records, _ = read_records(path)

    assert records == [{"text": "NA", "label": "007"}, {"text": "123", "label": "null"}]


def test_float_labels_accept_numbers_and_numeric_strings(tmp_path: Path) -> None:
    path = write(
        tmp_path / "train.jsonl",
        [{"text": "a", "label": 1}, {"text": "b", "label": 2.5}, {"text": "c", "label": " -3e-1 "}],
    )

    records, report = read_records(path, label_kind="float")

    assert [record["label"] for record in records] == [1.0, 2.5, -0.3]
    assert all(isinstance(record["label"], float) for record in records)
    assert report.format == "labeled"


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ('"five"', "expected a number, got string 'five'"),
        ("NaN", "expected a finite number, got number nan"),
        ('"inf"', "expected a finite number, got string 'inf'"),
        ("true", "expected a number, got boolean True"),
    ],
)
def test_float_labels_reject_non_numbers(tmp_path: Path, label: str, expected: str) -> None:
    path = jsonl(tmp_path, '{"text": "ok", "label": 1}', f'{{"text": "x", "label": {label}}}')

    message = error_of(path, label_kind="float")

    assert f"{path} line 2: field 'label': {expected}" in message


def test_float_labels_from_csv(tmp_path: Path) -> None:
    path = tmp_path / "scores.csv"
    path.write_text("text,label\ngood,4.5\nbad,1\n", encoding="utf-8")

    records, _ = read_records(path, label_kind="float")

    assert records == [{"text": "good", "label": 4.5}, {"text": "bad", "label": 1.0}]


# --- the file itself -------------------------------------------------------------------


def test_a_missing_file_names_the_field_and_the_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    message = error_of(Path("val.jsonl"), source_name="data.validation")

    assert message.startswith(f"data.validation: no such file '{tmp_path / 'val.jsonl'}'")
    assert "pass an existing" in message


def test_an_unsupported_file_type_lists_the_supported_ones(tmp_path: Path) -> None:
    path = tmp_path / "train.txt"
    path.write_text("hello\n", encoding="utf-8")

    message = error_of(path)

    assert "unsupported file type '.txt'" in message
    assert ".jsonl, .json, .csv, .parquet" in message


@pytest.mark.parametrize(
    ("name", "content"),
    [("train.jsonl", "\n\n"), ("train.csv", ""), ("train.json", "[]"), ("train.csv", "text\n")],
)
def test_an_empty_file_is_an_error(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")

    message = error_of(path)

    assert str(path.resolve()) in message
    assert "empty" in message or "holds no rows" in message


def test_a_file_that_is_not_parquet_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "train.parquet"
    path.write_text("not parquet", encoding="utf-8")

    assert "cannot read as Parquet" in error_of(path)


def test_reading_csv_leaves_no_cache_in_the_datasets_home(tmp_path: Path) -> None:
    import datasets

    cache = Path(datasets.config.HF_DATASETS_CACHE)
    before = sorted(cache.rglob("*")) if cache.exists() else []
    path = write(tmp_path / "train.csv", [{"text": "hello"}])

    read_records(path)

    assert (sorted(cache.rglob("*")) if cache.exists() else []) == before


# --- report ----------------------------------------------------------------------------


def test_report_metrics_are_flat_numbers_under_the_prefix() -> None:
    report = DataReport(
        path="train.jsonl",
        format="labeled",
        rows_read=10,
        rows_kept=6,
        rows_skipped=4,
        skip_reasons={"missing field 'label'": 3, "label not in label set": 1},
    )

    assert report.metrics("data/train/") == {
        "data/train/rows_read": 10.0,
        "data/train/rows_kept": 6.0,
        "data/train/rows_skipped": 4.0,
        "data/train/skipped/missing_field_label": 3.0,
        "data/train/skipped/label_not_in_label_set": 1.0,
    }


# --- split and shuffle -----------------------------------------------------------------

RECORDS = [{"text": f"example {i}"} for i in range(50)]


def test_split_is_the_same_for_the_same_seed() -> None:
    train, validation = split_records(RECORDS, val_ratio=0.2, seed=7)

    assert (train, validation) == split_records(RECORDS, val_ratio=0.2, seed=7)
    assert len(validation) == 10 and len(train) == 40
    # Pinned: random.Random(seed) draws the same numbers on every machine, so a run's
    # validation set never changes under the user's feet.
    held = [int(record["text"].split()[1]) for record in validation]
    assert held == [10, 11, 14, 16, 24, 28, 29, 31, 35, 48]


def test_split_differs_by_seed_and_partitions_the_records() -> None:
    train, validation = split_records(RECORDS, val_ratio=0.2, seed=7)
    _, other_validation = split_records(RECORDS, val_ratio=0.2, seed=8)

    assert validation != other_validation
    texts = [r["text"] for r in train]
    held = [r["text"] for r in validation]
    assert not set(texts) & set(held)
    assert sorted(texts + held) == sorted(r["text"] for r in RECORDS)
    assert texts == sorted(texts, key=lambda t: int(t.split()[1]))  # input order kept


def test_split_keeps_one_record_on_each_side() -> None:
    two = RECORDS[:2]

    assert [len(part) for part in split_records(two, val_ratio=0.01, seed=0)] == [1, 1]
    assert [len(part) for part in split_records(two, val_ratio=0.99, seed=0)] == [1, 1]


@pytest.mark.parametrize(
    ("records", "ratio", "expected"),
    [
        (RECORDS[:1], 0.5, "cannot split 1 record(s)"),
        ([], 0.5, "cannot split 0 record(s)"),
        (RECORDS, 0.0, "expected a fraction between 0 and 1"),
        (RECORDS, 1.0, "expected a fraction between 0 and 1"),
    ],
)
def test_split_errors_name_val_ratio(
    records: list[dict[str, Any]], ratio: float, expected: str
) -> None:
    with pytest.raises(DataError, match=r"data\.val_ratio") as info:
        split_records(records, val_ratio=ratio, seed=0)

    assert expected in str(info.value)


def test_shuffle_is_a_seeded_permutation() -> None:
    shuffled = shuffle_records(RECORDS, seed=3)

    assert shuffled == shuffle_records(RECORDS, seed=3)
    assert shuffled != shuffle_records(RECORDS, seed=4)
    assert shuffled != RECORDS
    assert sorted(shuffled, key=lambda r: r["text"]) == sorted(RECORDS, key=lambda r: r["text"])
    assert RECORDS[0] == {"text": "example 0"}  # the input is not shuffled in place
