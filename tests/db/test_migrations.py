"""Alembic migrations: the checked-in revisions build exactly the schema the ORM declares, on SQLite and
PostgreSQL, and applying them is idempotent and safe when two processes start at once."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, String, Table, inspect

from llmops.db.database import Database
from llmops.db.migrate import current_revision, head_revision, upgrade
from llmops.db.schema import metadata
from llmops.platform import Platform
from llmops.settings import Settings


def schema_diffs(db: Database, target: MetaData = metadata) -> list[Any]:
    """Differences between the live schema and ``target`` as Alembic autogenerate sees them."""
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        return list(compare_metadata(ctx, target))


@pytest.fixture
def db(database_url: str) -> Any:
    database = Database(database_url)
    yield database
    database.dispose()


def test_fresh_database_has_no_revision(db: Database) -> None:
    # Sanity for the tests below: an empty database is not at head, and differs from the ORM.
    assert current_revision(db) is None
    assert schema_diffs(db), "an empty database must differ from the ORM metadata"


def test_upgrade_builds_exactly_the_orm_schema(db: Database) -> None:
    assert upgrade(db) == head_revision()
    assert schema_diffs(db) == []
    tables = set(inspect(db.engine).get_table_names())
    assert set(metadata.tables) <= tables
    assert "alembic_version" in tables


def test_comparison_detects_a_drifted_model(db: Database) -> None:
    """The zero-diff check above could fail: a column the migrations lack shows up as a diff."""
    upgrade(db)
    drifted = MetaData()
    for table in metadata.tables.values():
        table.to_metadata(drifted)
    Table("runs_extra", drifted, Column("id", Integer, primary_key=True), Column("note", String(10)))
    diffs = schema_diffs(db, drifted)
    assert any(d[0] == "add_table" and d[1].name == "runs_extra" for d in diffs)


def test_upgrade_is_idempotent(db: Database) -> None:
    head = head_revision()
    assert upgrade(db) == head
    assert upgrade(db) == head
    assert current_revision(db) == head
    assert schema_diffs(db) == []


def test_platform_start_applies_migrations(settings: Settings) -> None:
    platform = Platform(settings)
    try:
        assert current_revision(platform.db) == head_revision()
        assert schema_diffs(platform.db) == []
    finally:
        platform.close()


def test_platform_without_migrate_leaves_schema_alone(tmp_path: Any) -> None:
    platform = Platform(Settings(home=tmp_path / "home"), migrate=False)
    try:
        assert current_revision(platform.db) is None
    finally:
        platform.close()


def test_concurrent_upgrades_on_a_fresh_database(database_url: str) -> None:
    """Two processes starting at once (here two engines in two threads) both succeed."""
    databases = [Database(database_url), Database(database_url)]
    barrier = threading.Barrier(len(databases))
    results: list[str | None] = []
    errors: list[BaseException] = []

    def start(database: Database) -> None:
        try:
            barrier.wait(timeout=10)
            results.append(upgrade(database))
        except BaseException as exc:  # reported below with the thread's error
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(d,)) for d in databases]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    try:
        assert errors == []
        assert results == [head_revision()] * len(databases)
        assert current_revision(databases[0]) == head_revision()
        assert schema_diffs(databases[0]) == []
    finally:
        for d in databases:
            d.dispose()
