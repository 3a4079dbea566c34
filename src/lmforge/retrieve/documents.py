"""Reading documents for a knowledge base: .txt, .md, .html, .jsonl and .pdf.

Each file becomes one or more ``Document`` s (a JSONL file is one per record, a PDF one
per page), so chunk offsets always point into a text the user can open and check.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from pypdf import PdfReader
from pypdf.errors import PdfReadError

from lmforge.errors import LmforgeError

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | {".jsonl", ".pdf"}
# Bytes that cannot be UTF-8 are decoded with this codec when the fallback is allowed.
FALLBACK_ENCODING = "cp1252"


@dataclass
class Document:
    """One text to chunk, and where it came from.

    ``part`` says which piece of the file it is: ``""`` for a whole text file, ``"line 3"``
    for a JSONL record, ``"page 2"`` for a PDF page.
    """

    source: str  # the file's absolute path: a knowledge base's key for it
    text: str
    part: str = ""
    title: str = ""


@dataclass
class SourceFile:
    """A file read for a knowledge base: its documents, content hash and any warning."""

    source: str
    content_hash: str
    size: int
    documents: list[Document] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def collect_files(paths: list[Path]) -> list[Path]:
    """The files named, with directories expanded to the supported files under them.

    Raises:
        LmforgeError: a path does not exist, or a file's type is not supported.
    """
    files: list[Path] = []
    for path in paths:
        if not path.exists():
            raise LmforgeError(f"no such file or directory: '{path}'; pass existing documents.")
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in SUPPORTED_SUFFIXES)
            if not found:
                raise LmforgeError(
                    f"'{path}' holds no supported documents ({_supported()}); point at the "
                    "folder with your documents."
                )
            files += found
        else:
            if path.suffix.lower() not in SUPPORTED_SUFFIXES:
                raise LmforgeError(
                    f"'{path}': unsupported document type '{path.suffix or '(none)'}'; "
                    f"supported: {_supported()}. Convert it to text first."
                )
            files.append(path)
    return list(dict.fromkeys(p.resolve() for p in files))


def read_source(path: Path, *, strict_encoding: bool = False) -> SourceFile:
    """Read one supported file into documents.

    Args:
        path: A .txt/.md/.html/.jsonl/.pdf file.
        strict_encoding: Refuse text that is not UTF-8 instead of decoding it as cp1252
            (the fallback is reported in ``warnings``).

    Raises:
        LmforgeError: the file is empty, binary, not UTF-8 under ``strict_encoding``, or a
            JSONL record has no text.
    """
    path = path.resolve()
    data = path.read_bytes()
    source = SourceFile(str(path), hashlib.sha256(data).hexdigest(), len(data))
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        source.documents = _read_pdf(path, data)
    else:
        if b"\x00" in data[:8192]:
            raise LmforgeError(
                f"'{path}' looks binary (it has NUL bytes), not {suffix} text; pass the text "
                "version of the document."
            )
        text = _decode(path, data, strict_encoding, source.warnings)
        if suffix == ".jsonl":
            source.documents = _read_jsonl(path, text)
        elif suffix in HTML_SUFFIXES:
            source.documents = [Document(str(path), html_to_text(text))]
        else:
            source.documents = [Document(str(path), text)]
    source.documents = [d for d in source.documents if d.text.strip()]
    if not source.documents:
        raise LmforgeError(f"'{path}' has no text to index (it is empty); remove it or fill it.")
    return source


def html_to_text(html: str) -> str:
    """The visible text of an HTML page, one line per block element."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = (re.sub(r"[ \t]+", " ", line).strip() for line in "".join(parser.parts).split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# Tags that start a new line of text, and tags whose content is never shown.
HTML_BLOCKS = frozenset({
    "p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article",
    "header", "footer", "table", "ul", "ol", "pre", "blockquote", "title",
})  # fmt: skip
HTML_HIDDEN = frozenset({"script", "style", "noscript", "template", "head"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in HTML_HIDDEN:
            self.hidden += 1
        elif tag in HTML_BLOCKS:
            self.parts.append("\n\n" if tag.startswith("h") or tag == "p" else "\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in HTML_HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in HTML_BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def _decode(path: Path, data: bytes, strict: bool, warnings: list[str]) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        where = f"byte 0x{data[error.start]:02x} at offset {error.start}"
        if strict:
            raise LmforgeError(
                f"'{path}' is not UTF-8 ({where}); re-save it as UTF-8, or turn "
                f"strict_encoding off to decode it as {FALLBACK_ENCODING}."
            ) from None
        warnings.append(f"'{path.name}' is not UTF-8 ({where}); decoded as {FALLBACK_ENCODING}")
        return data.decode(FALLBACK_ENCODING, errors="replace")


def json_lines(path: Path, text: str) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed value)`` for each non-blank line of a JSONL text.

    Raises:
        LmforgeError: a line is not JSON, naming the file and line.
    """
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as error:
            raise LmforgeError(f"{path}:{number}: not valid JSON ({error.msg}).") from None


def _read_jsonl(path: Path, text: str) -> list[Document]:
    documents = []
    for number, record in json_lines(path, text):
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise LmforgeError(
                f"{path}:{number}: a knowledge-base record needs a string field 'text' "
                '(and optionally "title"), e.g. {"title": "Returns", "text": "..."}.'
            )
        title = record.get("title")
        documents.append(
            Document(str(path), record["text"], f"line {number}", str(title) if title else "")
        )
    return documents


def _read_pdf(path: Path, data: bytes) -> list[Document]:
    if not data.startswith(b"%PDF"):
        raise LmforgeError(f"'{path}' is not a PDF (it does not start with %PDF).")
    try:
        reader = PdfReader(path)
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError) as error:
        raise LmforgeError(f"'{path}': the PDF cannot be read ({error}).") from None
    return [Document(str(path), text, f"page {i}") for i, text in enumerate(pages, start=1)]


def _supported() -> str:
    return ", ".join(sorted(SUPPORTED_SUFFIXES))
