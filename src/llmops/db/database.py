"""The metadata database: engine set-up, read and write sessions, readiness.

SQLite is the embedded default: WAL journal, a busy timeout, foreign keys on, and write transactions
opened with ``BEGIN IMMEDIATE`` so that two writers queue on the lock instead of failing on a stale
snapshot. PostgreSQL goes through psycopg 3. Everything else is plain SQLAlchemy 2.

Text containing a NUL character is refused on every backend with ``InvalidInput``: PostgreSQL cannot
store it (the driver raises a ``DataError``, which would surface as a 500), and both backends must
behave alike. Checking the bound parameters of each statement covers every domain, the HTTP API and the
Python API at once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import sqlite3
import time
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from llmops.errors import InvalidInput, Unavailable

SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalize_url(url: str) -> str:
    """Pin PostgreSQL URLs to the psycopg 3 driver."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class Database:
    """One engine and its session factories."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = normalize_url(url)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"future": True}
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine)
        _refuse_nul_characters(self.engine)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(self.engine.execution_options(llmops_write=True), expire_on_commit=False)

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reads; closing it ends (rolls back) the transaction, and loaded objects stay
        readable after the block."""
        with self._read() as session:
            yield session

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose work commits as one transaction, or not at all."""
        with self._write() as session, session.begin():
            yield session

    def lock(self, session: Session, name: str) -> None:
        """Serialize a critical section across processes for the rest of the transaction.

        PostgreSQL takes a transaction-scoped advisory lock; SQLite write transactions already hold the
        database write lock (BEGIN IMMEDIATE).
        """
        if self.dialect == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(name.encode())})

    def ping(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # any driver error means "not reachable"
            raise Unavailable(f"metadata database unreachable: {type(exc).__name__}: {exc}") from exc

    def dispose(self) -> None:
        self.engine.dispose()


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # Switching a fresh file to WAL needs an exclusive lock, and SQLite answers "database is locked"
        # at once (no busy wait) while another connection opens the same fresh file: retry briefly.
        for attempt in range(100):
            try:
                cur.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 99:
                    raise
                time.sleep(0.05)
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get("llmops_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


_PLAIN = (int, float, bool, bytes, dt.datetime, dt.date, type(None))
_BIND_SUFFIX = re.compile(r"_\d+$")


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, _PLAIN):
        return False
    if isinstance(value, Mapping):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    wrapped = getattr(value, "obj", None)  # psycopg's Json/Jsonb wrappers
    return wrapped is not None and _has_nul(wrapped)


def _row_has_nul(values: Any) -> bool:
    for value in values:  # a plain loop: this runs for every row of every batch insert
        if value.__class__ is str:
            if "\x00" in value:
                return True
        elif value.__class__ not in _PLAIN and _has_nul(value):
            return True
    return False


def _refuse_nul_characters(engine: Engine) -> None:
    @event.listens_for(engine, "before_cursor_execute")
    def _check(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        rows = parameters if executemany else (parameters,)
        if isinstance(parameters, Mapping) or (parameters and not isinstance(parameters[0], Mapping | list | tuple)):
            rows = (parameters,)  # a multi-row VALUES batch (insertmanyvalues) hands over one flat row
        for row in rows:
            if not _row_has_nul(row.values() if isinstance(row, Mapping) else row or ()):
                continue
            if isinstance(row, Mapping):
                name = next(str(k) for k, v in row.items() if _has_nul(v))
            else:  # positional parameters (SQLite): recover the name from the compiled statement
                names = getattr(getattr(context, "compiled", None), "positiontup", None) or []
                i = next(i for i, v in enumerate(row) if _has_nul(v))
                name = str(names[i]) if i < len(names) else "value"
            field = _BIND_SUFFIX.sub("", name)
            field = "identifier" if field == "pk" else field
            raise InvalidInput(
                f"{field}: text contains a NUL character (\\x00), which cannot be stored",
                details={"field": field, "rule": "no_nul_characters"},
            )
