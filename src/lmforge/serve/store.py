"""The server's own state: API keys, sessions, stored responses and rate-limit buckets, in
a SQL database chosen by URL.

By default it is SQLite at ``$LMFORGE_HOME/serve.db`` (one machine). With ``--store
postgresql://USER:PASSWORD@HOST:PORT/DB`` (or ``LMFORGE_STORE_URL``) it is a PostgreSQL
database that several ``lmforge serve`` replicas share: a conversation continues on any of
them, a key revoked through one is refused by all, and the rate limit counts every
replica's requests. Both go through SQLAlchemy with the same tables; the schema is managed
by Alembic migrations (``serve/migrations``), applied when a store opens (a SQLite file
written before the migrations existed is taken over as it is).

Keys are stored as SHA-256 hashes (they are 256-bit random tokens, so a slow hash adds
nothing); the plain key is shown once, at creation. Sessions hold a conversation's
system prompt and messages; a finished turn is appended to the stored messages by one
UPDATE (no read before it), so two replicas answering the same session at once both keep
their turn. Stored responses (the Responses API's ``store``) hold the
response object and the conversation up to and including it, which a later request
continues with ``previous_response_id``. Both belong to the key that created them.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from lmforge.errors import LmforgeError
from lmforge.home import lmforge_home

KEY_PREFIX = "lmf-"
STORE_URL_VARIABLE = "LMFORGE_STORE_URL"
VERSION_TABLE = "lmforge_serve_version"  # Alembic's, named so that MLflow's can share a DB
_MIGRATIONS = Path(__file__).parent / "migrations"

metadata = sa.MetaData()
api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("hash", sa.Text, nullable=False, unique=True),
    sa.Column("shown", sa.Text, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("revoked", sa.Float),
)  # fmt: skip
sessions = sa.Table(
    "sessions", metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("owner", sa.Text),
    sa.Column("system", sa.Text),
    sa.Column("messages", sa.Text, nullable=False),  # JSON list of {"role", "content"}
    sa.Column("metadata", sa.Text, nullable=False),  # JSON object
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
)  # fmt: skip
responses = sa.Table(
    "responses", metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("owner", sa.Text),
    sa.Column("messages", sa.Text, nullable=False),
    sa.Column("response", sa.Text, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
)  # fmt: skip
rate_limits = sa.Table(
    "rate_limits", metadata,
    sa.Column("caller", sa.Text, primary_key=True),
    sa.Column("tokens", sa.Float, nullable=False),  # requests left in the bucket
    sa.Column("updated", sa.Float, nullable=False),  # wall-clock time: replicas share it
)  # fmt: skip


def store_path() -> Path:
    return lmforge_home() / "serve.db"


def store_url(url: str | Path | None = None) -> str:
    """The store's SQLAlchemy URL: ``url`` (a URL, or a SQLite file's path), else
    ``LMFORGE_STORE_URL``, else SQLite at ``$LMFORGE_HOME/serve.db``. ``postgresql://``
    URLs are read with psycopg 3."""
    url = url or os.environ.get(STORE_URL_VARIABLE) or store_path()
    if isinstance(url, Path) or "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    return url


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
    stored: int = 0  # how many of ``messages`` the store holds: the rest are new

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
    """Keys, sessions, stored responses and rate limits in the database at ``url``
    (``store_url``). Thread-safe: each operation is one statement, or one transaction, on
    a pooled connection.

    Raises:
        LmforgeError: the URL is malformed, its driver is missing, or the database
            cannot be reached or migrated.
    """

    def __init__(self, url: str | Path | None = None) -> None:
        self.url = store_url(url)
        try:
            parsed = make_url(self.url)
            self.shown_url = parsed.render_as_string(hide_password=True)
            if parsed.get_backend_name() == "sqlite" and parsed.database:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            self._engine = _engine(self.url)
        except ArgumentError as error:  # also an unknown database kind
            raise LmforgeError(
                f"--store / {STORE_URL_VARIABLE}: {url!r} is not a database URL ({error}); "
                "give postgresql://USER:PASSWORD@HOST:PORT/DB or a SQLite file's path."
            ) from None
        try:
            _migrate(self._engine)
        except (OperationalError, ImportError) as error:
            raise LmforgeError(
                f"store {self.shown_url}: cannot open it ({str(error).splitlines()[0]}); "
                "check that the database server runs and the URL's user, password and "
                "database are right."
            ) from None
        self._single = _single_statements(self._engine)
        # called with each operation's name and seconds (the server's /metrics)
        self.observe: Callable[[str, float], None] | None = None

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _statement(self, operation: str) -> Iterator[Connection]:
        """A connection for ``operation``'s one statement, which is atomic on its own, so it
        runs without a transaction around it; timed for ``observe``."""
        with self._timed(operation, self._single) as connection:
            yield connection

    @contextmanager
    def _transaction(self, operation: str) -> Iterator[Connection]:
        """One transaction of several statements, timed for ``observe``."""
        with self._timed(operation, self._engine) as connection:
            yield connection

    @contextmanager
    def _timed(self, operation: str, engine: Engine) -> Iterator[Connection]:
        started = time.perf_counter()
        with engine.begin() as connection:
            yield connection
        if self.observe is not None:
            self.observe(operation, time.perf_counter() - started)

    # --- keys -----------------------------------------------------------------------

    def create_key(self, name: str) -> tuple[ApiKey, str]:
        """A new key; returns its record and the plain key (shown this once)."""
        plain = KEY_PREFIX + secrets.token_urlsafe(32)
        record = ApiKey(uuid.uuid4().hex[:12], name, plain[:10] + "...", time.time(), None)
        with self._statement("create_key") as db:
            row = {"id": record.id, "name": name, "hash": _hash(plain), "shown": record.shown,
                   "created": record.created}  # fmt: skip
            db.execute(api_keys.insert().values(**row))
        return record, plain

    def list_keys(self) -> list[ApiKey]:
        query = sa.select(api_keys.c.id, api_keys.c.name, api_keys.c.shown, api_keys.c.created,
                          api_keys.c.revoked).order_by(api_keys.c.created)  # fmt: skip
        with self._statement("list_keys") as db:
            return [ApiKey(*row) for row in db.execute(query)]

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
        with self._statement("revoke_key") as db:
            db.execute(api_keys.update().where(api_keys.c.id == matches[0].id)
                       .values(revoked=time.time()))  # fmt: skip
        return matches[0]

    def has_keys(self) -> bool:
        query = sa.select(api_keys.c.id).where(api_keys.c.revoked.is_(None)).limit(1)
        with self._statement("has_keys") as db:
            return db.execute(query).first() is not None

    def check_key(self, plain: str) -> ApiKey | None:
        """The active key record for ``plain``, or None."""
        query = sa.select(api_keys.c.id, api_keys.c.name, api_keys.c.shown, api_keys.c.created,
                          api_keys.c.revoked).where(api_keys.c.hash == _hash(plain),
                                                    api_keys.c.revoked.is_(None))  # fmt: skip
        with self._statement("check_key") as db:
            row = db.execute(query).first()
        return ApiKey(*row) if row else None

    # --- sessions -------------------------------------------------------------------

    def create_session(
        self, owner: str | None, system: str | None, metadata: dict[str, Any]
    ) -> Session:
        now = time.time()
        session = Session(f"sess_{uuid.uuid4().hex}", owner, system, [], metadata, now, now)
        with self._statement("create_session") as db:
            db.execute(sessions.insert().values(id=session.id, owner=owner, system=system,
                                                messages="[]", metadata=json.dumps(metadata),
                                                created=now, updated=now))  # fmt: skip
        return session

    def get_session(self, session_id: str, owner: str | None) -> Session | None:
        """The session if it exists and belongs to ``owner``."""
        with self._statement("get_session") as db:
            row = db.execute(sa.select(sessions).where(sessions.c.id == session_id)).first()
        if row is None or row.owner != owner:
            return None
        messages = json.loads(row.messages)
        return Session(row.id, row.owner, row.system, messages, json.loads(row.metadata),
                       row.created, row.updated, stored=len(messages))  # fmt: skip

    def save_messages(self, session: Session) -> None:
        """Append the session's new messages (those after the ``stored`` ones) to the
        stored conversation, and store its metadata, in one UPDATE that reads nothing
        back: a turn that another replica stored meanwhile is kept, and comes first
        (PostgreSQL applies the append to the row's newest version; SQLite's write lock
        orders the two)."""
        new = session.messages[session.stored :]
        session.updated = time.time()
        stored = sessions.c.messages
        if new:  # the stored JSON list, its closing bracket replaced by the new items
            tail = json.dumps(new)[1:]  # the new items and ']'
            opened = sa.func.substr(stored, 1, sa.func.length(stored) - 1, type_=sa.Text)
            messages = sa.case((stored == "[]", sa.literal("[")), else_=opened + ", ") + tail
        else:
            messages = stored
        update = sessions.update().where(sessions.c.id == session.id).values(
            messages=messages, metadata=json.dumps(session.metadata), updated=session.updated
        )  # fmt: skip
        with self._statement("save_messages") as db:
            found = db.execute(update).rowcount
        if not found:
            raise LmforgeError(f"session {session.id} was deleted while it was answered")
        session.stored = len(session.messages)

    def delete_session(self, session_id: str, owner: str | None) -> bool:
        if self.get_session(session_id, owner) is None:
            return False
        with self._statement("delete_session") as db:
            db.execute(sessions.delete().where(sessions.c.id == session_id))
        return True

    # --- stored responses -----------------------------------------------------------

    def save_response(
        self, response: dict[str, Any], owner: str | None, messages: list[dict[str, Any]]
    ) -> None:
        """Keep ``response`` (its ``id`` is the key) and the chat ``messages`` it ends."""
        with self._statement("save_response") as db:
            db.execute(responses.insert().values(id=response["id"], owner=owner,
                                                 messages=json.dumps(messages),
                                                 response=json.dumps(response),
                                                 created=time.time()))  # fmt: skip

    def get_response(
        self, response_id: str, owner: str | None
    ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """The stored response and its conversation, if it exists and belongs to ``owner``."""
        query = sa.select(responses).where(responses.c.id == response_id)
        with self._statement("get_response") as db:
            row = db.execute(query).first()
        if row is None or row.owner != owner:
            return None
        return json.loads(row.response), json.loads(row.messages)

    def delete_response(self, response_id: str, owner: str | None) -> bool:
        if self.get_response(response_id, owner) is None:
            return False
        with self._statement("delete_response") as db:
            db.execute(responses.delete().where(responses.c.id == response_id))
        return True

    # --- rate limits ----------------------------------------------------------------

    def take_request(self, caller: str, per_minute: int) -> float:
        """Take one request from ``caller``'s token bucket (``per_minute`` requests a
        minute, bursts up to that many), shared by every server on this store.

        Returns:
            0 when the request may go ahead, else the seconds until it may.
        """
        rate, now = per_minute / 60.0, time.time()  # tokens per second
        with self._transaction("take_request") as db:
            db.execute(_insert_new(self._engine, rate_limits, caller=caller,
                                   tokens=float(per_minute), updated=now))  # fmt: skip
            locked = sa.select(rate_limits.c.tokens, rate_limits.c.updated)
            row = db.execute(locked.where(rate_limits.c.caller == caller).with_for_update()).one()
            tokens = min(float(per_minute), row.tokens + max(now - row.updated, 0.0) * rate)
            wait = (1.0 - tokens) / rate if tokens < 1.0 else 0.0
            db.execute(rate_limits.update().where(rate_limits.c.caller == caller)
                       .values(tokens=tokens if wait else tokens - 1.0, updated=now))  # fmt: skip
        return wait


def _insert_new(engine: Engine, table: sa.Table, **values: Any) -> Any:
    """An INSERT that does nothing when the row's key is taken (both dialects' upsert)."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    return insert(table).values(**values).on_conflict_do_nothing()


