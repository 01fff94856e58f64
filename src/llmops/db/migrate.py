"""Alembic migrations, applied on start and by ``llmops db upgrade``.

Concurrent starts are safe: PostgreSQL takes an advisory lock, SQLite runs the upgrade inside a
``BEGIN IMMEDIATE`` transaction (DDL is transactional on both).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from llmops.db.database import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(db: Database, revision: str = "head") -> str | None:
    """Bring the schema to ``revision``; returns the revision now current."""
    if revision == "head" and current_revision(db) == head_revision():
        return head_revision()
    cfg = alembic_config()
    with db.engine.execution_options(llmops_write=True).begin() as conn:
        if db.dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(8675309)"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return current_revision(db)
