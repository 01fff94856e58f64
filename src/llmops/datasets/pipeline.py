"""A recipe as stages: the part every executor shares, so that they all produce the same rows and report.

A recipe is cut into **stages** at its global steps (dedup). A stage is

1. drop the rows the previous global step decided to drop (and keep the texts of a few of them, for the
   cluster examples of that step's report);
2. run the row-wise steps, in order, on the batch;
3. if the stage ends with a global step, compute its per-row signature.

``run_stage`` does that to one batch and is a pure function of the batch and a small ``StageInput`` (the
drop mask), so an executor may run it anywhere, on batches of any size, in parallel. Its output carries the
rows plus internal columns: ``__row`` (the row's number in the parent version, which names rows across
stages), ``__sig`` (the signature), ``__report`` (the batch's report as JSON, on the batch's first row) and
``__placeholder`` (a row standing in for a batch whose rows were all filtered out, so that its report still
travels). The **driver** (``Driver``) reads stage outputs in row order: it folds the batch reports, collects
signatures, runs the global step's ``decide`` over them and hands the drop mask to the next stage. The
last stage's rows go to ``ParquetSink``, which writes row groups of exactly ``ROW_GROUP_ROWS`` rows, so the
output file does not depend on how an executor cut its batches.

Memory on the driver: the global step's signatures (see ``transforms/dedup.py``), one byte per parent row
for the drop mask, the ``ROW_GROUP_ROWS`` rows the sink buffers, and the report.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from llmops.datasets.kinds import DatasetKind
from llmops.datasets.transforms.base import Cluster, GlobalStep, RowStep
from llmops.datasets.transforms.columns import ROW_ID, row_texts
from llmops.datasets.transforms.report import MAX_EXAMPLES, StepReport, clip

SIG = "__sig"
REPORT = "__report"
PLACEHOLDER = "__placeholder"
INTERNAL_COLUMNS = (ROW_ID, SIG, REPORT, PLACEHOLDER)
ROW_GROUP_ROWS = 50_000


@dataclass
class Stage:
    """Row-wise steps between two global steps; ``after`` is the position of the global step whose drop
    decision applies at entry (None for the first stage)."""

    after: int | None
    row_steps: list[tuple[int, RowStep]] = field(default_factory=list)
    global_step: tuple[int, GlobalStep] | None = None


def plan(steps: Sequence[RowStep | GlobalStep]) -> list[Stage]:
    """Cut ``steps`` into stages; the last stage never ends with a global step."""
    stages = [Stage(after=None)]
    for position, step in enumerate(steps):
        if isinstance(step, RowStep):
            stages[-1].row_steps.append((position, step))
        else:
            stages[-1].global_step = (position, step)
            stages.append(Stage(after=position))
    return stages


@dataclass
class StageInput:
    """What the driver sends to every batch of a stage: which parent rows to drop on entry, and which rows'
    texts to return for the previous global step's cluster examples."""

    drop: npt.NDArray[np.bool_] | None = None
    example_rows: frozenset[int] = frozenset()


def _strip(table: pa.Table) -> pa.Table:
    if PLACEHOLDER in table.column_names:
        table = table.filter(pc.invert(pc.fill_null(table.column(PLACEHOLDER), False)))
    drop = [name for name in (SIG, REPORT, PLACEHOLDER) if name in table.column_names]
    return table.drop_columns(drop) if drop else table


def run_stage(table: pa.Table, stage: Stage, kind: DatasetKind, stage_input: StageInput) -> pa.Table:
    """One batch through one stage (see the module docstring); ``table`` must have the ``__row`` column."""
    table = _strip(table)
    reports: dict[int, dict[str, Any]] = {}
    texts: dict[int, str] = {}
    if stage_input.drop is not None and table.num_rows:
        rows = table.column(ROW_ID).to_numpy()
        if stage_input.example_rows:
            wanted = [i for i, row in enumerate(rows.tolist()) if row in stage_input.example_rows]
            if wanted:
                batch_texts = row_texts(table.take(wanted), kind)
                texts = {int(rows[i]): clip(t) for i, t in zip(wanted, batch_texts, strict=True)}
        keep = ~stage_input.drop[rows]
        if not keep.all():
            table = table.filter(pa.array(keep))
    for position, step in stage.row_steps:
        report = StepReport(step=step.name, position=position)
        table = step.apply(table, kind, report)
        reports[position] = report.model_dump()
    columns: dict[str, pa.Array] = {}
    if stage.global_step is not None:
        columns[SIG] = stage.global_step[1].signatures(table, kind)
    payload = json.dumps({"steps": reports, "texts": texts}, ensure_ascii=False)
    placeholder = table.num_rows == 0
    if placeholder:
        table = pa.Table.from_arrays([pa.nulls(1, type=f.type) for f in table.schema], schema=table.schema)
        columns = {name: pa.nulls(1, type=array.type) for name, array in columns.items()}
    n = table.num_rows
    for name, array in columns.items():
        table = table.append_column(name, array)
    table = table.append_column(REPORT, pa.array([payload] + [None] * (n - 1), type=pa.string()))
    return table.append_column(PLACEHOLDER, pa.array([placeholder] * n, type=pa.bool_()))


