"""Knowledge bases: documents chunked, embedded and indexed with faiss, under
``$LMFORGE_HOME/kb/NAME``.

On disk (``lmforge.retrieve.store``), every change writes a complete new version folder
(passages, vectors, the faiss index, the BM25 index and the manifest) and then switches the
one-line ``CURRENT`` file to it with an atomic rename. A reader therefore always sees an
index and metadata that belong together, and a crash in the middle of ``add`` leaves the
previous version loading::

    kb/policies/
      CURRENT            "v000002"
      v000002/
        manifest.json    embedding model, dimension, chunking, index type, sources
        chunks.jsonl     one passage per line: source, offsets, title, text, hash
        vectors.npy      (N, D) float32, L2-normalized
        index.faiss      exact (flat inner product) or HNSW above APPROX_THRESHOLD passages
        bm25/            the keyword index for hybrid search

Example:
    kb = KnowledgeBase.create("support", embed_ref="all-minilm-l6-v2")
    kb.add([Path("docs/")])
    for hit in kb.search("how long do I have to return an item?", k=3):
        print(hit.score, hit.chunk["name"], hit.chunk["text"][:80])
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bm25s
import faiss
import numpy as np

from lmforge.errors import LmforgeError
from lmforge.home import lmforge_home
from lmforge.hub.embed import SentenceEmbedder
from lmforge.progress import ProgressFn
from lmforge.retrieve.chunk import check_chunking, chunk_document
from lmforge.retrieve.documents import SourceFile, collect_files, read_source
from lmforge.retrieve.store import (
    INDEX_TYPES,
    index_kind,
    normalize,
    search_index,
    vector_index,
    write_version,
    writer_lock,
)

DEFAULT_EMBED = "all-minilm-l6-v2"
RRF_K = 60  # reciprocal-rank fusion constant (Cormack et al. 2009)
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

_embedders: dict[str, SentenceEmbedder] = {}
_embedders_lock = threading.Lock()


def kb_root() -> Path:
    """Where knowledge bases live: ``$LMFORGE_HOME/kb``."""
    return lmforge_home() / "kb"


def embedder_for(ref: str) -> SentenceEmbedder:
    """The embedding model ``ref``, loaded once per process."""
    with _embedders_lock:
        if ref not in _embedders:
            _embedders[ref] = SentenceEmbedder(ref)
        return _embedders[ref]


def list_kbs() -> list[dict[str, Any]]:
    """A summary of every knowledge base under ``kb_root()``."""
    root = kb_root()
    if not root.is_dir():
        return []
    return [KnowledgeBase.open(p.name).stats() for p in sorted(root.iterdir())
            if (p / "CURRENT").is_file()]  # fmt: skip


@dataclass
class Hit:
    """One retrieved passage: its 1-based rank, score and stored fields."""

    rank: int
    score: float
    chunk: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "score": round(self.score, 6), **self.chunk}


@dataclass
class AddReport:
    """What ``KnowledgeBase.add`` did, file by file."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    chunks: int = 0
    seconds: float = 0.0
    # the encoder's share of ``seconds``, loading it excluded: the throughput's time base
    embed_seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


