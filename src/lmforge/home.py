"""Where lmforge keeps its state, and how it writes it safely.

One variable, ``LMFORGE_HOME`` (default ``~/.lmforge``), moves all state, so tests and
users can point it at a temporary directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
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


# Temp files and folders are created by name with mode 0o666 / 0o777, so the kernel applies
# the umask (and any default ACL) exactly as it does to any new file: the renamed result
# gets the mode the user expects (0644 / 0755 under umask 022, 0600 / 0700 under 077).
# tempfile.mkstemp and mkdtemp create private (0600 / 0700) entries instead, and a rename
# keeps that mode. Reading the umask to chmod afterwards would need os.umask(0) and a
# restore, which changes it for every thread of the process in between, so a file another
# thread creates meanwhile would be world-writable; creating with the open mode avoids that.
_NEW_FILE_MODE = 0o666
_NEW_DIR_MODE = 0o777


def _new_sibling(final: Path, create: Callable[[Path], None], suffix: str = "") -> Path:
    """Create a uniquely named hidden sibling of ``final`` with ``create`` and return it."""
    for _ in range(100):
        candidate = final.with_name(f".{final.name}.tmp-{secrets.token_hex(4)}{suffix}")
        try:
            create(candidate)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"no free temporary name beside {final}")


def _create_file(path: Path) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _NEW_FILE_MODE))


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling directory that replaces ``final`` only on success.

    A crash or exception leaves ``final`` as it was (absent or the old version) and
    removes the partial temporary directory, so readers never see a half-written
    artifact. The directory gets the mode the umask gives a new directory.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_sibling(final, lambda path: path.mkdir(_NEW_DIR_MODE))
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


@contextlib.contextmanager
def atomic_file(path: Path, suffix: str = "") -> Iterator[Path]:
    """Yield an empty temporary file beside ``path`` that replaces ``path`` on success.

    Write it by name (a library that takes a path can write it); on an exception it is
    removed and ``path`` stays as it was. The final file gets the mode the umask gives
    a newly created file (0644 under umask 022), not mkstemp's private 0600.

    Args:
        path: The file to write.
        suffix: Ending of the temporary name, for writers that pick a format from it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_sibling(path, _create_file, suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temp file and a rename."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 4 MB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()
