"""The embedded SQLite database: WAL, busy timeout, foreign keys, and writers that queue instead of
failing with 'database is locked' (write transactions start with BEGIN IMMEDIATE)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from llmops.db.database import SQLITE_BUSY_TIMEOUT_MS, Database, normalize_url


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "t.db"


@pytest.fixture
def db(db_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{db_path}")
    with database.write() as session:
        session.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)"))
        session.execute(text("INSERT INTO counter (id, value) VALUES (1, 0)"))
        session.execute(text("CREATE TABLE parent (id INTEGER PRIMARY KEY)"))
        session.execute(text("CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id))"))
    yield database
    database.dispose()


def test_pragmas(db: Database) -> None:
    with db.read() as session:
        assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert session.execute(text("PRAGMA busy_timeout")).scalar() == SQLITE_BUSY_TIMEOUT_MS
        assert session.execute(text("PRAGMA foreign_keys")).scalar() == 1
    assert SQLITE_BUSY_TIMEOUT_MS >= 1000


def test_foreign_keys_are_enforced(db: Database) -> None:
    with pytest.raises(IntegrityError), db.write() as session:
        session.execute(text("INSERT INTO child (id, parent_id) VALUES (1, 42)"))


def test_write_transaction_takes_the_write_lock_at_begin(db: Database, db_path: Path) -> None:
    """Inside ``db.write()`` the write lock is held from the first statement, even a read."""
    with db.write() as session:
        session.execute(text("SELECT value FROM counter")).scalar()
        other = sqlite3.connect(db_path, timeout=0, isolation_level=None)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        finally:
            other.close()
    # A read transaction does not hold it.
    with db.read() as session:
        session.execute(text("SELECT value FROM counter")).scalar()
        other = sqlite3.connect(db_path, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
        finally:
            other.close()


def test_second_writer_waits_and_sees_the_first_writers_commit(db: Database) -> None:
    """With a deferred BEGIN the second writer would read a stale snapshot and then fail to write."""
    first_has_read = threading.Event()
    seen: dict[str, int] = {}
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with db.write() as session:
                value = session.execute(text("SELECT value FROM counter")).scalar_one()
                first_has_read.set()
                time.sleep(0.3)
                session.execute(text("UPDATE counter SET value = :v"), {"v": value + 1})
        except BaseException as exc:
            errors.append(exc)

    def second() -> None:
        try:
            assert first_has_read.wait(10)
            with db.write() as session:
                value = session.execute(text("SELECT value FROM counter")).scalar_one()
                seen["second"] = value
                session.execute(text("UPDATE counter SET value = :v"), {"v": value + 1})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert seen["second"] == 1
    with db.read() as session:
        assert session.execute(text("SELECT value FROM counter")).scalar_one() == 2


def test_concurrent_read_then_write_never_fails(db: Database) -> None:
    """Threads each doing read-then-write in ``db.write()``: no 'database is locked', no lost update."""
    threads_n, rounds = 4, 25
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads_n)

    def work() -> None:
        try:
            barrier.wait(timeout=10)
            for _ in range(rounds):
                with db.write() as session:
                    value = session.execute(text("SELECT value FROM counter")).scalar_one()
                    time.sleep(0.001)
                    session.execute(text("UPDATE counter SET value = :v"), {"v": value + 1})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    with db.read() as session:
        assert session.execute(text("SELECT value FROM counter")).scalar_one() == threads_n * rounds


def test_failed_write_rolls_back(db: Database) -> None:
    with pytest.raises(RuntimeError), db.write() as session:
        session.execute(text("UPDATE counter SET value = 99"))
        raise RuntimeError("boom")
    with db.read() as session:
        assert session.execute(text("SELECT value FROM counter")).scalar_one() == 0


def test_postgres_urls_use_psycopg3() -> None:
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"


def test_postgres_engine_uses_psycopg3(pg_url: str) -> None:
    database = Database(pg_url.replace("postgresql+psycopg://", "postgresql://"))
    try:
        assert database.engine.dialect.driver == "psycopg"
        database.ping()
    finally:
        database.dispose()
