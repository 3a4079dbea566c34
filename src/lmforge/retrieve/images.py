"""Image indexes: pictures embedded by a text-image model (CLIP) and indexed with faiss, under
``$LMFORGE_HOME/images/NAME``, searched by a sentence or by another picture.

They keep their data the way knowledge bases do (``lmforge.retrieve.store``: atomic
versions, one writer at a time)::

    images/digits/
      CURRENT            "v000002"
      v000002/
        manifest.json    model, dimension, index type, sources
        items.jsonl      one image per line: id, path, source, caption (when one was given)
        vectors.npy      (N, D) float32, L2-normalized
        index.faiss      exact (flat inner product) or HNSW above APPROX_THRESHOLD images

A source is a folder (its images, sub-folders included), a JSON Lines file of
``{"image": PATH, "text": CAPTION}`` (paths relative to the file; ``id`` kept when given),
or one image file. An item's id is its path relative to the source.

Example:
    index = ImageIndex.create("digits", model_ref="run:RUN_ID")
    index.add([Path("pictures/")])
    for hit in index.search_text("a thin upright one", k=5):
        print(hit.score, hit.item["id"])
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import torch
from PIL import Image

from lmforge.data.images import IMAGE_SUFFIXES, ImageError, open_image
from lmforge.errors import LmforgeError
from lmforge.home import lmforge_home
from lmforge.hub.clip import ImageEncoder, QueryEncoder, load_clip, projection_size
from lmforge.progress import ProgressFn
from lmforge.retrieve.documents import json_lines
from lmforge.retrieve.kb import NAME_PATTERN
from lmforge.retrieve.store import (
    INDEX_TYPES,
    current_version,
    index_kind,
    search_index,
    vector_index,
    write_version,
    writer_lock,
)

THUMBNAIL_SIDE = 96  # pixels, the longer side of a search result's thumbnail
EMBED_BATCH = 64

_models: dict[str, tuple[Any, Any]] = {}
_encoders: dict[str, tuple[QueryEncoder, ImageEncoder]] = {}
_models_lock = threading.Lock()


def images_root() -> Path:
    """Where image indexes live: ``$LMFORGE_HOME/images``."""
    return lmforge_home() / "images"


def clip_for(ref: str) -> tuple[Any, Any]:
    """The text-image model ``ref`` and its processor, loaded once per process."""
    with _models_lock:
        if ref not in _models:
            _models[ref] = load_clip(ref)
        return _models[ref]


def encoders_for(ref: str) -> tuple[QueryEncoder, ImageEncoder]:
    """The sentence and picture encoders of text-image model ``ref``, made once."""
    model, processor = clip_for(ref)
    with _models_lock:
        if ref not in _encoders:
            _encoders[ref] = (QueryEncoder(model, processor), ImageEncoder(model, processor))
        return _encoders[ref]


def list_image_indexes() -> list[dict[str, Any]]:
    """A summary of every image index under ``images_root()``."""
    return [ImageIndex.open(p.parent.name).stats()
            for p in sorted(images_root().glob("*/CURRENT"))]  # fmt: skip


@dataclass
class ImageHit:
    """One search result: its rank (1 = best), cosine score, and the indexed item."""

    rank: int
    score: float
    item: dict[str, Any]

    def to_dict(self, *, thumbnail: bool = False) -> dict[str, Any]:
        """The hit as JSON; with ``thumbnail``, a small PNG of the image as a data URL
        (null when the file is gone)."""
        result = {"rank": self.rank, "score": self.score, **self.item}
        if thumbnail:
            result["thumbnail"] = thumbnail_url(Path(self.item["path"]))
        return result


@dataclass
class IndexReport:
    """What ``add`` did."""

    added: int = 0
    sources: list[str] = field(default_factory=list)
    skipped_sources: list[str] = field(default_factory=list)  # already indexed
    seconds: float = 0.0


class ImageIndex:
    """A loaded image index: ``open`` or ``create`` one, then ``add``, ``remove``,
    ``search_text``, ``search_image``; every change is saved before the call returns."""

    def __init__(self, name: str) -> None:
        if not NAME_PATTERN.match(name):
            raise LmforgeError(
                f"image index name {name!r}: use letters, digits, '.', '_' or '-' (at most "
                "64, starting with a letter or digit), e.g. 'digits'."
            )
        self.name = name
        self.root = images_root() / name
        self.manifest: dict[str, Any] = {}
        self.items: list[dict[str, Any]] = []
        self.vectors = np.zeros((0, 0), dtype=np.float32)
        self.index: Any = None
        self.version = ""

    @classmethod
    def open(cls, name: str) -> ImageIndex:
        """Load the current version of image index ``name``.

        Raises:
            LmforgeError: there is no such index.
        """
        index = cls(name)
        if current_version(index.root) is None:
            known = ", ".join(p.parent.name for p in sorted(images_root().glob("*/CURRENT")))
            raise LmforgeError(
                f"no image index '{name}' in {images_root()} (known: {known or 'none'}); build "
                f"one with `lmforge images index build {name} FOLDER --model MODEL`."
            )
        index._load()
        return index

    @classmethod
    def create(
        cls,
        name: str,
        *,
        model_ref: str,
        index_type: str = "auto",
        replace: bool = False,
        sources: list[Path] | None = None,
        progress: ProgressFn | None = None,
    ) -> ImageIndex:
        """A new index embedding with text-image model ``model_ref``, holding ``sources``
        (none: empty), saved before it returns; with ``replace`` it takes the place of an
        existing one, which stays as it was if reading the images fails.

        Raises:
            LmforgeError: it exists and ``replace`` is false; an unknown index type; the
                model is not a text-image one; an image cannot be read.
        """
        index = cls(name)
        if current_version(index.root) is not None and not replace:
            raise LmforgeError(
                f"image index '{name}' already exists; add images with `lmforge images index "
                f"add {name} FOLDER`, or rebuild it with `lmforge images index build --replace`."
            )
        if index_type not in INDEX_TYPES:
            raise LmforgeError(f"index_type: {index_type!r} is not an index; pick one of "
                               f"{', '.join(INDEX_TYPES)}.")  # fmt: skip
        model, _ = clip_for(model_ref)
        index.manifest = {"name": name, "model": model_ref, "dimension": projection_size(model),
                          "index": index_type, "sources": {}, "created": time.time()}  # fmt: skip
        index.vectors = np.zeros((0, index.manifest["dimension"]), dtype=np.float32)
        items, vectors = index._embed(sources or [], progress)
        index._append(items, vectors)
        with index._locked():
            index._save()
        return index

    def _load(self) -> None:
        self.version = current_version(self.root) or ""
        folder = self.root / self.version
        self.manifest = json.loads((folder / "manifest.json").read_text())
        with (folder / "items.jsonl").open(encoding="utf-8") as lines:
            self.items = [json.loads(line) for line in lines]
        self.vectors = np.load(folder / "vectors.npy")
        self.index = faiss.read_index(str(folder / "index.faiss"))
        if not len(self.items) == self.index.ntotal == len(self.vectors):
            raise LmforgeError(
                f"image index '{self.name}' ({folder}) is inconsistent: {len(self.items)} "
                f"images, {self.index.ntotal} indexed; rebuild it with `lmforge images index "
                f"build {self.name} FOLDER --replace`."
            )

    def _refresh(self) -> None:
        if current_version(self.root) != self.version:
            self._load()

    # --- reading --------------------------------------------------------------------

    @property
    def model_ref(self) -> str:
        return str(self.manifest["model"])

    def search_text(self, query: str, k: int = 5) -> list[ImageHit]:
        """The ``k`` images nearest to the sentence ``query`` (cosine).

        Raises:
            LmforgeError: an empty query or ``k`` < 1.
        """
        if not query.strip():
            raise LmforgeError("the query is empty; pass a sentence describing the image.")
        return self._search(encoders_for(self.model_ref)[0](query), k)  # (1, D)

    def warm_up(self) -> None:
        """Load the model and prepare its query encoder now (a server does it while it
        loads), so the first search does not wait for them."""
        query, pictures = encoders_for(self.model_ref)
        query("warm up")
        pictures([Image.new("RGB", (8, 8))])

    def search_image(self, image: Image.Image, k: int = 5) -> list[ImageHit]:
        """The ``k`` images nearest to ``image`` (cosine)."""
        return self._search(encoders_for(self.model_ref)[1]([image]), k)  # (1, D)

    def _search(self, query: np.ndarray, k: int) -> list[ImageHit]:
        if k < 1:
            raise LmforgeError(f"k must be at least 1 (got {k}).")
        if not self.items:
            return []
        scores, rows = search_index(self.index, query.astype(np.float32), k)
        ranked = enumerate(zip(scores, rows, strict=True), start=1)
        return [ImageHit(rank, score, self.items[row]) for rank, (score, row) in ranked]

    def stats(self) -> dict[str, Any]:
        """Counts and settings: what ``lmforge images index list`` prints."""
        return {"name": self.name, "path": str(self.root), "version": self.version,
                "model": self.model_ref, "dimension": self.manifest["dimension"],
                "index": index_kind(self.index), "images": len(self.items),
                "sources": len(self.manifest["sources"]),
                "updated": self.manifest.get("updated")}  # fmt: skip

    # --- changing -------------------------------------------------------------------

    def add(self, sources: list[Path], *, progress: ProgressFn | None = None) -> IndexReport:
        """Embed and index the images of ``sources`` (folders, JSON Lines files or image
        files); a source already indexed is skipped (remove it first to re-read it).
        Nothing is saved unless every image reads.

        Raises:
            LmforgeError: a missing source, or an image that cannot be read (named).
        """
        started = time.perf_counter()
        with self._locked():
            self._refresh()
            report = IndexReport()
            fresh: list[Path] = []
            for source in sources:
                if str(Path(source).expanduser().resolve()) in self.manifest["sources"]:
                    report.skipped_sources.append(str(source))
                else:
                    fresh.append(source)
            items, vectors = self._embed(fresh, progress)
            appended = self._append(items, vectors)
            report.added, report.sources = len(items), [str(s) for s in fresh]
            if items:
                self._save(appended)
        report.seconds = time.perf_counter() - started
        return report

    def add_vectors(self, items: list[dict[str, Any]], vectors: np.ndarray, source: str) -> None:
        """Index rows whose embeddings were computed elsewhere (``vectors``: ``(N, D)``
        normalized), under one ``source`` name. For size tests and imports."""
        with self._locked():
            self._refresh()
            rows = [{"id": item["id"], "path": item.get("path", ""), "source": source,
                     **({"caption": item["caption"]} if item.get("caption") else {})}
                    for item in items]  # fmt: skip
            self._append(rows, vectors.astype(np.float32))
            self._save()

    def remove(self, what: str) -> tuple[str, int]:
        """Drop a source's images (``what``: the folder or file as added) or one image (its
        id).

        Returns:
            What was removed and how many images went with it.

        Raises:
            LmforgeError: nothing indexed matches.
        """
        with self._locked():
            self._refresh()
            as_path = str(Path(what).expanduser().resolve())
            if as_path in self.manifest["sources"]:
                keep = [i for i, item in enumerate(self.items) if item["source"] != as_path]
                del self.manifest["sources"][as_path]
                removed_name = as_path
            elif any(item["id"] == what for item in self.items):
                keep = [i for i, item in enumerate(self.items) if item["id"] != what]
                removed_name = what
            else:
                listed = ", ".join(self.manifest["sources"]) or "none"
                raise LmforgeError(
                    f"image index '{self.name}' has no source or image id {what!r} (sources: "
                    f"{listed}); see `lmforge images index list {self.name}`."
                )
            removed = len(self.items) - len(keep)
            self.items = [self.items[i] for i in keep]
            self.vectors = self.vectors[keep]
            for info in self.manifest["sources"].values():
                info["images"] = sum(1 for item in self.items if item["source"] == info["path"])
            self._save()
        return removed_name, removed

    def _embed(
        self, sources: list[Path], progress: ProgressFn | None
    ) -> tuple[list[dict[str, Any]], np.ndarray]:
        """Embed every image of ``sources`` in batches of ``EMBED_BATCH``; an image that
        cannot be read stops the change before anything is saved.

        A second thread decodes and resizes the next batch while the model embeds this one
        on the other cores (onnxruntime lets go of the GIL): on 2 cores the bundled digits
        index 1.4x faster than one thing at a time."""
        items = [item for source in sources for item in _source_items(Path(source))]
        encoder = encoders_for(self.model_ref)[1]
        chunks = [items[start : start + EMBED_BATCH] for start in range(0, len(items), EMBED_BATCH)]

        def pixels_of(chunk: list[dict[str, Any]]) -> np.ndarray:
            return encoder.pixels([open_image(Path(item["path"])) for item in chunk])

        threads = max(1, torch.get_num_threads() - 1)  # one core reads the next batch
        vectors, done = [], 0
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lmforge-images") as reader:
            upcoming = reader.submit(pixels_of, chunks[0]) if chunks else None
            for number, chunk in enumerate(chunks):
                assert upcoming is not None
                pixels = upcoming.result()  # (B, C, H, W)
                if number + 1 < len(chunks):
                    upcoming = reader.submit(pixels_of, chunks[number + 1])
                vectors.append(encoder.embed(pixels, threads=threads))  # (B, D)
                done += len(chunk)
                if progress is not None:
                    progress(done, len(items), "images")
        dimension = int(self.manifest["dimension"])
        return items, (np.concatenate(vectors) if vectors else np.zeros((0, dimension), "f4"))

    def _append(self, items: list[dict[str, Any]], vectors: np.ndarray) -> np.ndarray:
        """Add rows in memory (ids made unique); returns the appended vectors."""
        taken = {item["id"] for item in self.items}
        for item in items:
            base, number = item["id"], 1
            while item["id"] in taken:
                number += 1
                item["id"] = f"{base}#{number}"
            taken.add(item["id"])
            new = {"path": item["source"], "images": 0, "added": time.time()}
            self.manifest["sources"].setdefault(item["source"], new)["images"] += 1
        self.items += items
        self.vectors = np.concatenate([self.vectors, vectors]) if len(vectors) else self.vectors
        return vectors

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with writer_lock(self.root):
            try:
                yield
            except BaseException:
                self.version = ""  # half-changed in memory: the next change reloads
                raise

    def _save(self, appended: np.ndarray | None = None) -> None:
        self.index = vector_index(self.vectors, self.manifest["index"], self.index, appended)
        self.manifest["updated"] = time.time()
        self.version = write_version(self.root, self._write)

    def _write(self, folder: Path) -> None:
        with (folder / "items.jsonl").open("w", encoding="utf-8") as out:
            for item in self.items:
                out.write(json.dumps(item, ensure_ascii=False) + "\n")
        np.save(folder / "vectors.npy", self.vectors)
        faiss.write_index(self.index, str(folder / "index.faiss"))
        (folder / "manifest.json").write_text(json.dumps(self.manifest, indent=2) + "\n")


def _source_items(source: Path) -> list[dict[str, Any]]:
    """The images one source holds, as index rows (checked to exist, not yet decoded)."""
    root = source.expanduser().resolve()
    key = str(root)
    if root.is_dir():  # paths under the resolved folder are absolute already
        paths = sorted(p for p in root.rglob("*")
                       if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())  # fmt: skip
        if not paths:
            raise LmforgeError(f"{source}: no image files ({', '.join(IMAGE_SUFFIXES)}) in it "
                               "or its sub-folders")  # fmt: skip
        return [{"id": str(p.relative_to(root)), "path": str(p), "source": key}
                for p in paths]  # fmt: skip
    if source.suffix.lower() in IMAGE_SUFFIXES:
        if not source.is_file():
            raise ImageError(f"{source}: no such image file")
        return [{"id": source.name, "path": key, "source": key}]
    if source.suffix.lower() == ".jsonl" and source.is_file():
        items = []
        for number, record in json_lines(source, source.read_text(encoding="utf-8")):
            image = record.get("image") if isinstance(record, dict) else None
            if not isinstance(image, str) or not image:
                raise LmforgeError(
                    f"{source}:{number}: needs an 'image' path (relative to the file), e.g. "
                    '{"image": "cats/1.png", "text": "a cat"}'
                )
            path = (source.parent / image).resolve()
            if not path.is_file():
                raise LmforgeError(f"{source}:{number}: image {image!r}: no such file (looked "
                                   f"at {path})")  # fmt: skip
            item = {"id": str(record.get("id") or image), "path": str(path), "source": key}
            if isinstance(record.get("text"), str):
                item["caption"] = record["text"]
            items.append(item)
        return items
    raise LmforgeError(
        f"{source}: not a folder, a .jsonl file or an image file ({', '.join(IMAGE_SUFFIXES)}); "
        "pass one of those"
    )


def thumbnail_url(path: Path, side: int = THUMBNAIL_SIDE) -> str | None:
    """A PNG thumbnail of the image at ``path`` (longer side ``side`` pixels) as a data
    URL, or None when it cannot be read any more."""
    try:
        picture = open_image(path)
    except ImageError:
        return None
    scale = side / max(picture.size)
    size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    # small pictures (8x8 digits) are enlarged with hard edges, large ones smoothly
    resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS
    buffer = io.BytesIO()
    picture.resize(size, resample).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
