"""Train / validation / test splits by seed, stable under appends.

A row's split is decided by its own content alone: u = BLAKE2b-64(seed, kind, row text) / 2**64, and the
split is the first whose cumulative fraction exceeds u. So the assignment is deterministic (same seed, same
split), adding rows never moves existing ones (a random permutation would reshuffle everything), and
identical rows always land in the same split (no train/test leakage through copies). The price: fractions are
met in expectation, not exactly (the standard deviation of a split's share is sqrt(p(1-p)/n)).

The row text is ``kinds.document_texts`` (all text columns, roles included). The step writes the split
name into ``column`` (default ``split``), replacing a column of that name if the parent has one.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator

from llmops.datasets.kinds import DatasetKind, document_texts
from llmops.datasets.transforms.report import StepReport


class SplitConfig(BaseModel):
    """``split`` step: fractions by split name (must sum to 1), seed and output column."""

    model_config = ConfigDict(extra="forbid")

    fractions: dict[str, float] = Field(default_factory=lambda: {"train": 0.9, "validation": 0.05, "test": 0.05})
    seed: int = 0
    column: str = Field(default="split", min_length=1)

    @field_validator("fractions")
    @classmethod
    def _check(cls, value: dict[str, float]) -> dict[str, float]:
        if not value:
            raise ValueError("fractions must name at least one split, e.g. {train: 0.9, test: 0.1}")
        for name, fraction in value.items():
            if not name or fraction < 0:
                raise ValueError(f"split {name!r} has fraction {fraction}; fractions must be ≥ 0")
        total = sum(value.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"fractions must sum to 1, got {total:g}")
        return value


def assign_split(text: str, config: SplitConfig, kind: str = "") -> str:
    """The split of a row with document text ``text``."""
    digest = hashlib.blake2b(f"{config.seed}\x00{kind}\x00{text}".encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / 2**64
    cumulative = 0.0
    names = list(config.fractions)
    for name in names:
        cumulative += config.fractions[name]
        if u < cumulative:
            return name
    return names[-1]


class Split:
    """Row-wise step: add the ``split`` column; the report counts rows per split."""

    name = "split"

    def __init__(self, config: SplitConfig) -> None:
        self.config = config

    def apply(self, table: pa.Table, kind: DatasetKind, report: StepReport) -> pa.Table:
        names = [assign_split(t, self.config, kind.value) for t in document_texts(table, kind)]
        column = pa.array(names, type=pa.string())
        if self.config.column in table.column_names:
            index = table.column_names.index(self.config.column)
            table = table.set_column(index, pa.field(self.config.column, pa.string()), column)
        else:
            table = table.append_column(pa.field(self.config.column, pa.string()), column)
        report.rows_in += table.num_rows
        report.rows_out += table.num_rows
        for name in names:
            report.count(name)
        return table
