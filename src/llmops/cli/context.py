"""What every command shares: the platform it acts on, the acting identity, and output helpers.

The CLI talks to the database directly and acts as the bootstrap administrator (``local_admin``):
whoever can reach the metadata database and blob store already controls the installation.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from llmops.platform import Platform
from llmops.security.actor import Actor, local_admin
from llmops.settings import Settings

# Piped output is not cut to 80 columns: tables stay one row per record for grep and less.
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


@dataclass
class CliState:
    overrides: dict[str, Any] = field(default_factory=dict)
    _platform: Platform | None = None

    def settings(self) -> Settings:
        return Settings(**self.overrides)

    def platform(self) -> Platform:
        if self._platform is None:
            self._platform = Platform(self.settings())
        return self._platform

    @property
    def actor(self) -> Actor:
        return local_admin(via="cli")

    def close(self) -> None:
        if self._platform is not None:
            self._platform.close()
            self._platform = None


def state(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


def to_jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    return value


def print_json(value: Any) -> None:
    typer.echo(json.dumps(to_jsonable(value), indent=2, default=str))


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    table = Table(title=title, show_lines=False, header_style="bold")
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)


def human_size(n: int) -> str:
    """Bytes in binary units, for tables."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{n} B"
        value /= 1024
    return f"{n} B"


def short_time(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""