class KnowledgeBase:
    """A loaded knowledge base. ``open`` or ``create`` one, then ``add``, ``remove``,
    ``search``; every change is saved before the call returns."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.root = kb_root() / name
        self.manifest: dict[str, Any] = {}
        self.chunks: list[dict[str, Any]] = []
        self.vectors = np.zeros((0, 0), dtype=np.float32)
        self.index: Any = None
        self._bm25: Any = None
        self.version = ""
        self.last_report = AddReport()  # what ``create`` read in

    # --- opening --------------------------------------------------------------------

    @classmethod
    def open(cls, name: str) -> KnowledgeBase:
        """Load the current version of knowledge base ``name``.

        Raises:
            LmforgeError: there is no such knowledge base.
        """
        kb = cls(_check_name(name))
        if not (kb.root / "CURRENT").is_file():
            known = ", ".join(p.parent.name for p in sorted(kb_root().glob("*/CURRENT"))) or "none"
            raise LmforgeError(
                f"no knowledge base '{name}' in {kb_root()} (known: {known}); build one with "
                f"`lmforge kb build {name} DOCS...`."
            )
        kb._load()
        return kb

    @classmethod
    def create(
        cls,
        name: str,
        *,
        embed_ref: str = DEFAULT_EMBED,
        chunk_tokens: int = 128,
        overlap: int = 32,
        index_type: str = "auto",
        replace: bool = False,
        documents: list[Path] | None = None,
        strict_encoding: bool = False,
        progress: ProgressFn | None = None,
    ) -> KnowledgeBase:
        """A new knowledge base embedding with ``embed_ref``, holding ``documents`` (none:
        empty), saved before it returns. With ``replace`` it takes the place of an
        existing one of that name, which stays as it was if reading the documents fails.

        Raises:
            LmforgeError: it exists and ``replace`` is false; a setting is invalid; a
                document cannot be read (see ``add``).
        """
        kb = cls(_check_name(name))
        if (kb.root / "CURRENT").is_file() and not replace:
            raise LmforgeError(
                f"knowledge base '{name}' already exists; add documents with `lmforge kb add "
                f"{name} DOCS...`, or rebuild it with `lmforge kb build --replace`."
            )
        if index_type not in INDEX_TYPES:
            raise LmforgeError(f"index_type: {index_type!r} is not an index; pick one of "
                               f"{', '.join(INDEX_TYPES)}.")  # fmt: skip
        embedder = embedder_for(embed_ref)
        if chunk_tokens > embedder.max_length - 2:
            raise LmforgeError(
                f"chunk_tokens: {chunk_tokens} exceeds what '{embed_ref}' reads "
                f"({embedder.max_length} tokens with 2 special ones); pass at most "
                f"{embedder.max_length - 2}."
            )
        check_chunking(chunk_tokens, overlap)
        kb.manifest = {
            "name": name,
            "embed_model": embed_ref,
            "dimension": embedder.dimension,
            "chunk_tokens": chunk_tokens,
            "overlap": overlap,
            "index": index_type,
            "sources": {},
            "created": time.time(),
        }
        kb.vectors = np.zeros((0, embedder.dimension), dtype=np.float32)
        kb.last_report = kb._ingest(documents or [], strict_encoding, progress)
        with kb._locked():
            kb._save()
        return kb

    def _load(self) -> None:
        self.version = (self.root / "CURRENT").read_text().strip()
        folder = self.root / self.version
        self.manifest = json.loads((folder / "manifest.json").read_text())
        with (folder / "chunks.jsonl").open(encoding="utf-8") as lines:
            self.chunks = [json.loads(line) for line in lines]
        self.vectors = np.load(folder / "vectors.npy")

        self.index = faiss.read_index(str(folder / "index.faiss"))
        self._bm25 = None  # read on the first hybrid search
        if len(self.chunks) != self.index.ntotal or len(self.chunks) != len(self.vectors):
            raise LmforgeError(
                f"knowledge base '{self.name}' ({folder}) is inconsistent: {len(self.chunks)} "
                f"passages, {self.index.ntotal} indexed; rebuild it with `lmforge kb build "
                f"{self.name} DOCS... --replace`."
            )

    def _refresh(self) -> None:
        """Reload only when another process saved a newer version since this one loaded
        (a large knowledge base is hundreds of MB to read)."""
        current = self.root / "CURRENT"
        if not current.is_file() or current.read_text().strip() != self.version:
            self._load()

    # --- reading --------------------------------------------------------------------

    @property
    def embed_model(self) -> str:
        return str(self.manifest["embed_model"])

    def embedder(self) -> SentenceEmbedder:
        return embedder_for(self.embed_model)

    def check_embedder(self, embed_ref: str | None) -> None:
        """Refuse an embedding model other than the one the index was built with.

        Raises:
            LmforgeError: ``embed_ref`` names another model or gives another dimension.
        """
        if embed_ref is None or embed_ref == self.embed_model:
            return
        other = embedder_for(embed_ref)
        if other.dimension != self.manifest["dimension"] or (
            Path(other.model_ref).name != Path(self.embed_model).name
        ):
            raise LmforgeError(
                f"knowledge base '{self.name}' was built with embedding model "
                f"'{self.embed_model}' ({self.manifest['dimension']} dimensions); the query "
                f"uses '{embed_ref}' ({other.dimension} dimensions). Query it with "
                f"'{self.embed_model}', or rebuild it with --embed {embed_ref}."
            )

    def search(self, query: str, k: int = 5, *, hybrid: bool = False) -> list[Hit]:
        """The ``k`` passages nearest to ``query`` (cosine), or with ``hybrid`` the
        reciprocal-rank fusion of the vector ranking and a BM25 keyword ranking.

        Raises:
            LmforgeError: the query is empty or ``k`` < 1.
        """
        if not query.strip():
            raise LmforgeError("the query is empty; pass the question to search for.")
        if k < 1:
            raise LmforgeError(f"k must be at least 1 (got {k}).")
        if not self.chunks:
            return []
        query_vector = self.embedder().encode([query])  # (1, D)
        normalize(query_vector)
        if not hybrid:
            scores, ids = self._vector_search(query_vector, k)
            return self._hits(list(zip(ids, scores, strict=True)))
        depth = max(50, 4 * k)
        _, vector_ids = self._vector_search(query_vector, depth)
        fused: dict[int, float] = {}
        for rank, index in enumerate(vector_ids):
            fused[index] = fused.get(index, 0.0) + 1 / (RRF_K + rank + 1)
        for rank, index in enumerate(self._keyword_search(query, depth)):
            fused[index] = fused.get(index, 0.0) + 1 / (RRF_K + rank + 1)
        ranked = sorted(fused.items(), key=lambda item: -item[1])[:k]
        return self._hits(ranked)

    def _vector_search(self, query_vector: np.ndarray, k: int) -> tuple[list[float], list[int]]:
        return search_index(self.index, query_vector, k)

    def _keyword_search(self, query: str, k: int) -> list[int]:
        folder = self.root / self.version / "bm25"
        if not folder.is_dir():
            return []
        if self._bm25 is None:
            self._bm25 = bm25s.BM25.load(str(folder))
        tokens = bm25s.tokenize([query], stopwords="en", show_progress=False, return_ids=False)
        if not tokens[0]:
            return []
        ids, scores = self._bm25.retrieve(tokens, k=min(k, len(self.chunks)), show_progress=False)
        return [int(i) for i, s in zip(ids[0], scores[0], strict=True) if s > 0]

    def _hits(self, ranked: list[tuple[int, float]]) -> list[Hit]:
        return [Hit(rank, score, self.chunks[index])
                for rank, (index, score) in enumerate(ranked, start=1)]  # fmt: skip

    def stats(self) -> dict[str, Any]:
        """Counts and settings: what ``lmforge kb stats`` prints."""
        sources = self.manifest["sources"]
        return {
            "name": self.name,
            "path": str(self.root),
            "version": self.version,
            "embed_model": self.embed_model,
            "dimension": self.manifest["dimension"],
            "index": index_kind(self.index),
            "sources": len(sources),
            "chunks": len(self.chunks),
            "tokens": sum(int(c["tokens"]) for c in self.chunks),
            "chunk_tokens": self.manifest["chunk_tokens"],
            "overlap": self.manifest["overlap"],
            "updated": self.manifest.get("updated"),
        }

    def sources(self) -> list[dict[str, Any]]:
        """One row per indexed file: path, name, passages, bytes, content hash."""
        return [{"source": source, **info} for source, info in self.manifest["sources"].items()]

    # --- changing -------------------------------------------------------------------

    def add(
        self,
        paths: list[Path],
        *,
        strict_encoding: bool = False,
        progress: ProgressFn | None = None,
    ) -> AddReport:
        """Read, chunk, embed and index files (folders are searched for supported files).

        A file already indexed with the same content is skipped; one whose content changed
        replaces its old passages. Nothing is saved unless every file reads cleanly.

        Args:
            paths: Files or folders.
            strict_encoding: Refuse files that are not UTF-8 (default: decode as cp1252
                and report it in ``warnings``).
            progress: Called with (passages embedded so far, passages to embed, "passages").

        Raises:
            LmforgeError: a file is missing, unsupported, empty, binary or malformed.
        """
        with self._locked():
            self._refresh()
            report = self._ingest(paths, strict_encoding, progress)
            if report.chunks or report.updated:
                self._save(appended=None if report.updated else self.vectors[-report.chunks :])
        return report

    def _ingest(
        self,
        paths: list[Path],
        strict_encoding: bool,
        progress: ProgressFn | None,
    ) -> AddReport:
        """Read, chunk and embed new or changed files into the in-memory state."""
        started = time.perf_counter()
        report = AddReport()
        known = self.manifest["sources"]
        fresh: list[SourceFile] = []
        for path in collect_files(paths) if paths else []:
            source = read_source(path, strict_encoding=strict_encoding)
            report.warnings += source.warnings
            previous = known.get(source.source)
            if previous is not None and previous["hash"] == source.content_hash:
                report.unchanged.append(source.source)
                continue
            (report.updated if previous else report.added).append(source.source)
            fresh.append(source)
        new_chunks = self._chunk(fresh)
        texts = [_embedding_text(c) for c in new_chunks]
        embedder = self.embedder()
        embed_started = time.perf_counter()
        new_vectors = embedder.encode(texts, batch_size=64, progress=progress, unit="passages")
        report.embed_seconds = time.perf_counter() - embed_started
        normalize(new_vectors)
        replaced = set(report.updated)
        keep = [i for i, c in enumerate(self.chunks) if c["source"] not in replaced]
        self.chunks = [self.chunks[i] for i in keep] + new_chunks
        self.vectors = np.concatenate([self.vectors[keep], new_vectors])
        for source in fresh:
            known[source.source] = {
                "name": Path(source.source).name,
                "hash": source.content_hash,
                "bytes": source.size,
                "chunks": sum(c["source"] == source.source for c in new_chunks),
                "added": time.time(),
            }
        report.chunks = len(new_chunks)
        report.seconds = time.perf_counter() - started
        return report

    def remove(self, source: str) -> tuple[str, int]:
        """Drop one indexed file's passages; ``source`` is its path or its file name.

        Returns:
            The removed file's full path and how many passages went with it.

        Raises:
            LmforgeError: no indexed file matches, or a bare name matches several.
        """
        with self._locked():
            self._refresh()
            path = self._match_source(source)
            keep = [i for i, c in enumerate(self.chunks) if c["source"] != path]
            removed = len(self.chunks) - len(keep)
            self.chunks = [self.chunks[i] for i in keep]
            self.vectors = self.vectors[keep]
            del self.manifest["sources"][path]
            self._save()
        return path, removed

    def _match_source(self, source: str) -> str:
        sources = self.manifest["sources"]
        as_path = str(Path(source).expanduser().resolve())
        if source in sources or as_path in sources:
            return source if source in sources else as_path
        named = [s for s, info in sources.items() if info["name"] == source]
        if len(named) == 1:
            return named[0]
        listed = ", ".join(info["name"] for info in sources.values()) or "none"
        if named:
            raise LmforgeError(
                f"'{source}' names {len(named)} indexed files ({', '.join(named)}); pass the "
                "full path of the one to remove."
            )
        raise LmforgeError(
            f"knowledge base '{self.name}' has no source '{source}' (indexed: {listed}); "
            f"see `lmforge kb stats {self.name} --sources`."
        )

    def _chunk(self, files: list[SourceFile]) -> list[dict[str, Any]]:
        tokenizer = self.embedder().tokenizer
        chunks = []
        for source in files:
            name = Path(source.source).name
            number = 0
            for document in source.documents:
                for passage in chunk_document(
                    document, tokenizer, self.manifest["chunk_tokens"], self.manifest["overlap"]
                ):
                    number += 1
                    chunks.append({
                        "id": f"{name}#{number}",
                        "source": source.source,
                        "name": name,
                        "part": document.part,
                        "title": passage.title,
                        "start": passage.start,
                        "end": passage.end,
                        "tokens": passage.tokens,
                        "hash": hashlib.sha256(passage.text.encode()).hexdigest()[:16],
                        "text": passage.text,
                    })  # fmt: skip
        return chunks

    # --- saving ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time, across processes. A change that fails leaves this object
        half-changed in memory, so the next one reloads from disk."""
        with writer_lock(self.root):
            try:
                yield
            except BaseException:
                self.version = ""
                raise

    def _save(self, appended: np.ndarray | None = None) -> None:
        """Write a complete new version, then point ``CURRENT`` at it (atomic rename); an
        HNSW index only grows by ``appended`` rows when nothing else changed."""
        self.index = vector_index(self.vectors, self.manifest["index"], self.index, appended)
        self.manifest["updated"] = time.time()
        self.version = write_version(self.root, self._write)
        self._bm25 = None

    def _write(self, folder: Path) -> None:
        with (folder / "chunks.jsonl").open("w", encoding="utf-8") as out:
            for chunk in self.chunks:
                out.write(json.dumps(chunk, ensure_ascii=False) + "\n")
        np.save(folder / "vectors.npy", self.vectors)
        faiss.write_index(self.index, str(folder / "index.faiss"))
        tokens = bm25s.tokenize([_embedding_text(c) for c in self.chunks], stopwords="en",
                                show_progress=False)  # fmt: skip
        if tokens.vocab:  # bm25s cannot index an empty vocabulary (no passages)
            retriever = bm25s.BM25()
            retriever.index(tokens, show_progress=False)
            retriever.save(str(folder / "bm25"))
        (folder / "manifest.json").write_text(json.dumps(self.manifest, indent=2) + "\n")


def _embedding_text(chunk: dict[str, Any]) -> str:
    """What gets embedded: the passage, with its section title in front when the passage
    does not already start with it, so a passage deep in "Returns" still says so."""
    title, text = chunk.get("title") or "", chunk["text"]
    if title and title not in text[: len(title) + 8]:
        return f"{title}: {text}"
    return text


def _check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise LmforgeError(
            f"knowledge base name {name!r}: use letters, digits, '.', '_' or '-' (at most 64, "
            "starting with a letter or digit), e.g. 'support-docs'."
        )
    return name
