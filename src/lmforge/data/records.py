"""Read, validate and split training data.

A file becomes a list of canonical records in three steps: read its rows as plain dicts
(JSON and JSON Lines here, line by line so a bad line is reported by number; CSV and
Parquet through the ``datasets`` library), map the file's column names to the names the
format expects (``fields``), then check every row. Bad rows either fail the whole read
with one error that lists them, or are dropped and counted in a ``DataReport``.

Canonical records:
    messages  {"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}
              (a file may also give assistant "tool_calls", "tool" messages and a "tools"
              column, OpenAI's shapes: written out as text by ``data/tools.py``)
    alpaca    converted to messages (instruction + input -> user, output -> assistant)
    text      {"text": str}
    labeled   {"text": str, "label": str} (class labels) or {"text": str, "label": float}
    image_text   {"image": absolute path, "text": str} (an image and its caption)
    image_label  {"image": absolute path, "label": str}
    preference   {"messages": [the prompt's messages, ending with the user's], "chosen": str,
                  "rejected": str} (a file gives "prompt": str or "messages"; "chosen" and
                  "rejected" as strings or as one assistant message, TRL's two layouts)
    prompt    {"messages": [the prompt's messages, ending with the user's], "context": {every
              other column}} (a file gives "prompt": text or messages): prompts for the
              model to complete, with what scores a completion (a code problem's tests, an
              answer's required keywords) kept in "context"

An image's path is relative to the data file; every image is decoded when it is read, so a
missing or corrupt one is a bad row naming the file and line. The image formats also read a
folder: images with a ``captions.jsonl`` beside them, or one sub-folder of images per label.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import random
import re
import tempfile
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

from lmforge.config.section import did_you_mean
from lmforge.data.images import ImageError, image_files, open_image
from lmforge.data.tools import plain_messages
from lmforge.errors import LmforgeError

FORMATS: tuple[str, ...] = (
    "messages",
    "alpaca",
    "text",
    "labeled",
    "image_text",
    "image_label",
    "preference",
    "prompt",
)
SUFFIXES: tuple[str, ...] = (".jsonl", ".json", ".csv", ".parquet")
ROLES: tuple[str, ...] = ("system", "user", "assistant")

# Columns each format needs; detection tries them in this order.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "preference": ("chosen", "rejected"),  # and "prompt" or "messages", checked per row
    "image_text": ("image", "text"),
    "image_label": ("image", "label"),
    "messages": ("messages",),
    "alpaca": ("instruction", "output"),
    "labeled": ("text", "label"),
    "text": ("text",),
    "prompt": ("prompt",),
}
# Every name a format reads, i.e. every key ``fields`` may map.
FIELD_NAMES: tuple[str, ...] = (
    "messages",
    "instruction",
    "input",
    "output",
    "system",
    "text",
    "label",
    "image",
    "prompt",
    "chosen",
    "rejected",
    "tools",
)
CAPTIONS_FILE = "captions.jsonl"  # an image_text folder's captions

_SHOWN_BAD_ROWS = 10
# Stands in for undecodable CSV bytes: a Unicode noncharacter, never in real text.
_UNDECODABLE = "\uffff"
_FIX_ROWS = (
    "fix these rows, map your columns with data.fields, or set data.on_error: skip to drop them"
)
_TYPE_NAMES = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "list",
    dict: "object",
    type(None): "null",
}


class DataError(LmforgeError):
    """A data file or row the user must fix; the message names file, row, field and value."""


@dataclass
class DataReport:
    """What reading one file did: rows read, kept and skipped (with why)."""

    path: str
    format: str = ""
    rows_read: int = 0
    rows_kept: int = 0
    rows_skipped: int = 0
    skip_reasons: dict[str, int] = field(default_factory=dict)

    def metrics(self, prefix: str) -> dict[str, float]:
        """Counts as tracking metrics, e.g. ``{"data/train/rows_skipped": 3.0}``.

        Each skip reason becomes ``PREFIX/skipped/<reason_slug>``.
        """
        prefix = prefix.rstrip("/")
        metrics = {
            f"{prefix}/rows_read": float(self.rows_read),
            f"{prefix}/rows_kept": float(self.rows_kept),
            f"{prefix}/rows_skipped": float(self.rows_skipped),
        }
        for reason, count in self.skip_reasons.items():
            # Tracking servers accept only letters, digits, '_', '-', '.', ' ' and '/'.
            key = f"{prefix}/skipped/{re.sub(r'[^a-z0-9]+', '_', reason.lower()).strip('_')}"
            metrics[key] = metrics.get(key, 0.0) + float(count)
        return metrics


def detect_format(columns: Sequence[str]) -> str:
    """The format whose columns are present: messages, alpaca, labeled, then text.

    Raises:
        DataError: the columns fit no format.
    """
    fmt = _detect(columns)
    if fmt is None:
        raise DataError(f"columns {_names(columns)} fit no data format; {_NEEDS}")
    return fmt


def read_records(
    path: Path,
    *,
    format: str = "auto",
    fields: Mapping[str, str] | None = None,
    on_error: str = "fail",
    label_kind: str | None = None,
    labels: Sequence[str] | None = None,
    source_name: str = "data.train",
) -> tuple[list[dict[str, Any]], DataReport]:
    """Read a .jsonl, .json, .csv or .parquet file (or, for the image formats, a folder)
    into canonical records.

    Args:
        path: the data file, or a folder of images (``captions.jsonl`` beside them, or one
            sub-folder per label).
        format: ``auto`` (detect from the columns) or one of ``FORMATS``.
        fields: canonical name -> column name in the file, e.g. ``{"text": "body"}``.
        on_error: ``fail`` raises one error listing the bad rows; ``skip`` drops them.
        label_kind: ``class`` (labels kept as strings) or ``float`` (regression); setting it
            requires labeled data. ``None`` reads labeled data as classes.
        labels: allowed class labels; a row with another label is a bad row.
        source_name: the config field named in errors (``data.train``, ``data.validation``).

    Returns:
        The records, and a report of rows read, kept and skipped.

    Raises:
        DataError: missing or unreadable file, unknown columns or format, bad rows
            (with ``on_error="fail"``), or no good row at all.
    """
    if format != "auto" and format not in FORMATS:
        raise ValueError(f"format must be 'auto' or one of {FORMATS}, got {format!r}")
    if on_error not in ("fail", "skip"):
        raise ValueError(f"on_error must be 'fail' or 'skip', got {on_error!r}")
    if label_kind not in (None, "class", "float"):
        raise ValueError(f"label_kind must be 'class', 'float' or None, got {label_kind!r}")
    if label_kind is not None and format not in ("auto", "labeled", "image_label"):
        raise ValueError(
            f"label_kind {label_kind!r} needs format 'labeled' or 'image_label', got {format!r}"
        )

    path = Path(path)
    if path.is_dir():
        path, rows, columns = _read_image_folder(path, source_name)
    else:
        rows, columns = _read_rows(path, source_name, on_error)
    where = f"{source_name}: {path.resolve()}"
    if not rows:
        raise DataError(f"{where} holds no rows; add examples to the file")
    unreadable = [row.bad for row in rows if row.bad is not None]
    if len(unreadable) == len(rows):
        fix = "no row could be read; fix the file (UTF-8, one JSON object per line)"
        raise _bad_rows_error(where, "", str(path), unreadable, fix)
    names = _map_fields(fields or {}, columns, where)
    fmt = _resolve_format(format, label_kind, names, columns, where)
    allowed = None if labels is None else {_class_label(label) or str(label) for label in labels}

    records: list[dict[str, Any]] = []
    bad: list[_BadRow] = []
    for row in rows:
        if row.bad is not None:
            bad.append(row.bad)
            continue
        try:
            records.append(
                _to_record(row.values, fmt, names, label_kind or "class", allowed, path.parent)
            )
        except _BadRow as problem:
            bad.append(problem.at(row.where))

    report = DataReport(
        path=str(path),
        format=fmt,
        rows_read=len(rows),
        rows_kept=len(records),
        rows_skipped=len(bad),
        skip_reasons=dict(Counter(problem.reason for problem in bad)),
    )
    if bad and on_error == "fail":
        raise _bad_rows_error(where, fmt, str(path), bad, _FIX_ROWS)
    if not records:
        raise _bad_rows_error(
            where,
            fmt,
            str(path),
            bad,
            "every row is bad, so nothing is left to train on; "
            "fix these rows or map your columns with data.fields",
        )
    return records, report


def split_records(
    records: list[dict[str, Any]], *, val_ratio: float, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Hold out ``val_ratio`` of ``records`` for validation, the same way for the same seed.

    Both parts keep the input order; each gets at least one record.

    Returns:
        (train, validation)

    Raises:
        DataError: ``val_ratio`` is not in (0, 1), or there are fewer than 2 records.
    """
    if not 0 < val_ratio < 1:
        raise DataError(
            f"data.val_ratio: expected a fraction between 0 and 1 (exclusive), got {val_ratio}; "
            "for example 0.1 holds out 10% of data.train"
        )
    count = len(records)
    if count < 2:
        raise DataError(
            f"data.val_ratio: cannot split {count} record(s) into training and validation "
            "(each side needs one); add examples to data.train, or set data.validation instead"
        )
    n_val = min(max(round(count * val_ratio), 1), count - 1)
    order = list(range(count))
    # random.Random(int) draws the same sequence on every platform and Python 3 version.
    random.Random(seed).shuffle(order)
    held_out = set(order[:n_val])
    train = [record for i, record in enumerate(records) if i not in held_out]
    validation = [record for i, record in enumerate(records) if i in held_out]
    return train, validation


