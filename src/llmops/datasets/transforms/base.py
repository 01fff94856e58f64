"""The two shapes of a transform step.

- ``RowStep``: decides about each row alone (edit it, keep or drop it, label it). It runs batch by batch,
  wherever the batch is (this process, a Ray worker), and writes into the batch's ``StepReport``.
- ``GlobalStep``: needs to see every row to decide (dedup: "is this row a copy of an earlier one?"). It is
  split in two so that the heavy part still runs batch by batch: ``signatures`` turns each row into a small
  fixed-size value (a hash, a MinHash signature) in parallel; ``decide`` runs once, on the driver, over the
  signatures in row order, and names the rows to drop.

Protocols, not base classes: a step is any object with these methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from llmops.datasets.kinds import DatasetKind
from llmops.datasets.transforms.report import StepReport


@runtime_checkable
class RowStep(Protocol):
    name: str

    def apply(self, table: pa.Table, kind: DatasetKind, report: StepReport) -> pa.Table:
        """The rows of ``table`` after this step (edited, fewer, or with a new column); records what it did."""
        ...


@dataclass
class Cluster:
    """A group of near-identical rows: the row kept and the rows removed with their (estimated) Jaccard."""

    kept: int
    removed: list[tuple[int, float]] = field(default_factory=list)


@dataclass
class Decision:
    """What a global step decided: the row ids to drop (ids are row numbers in the parent version) and the
    clusters they formed (all of them, in the order their first removed row appeared)."""

    drop: npt.NDArray[np.int64]
    clusters: list[Cluster]


@runtime_checkable
class GlobalStep(Protocol):
    name: str

    def signatures(self, table: pa.Table, kind: DatasetKind) -> pa.Array:
        """One fixed-size binary signature per row of ``table``."""
        ...

    def decide(self, rows: npt.NDArray[np.int64], signatures: pa.Array) -> Decision:
        """Rows to drop, given every row id and its signature in row order (keeps the first of a group)."""
        ...
