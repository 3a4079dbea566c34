"""Where lmforge keeps its state, and how it writes it safely.

One variable, ``LMFORGE_HOME`` (default ``~/.lmforge``), moves all state, so tests and
users can point it at a temporary directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def lmforge_home() -> Path:
    """Return ``$LMFORGE_HOME`` (default ``~/.lmforge``), created if missing."""
    home = Path(os.environ.get("LMFORGE_HOME") or Path.home() / ".lmforge").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home.resolve()


def models_dir() -> Path:
    """Directory holding converted zoo models (``$LMFORGE_HOME/models``)."""
    path = lmforge_home() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    """Directory holding run outputs (``$LMFORGE_HOME/runs``)."""
    path = lmforge_home() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling directory that replaces ``final`` only on success.

    A crash or exception leaves ``final`` as it was (absent or the old version) and
    removes the partial temporary directory, so readers never see a half-written
    artifact.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the finished artifact is a normal dir
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 4 MB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()
