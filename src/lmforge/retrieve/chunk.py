"""Splitting documents into passages of at most N tokens, on sentence boundaries.

A passage is a run of whole sentences (a sentence longer than the limit is cut at token
boundaries). Consecutive passages share up to ``overlap`` tokens of trailing sentences, so
a fact that straddles a boundary is whole in one of them. Markdown headings start a new
passage and name it (``title``), so a passage never mixes two sections.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lmforge.errors import LmforgeError
from lmforge.retrieve.documents import Document

HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")
# A sentence ends at . ! or ? (and any closing quote or bracket) followed by whitespace.
SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s+")
LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")


@dataclass
class Passage:
    """A chunk of a document: ``text == document.text[start:end]``."""

    text: str
    start: int
    end: int
    title: str
    tokens: int


def chunk_document(
    document: Document, tokenizer: Any, chunk_tokens: int = 128, overlap: int = 32
) -> list[Passage]:
    """Split a document into passages of at most ``chunk_tokens`` tokens.

    Args:
        document: The text to split.
        tokenizer: The embedding model's tokenizer, which counts the tokens.
        chunk_tokens: The most tokens in one passage (special tokens not counted).
        overlap: The most tokens of trailing sentences a passage repeats from the previous.

    Raises:
        LmforgeError: ``overlap`` is not smaller than ``chunk_tokens``.
    """
    check_chunking(chunk_tokens, overlap)
    passages = []
    for title, spans in _sections(document.text, document.title):
        units = _fit_units(document.text, spans, tokenizer, chunk_tokens)
        passages += _pack(document.text, units, title, chunk_tokens, overlap)
    # A heading followed directly by a sub-heading is a passage of its own: nothing to find.
    return [p for p in passages if not HEADING.match(p.text)]


def check_chunking(chunk_tokens: int, overlap: int) -> None:
    """Refuse chunking settings that cannot work, before any work is done."""
    if chunk_tokens < 8 or not 0 <= overlap < chunk_tokens:
        raise LmforgeError(
            f"chunk_tokens: {chunk_tokens} with overlap {overlap}: need chunk_tokens >= 8 and "
            "0 <= overlap < chunk_tokens, e.g. 128 and 32."
        )


def _sections(text: str, default_title: str) -> list[tuple[str, list[tuple[int, int]]]]:
    """The text's sections (split at Markdown headings), each as sentence spans."""
    sections: list[tuple[str, list[tuple[int, int]]]] = [(default_title, [])]
    offset = 0
    for line in text.splitlines(keepends=True):
        heading = HEADING.match(line)
        if heading:
            sections.append((heading.group(1), []))
        sections[-1][1].append((offset, offset + len(line)))
        offset += len(line)
    return [(title, _sentences(text, lines)) for title, lines in sections if lines]


def _sentences(text: str, lines: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sentence spans of the lines: paragraphs, headings and list items never merge."""
    blocks: list[list[int]] = []  # [start, end] of each paragraph-like block
    for start, end in lines:
        line = text[start:end]
        if not line.strip():
            blocks.append([end, end])  # a blank line closes the block
            continue
        if (
            not blocks
            or HEADING.match(line)
            or LIST_ITEM.match(line)
            or _ends_heading(text, blocks)
        ):
            blocks.append([start, end])
        else:
            blocks[-1][1] = end
    spans = []
    for start, end in blocks:
        cursor = start
        for match in SENTENCE_END.finditer(text, start, end):
            spans.append((cursor, match.end()))
            cursor = match.end()
        if cursor < end:
            spans.append((cursor, end))
    return [(s, e) for s, e in (_strip(text, s, e) for s, e in spans) if e > s]


def _ends_heading(text: str, blocks: list[list[int]]) -> bool:
    start, end = blocks[-1]
    return end == start or bool(HEADING.match(text[start:end]))


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _fit_units(
    text: str, spans: list[tuple[int, int]], tokenizer: Any, limit: int
) -> list[tuple[int, int, int]]:
    """``(start, end, tokens)`` per sentence; one longer than ``limit`` is cut in pieces."""
    if not spans:
        return []
    encoded = tokenizer(
        [text[s:e] for s, e in spans], add_special_tokens=False, return_offsets_mapping=True
    )
    units = []
    for (start, end), ids, offsets in zip(
        spans, encoded["input_ids"], encoded["offset_mapping"], strict=True
    ):
        if len(ids) <= limit:
            units.append((start, end, len(ids)))
            continue
        for first in range(0, len(ids), limit):
            piece = offsets[first : first + limit]
            units.append((start + piece[0][0], start + piece[-1][1], len(piece)))
    return units


def _pack(
    text: str, units: list[tuple[int, int, int]], title: str, limit: int, overlap: int
) -> list[Passage]:
    """Greedily fill passages with whole units, repeating trailing units as overlap."""
    passages: list[Passage] = []
    current: list[tuple[int, int, int]] = []

    def emit() -> None:
        start, end = current[0][0], current[-1][1]
        passages.append(Passage(text[start:end], start, end, title, sum(u[2] for u in current)))

    for unit in units:
        if current and sum(u[2] for u in current) + unit[2] > limit:
            emit()
            kept: list[tuple[int, int, int]] = []
            for previous in reversed(current):
                if sum(u[2] for u in kept) + previous[2] > overlap:
                    break
                kept.insert(0, previous)
            while kept and sum(u[2] for u in kept) + unit[2] > limit:
                kept.pop(0)
            current = kept
        current.append(unit)
    if current:
        emit()
    return passages
