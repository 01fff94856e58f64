"""Reading and editing the text of rows, whatever the dataset kind.

Filters and dedup look at ``row_texts`` (one string per row); edits (normalize, PII) go through
``map_texts``, which applies a ``str -> str`` function to every text column, and for chat to the content
of every message (roles are left alone).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa

from llmops.datasets.kinds import DatasetKind, text_columns

ROW_ID = "__row"
"""Internal column the executors add: the row's number in the parent version. Steps use it to name rows in
reports and global steps to say which rows to drop; it never reaches the output."""


def row_ids(table: pa.Table) -> list[int]:
    """The parent row number of each row (0..n-1 when the table has no ``ROW_ID`` column)."""
    if ROW_ID in table.column_names:
        return [int(v) for v in table.column(ROW_ID).to_pylist()]
    return list(range(table.num_rows))


def row_texts(table: pa.Table, kind: DatasetKind) -> list[str]:
    """One string per row: the text; prompt + newline + completion; or the chat contents joined by newlines.

    Unlike ``kinds.document_texts`` the chat form leaves out the "role: " prefixes, so that length, symbol
    and language measures see only what people wrote.
    """
    if kind is DatasetKind.chat:
        out = []
        for messages in table.column("messages").to_pylist():
            out.append("\n".join((m.get("content") or "") for m in messages or []))
        return out
    columns = [table.column(name).to_pylist() for name in text_columns(kind)]
    return ["\n".join(v or "" for v in values) for values in zip(*columns, strict=True)]


def map_texts(
    table: pa.Table, kind: DatasetKind, edit: Callable[[int, str], str]
) -> tuple[pa.Table, list[bool], list[tuple[str, str]]]:
    """Apply ``edit(row_index, text)`` to every text of every row.

    Returns the new table, whether each row changed, and per row the (before, after) of its first changed
    text (empty strings when unchanged), for report examples. Nulls stay null.
    """
    n = table.num_rows
    changed = [False] * n
    first: list[tuple[str, str]] = [("", "")] * n

    def apply(i: int, value: str | None) -> str | None:
        if value is None:
            return None
        new = edit(i, value)
        if new != value and not changed[i]:
            changed[i] = True
            first[i] = (value, new)
        return new

    for name in text_columns(kind):
        index = table.schema.get_field_index(name)
        field = table.schema.field(index)
        values = table.column(index).to_pylist()
        if kind is DatasetKind.chat:
            new_values: list[Any] = []
            for i, messages in enumerate(values):
                if messages is None:
                    new_values.append(None)
                    continue
                new_values.append([{**m, "content": apply(i, m.get("content"))} for m in messages])
        else:
            new_values = [apply(i, v) for i, v in enumerate(values)]
        table = table.set_column(index, field, pa.array(new_values, type=field.type))
    return table, changed, first
