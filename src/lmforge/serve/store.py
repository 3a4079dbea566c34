"""The server's own state in SQLite (``$LMFORGE_HOME/serve.db``): API keys, sessions
and stored responses.

Keys are stored as SHA-256 hashes (they are 256-bit random tokens, so a slow hash adds
nothing); the plain key is shown once, at creation. Sessions hold a conversation's
system prompt and messages; stored responses (the Responses API's ``store``) hold the
response object and the conversation up to and including it, which a later request
continues with ``previous_response_id``. Both belong to the key that created them.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmforge.errors import LmforgeError
from lmforge.home import lmforge_home

KEY_PREFIX = "lmf-"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    shown TEXT NOT NULL,
    created REAL NOT NULL,
    revoked REAL
);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    owner TEXT,
    system TEXT,
    messages TEXT NOT NULL,
    metadata TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    owner TEXT,
    messages TEXT NOT NULL,
    response TEXT NOT NULL,
    created REAL NOT NULL
);
"""


def store_path() -> Path:
    return lmforge_home() / "serve.db"


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    shown: str  # the key's first characters, to recognise it in listings
    created: float
    revoked: float | None


@dataclass
class Session:
    id: str
    owner: str | None
    system: str | None
    messages: list[dict[str, str]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0
    updated: float = 0.0

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "session",
            "created": int(self.created),
            "system": self.system,
            "messages": self.messages,
            "metadata": self.metadata,
        }


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ServeStore:
    """Thread-safe access to ``serve.db`` (one connection, serialized by a lock)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or store_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def _run(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # --- keys -----------------------------------------------------------------------

    def create_key(self, name: str) -> tuple[ApiKey, str]:
        """A new key; returns its record and the plain key (shown this once)."""
        plain = KEY_PREFIX + secrets.token_urlsafe(32)
        record = ApiKey(uuid.uuid4().hex[:12], name, plain[:10] + "...", time.time(), None)
        self._run(
            "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, NULL)",
            record.id, name, _hash(plain), record.shown, record.created,
        )  # fmt: skip
        return record, plain

    def list_keys(self) -> list[ApiKey]:
        rows = self._run("SELECT id, name, shown, created, revoked FROM api_keys ORDER BY created")
        return [ApiKey(*row) for row in rows]

    def revoke_key(self, key_id_or_name: str) -> ApiKey:
        """Revoke a key by id or name.

        Raises:
            LmforgeError: no such active key, or the name matches several.
        """
        matches = [
            k for k in self.list_keys() if key_id_or_name in (k.id, k.name) and k.revoked is None
        ]
        if len(matches) != 1:
            problem = "no active key" if not matches else f"{len(matches)} active keys"
            raise LmforgeError(
                f"keys revoke: {problem} with id or name {key_id_or_name!r}; "
                "see `lmforge keys list` for ids."
            )
        self._run("UPDATE api_keys SET revoked = ? WHERE id = ?", time.time(), matches[0].id)
        return matches[0]

    def has_keys(self) -> bool:
        return bool(self._run("SELECT 1 FROM api_keys WHERE revoked IS NULL LIMIT 1"))

    def check_key(self, plain: str) -> ApiKey | None:
        """The active key record for ``plain``, or None."""
        rows = self._run(
            "SELECT id, name, shown, created, revoked FROM api_keys "
            "WHERE hash = ? AND revoked IS NULL",
            _hash(plain),
        )
        return ApiKey(*rows[0]) if rows else None

    # --- sessions -------------------------------------------------------------------

    def create_session(
        self, owner: str | None, system: str | None, metadata: dict[str, Any]
    ) -> Session:
        now = time.time()
        session = Session(f"sess_{uuid.uuid4().hex}", owner, system, [], metadata, now, now)
        self._run(
            "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?)",
            session.id, owner, system, "[]", json.dumps(metadata), now, now,
        )  # fmt: skip
        return session

    def get_session(self, session_id: str, owner: str | None) -> Session | None:
        """The session if it exists and belongs to ``owner``."""
        rows = self._run(
            "SELECT id, owner, system, messages, metadata, created, updated FROM sessions "
            "WHERE id = ?",
            session_id,
        )
        if not rows or rows[0][1] != owner:
            return None
        sid, own, system, messages, metadata, created, updated = rows[0]
        return Session(sid, own, system, json.loads(messages), json.loads(metadata),
                       created, updated)  # fmt: skip

    def save_messages(self, session: Session) -> None:
        session.updated = time.time()
        self._run(
            "UPDATE sessions SET messages = ?, metadata = ?, updated = ? WHERE id = ?",
            json.dumps(session.messages), json.dumps(session.metadata), session.updated, session.id,
        )  # fmt: skip

    def delete_session(self, session_id: str, owner: str | None) -> bool:
        if self.get_session(session_id, owner) is None:
            return False
        self._run("DELETE FROM sessions WHERE id = ?", session_id)
        return True

    # --- stored responses -----------------------------------------------------------

    def save_response(
        self, response: dict[str, Any], owner: str | None, messages: list[dict[str, Any]]
    ) -> None:
        """Keep ``response`` (its ``id`` is the key) and the chat ``messages`` it ends."""
        self._run(
            "INSERT INTO responses VALUES (?, ?, ?, ?, ?)",
            response["id"], owner, json.dumps(messages), json.dumps(response), time.time(),
        )  # fmt: skip

    def get_response(
        self, response_id: str, owner: str | None
    ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """The stored response and its conversation, if it exists and belongs to ``owner``."""
        rows = self._run(
            "SELECT owner, response, messages FROM responses WHERE id = ?", response_id
        )
        if not rows or rows[0][0] != owner:
            return None
        return json.loads(rows[0][1]), json.loads(rows[0][2])

    def delete_response(self, response_id: str, owner: str | None) -> bool:
        if self.get_response(response_id, owner) is None:
            return False
        self._run("DELETE FROM responses WHERE id = ?", response_id)
        return True
