"""Knowledge bases on the tiny encoder: reading, chunking, storage, search, evaluation, CLI.

The tiny encoder's vectors are random, so these tests check the mechanics (what is stored,
what survives a crash, what is refused) and keyword search; retrieval quality with the real
MiniLM is in tests/integration/test_real_retrieve.py.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lmforge.cli.main import app
from lmforge.errors import LmforgeError
from lmforge.hub import load_tokenizer, resolve
from lmforge.retrieve.chunk import chunk_document
from lmforge.retrieve.documents import Document, read_source
from lmforge.retrieve.evaluate import evaluate_retrieval, read_queries
from lmforge.retrieve.kb import KnowledgeBase

RETURNS = """# Policies

## Returns

We accept returns within 45 days of delivery. Items must be undamaged. Gift cards cannot be
returned. Start a return at example.com/returns.

## Warranty

Every device has a 2-year limited warranty. The XQ-77 sensor has 3 years.
"""


@pytest.fixture(scope="module")
def tokenizer() -> object:
    return load_tokenizer(resolve("all-minilm-l6-v2"))


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "policies.md").write_text(RETURNS)
    (folder / "shipping.txt").write_text(
        "Standard shipping is free on orders over $50. Overnight shipping costs $24.99."
    )
    (folder / "page.html").write_text(
        "<html><head><title>x</title><style>p {color: red}</style></head><body>"
        "<h1>Rewards</h1><p>Members earn 1 point per dollar.</p>"
        "<script>var hidden = 'secret';</script></body></html>"
    )
    (folder / "faq.jsonl").write_text(
        json.dumps({"title": "Hours", "text": "Support is open 8am to 8pm Eastern."}) + "\n"
        + json.dumps({"text": "The hub needs 2.4 GHz Wi-Fi."}) + "\n"
    )  # fmt: skip
    return folder


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF showing ``text`` in Helvetica, with a correct cross-reference table."""
    content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref,
    )  # fmt: skip
    return out


# --- reading -------------------------------------------------------------------------


