"""``lmforge embed`` and ``lmforge kb ...``: sentence embeddings and knowledge bases."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from lmforge.cli.console import console, err_console, format_rate
from lmforge.cli.settings import with_flags
from lmforge.errors import LmforgeError
from lmforge.progress import ProgressFn, ProgressReporter

app = typer.Typer(
    help="Knowledge bases: documents chunked, embedded and indexed for retrieval.",
    no_args_is_help=True,
)

EMBED_HELP = "Embedding model: a zoo name, a local encoder or its ONNX export."
ENCODING_HELP = "Refuse files that are not UTF-8 (default: decode them as cp1252 and say so)."
# the knowledge-base settings the library names, and the flags that set them
KB_FLAGS = {"index_type": "--index", "chunk_tokens": "--chunk-tokens", "overlap": "--overlap",
            "strict_encoding": "--strict-encoding"}  # fmt: skip


def embed(
    ref: Annotated[str, typer.Argument(help=EMBED_HELP)],
    source: Annotated[
        str,
        typer.Argument(
            help="Text to embed, or a file: .txt (one text per line) or .jsonl (--field)."
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="Write vectors to .npy (N x D float32) or .jsonl (text, embedding)."),
    ] = None,
    field: Annotated[str, typer.Option(help="The text field of a .jsonl input.")] = "text",
    batch_size: Annotated[int, typer.Option(help="Texts per forward pass.")] = 64,
) -> None:
    """Embed texts with a sentence encoder (pooled and normalized as its config says).

    Without --out a single text's vector is printed as JSON.

    Example: lmforge embed all-minilm-l6-v2 reviews.txt --out reviews.npy
    """
    import numpy as np

    from lmforge.retrieve.kb import embedder_for

    texts = _texts(source, field)
    embedder = embedder_for(ref)
    with ProgressReporter(err_console, "embedding") as progress:
        vectors = embedder.encode(texts, batch_size, progress=progress)  # (N, D)
    if out is None:
        if len(texts) > 1:
            raise LmforgeError(f"{len(texts)} texts: pass --out FILE.npy or --out FILE.jsonl.")
        console.print_json(json.dumps(vectors[0].round(6).tolist()))
        return
    if out.suffix not in {".npy", ".jsonl"}:
        raise LmforgeError(f"--out {out}: the file must end in .npy or .jsonl.")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    if out.suffix == ".npy":
        with partial.open("wb") as binary:
            np.save(binary, vectors)
    else:
        with partial.open("w", encoding="utf-8") as handle:
            for text, vector in zip(texts, vectors, strict=True):
                row = {"text": text, "embedding": vector.round(6).tolist()}
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    partial.replace(out)
    console.print(f"{len(texts)} vectors of {embedder.dimension} dimensions written to {out}")


def _texts(source: str, field: str) -> list[str]:
    path = Path(source)
    is_file = len(source) < 4096 and "\n" not in source and path.is_file()
    if is_file and path.suffix not in {".txt", ".jsonl"}:
        raise LmforgeError(
            f"'{path}': lmforge embed reads .txt (one text per line) or .jsonl files; for "
            "documents, build a knowledge base with `lmforge kb build`."
        )
    if not is_file:
        if not source.strip():
            raise LmforgeError("the text to embed is empty.")
        return [source]
    lines = path.read_text(encoding="utf-8").splitlines()
    if path.suffix == ".txt":
        texts = [line for line in lines if line.strip()]
    else:
        from lmforge.retrieve.documents import json_lines

        texts = []
        for number, record in json_lines(path, "\n".join(lines)):
            value = record.get(field) if isinstance(record, dict) else None
            if not isinstance(value, str):
                raise LmforgeError(f"{path}:{number}: no string field '{field}' (see --field).")
            texts.append(value)
    if not texts:
        raise LmforgeError(f"'{path}' holds no text to embed.")
    return texts


@app.command("build")
def build(
    name: Annotated[str, typer.Argument(help="The knowledge base's name, e.g. support-docs.")],
    docs: Annotated[
        list[Path], typer.Argument(help="Files or folders: .txt .md .html .jsonl .pdf.")
    ],
    embed_ref: Annotated[str, typer.Option("--embed", help=EMBED_HELP)] = "all-minilm-l6-v2",
    chunk_tokens: Annotated[int, typer.Option(help="The most tokens in one passage.")] = 128,
    overlap: Annotated[
        int, typer.Option(help="Tokens of trailing sentences a passage repeats.")
    ] = 32,
    index: Annotated[
        str, typer.Option(help="auto (exact up to 20,000 passages, then HNSW), flat or hnsw.")
    ] = "auto",
    replace: Annotated[bool, typer.Option(help="Rebuild it if the name exists.")] = False,
    strict_encoding: Annotated[bool, typer.Option(help=ENCODING_HELP)] = False,
) -> None:
    """Build a knowledge base from documents: chunk on sentence boundaries, embed, index.

    Example: lmforge kb build support docs/ faq.md --chunk-tokens 128 --overlap 32
    """
    from lmforge.retrieve.kb import KnowledgeBase

    def build_it(step: ProgressFn) -> Any:
        kb = KnowledgeBase.create(
            name, embed_ref=embed_ref, chunk_tokens=chunk_tokens, overlap=overlap,
            index_type=index, replace=replace, documents=docs, strict_encoding=strict_encoding,
            progress=step,
        )  # fmt: skip
        return kb, kb.last_report

    try:
        _ingest_and_report(build_it)
    except LmforgeError as error:
        raise with_flags(error, KB_FLAGS) from None


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The knowledge base.")],
    docs: Annotated[list[Path], typer.Argument(help="Files or folders to add or refresh.")],
    strict_encoding: Annotated[bool, typer.Option(help=ENCODING_HELP)] = False,
) -> None:
    """Add documents; a file already indexed with the same content is skipped, a changed
    one replaces its passages.

    Example: lmforge kb add support new-policy.md
    """
    from lmforge.retrieve.kb import KnowledgeBase

    kb = KnowledgeBase.open(name)
    try:
        _ingest_and_report(lambda step: (kb, kb.add(docs, strict_encoding=strict_encoding,
                                                     progress=step)))  # fmt: skip
    except LmforgeError as error:
        raise with_flags(error, KB_FLAGS) from None


def _ingest_and_report(work: Callable[[ProgressFn], tuple[Any, Any]]) -> None:
    """Run ``work(progress)`` (a build or an add) under a progress bar, then summarize."""
    with ProgressReporter(err_console, "embedding passages") as progress:
        kb, report = work(progress)
    for warning in report.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    # The rate is the encoder's alone: over the whole add, loading the model would make
    # one new passage read "0 passages/s". Under 0.1 s there is no rate worth printing.
    rate = format_rate(report.chunks, report.embed_seconds, "passages")
    console.print(
        f"{kb.name}: {len(report.added)} added, {len(report.updated)} updated, "
        f"{len(report.unchanged)} unchanged; {_passages(report.chunks)} embedded in "
        f"{report.seconds:.1f} s{f' (encoder: {rate})' if rate else ''}; "
        f"{_passages(len(kb.chunks))} in all."
    )


def _passages(count: int) -> str:
    return f"{count} passage" if count == 1 else f"{count} passages"


@app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="The knowledge base.")],
    source: Annotated[str, typer.Argument(help="The indexed file: its path or file name.")],
) -> None:
    """Remove one file's passages.

    Example: lmforge kb remove support old-policy.md
    """
    from lmforge.retrieve.kb import KnowledgeBase

    kb = KnowledgeBase.open(name)
    path, count = kb.remove(source)
    console.print(f"{name}: removed {path} ({count} passages); {len(kb.chunks)} left.")


@app.command("list")
def list_all(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the knowledge bases under $LMFORGE_HOME/kb.

    Example: lmforge kb list
    """
    from lmforge.retrieve.kb import kb_root, list_kbs

    rows = list_kbs()
    if as_json:
        console.print_json(json.dumps(rows))
        return
    if not rows:
        console.print(f"no knowledge bases in {kb_root()}; build one with `lmforge kb build`.")
        return
    table = Table("name", "sources", "passages", "embedding model", "index", "updated")
    for row in rows:
        table.add_row(row["name"], str(row["sources"]), str(row["chunks"]), row["embed_model"],
                      row["index"], _when(row["updated"]))  # fmt: skip
    console.print(table)


