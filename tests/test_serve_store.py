"""The serve store (serve/store.py) on both of its databases: SQLite and a real PostgreSQL
server (Debian's, started on a loopback port for these tests). Two ``ServeStore`` objects
on one database stand for two replicas: what one writes, the other sees."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lmforge.errors import LmforgeError
from lmforge.serve.store import ServeStore, store_url
from tests.servers import new_database, postgres_server


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty database of each kind."""
    if request.param == "sqlite":
        return str(tmp_path / "serve.db")
    return new_database(request.getfixturevalue("postgres"))


@pytest.fixture
def replicas(url: str) -> Iterator[tuple[ServeStore, ServeStore]]:
    first, second = ServeStore(url), ServeStore(url)
    yield first, second
    first.close()
    second.close()


def test_keys_created_or_revoked_on_one_replica_hold_on_the_other(
    replicas: tuple[ServeStore, ServeStore],
) -> None:
    one, other = replicas
    assert not other.has_keys()
    record, plain = one.create_key("web")
    assert other.has_keys() and other.check_key(plain) == record
    assert other.check_key(plain + "x") is None
    assert [k.name for k in other.list_keys()] == ["web"]
    other.revoke_key("web")
    assert one.check_key(plain) is None and not one.has_keys()
    with pytest.raises(LmforgeError, match="no active key with id or name 'web'"):
        one.revoke_key("web")


def test_concurrent_turns_on_one_session_from_two_replicas_are_all_kept(
    replicas: tuple[ServeStore, ServeStore],
) -> None:
    """Each replica loads the session, answers, and appends its turn, 20 times, both
    loading before either saves: every turn is kept whole (a question next to its
    answer), none twice."""
    one, other = replicas
    session = one.create_session("owner", "You are Nessa.", {"channel": "web"})
    both_loaded = threading.Barrier(2, timeout=30)

    def answer(store: ServeStore, name: str) -> None:
        for turn in range(20):
            loaded = store.get_session(session.id, "owner")
            assert loaded is not None
            both_loaded.wait()  # each answers from the conversation before the other's turn
            loaded.messages += [{"role": "user", "content": f"{name} {turn}?"},
                                {"role": "assistant", "content": f"{name} {turn}."}]  # fmt: skip
            store.save_messages(loaded)

    threads = [threading.Thread(target=answer, args=(store, name))
               for store, name in ((one, "a"), (other, "b"))]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stored = other.get_session(session.id, "owner")
    assert stored is not None and stored.system == "You are Nessa."
    questions, answers = stored.messages[::2], stored.messages[1::2]
    pairs = [(q["content"], a["content"]) for q, a in zip(questions, answers, strict=True)]
    assert sorted(pairs) == sorted((f"{n} {t}?", f"{n} {t}.") for n in "ab" for t in range(20))
    assert one.get_session(session.id, "someone else") is None
    assert other.delete_session(session.id, "owner")
    assert one.get_session(session.id, "owner") is None


def test_stored_responses_belong_to_their_key(replicas: tuple[ServeStore, ServeStore]) -> None:
    one, other = replicas
    conversation = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    one.save_response({"id": "resp_1", "status": "completed"}, "owner", conversation)
    assert other.get_response("resp_1", "owner") == ({"id": "resp_1", "status": "completed"},
                                                     conversation)  # fmt: skip
    assert other.get_response("resp_1", "someone else") is None
    assert not other.delete_response("resp_1", "someone else")
    assert other.delete_response("resp_1", "owner") and one.get_response("resp_1", "owner") is None


def test_the_rate_limit_is_shared_by_the_replicas(replicas: tuple[ServeStore, ServeStore]) -> None:
    one, other = replicas
    taken = [store.take_request("key-1", 4) for store in (one, other, one, other)]
    assert taken == [0.0] * 4  # a burst of the whole minute's 4, across both
    wait = one.take_request("key-1", 4)
    assert 14.0 < wait <= 15.0  # a request comes back every 15 s
    assert other.take_request("key-2", 4) == 0.0  # each caller has its own bucket


def test_a_sqlite_file_from_before_the_migrations_is_taken_over(tmp_path: Path) -> None:
    """serve.db files written before the store had migrations keep their keys and sessions."""
    path = tmp_path / "serve.db"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE api_keys (id TEXT PRIMARY KEY, name TEXT NOT NULL, hash TEXT NOT NULL
            UNIQUE, shown TEXT NOT NULL, created REAL NOT NULL, revoked REAL);
        CREATE TABLE sessions (id TEXT PRIMARY KEY, owner TEXT, system TEXT, messages TEXT
            NOT NULL, metadata TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL);
        INSERT INTO api_keys VALUES ('k1', 'old', 'h', 'lmf-abc...', 1.0, NULL);
        INSERT INTO sessions VALUES ('sess_1', 'k1', 'S', '[{"role": "user", "content": "x"}]',
            '{}', 1.0, 1.0);
    """)  # fmt: skip
    old.commit()
    old.close()
    store = ServeStore(path)
    assert [k.name for k in store.list_keys()] == ["old"]
    session = store.get_session("sess_1", "k1")
    assert session is not None and session.messages == [{"role": "user", "content": "x"}]
    store.save_response({"id": "resp_1"}, "k1", [])  # the tables added since exist
    assert store.take_request("k1", 10) == 0.0


def test_bad_store_urls_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(LmforgeError, match=r"--store / LMFORGE_STORE_URL: 'nope://' is not"):
        ServeStore("nope://")
    from tests.servers import free_port

    unreachable = f"postgresql://lmforge:secret@127.0.0.1:{free_port()}/db"
    with pytest.raises(LmforgeError, match="cannot open it") as error:
        ServeStore(unreachable)
    assert "secret" not in str(error.value) and "***" in str(error.value)
    assert store_url(tmp_path / "s.db") == f"sqlite:///{tmp_path / 's.db'}"
    assert store_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"


def test_keys_commands_take_the_store_by_flag_or_variable(
    postgres: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from typer.testing import CliRunner

    from lmforge.cli.main import app

    shared = new_database(postgres)
    created = CliRunner().invoke(app, ["keys", "create", "ops", "--store", shared])
    assert created.exit_code == 0, created.output
    assert ServeStore(shared).check_key(created.stdout.strip()) is not None
    monkeypatch.setenv("LMFORGE_STORE_URL", shared)
    listed = CliRunner().invoke(app, ["keys", "list", "--json"])
    assert [k["name"] for k in json.loads(listed.stdout)] == ["ops"]
    assert CliRunner().invoke(app, ["keys", "revoke", "ops"]).exit_code == 0
    assert not ServeStore(shared).has_keys()
    wrong = CliRunner().invoke(app, ["keys", "list", "--store", "nope://"])
    assert wrong.exit_code != 0 and "is not a database URL" in wrong.output
