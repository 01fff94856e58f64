"""``llmops config …`` and ``llmops db …``."""

from __future__ import annotations

import typer

from llmops.cli.context import console, print_json, print_table, state
from llmops.db.database import Database
from llmops.db.migrate import current_revision, head_revision, upgrade

config_app = typer.Typer(help="Effective configuration.", no_args_is_help=True)
db_app = typer.Typer(help="Metadata database schema.", no_args_is_help=True)


@config_app.command("show")
def config_show(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Print the effective settings (environment LLMOPS_* and defaults), secrets masked."""
    values = state(ctx).settings().masked()
    if as_json:
        print_json(values)
    else:
        print_table(
            "llmops settings",
            ["setting", "environment variable", "value"],
            [(k, f"LLMOPS_{k.upper()}", v) for k, v in values.items()],
        )


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context, revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Apply pending migrations (also done automatically on start)."""
    db = Database(state(ctx).settings().database_url)
    try:
        before = current_revision(db)
        after = upgrade(db, revision)
    finally:
        db.dispose()
    console.print(f"database at revision [bold]{after}[/] (was {before or 'empty'})")


@db_app.command("current")
def db_current(ctx: typer.Context) -> None:
    """Show the schema revision of the database and of this code."""
    db = Database(state(ctx).settings().database_url)
    try:
        console.print(f"database: {current_revision(db) or 'empty'}  code head: {head_revision()}")
    finally:
        db.dispose()