class Driver:
    """The driver side of a recipe run: folds reports, decides global steps, makes the final report."""

    def __init__(self, steps: Sequence[RowStep | GlobalStep], num_rows: int) -> None:
        self.steps = list(steps)
        self.num_rows = num_rows
        self.reports = [StepReport(step=step.name, position=i) for i, step in enumerate(self.steps)]
        self._rows: list[npt.NDArray[np.int64]] = []
        self._sigs: list[pa.Array] = []
        self._drop: npt.NDArray[np.bool_] | None = None
        self._clusters: dict[int, list[Cluster]] = {}
        self._example_rows: frozenset[int] = frozenset()
        self._texts: dict[int, str] = {}
        self.rows_out = 0

    def stage_input(self) -> StageInput:
        return StageInput(drop=self._drop, example_rows=self._example_rows)

    def absorb(self, table: pa.Table) -> pa.Table:
        """Take in one stage output batch (in row order); returns its data rows with ``__row``."""
        for payload in table.column(REPORT).drop_null().to_pylist():
            data = json.loads(payload)
            for position, report in data["steps"].items():
                self.reports[int(position)].merge(StepReport.model_validate(report))
            self._texts.update({int(row): text for row, text in data["texts"].items()})
        real = pc.invert(table.column(PLACEHOLDER))
        table = table.filter(real).drop_columns([REPORT, PLACEHOLDER])
        if SIG in table.column_names:
            self._rows.append(table.column(ROW_ID).to_numpy().astype(np.int64))
            self._sigs.append(table.column(SIG).combine_chunks())
            table = table.drop_columns([SIG])
        return table

    def decide(self, stage: Stage) -> None:
        """Run the stage's global step over the signatures collected since the last decision."""
        assert stage.global_step is not None
        position, step = stage.global_step
        rows = np.concatenate(self._rows) if self._rows else np.zeros(0, dtype=np.int64)
        sigs = pa.concat_arrays(self._sigs) if self._sigs else pa.array([], type=pa.binary())
        self._rows, self._sigs = [], []
        decision = step.decide(rows, sigs)
        drop = np.zeros(self.num_rows, dtype=np.bool_)
        drop[decision.drop] = True
        self._drop = drop
        report = self.reports[position]
        report.rows_in = len(rows)
        report.removed = len(decision.drop)
        report.rows_out = report.rows_in - report.removed
        report.count("clusters", len(decision.clusters))
        shown = [Cluster(c.kept, c.removed[:MAX_EXAMPLES]) for c in decision.clusters[:MAX_EXAMPLES]]
        self._clusters[position] = shown
        self._example_rows = frozenset(r for c in shown for r in [c.kept, *(row for row, _ in c.removed)])

    def report(self, rows_out: int) -> dict[str, Any]:
        """The whole run's report: rows in and out, then one entry per step in recipe order."""
        for position, clusters in self._clusters.items():
            self.reports[position].examples = [
                {
                    "kept": {"row": c.kept, "text": self._texts.get(c.kept, "")},
                    "removed": [
                        {"row": row, "jaccard": jaccard, "text": self._texts.get(row, "")} for row, jaccard in c.removed
                    ],
                    "removed_total": len(c.removed),
                }
                for c in clusters
            ]
        return {
            "rows_in": self.num_rows,
            "rows_out": rows_out,
            "steps": [r.model_dump() for r in self.reports],
        }


class ParquetSink:
    """Writes tables to one zstd Parquet file in row groups of exactly ``row_group_rows`` rows (the last may be
    smaller), dropping the internal columns unless ``keep_row_id`` (intermediate files keep ``__row``)."""

    def __init__(self, path: Path, *, keep_row_id: bool = False, row_group_rows: int = ROW_GROUP_ROWS) -> None:
        self.path = path
        self.keep_row_id = keep_row_id
        self.row_group_rows = row_group_rows
        self.rows = 0
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None

    def write(self, table: pa.Table) -> None:
        drop = [c for c in INTERNAL_COLUMNS if c in table.column_names and not (self.keep_row_id and c == ROW_ID)]
        if drop:
            table = table.drop_columns(drop)
        if self._schema is None:
            self._schema = table.schema.remove_metadata()
        table = table.replace_schema_metadata(None)
        if table.schema != self._schema:
            table = table.cast(self._schema)
        if table.num_rows == 0:
            return
        self._buffer.append(table)
        self._buffered += table.num_rows
        while self._buffered >= self.row_group_rows:
            self._flush(self.row_group_rows)

    def _flush(self, rows: int) -> None:
        assert self._schema is not None
        combined = pa.concat_tables(self._buffer)
        chunk, rest = combined.slice(0, rows), combined.slice(rows)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, self._schema, compression="zstd")
        # One chunk per column: the writer's pages follow the table's chunking, so without this the bytes
        # would depend on how an executor cut its batches (seen at 200k rows: same rows, different files).
        self._writer.write_table(chunk.combine_chunks(), row_group_size=rows)
        self.rows += chunk.num_rows
        self._buffer = [rest] if rest.num_rows else []
        self._buffered = rest.num_rows

    def close(self, schema: pa.Schema | None = None) -> None:
        """Flush and close; an empty output still gets a valid file with ``schema`` (or the schema seen)."""
        if self._buffered:
            self._flush(self._buffered)
        if self._writer is None:
            schema = self._schema or schema
            if schema is None:
                raise ValueError(f"no schema for the empty output {self.path}")
            self._writer = pq.ParquetWriter(self.path, schema, compression="zstd")
        self._writer.close()