def shuffle_records(records: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """A shuffled copy of ``records``, the same order for the same seed."""
    shuffled = list(records)
    random.Random(seed).shuffle(shuffled)
    return shuffled


# --- reading files into rows -----------------------------------------------------------


class _BadRow(Exception):
    """One row that cannot become a record: where it is, a short reason, the details."""

    def __init__(self, reason: str, detail: str, where: str = "") -> None:
        super().__init__(detail)
        self.reason = reason  # the skip_reasons key, e.g. "missing field 'label'"
        self.detail = detail  # e.g. "field 'label': missing; ..."
        self.where = where  # "line 3" (JSON Lines) or "row 3" (1-based data row)

    def at(self, where: str) -> _BadRow:
        self.where = where
        return self


@dataclass
class _Row:
    where: str
    values: dict[str, Any] = field(default_factory=dict)
    bad: _BadRow | None = None  # set when the row could not even be parsed


def _read_rows(path: Path, source_name: str, on_error: str) -> tuple[list[_Row], list[str]]:
    """The file's rows and its columns (in file order), checking the file itself."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(
            f"{source_name}: cannot read '{path}': unsupported file type "
            f"{suffix or '(no extension)'!r}; use one of {', '.join(SUFFIXES)} "
            "(JSON may be a list of objects or JSON Lines)"
        )
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "no such file"
        raise DataError(
            f"{source_name}: {what} '{path.resolve()}'; pass an existing "
            f"{', '.join(SUFFIXES)} file (a relative path is relative to the config file)"
        )
    data = path.read_bytes()
    if not data.strip():
        raise DataError(f"{source_name}: '{path.resolve()}' is empty; add examples to the file")
    where = f"{source_name}: {path.resolve()}"
    if suffix in (".json", ".jsonl"):
        return _read_json(data, where)
    if suffix == ".csv":
        return _read_csv(path, data, where, on_error)
    return _read_parquet(path, where)


def _read_image_folder(folder: Path, source_name: str) -> tuple[Path, list[_Row], list[str]]:
    """An image folder as rows: its ``captions.jsonl`` (image_text), else one row per image
    in each sub-folder, the sub-folder's name as the label (image_label). Returns the file
    the rows' paths are relative to (real or, for sub-folders, a name inside the folder)."""
    captions = folder / CAPTIONS_FILE
    if captions.is_file():
        rows, columns = _read_rows(captions, source_name, "fail")
        return captions, rows, columns
    labels = sorted(p for p in folder.iterdir() if p.is_dir() and image_files(p))
    if not labels:
        raise DataError(
            f"{source_name}: the folder '{folder.resolve()}' has neither {CAPTIONS_FILE} (image "
            "and caption per line) nor sub-folders of images (one per label); add one, or "
            "pass a data file"
        )
    rows = [
        _Row(f"{label.name}/{image.name}", {"image": f"{label.name}/{image.name}",
                                             "label": label.name})
        for label in labels for image in image_files(label)
    ]  # fmt: skip
    return folder / "(sub-folders)", rows, ["image", "label"]


def _read_json(data: bytes, where: str) -> tuple[list[_Row], list[str]]:
    """A JSON list of objects, or JSON Lines (one object per line), whatever the suffix."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    if data.lstrip()[:1] == b"[":
        return _read_json_list(data, where)
    rows: list[_Row] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        where_row = f"line {number}"
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            rows.append(_Row(where_row, bad=_undecodable(raw, err).at(where_row)))
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            detail = f"invalid JSON: {err.msg} at column {err.colno}"
            rows.append(_Row(where_row, bad=_BadRow("invalid JSON", detail, where_row)))
            continue
        rows.append(_object_row(value, where_row))
    if rows and rows[0].bad is not None and rows[0].bad.reason == "invalid JSON":
        with contextlib.suppress(ValueError):  # also UnicodeDecodeError
            if isinstance(json.loads(data), dict):
                raise DataError(
                    f"{where} holds one JSON object spread over several lines; write a list "
                    "of objects ([{...}, {...}]) or JSON Lines (one object per line)"
                )
    return rows, _columns_of(rows)


def _read_json_list(data: bytes, where: str) -> tuple[list[_Row], list[str]]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise DataError(
            f"{where}: line {line}: undecodable bytes (not UTF-8) "
            f"{data[err.start : err.start + 8]!r}; save the file as UTF-8"
        ) from None
    try:
        items = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(
            f"{where}: line {err.lineno} column {err.colno}: invalid JSON ({err.msg}); "
            "fix the file (a list of objects, or JSON Lines with one object per line)"
        ) from None
    rows = [_object_row(item, f"row {i}") for i, item in enumerate(items, start=1)]
    return rows, _columns_of(rows)


def _object_row(value: Any, where: str) -> _Row:
    if isinstance(value, dict):
        return _Row(where, values=value)
    detail = f"expected a JSON object {{...}}, got {_show(value)}"
    return _Row(where, bad=_BadRow("not a JSON object", detail, where))


def _columns_of(rows: list[_Row]) -> list[str]:
    """Every key any row has, in order of first appearance."""
    return list(dict.fromkeys(key for row in rows for key in row.values))


def _undecodable(raw: bytes, err: UnicodeDecodeError) -> _BadRow:
    snippet = raw[max(err.start - 10, 0) : err.start + 4]
    detail = (
        f"undecodable bytes (not UTF-8) at byte {err.start + 1} of the line, near {snippet!r}; "
        "save the file as UTF-8"
    )
    return _BadRow("undecodable bytes", detail)


def _read_csv(path: Path, data: bytes, where: str, on_error: str) -> tuple[list[_Row], list[str]]:
    """CSV through ``datasets``, every cell read as a string (CSV has no types)."""
    marked = False  # whether undecodable lines were marked for skipping
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        lines = data.split(b"\n")
        bad: list[_BadRow] = []
        for number, raw in enumerate(lines, start=1):
            try:
                raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as err:
                bad.append(_undecodable(raw, err).at(f"line {number}"))
                # Mark the line so the row it lands in is found and skipped, while every
                # other row keeps its number.
                lines[number - 1] = (
                    raw.decode("utf-8", "replace").replace("\ufffd", _UNDECODABLE).encode()
                )
        if on_error == "fail" or bad[0].where == "line 1":
            raise _bad_rows_error(where, "", str(path), bad, _FIX_ROWS) from None
        text = b"\n".join(lines).decode("utf-8-sig")
        marked = True

    header = next(csv.reader(io.StringIO(text)), [])
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates or "" in header:
        problem = f"duplicate columns {duplicates}" if duplicates else "an unnamed column"
        raise DataError(f"{where}: the header row has {problem}; give every column its own name")

    features = datasets.Features({name: datasets.Value("string") for name in header})
    with tempfile.TemporaryDirectory(prefix="lmforge-data-") as tmp:
        source = path
        if marked:
            source = Path(tmp) / "utf8.csv"
            source.write_text(text, encoding="utf-8")
        with _datasets_quietly():
            try:
                table = datasets.Dataset.from_csv(
                    str(source),
                    cache_dir=str(Path(tmp) / "cache"),
                    keep_in_memory=True,
                    features=features,
                    keep_default_na=False,  # "NA" or "null" in a text column is text
                )
            except Exception as err:  # pandas and arrow raise many types; all mean "bad CSV"
                raise DataError(
                    f"{where}: cannot parse as CSV ({type(err).__name__}: {err}); "
                    "check the delimiter is ',' and quote fields that hold commas or newlines"
                ) from None
        rows = [_csv_row(f"row {i}", values, marked) for i, values in enumerate(table.to_list(), 1)]
    return rows, list(header)


def _csv_row(where: str, values: dict[str, Any], marked: bool) -> _Row:
    if marked and any(isinstance(v, str) and _UNDECODABLE in v for v in values.values()):
        detail = "undecodable bytes (not UTF-8) in this row; save the file as UTF-8"
        return _Row(where, bad=_BadRow("undecodable bytes", detail, where))
    return _Row(where, values=values)


def _read_parquet(path: Path, where: str) -> tuple[list[_Row], list[str]]:
    with tempfile.TemporaryDirectory(prefix="lmforge-data-") as tmp, _datasets_quietly():
        try:
            table = datasets.Dataset.from_parquet(str(path), cache_dir=tmp, keep_in_memory=True)
        except Exception as err:  # arrow raises many types; all mean "not readable Parquet"
            raise DataError(
                f"{where}: cannot read as Parquet ({type(err).__name__}: {err}); "
                "pass a valid .parquet file"
            ) from None
        rows = [_Row(f"row {i}", values=v) for i, v in enumerate(table.to_list(), start=1)]
        return rows, list(table.column_names)


@contextlib.contextmanager
def _datasets_quietly() -> Iterator[None]:
    """Hide the ``datasets`` progress bars while reading one small local file."""
    was_disabled = are_progress_bars_disabled()
    with warnings.catch_warnings():  # it warns when an env variable pins the setting
        warnings.simplefilter("ignore")
        disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                enable_progress_bars()


# --- columns and format ----------------------------------------------------------------

_NEEDS = (
    "messages needs column 'messages'; alpaca needs 'instruction' and 'output'; "
    "labeled needs 'text' and 'label'; text needs 'text'; image_text needs 'image' and "
    "'text'; image_label needs 'image' and 'label'; preference needs 'chosen', 'rejected' and "
    "'prompt' or 'messages'; prompt needs 'prompt'"
)


def _detect(columns: Sequence[str]) -> str | None:
    present = set(columns)
    for fmt, required in REQUIRED_COLUMNS.items():
        if present.issuperset(required):
            return fmt
    return None


def _map_fields(fields: Mapping[str, str], columns: list[str], where: str) -> dict[str, str]:
    """Canonical name -> the file's column holding it; checks every mapping."""
    problems = []
    for name, column in fields.items():
        if name not in FIELD_NAMES:
            hint = did_you_mean(name, FIELD_NAMES)
            problems.append(
                f"data.fields.{name}: unknown name{f' ({hint})' if hint else ''}; "
                f"map one of {', '.join(FIELD_NAMES)}"
            )
        elif column not in columns:
            hint = did_you_mean(column, columns)
            problems.append(
                f"data.fields.{name}: column {column!r} is not in the file"
                f"{f' ({hint})' if hint else ''}; its columns are {_names(columns)}"
            )
    if problems:
        raise DataError(f"{where}:\n" + "\n".join(problems))
    return {name: fields.get(name, name) for name in FIELD_NAMES}


def _resolve_format(
    format: str, label_kind: str | None, names: dict[str, str], columns: list[str], where: str
) -> str:
    present = [name for name in FIELD_NAMES if names[name] in columns]
    if label_kind is not None:  # the task needs labels, whatever the columns suggest
        pictures = format == "image_label" or (format == "auto" and "image" in present)
        fmt: str | None = "image_label" if pictures else "labeled"
    else:
        fmt = _detect(present) if format == "auto" else format
    if fmt is None:
        raise DataError(
            f"{where}: cannot tell the data format from columns {_names(columns)}; {_NEEDS}. "
            "Rename the columns, map them with data.fields (e.g. data.fields.text: <column>), "
            "or set data.format"
        )
    missing = [name for name in REQUIRED_COLUMNS[fmt] if names[name] not in columns]
    if missing:
        wanted = " and ".join(repr(names[name]) for name in REQUIRED_COLUMNS[fmt])
        raise DataError(
            f"{where}: format {fmt!r} needs column(s) {wanted}, but the file has "
            f"{_names(columns)}; set data.format to match the file, or map your columns "
            f"with data.fields (e.g. data.fields.{missing[0]}: <column>)"
        )
    return fmt


# --- rows into records -----------------------------------------------------------------


def _to_record(
    values: dict[str, Any],
    fmt: str,
    names: dict[str, str],
    label_kind: str,
    allowed: set[str] | None,
    folder: Path,
) -> dict[str, Any]:
    """One canonical record, or ``_BadRow`` naming the field, expectation and value;
    ``folder`` holds the data file (image paths are relative to it)."""
    if fmt == "image_text":
        return {"image": _image(values, names, folder), "text": _text(values, names, "text")}
    if fmt == "image_label":
        label = _label(values, names, "class", allowed)
        return {"image": _image(values, names, folder), "label": label}
    if fmt == "messages":
        return {"messages": _messages(values, names)}
    if fmt == "preference":
        return {"messages": _prompt(values, names, fmt), "chosen": _answer(values, names, "chosen"),
                "rejected": _answer(values, names, "rejected")}  # fmt: skip
    if fmt == "prompt":
        prompt = _prompt(values, names, fmt)
        used = {names["prompt"], names["messages"]}
        return {"messages": prompt, "context": {k: v for k, v in values.items() if k not in used}}
    if fmt == "alpaca":
        instruction = _text(values, names, "instruction")
        extra = _optional_text(values, names, "input")
        system = _optional_text(values, names, "system")
        output = _text(values, names, "output")
        user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
        messages = [{"role": "system", "content": system}] if system.strip() else []
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": output}]
        return {"messages": messages}
    if fmt == "text":
        return {"text": _text(values, names, "text")}
    return {
        "text": _text(values, names, "text"),
        "label": _label(values, names, label_kind, allowed),
    }


def _field(names: dict[str, str], name: str) -> str:
    """How errors name a field: the file's column, and the mapping when there is one."""
    column = names[name]
    return f"field {column!r}" + (f" (data.fields.{name})" if column != name else "")


def _value(values: dict[str, Any], names: dict[str, str], name: str) -> Any:
    column = names[name]
    value = values.get(column)
    if value is None:
        has = f"this row has {_names(list(values))}" if column not in values else "got null"
        raise _BadRow(f"missing field {column!r}", f"{_field(names, name)}: missing; {has}")
    return value


def _text(values: dict[str, Any], names: dict[str, str], name: str) -> str:
    value = _value(values, names, name)
    column = names[name]
    if not isinstance(value, str):
        detail = f"{_field(names, name)}: expected a string, got {_show(value)}"
        raise _BadRow(f"wrong type for {column!r}", detail)
    if not value.strip():
        detail = f"{_field(names, name)}: expected non-empty text, got {value!r}"
        raise _BadRow(f"empty {column!r}", detail)
    return value


def _image(values: dict[str, Any], names: dict[str, str], folder: Path) -> str:
    """The absolute path of a row's image, after checking that it decodes."""
    path = folder / _text(values, names, "image")
    try:
        open_image(path)
    except ImageError as err:
        reason = "missing image" if not path.exists() else "unreadable image"
        raise _BadRow(reason, f"{_field(names, 'image')}: {err}") from None
    return str(path.resolve())


def _optional_text(values: dict[str, Any], names: dict[str, str], name: str) -> str:
    value = values.get(names[name])
    if value is None:
        return ""
    if not isinstance(value, str):
        detail = f"{_field(names, name)}: expected a string, got {_show(value)}"
        raise _BadRow(f"wrong type for {names[name]!r}", detail)
    return value


def _messages(values: dict[str, Any], names: dict[str, str]) -> list[dict[str, str]]:
    messages = _message_list(values, names, "messages")
    tools = values.get(names["tools"])
    if tools is not None:
        if not isinstance(tools, list) or not all(_is_tool(t) for t in tools):
            expected = "a list of {'type': 'function', 'function': {'name': str, ...}}"
            detail = f"{_field(names, 'tools')}: expected {expected}, got {_show(tools)}"
            raise _BadRow("invalid tools", detail)
        messages = plain_messages(messages, tools)
    label = _field(names, "messages")
    roles = [message["role"] for message in messages]
    if "user" not in roles or "assistant" not in roles:
        detail = f"{label}: expected at least one user and one assistant message, got {roles}"
        raise _BadRow("no user or assistant message", detail)
    if roles[-1] != "assistant":
        detail = f"{label}: expected the last message to be the assistant's, got {roles}"
        raise _BadRow("last message not from assistant", detail)
    return messages


def _message_list(values: dict[str, Any], names: dict[str, str], name: str) -> list[dict[str, str]]:
    """Field ``name`` as a non-empty list of checked ``{"role", "content"}`` messages."""
    value = _value(values, names, name)
    label = _field(names, name)
    expected = "a list of {'role': system|user|assistant, 'content': str} messages"
    if isinstance(value, str):
        # A CSV cell can only hold the conversation as JSON text.
        with contextlib.suppress(ValueError):
            value = json.loads(value) if value.lstrip().startswith("[") else value
    if not isinstance(value, list):
        column = names[name]
        raise _BadRow(
            f"wrong type for {column!r}", f"{label}: expected {expected}, got {_show(value)}"
        )
    if not value:
        raise _BadRow("empty conversation", f"{label}: expected {expected}, got []")
    messages = []
    for index, message in enumerate(value):
        if _is_tool_message(message):  # a call or a result: written out as text
            messages += plain_messages([message])
            continue
        if (
            not isinstance(message, dict)
            or message.get("role") not in ROLES
            or not isinstance(message.get("content"), str)
        ):
            detail = (
                f"{label}[{index}]: expected {{'role': system|user|assistant, 'content': str}}, "
                f"got {_show(message)} (an assistant may give tool_calls instead, and a "
                "'tool' message a tool's result)"
            )
            raise _BadRow("invalid message", detail)
        messages.append({"role": message["role"], "content": message["content"]})
    return messages


def _is_tool(tool: Any) -> bool:
    function = tool.get("function") if isinstance(tool, dict) else None
    return isinstance(function, dict) and isinstance(function.get("name"), str)


def _is_tool_message(message: Any) -> bool:
    """A tool result (``role: tool``, text content) or an assistant's well-formed
    ``tool_calls`` (OpenAI's shape, arguments as a JSON object or its text)."""
    if not isinstance(message, dict):
        return False
    if message.get("role") == "tool":
        return isinstance(message.get("content"), str)
    calls = message.get("tool_calls")
    if message.get("role") != "assistant" or not isinstance(calls, list) or not calls:
        return False
    if not isinstance(message.get("content") or "", str):
        return False
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            return False
        arguments = function.get("arguments", {})
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments or "{}")
            except ValueError:
                return False
        if not isinstance(arguments, dict):
            return False
    return True


