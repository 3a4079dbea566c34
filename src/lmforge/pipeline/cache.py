"""Step caching: a step's key is the hash of everything it reads, and a finished step's
outputs are stored under that key.

The key covers the step type, its settings after ``${{ }}`` references are filled in, the
content of every local file or folder those settings name (data, configs, upstream model
folders), files the step reads indirectly (a run config's data files), and the lmforge
version. Model references that are not local paths (``smollm2-135m-instruct``,
``registry:x@production``) enter as text. A cached entry counts only while every file or
folder its outputs named (and that existed when it finished) still exists, so deleting an
output re-runs the step.

Entries live in ``$LMFORGE_HOME/pipelines/cache/<key>.json``, shared by all pipelines:
the same step with the same inputs in another pipeline is a cache hit too.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from lmforge import __version__
from lmforge.home import atomic_write_text, file_sha256, lmforge_home

# (path, size, mtime_ns) -> sha256, so one process hashes a big model folder once.
_HASHES: dict[tuple[str, int, int], str] = {}


def hash_path(path: Path) -> str:
    """SHA-256 of a file's bytes, or of a folder's relative file names and their hashes."""
    path = Path(path)
    if path.is_dir():
        digest = hashlib.sha256()
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            relative = file.relative_to(path)
            if any(part.startswith(".") for part in relative.parts):
                continue  # temp files, lock files, caches
            digest.update(f"{relative}\0{hash_path(file)}\n".encode())
        return digest.hexdigest()
    stat = path.stat()
    memo = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if memo not in _HASHES:
        _HASHES[memo] = file_sha256(path)
    return _HASHES[memo]


def local_paths(value: Any) -> list[Path]:
    """Absolute paths to existing files or folders named anywhere inside ``value``."""
    return [path for path in _absolute_paths(value) if path.exists()]


def input_hashes(params: dict[str, Any], extra_inputs: list[Path]) -> dict[str, str]:
    """Every local file or folder a step reads, with its content hash (the key's inputs,
    and the data of a registered version's lineage)."""
    inputs = sorted({str(p) for p in [*local_paths(params), *extra_inputs]})
    return {path: hash_path(Path(path)) for path in inputs if Path(path).exists()}


def step_key(step_type: str, params: dict[str, Any], inputs: dict[str, str]) -> str:
    """The cache key of a step with these (filled-in, resolved) settings and input hashes."""

    material = {"type": step_type, "params": params, "inputs": inputs, "lmforge": __version__}
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


def cache_dir() -> Path:
    return lmforge_home() / "pipelines" / "cache"


def load_entry(key: str) -> dict[str, Any] | None:
    """The stored result of a step with this key, if its outputs still exist."""
    path = cache_dir() / f"{key}.json"
    if not path.is_file():
        return None
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None  # a damaged entry is a miss; the step runs and writes a new one
    if not all(Path(p).exists() for p in entry.get("output_paths", [])):
        return None
    return dict(entry)


def save_entry(key: str, entry: dict[str, Any]) -> None:
    """Store a finished step's ``entry`` (its ``outputs`` and more) under ``key``; the
    output paths that exist now must still exist for the entry to count later."""
    paths = sorted({str(p) for p in local_paths(entry.get("outputs", {}))})
    entry = {**entry, "output_paths": paths}
    atomic_write_text(cache_dir() / f"{key}.json", json.dumps(entry, indent=2, default=str))


def _absolute_paths(value: Any) -> list[Path]:
    """Every string inside ``value`` (strings, lists, mappings) that is an absolute path."""
    if isinstance(value, dict):
        return [p for item in value.values() for p in _absolute_paths(item)]
    if isinstance(value, list):
        return [p for item in value for p in _absolute_paths(item)]
    if isinstance(value, str) and value.startswith("/") and "\n" not in value:
        return [Path(value)]
    return []