def _engine(url: str) -> Engine:
    """An engine for ``url``. SQLite: WAL, a 30 s busy timeout, and write transactions
    that take the write lock when they begin (``BEGIN IMMEDIATE``), so two processes that
    read and then write a row wait for each other instead of failing. Commits are not
    flushed to disk one by one (``synchronous=NORMAL``, WAL's usual setting): a committed
    turn survives the server process being killed, and the database stays whole, but the
    last commits can be lost if the machine itself loses power."""
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True)
    engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _connect(connection: Any, _: Any) -> None:
        connection.isolation_level = None  # transactions are begun below, not by the driver
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")

    @sa.event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        if not connection.get_execution_options().get("single_statement", False):
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _single_statements(engine: Engine) -> Engine:
    """``engine`` for operations of one statement, run without BEGIN and COMMIT around it:
    on PostgreSQL in autocommit (BEGIN and COMMIT would be two more round trips to the
    server), on SQLite without the ``BEGIN IMMEDIATE`` of ``_engine``. Each is a chance for
    the decode thread to take the CPU and the GIL from the server's event loop."""
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="AUTOCOMMIT")
    return engine.execution_options(single_statement=True)


def _migrate(engine: Engine) -> None:
    """Bring the database's schema to the newest migration (``serve/migrations``). On
    PostgreSQL an advisory lock keeps replicas that start together from migrating twice."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(7406500)"))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
