"""Knowledge bases with the real all-MiniLM-L6-v2: retrieval quality on the bundled
company documents and the held-out labeled queries, and a refused embedding model."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from lmforge.cli.main import app
from lmforge.data.bundled import company_docs_dir, dataset_path
from lmforge.errors import LmforgeError
from lmforge.retrieve.evaluate import evaluate_retrieval, read_queries
from lmforge.retrieve.kb import KnowledgeBase

pytestmark = pytest.mark.integration

COMPANY = company_docs_dir()


def test_the_bundled_kb_finds_held_out_answers(home: Path) -> None:
    kb = KnowledgeBase.create("company")
    kb.add([COMPANY])
    report = evaluate_retrieval(kb, read_queries(dataset_path("kb_queries", "test")))
    # Measured: recall@1 0.62, recall@5 0.93, recall@10 0.96, MRR 0.75 (45 queries).
    assert report.metrics["recall@5"] >= 0.85, report.metrics
    assert report.metrics["mrr"] >= 0.65, report.metrics
    top = kb.search("What is the support email address?", k=3)
    assert any("support@brightnesthome.com" in hit.chunk["text"] for hit in top)

    queries = str(dataset_path("kb_queries", "test"))
    result = CliRunner().invoke(app, ["kb", "eval", "company", queries, "--hybrid"])
    assert result.exit_code == 0, result.output
    assert "recall@5" in result.stdout and "mrr" in result.stdout


def test_a_query_with_another_dimension_is_refused(home: Path, tiny_encoder: Path) -> None:
    kb = KnowledgeBase.create("tiny", embed_ref=str(tiny_encoder))
    kb.add([COMPANY / "faq.md"])
    with pytest.raises(LmforgeError, match=r"\(64 dimensions\); the query uses "
                       r"'all-minilm-l6-v2' \(384 dimensions\)"):  # fmt: skip
        kb.check_embedder("all-minilm-l6-v2")
    result = CliRunner().invoke(app, ["kb", "query", "tiny", "returns", "--embed",
                                      "all-minilm-l6-v2"])  # fmt: skip
    assert result.exit_code == 2 and "rebuild it with --embed all-minilm-l6-v2" in result.stderr