@app.command("stats")
def stats(
    name: Annotated[str, typer.Argument(help="The knowledge base.")],
    sources: Annotated[bool, typer.Option("--sources", help="List every indexed file.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Counts, settings and (with --sources) the indexed files.

    Example: lmforge kb stats support --sources
    """
    from lmforge.retrieve.kb import KnowledgeBase

    kb = KnowledgeBase.open(name)
    summary = kb.stats()
    if as_json:
        console.print_json(json.dumps({**summary, "files": kb.sources()}))
        return
    table = Table("field", "value", show_header=False)
    for key, value in summary.items():
        table.add_row(key, _when(value) if key == "updated" else str(value))
    console.print(table)
    if sources:
        files = Table("file", "passages", "bytes", "sha256", "path")
        for row in kb.sources():
            files.add_row(row["name"], str(row["chunks"]), str(row["bytes"]), row["hash"][:12],
                          row["source"])  # fmt: skip
        console.print(files)


@app.command("query")
def query(
    name: Annotated[str, typer.Argument(help="The knowledge base.")],
    question: Annotated[str, typer.Argument(help="What to search for.")],
    k: Annotated[int, typer.Option("-k", help="How many passages.")] = 5,
    hybrid: Annotated[
        bool, typer.Option(help="Fuse vector and BM25 keyword rankings (reciprocal rank).")
    ] = False,
    embed_ref: Annotated[
        str | None, typer.Option("--embed", help="Must match the model it was built with.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Search a knowledge base.

    Example: lmforge kb query support "how long do I have to return a lock?" -k 3
    """
    from lmforge.retrieve.kb import KnowledgeBase

    kb = KnowledgeBase.open(name)
    kb.check_embedder(embed_ref)
    hits = kb.search(question, k, hybrid=hybrid)
    if as_json:
        console.print_json(json.dumps([hit.to_dict() for hit in hits]))
        return
    table = Table("#", "score", "source", "section", "passage")
    for hit in hits:
        chunk = hit.chunk
        where = chunk["name"] + (f" ({chunk['part']})" if chunk["part"] else "")
        table.add_row(str(hit.rank), f"{hit.score:.3f}", where, chunk["title"],
                      " ".join(chunk["text"].split())[:200])  # fmt: skip
    console.print(table)


@app.command("eval")
def evaluate(
    name: Annotated[str, typer.Argument(help="The knowledge base.")],
    queries: Annotated[
        Path,
        typer.Argument(help='Labeled queries, JSONL: {"query", "source", "evidence"}.'),
    ],
    hybrid: Annotated[bool, typer.Option(help="Evaluate hybrid search.")] = False,
    misses: Annotated[int, typer.Option(help="Show this many queries missed at 5.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Recall@1/5/10 and MRR of a knowledge base on labeled queries.

    Example: lmforge kb eval company src/lmforge/assets/datasets/kb_queries/test.jsonl
    """
    from lmforge.retrieve.evaluate import evaluate_retrieval, read_queries
    from lmforge.retrieve.kb import KnowledgeBase

    report = evaluate_retrieval(KnowledgeBase.open(name), read_queries(queries), hybrid=hybrid)
    if as_json:
        console.print_json(json.dumps(report.metrics))
        return
    table = Table("metric", "value")
    for key, value in report.metrics.items():
        table.add_row(key, f"{value:.0f}" if key == "queries" else f"{value:.3f}")
    console.print(table)
    missed = [row for row in report.rows if row["rank"] is None or row["rank"] > 5][:misses]
    for row in missed:
        wanted = f"{row['source']}: {row['evidence']!r}"
        found = f"rank {row['rank'] or '>10'}, top {row['top']}"
        console.print(f"missed: {row['query']!r} (wanted {wanted}; {found})", highlight=False)


def _when(timestamp: Any) -> str:
    if not timestamp:
        return "-"
    return datetime.fromtimestamp(float(timestamp), tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
