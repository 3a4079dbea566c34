"""Versioned index folders: how knowledge bases and image indexes keep their data on disk.

Every change writes a complete new version folder and then switches the one-line
``CURRENT`` file to it with an atomic rename, so a reader always sees files that belong
together, and a crash in the middle of a change leaves the previous version loading::

    ROOT/
      CURRENT       "v000002"
      .lock         one writer at a time, across processes
      v000002/      whatever the index writes: manifest, rows, vectors, faiss index

The vectors are L2-normalized float32, searched by inner product (cosine): exactly (flat)
up to ``APPROX_THRESHOLD`` rows, with HNSW above it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import faiss
import numpy as np

# Up to this many rows the index is exact (flat inner product: ~8 ms per query at 100k
# rows of 384 dims on 2 cores); from here on it is HNSW (about 1 ms, recall ~0.99).
APPROX_THRESHOLD = 20_000
HNSW_NEIGHBORS = 32
HNSW_EF_SEARCH = 64
INDEX_TYPES = ("auto", "flat", "hnsw")


def current_version(root: Path) -> str | None:
    """The version folder ``CURRENT`` names, or None for no index."""
    pointer = root / "CURRENT"
    return pointer.read_text().strip() if pointer.is_file() else None


@contextlib.contextmanager
def writer_lock(root: Path) -> Iterator[None]:
    """Hold the index's write lock (other processes wait)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_version(root: Path, write: Callable[[Path], None]) -> str:
    """Call ``write(folder)`` on a fresh staging folder, publish it as the next version
    and drop the older ones. Hold ``writer_lock`` around it.

    Returns:
        The new version's name (``v000003``).
    """
    number = 1 + max((int(p.name[1:]) for p in root.glob("v[0-9]*")), default=0)
    version = f"v{number:06d}"
    staging = root / f".{version}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    write(staging)
    staging.rename(root / version)
    pointer = root / "CURRENT.tmp"
    pointer.write_text(version + "\n")
    os.replace(pointer, root / "CURRENT")
    for old in root.glob("v[0-9]*"):
        if old.name != version:
            shutil.rmtree(old, ignore_errors=True)
    for leftover in root.glob(".v*.tmp"):
        shutil.rmtree(leftover, ignore_errors=True)
    return version


def vector_index(
    vectors: np.ndarray, kind: str, previous: Any = None, appended: np.ndarray | None = None
) -> Any:
    """The faiss index over ``vectors`` (``(N, D)``, normalized): ``kind`` flat, hnsw or
    auto; an HNSW ``previous`` index is extended in place when only ``appended`` rows are
    new, anything else is rebuilt."""
    if kind == "auto":
        kind = "hnsw" if len(vectors) >= APPROX_THRESHOLD else "flat"
    if kind == "hnsw" and appended is not None and isinstance(previous, faiss.IndexHNSWFlat):
        previous.add(appended)
        return previous
    dimension = vectors.shape[1]
    if kind == "hnsw":
        index: Any = faiss.IndexHNSWFlat(dimension, HNSW_NEIGHBORS, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
    else:
        index = faiss.IndexFlatIP(dimension)
    if len(vectors):
        index.add(vectors)
    return index


def search_index(index: Any, query: np.ndarray, k: int) -> tuple[list[float], list[int]]:
    """The ``k`` best (score, row) of one normalized query vector ``(1, D)``."""
    if isinstance(index, faiss.IndexHNSWFlat):
        index.hnsw.efSearch = max(HNSW_EF_SEARCH, k)
    scores, ids = index.search(query, min(k, index.ntotal))  # (1, k)
    kept = [(float(s), int(i)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]
    return [s for s, _ in kept], [i for _, i in kept]


def index_kind(index: Any) -> str:
    """``hnsw`` or ``flat``."""
    return "hnsw" if isinstance(index, faiss.IndexHNSWFlat) else "flat"


def normalize(vectors: np.ndarray) -> None:
    """L2-normalize the rows in place."""
    if len(vectors):
        faiss.normalize_L2(vectors)
