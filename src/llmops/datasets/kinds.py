"""The three row shapes a dataset version can have, and how each turns into plain text.

Every part of the platform that reads dataset text (stats, transforms, training, tokenizer
statistics) goes through `document_texts`, so that "the text of a row" means one thing everywhere.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import pyarrow as pa


class DatasetKind(StrEnum):
    """Schema kind of a dataset version; decides which columns must exist."""

    text = "text"
    prompt_completion = "prompt_completion"
    chat = "chat"


_TEXT_COLUMNS: dict[DatasetKind, tuple[str, ...]] = {
    DatasetKind.text: ("text",),
    DatasetKind.prompt_completion: ("prompt", "completion"),
    DatasetKind.chat: ("messages",),
}

MESSAGE_TYPE = pa.struct([pa.field("role", pa.string()), pa.field("content", pa.string())])
"""Arrow type of one chat message; `messages` is a list of these."""


def text_columns(kind: DatasetKind | str) -> tuple[str, ...]:
    """The columns that hold text for `kind` (the required columns of its schema)."""
    return _TEXT_COLUMNS[DatasetKind(kind)]


def required_schema(kind: DatasetKind | str) -> list[pa.Field]:
    """The Arrow fields a version of `kind` must have, in canonical order."""
    kind = DatasetKind(kind)
    if kind is DatasetKind.chat:
        return [pa.field("messages", pa.list_(MESSAGE_TYPE))]
    return [pa.field(name, pa.string()) for name in _TEXT_COLUMNS[kind]]


def _chat_text(messages: list[dict[str, Any]] | None) -> str:
    if not messages:
        return ""
    return "\n".join(f"{m.get('role') or ''}: {m.get('content') or ''}" for m in messages)


def document_texts(batch: pa.RecordBatch | pa.Table, kind: DatasetKind | str) -> list[str]:
    """One string per row: the text, prompt + "\\n" + completion, or chat messages as "role: content" lines.

    Nulls count as empty strings so that the result always has one entry per row.
    """
    kind = DatasetKind(kind)
    if kind is DatasetKind.text:
        return [t or "" for t in batch.column("text").to_pylist()]
    if kind is DatasetKind.prompt_completion:
        prompts = batch.column("prompt").to_pylist()
        completions = batch.column("completion").to_pylist()
        return [f"{p or ''}\n{c or ''}" for p, c in zip(prompts, completions, strict=True)]
    return [_chat_text(m) for m in batch.column("messages").to_pylist()]
