"""What a transform step did: counts plus a few examples, mergeable across batches and workers.

A report is folded batch by batch in row order, keeping the first ``MAX_EXAMPLES`` examples. Because merging
is associative and order-preserving, the in-process and Ray executors produce the same report whatever
their batch boundaries are.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

MAX_EXAMPLES = 5
"""Examples kept per step (edits as before/after, removed rows, dedup clusters)."""

EXAMPLE_CHARS = 300
"""Texts in examples are cut to this many characters, so that a report stays small enough to store."""


def clip(text: str, limit: int = EXAMPLE_CHARS) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when something was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class StepReport(BaseModel):
    """The report of one recipe step. ``counts`` holds per-reason or per-type figures (filter reasons, PII
    types, split sizes, dedup cluster count)."""

    step: str
    position: int
    rows_in: int = 0
    rows_out: int = 0
    changed: int = 0
    removed: int = 0
    counts: dict[str, int] = Field(default_factory=dict)
    examples: list[dict[str, Any]] = Field(default_factory=list)

    def count(self, key: str, n: int = 1) -> None:
        if n:
            self.counts[key] = self.counts.get(key, 0) + n

    def example(self, example: dict[str, Any]) -> None:
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(example)

    @property
    def wants_examples(self) -> bool:
        return len(self.examples) < MAX_EXAMPLES

    def merge(self, other: StepReport) -> None:
        """Add ``other`` (the report of the following rows) to this one."""
        self.rows_in += other.rows_in
        self.rows_out += other.rows_out
        self.changed += other.changed
        self.removed += other.removed
        for key, n in other.counts.items():
            self.count(key, n)
        for example in other.examples:
            self.example(example)