def _prompt(values: dict[str, Any], names: dict[str, str], fmt: str) -> list[dict[str, str]]:
    """A preference or prompt row's prompt as messages ending with the user's: field
    ``prompt`` (text, or messages as TRL's conversational layout has it) or ``messages``."""
    name = "prompt" if values.get(names["prompt"]) is not None else "messages"
    if name == "messages" and values.get(names["messages"]) is None:
        has = _names(list(values))
        detail = (f"{fmt} rows need field {names['prompt']!r} (text) or "
                  f"{names['messages']!r} (the conversation so far); this row has "
                  f"{has}")  # fmt: skip
        raise _BadRow("missing prompt", detail)
    if name == "prompt" and isinstance(values[names["prompt"]], str):
        return [{"role": "user", "content": _text(values, names, "prompt")}]
    messages = _message_list(values, names, name)
    if messages[-1]["role"] != "user":
        roles = [message["role"] for message in messages]
        detail = (f"{_field(names, name)}: expected the prompt to end with the user's "
                  f"message (the answers follow it), got {roles}")  # fmt: skip
        raise _BadRow("prompt not ending with user", detail)
    return messages


def _answer(values: dict[str, Any], names: dict[str, str], name: str) -> str:
    """A preference row's ``chosen`` or ``rejected`` answer: text, or a list holding one
    assistant message (TRL's conversational layout)."""
    value = _value(values, names, name)
    if isinstance(value, str):
        return _text(values, names, name)
    messages = _message_list(values, names, name)
    if (
        len(messages) != 1
        or messages[0]["role"] != "assistant"
        or not messages[0]["content"].strip()
    ):
        detail = (f"{_field(names, name)}: expected the answer as text or as one non-empty "
                  f"assistant message, got {_show(value)}")  # fmt: skip
        raise _BadRow(f"bad {names[name]!r}", detail)
    return messages[0]["content"]


