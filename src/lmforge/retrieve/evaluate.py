"""Retrieval quality of a knowledge base on labeled queries: recall@k and MRR.

A query record names the answer's file and a short verbatim span of it:
``{"query": "how long to send it back?", "source": "policies.md", "evidence": "within 45
days of delivery"}``. A retrieved passage is relevant when it comes from that file and
contains the span (case-insensitively, whitespace runs compared as one space), so the
labels do not depend on how the documents were chunked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmforge.errors import LmforgeError
from lmforge.retrieve.documents import json_lines
from lmforge.retrieve.kb import KnowledgeBase

CUTOFFS = (1, 5, 10)


@dataclass
class RetrievalReport:
    """Mean recall@k (the share of queries with a relevant passage in the top k) and mean
    reciprocal rank over the top ``max(CUTOFFS)``, with one row per query."""

    metrics: dict[str, float]
    rows: list[dict[str, Any]] = field(default_factory=list)


def read_queries(path: Path) -> list[dict[str, str]]:
    """Labeled queries from a JSONL file.

    Raises:
        LmforgeError: the file is missing, or a line lacks ``query``/``source``/``evidence``.
    """
    if not path.is_file():
        raise LmforgeError(f"no such query file '{path}'; pass a JSONL file of labeled queries.")
    records = []
    for number, record in json_lines(path, path.read_text(encoding="utf-8")):
        fields = record if isinstance(record, dict) else {}
        missing = [k for k in ("query", "source", "evidence") if not isinstance(fields.get(k), str)]
        if missing:
            raise LmforgeError(
                f"{path}:{number}: a labeled query needs string fields {missing}, e.g. "
                '{"query": "return window?", "source": "policies.md", "evidence": "within 45 '
                'days of delivery"}.'
            )
        records.append(record)
    if not records:
        raise LmforgeError(f"'{path}' holds no queries.")
    return records


def evaluate_retrieval(
    kb: KnowledgeBase, queries: list[dict[str, str]], *, hybrid: bool = False
) -> RetrievalReport:
    """Search every query and score the ranking against its label."""
    depth = max(CUTOFFS)
    rows: list[dict[str, Any]] = []
    for record in queries:
        hits = kb.search(record["query"], depth, hybrid=hybrid)
        evidence = _collapse(record["evidence"])
        rank = next(
            (hit.rank for hit in hits
             if hit.chunk["name"] == Path(record["source"]).name
             and evidence in _collapse(hit.chunk["text"])),
            None,
        )  # fmt: skip
        rows.append({**record, "rank": rank, "top": hits[0].chunk["id"] if hits else None})
    count = len(rows)
    metrics = {f"recall@{k}": sum(r["rank"] is not None and r["rank"] <= k for r in rows) / count
               for k in CUTOFFS}  # fmt: skip
    metrics["mrr"] = sum(1 / r["rank"] for r in rows if r["rank"] is not None) / count
    metrics["queries"] = float(count)
    return RetrievalReport(metrics, rows)


def _collapse(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()