def test_every_supported_type_reads_to_text(docs: Path, tmp_path: Path) -> None:
    html = read_source(docs / "page.html").documents[0].text
    assert "Members earn 1 point per dollar." in html
    assert "secret" not in html and "color" not in html
    records = read_source(docs / "faq.jsonl").documents
    assert [(d.part, d.title) for d in records] == [("line 1", "Hours"), ("line 2", "")]
    (tmp_path / "manual.pdf").write_bytes(minimal_pdf("Reset the hub by holding the button."))
    pages = read_source(tmp_path / "manual.pdf").documents
    assert pages[0].part == "page 1"
    assert "Reset the hub by holding the button." in pages[0].text


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.txt", b"  \n", "has no text to index"),
        ("blob.txt", b"abc\x00\x01\x02", "looks binary"),
        ("fake.pdf", b"hello", "is not a PDF"),
        ("bad.jsonl", b'{"body": "x"}\n', "bad.jsonl:1: a knowledge-base record needs"),
        ("broken.jsonl", b'{"text": \n', "broken.jsonl:1: not valid JSON"),
    ],
)
def test_bad_documents_are_refused_by_name(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(LmforgeError, match=message):
        read_source(tmp_path / name)


def test_non_utf8_text_falls_back_to_cp1252_or_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin.txt"
    path.write_bytes("Caf\u00e9 hours are 9 to 5.".encode("cp1252"))
    source = read_source(path)
    assert source.documents[0].text == "Caf\u00e9 hours are 9 to 5."
    assert source.warnings == [
        "'latin.txt' is not UTF-8 (byte 0xe9 at offset 3); decoded as cp1252"
    ]
    with pytest.raises(LmforgeError, match=r"is not UTF-8 .* re-save it as UTF-8"):
        read_source(path, strict_encoding=True)


# --- chunking ------------------------------------------------------------------------


def test_passages_keep_sentences_whole_and_respect_the_token_limit(tokenizer: object) -> None:
    text = " ".join(f"Sentence number {i} talks about topic {i} at some length." for i in range(40))
    document = Document("/x.txt", text)
    passages = chunk_document(document, tokenizer, chunk_tokens=40, overlap=12)
    assert len(passages) > 5
    for passage in passages:
        assert passage.text == text[passage.start : passage.end]
        assert passage.text.startswith("Sentence number") and passage.text.endswith(".")
        assert len(tokenizer(passage.text, add_special_tokens=False)["input_ids"]) <= 40
    # Each passage after the first repeats the previous passage's last sentence.
    for previous, passage in itertools.pairwise(passages):
        assert previous.end > passage.start


def test_markdown_headings_start_and_name_passages(tokenizer: object) -> None:
    passages = chunk_document(Document("/p.md", RETURNS), tokenizer, chunk_tokens=128, overlap=0)
    assert [p.title for p in passages] == ["Returns", "Warranty"]  # the bare H1 is dropped
    assert passages[1].text.startswith("## Warranty")


def test_a_sentence_longer_than_the_limit_is_cut_at_token_boundaries(tokenizer: object) -> None:
    text = "word " * 100 + "end."
    passages = chunk_document(Document("/w.txt", text), tokenizer, chunk_tokens=30, overlap=0)
    assert len(passages) == 4
    assert all(p.tokens <= 30 for p in passages)


def test_bad_chunk_settings_are_refused(tokenizer: object) -> None:
    with pytest.raises(LmforgeError, match="0 <= overlap < chunk_tokens"):
        chunk_document(Document("/x", "a."), tokenizer, chunk_tokens=32, overlap=32)


# --- the store -----------------------------------------------------------------------


def test_build_search_readd_update_and_remove(home: Path, docs: Path, tiny_encoder: Path) -> None:
    kb = KnowledgeBase.create("support", embed_ref=str(tiny_encoder))
    report = kb.add([docs])
    assert len(report.added) == 4 and report.chunks == len(kb.chunks) >= 5
    hits = kb.search("returns", k=3)
    assert [h.rank for h in hits] == [1, 2, 3]
    assert {"id", "source", "name", "part", "title", "start", "end", "text", "hash"} <= set(
        hits[0].chunk
    )
    version = kb.version

    again = kb.add([docs])  # unchanged content: nothing is written
    assert len(again.unchanged) == 4 and again.chunks == 0 and kb.version == version

    (docs / "shipping.txt").write_text("Shipping is free on every order. Express costs $9.")
    changed = kb.add([docs / "shipping.txt"])
    assert changed.updated == [str((docs / "shipping.txt").resolve())]
    texts = [c["text"] for c in KnowledgeBase.open("support").chunks]
    assert "Shipping is free on every order. Express costs $9." in texts
    assert not any("Overnight" in t for t in texts)

    path, removed = kb.remove("faq.jsonl")
    assert path.endswith("faq.jsonl") and removed == 2
    reopened = KnowledgeBase.open("support")
    assert not any(c["name"] == "faq.jsonl" for c in reopened.chunks)
    assert reopened.index.ntotal == len(reopened.chunks) == len(reopened.vectors)
    assert [p.name for p in (home / "kb" / "support").glob("v*")] == [reopened.version]
    with pytest.raises(LmforgeError, match=r"has no source 'nope.md' \(indexed: "):
        kb.remove("nope.md")


def test_a_crash_during_add_leaves_the_previous_version_loading(
    home: Path, docs: Path, tiny_encoder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kb = KnowledgeBase.create("crashy", embed_ref=str(tiny_encoder))
    kb.add([docs / "policies.md"])
    before = [c["id"] for c in KnowledgeBase.open("crashy").chunks]

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError("No space left on device")

    with monkeypatch.context() as patch, pytest.raises(OSError, match="No space left"):
        patch.setattr("lmforge.retrieve.kb.np.save", disk_full)
        kb.add([docs / "shipping.txt"])
    after = KnowledgeBase.open("crashy")
    assert [c["id"] for c in after.chunks] == before
    assert after.index.ntotal == len(before)
    assert after.add([docs / "shipping.txt"]).added  # and the next add works
    # The object whose add failed reloads from disk: the file is already indexed.
    assert kb.add([docs / "shipping.txt"]).unchanged


def test_a_failed_rebuild_keeps_the_previous_knowledge_base(
    home: Path, docs: Path, tiny_encoder: Path, tmp_path: Path
) -> None:
    KnowledgeBase.create("kept", embed_ref=str(tiny_encoder), documents=[docs / "shipping.txt"])
    (tmp_path / "empty.md").write_text("")
    with pytest.raises(LmforgeError, match=r"empty\.md' has no text to index"):
        KnowledgeBase.create("kept", embed_ref=str(tiny_encoder), replace=True,
                             documents=[docs / "policies.md", tmp_path / "empty.md"])  # fmt: skip
    assert {c["name"] for c in KnowledgeBase.open("kept").chunks} == {"shipping.txt"}
    rebuilt = KnowledgeBase.create("kept", embed_ref=str(tiny_encoder), replace=True,
                                   documents=[docs / "policies.md"])  # fmt: skip
    assert {c["name"] for c in KnowledgeBase.open("kept").chunks} == {"policies.md"}
    assert rebuilt.last_report.added == [str((docs / "policies.md").resolve())]


def test_hybrid_search_finds_the_exact_keyword(home: Path, docs: Path, tiny_encoder: Path) -> None:
    kb = KnowledgeBase.create("hybrid", embed_ref=str(tiny_encoder), chunk_tokens=24, overlap=0)
    kb.add([docs])
    top = kb.search("XQ-77 sensor", k=1, hybrid=True)[0]
    assert "XQ-77" in top.chunk["text"]


def test_a_query_with_another_embedding_model_is_refused(
    home: Path, docs: Path, tiny_encoder: Path, tmp_path: Path
) -> None:
    from lmforge.hub import build_tiny_encoder

    kb = KnowledgeBase.create("model-a", embed_ref=str(tiny_encoder))
    kb.add([docs / "shipping.txt"])
    other = build_tiny_encoder(tmp_path / "other-encoder", seed=1)
    with pytest.raises(LmforgeError, match=f"built with embedding model '{tiny_encoder}'.*"
                       f"the query uses '{other}'"):  # fmt: skip
        kb.check_embedder(str(other))
    kb.check_embedder(str(tiny_encoder))  # the same model is fine


def test_names_and_existing_bases_are_checked(home: Path, tiny_encoder: Path) -> None:
    with pytest.raises(LmforgeError, match=r"knowledge base name '\.\./x'"):
        KnowledgeBase.create("../x", embed_ref=str(tiny_encoder))
    KnowledgeBase.create("once", embed_ref=str(tiny_encoder))
    with pytest.raises(LmforgeError, match="already exists; add documents"):
        KnowledgeBase.create("once", embed_ref=str(tiny_encoder))
    with pytest.raises(LmforgeError, match=r"no knowledge base 'missing'.*known: once"):
        KnowledgeBase.open("missing")
    assert KnowledgeBase.open("once").search("anything") == []


# --- evaluation ----------------------------------------------------------------------


def test_recall_and_mrr_follow_the_evidence_rule(
    home: Path, docs: Path, tiny_encoder: Path, tmp_path: Path
) -> None:
    kb = KnowledgeBase.create("scored", embed_ref=str(tiny_encoder), chunk_tokens=24, overlap=0)
    kb.add([docs])
    queries = [
        {"query": "XQ-77 sensor", "source": "policies.md", "evidence": "The XQ-77  sensor"},
        {"query": "overnight shipping", "source": "shipping.txt", "evidence": "overnight shipping"},
        {"query": "XQ-77 sensor", "source": "faq.jsonl", "evidence": "The XQ-77 sensor"},
    ]
    report = evaluate_retrieval(kb, queries, hybrid=True)
    assert [row["rank"] for row in report.rows][::2] == [1, None]  # wrong source never counts
    assert report.metrics["recall@10"] == pytest.approx(2 / 3)
    assert report.metrics["queries"] == 3

    path = tmp_path / "q.jsonl"
    path.write_text('{"query": "x", "source": "a.md"}\n')
    with pytest.raises(
        LmforgeError, match=r"q.jsonl:1: a labeled query needs string fields \['evidence'\]"
    ):
        read_queries(path)


# --- CLI -----------------------------------------------------------------------------


def test_kb_commands_end_to_end(home: Path, docs: Path, tiny_encoder: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    built = runner.invoke(app, ["kb", "build", "cli", str(docs), "--embed", str(tiny_encoder)])
    assert built.exit_code == 0, built.output
    assert "4 added, 0 updated, 0 unchanged" in built.stdout
    listed = runner.invoke(app, ["kb", "list", "--json"])
    assert [row["name"] for row in json.loads(listed.stdout)] == ["cli"]
    found = runner.invoke(app, ["kb", "query", "cli", "XQ-77", "-k", "2", "--hybrid", "--json"])
    hits = json.loads(found.stdout)
    assert len(hits) == 2 and "XQ-77" in hits[0]["text"]
    stats = json.loads(runner.invoke(app, ["kb", "stats", "cli", "--json"]).stdout)
    assert stats["sources"] == 4 and len(stats["files"]) == 4
    removed = runner.invoke(app, ["kb", "remove", "cli", "page.html"])
    assert removed.exit_code == 0 and "removed" in removed.stdout
    queries = tmp_path / "queries.jsonl"
    queries.write_text(json.dumps({"query": "XQ-77", "source": "policies.md",
                                   "evidence": "XQ-77"}) + "\n")  # fmt: skip
    scored = runner.invoke(app, ["kb", "eval", "cli", str(queries), "--hybrid", "--json"])
    assert json.loads(scored.stdout)["recall@10"] == 1.0
    refused = runner.invoke(app, ["kb", "build", "cli", str(docs), "--embed", str(tiny_encoder)])
    assert refused.exit_code == 2 and "already exists" in refused.stderr


def test_embed_command_writes_npy_and_jsonl(tiny_encoder: Path, tmp_path: Path) -> None:
    texts = tmp_path / "texts.txt"
    texts.write_text("first line\nsecond line\n\nthird line\n")
    runner = CliRunner()
    result = runner.invoke(app, ["embed", str(tiny_encoder), str(texts), "--out",
                                 str(tmp_path / "v.npy")])  # fmt: skip
    assert result.exit_code == 0, result.output
    vectors = np.load(tmp_path / "v.npy")
    assert vectors.shape == (3, 64)
    runner.invoke(app, ["embed", str(tiny_encoder), str(texts), "--out", str(tmp_path / "v.jsonl")])
    rows = [json.loads(line) for line in (tmp_path / "v.jsonl").read_text().splitlines()]
    assert [row["text"] for row in rows] == ["first line", "second line", "third line"]
    np.testing.assert_allclose(np.array([r["embedding"] for r in rows]), vectors, atol=1e-5)
    single = runner.invoke(app, ["embed", str(tiny_encoder), "just one text"])
    assert len(json.loads(single.stdout)) == 64