def _label(
    values: dict[str, Any], names: dict[str, str], kind: str, allowed: set[str] | None
) -> str | float:
    value = _value(values, names, "label")
    label = _field(names, "label")
    column = names["label"]
    if kind == "float":
        number = _number(value)
        if number is None:
            detail = f"{label}: expected a number, got {_show(value)}"
            raise _BadRow(f"{column!r} not a number", detail)
        if not math.isfinite(number):
            detail = f"{label}: expected a finite number, got {_show(value)}"
            raise _BadRow(f"{column!r} not finite", detail)
        return number
    name = _class_label(value)
    if name is None:
        detail = f"{label}: expected a class label (string, integer or boolean), got {_show(value)}"
        raise _BadRow(f"wrong type for {column!r}", detail)
    if not name:
        raise _BadRow(f"empty {column!r}", f"{label}: expected a class label, got {value!r}")
    if allowed is not None and name not in allowed:
        detail = f"{label}: expected one of {_names(sorted(allowed))}, got {name!r}"
        raise _BadRow("label not in label set", detail)
    return name


def _class_label(value: Any) -> str | None:
    """A class label as a string (true/false for booleans, 3 for 3.0), or None."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return value.strip()
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


# --- messages --------------------------------------------------------------------------


def _show(value: Any, limit: int = 60) -> str:
    """``integer 5``, ``string 'abc'``, ``null``: the type in JSON words, then the value."""
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    kind = _TYPE_NAMES.get(type(value), type(value).__name__)
    return "null" if value is None else f"{kind} {text}"


def _names(names: Sequence[str]) -> str:
    return ", ".join(repr(name) for name in names) if names else "(none)"


def _bad_rows_error(where: str, fmt: str, file: str, bad: list[_BadRow], fix: str) -> DataError:
    """One error listing the first bad rows as ``FILE line N: detail``, then the fix."""
    count = len(bad)
    kind = f" (format {fmt!r})" if fmt else ""
    lines = [f"{where}: {count} bad row{'s' if count != 1 else ''}{kind}:"]
    lines += [f"  {file} {row.where}: {row.detail}" for row in bad[:_SHOWN_BAD_ROWS]]
    if count > _SHOWN_BAD_ROWS:
        lines.append(f"  ... and {count - _SHOWN_BAD_ROWS} more")
    lines.append(fix)
    return DataError("\n".join(lines))
