"""Executors run a recipe over a Parquet file: ``InProcessExecutor`` here, ``RayExecutor`` in
``ray_executor.py``. Both drive the same stages (``pipeline.py``) and so give the same rows, in the same
order, and the same report.

The in-process executor streams: it reads the parent batch by batch (``batch_size`` rows), runs each batch
through the stage and writes it out before reading the next, so memory is bounded by one batch, one output
row group and the driver state (signatures of a global step), never by the dataset. A recipe with k global
steps makes k + 1 passes; the passes between stages go through temporary Parquet files next to the target.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa
import pyarrow.parquet as pq

from llmops.datasets.kinds import DatasetKind
from llmops.datasets.pipeline import Driver, ParquetSink, plan, run_stage
from llmops.datasets.recipe import Recipe, build_steps
from llmops.datasets.transforms.columns import ROW_ID


@runtime_checkable
class Executor(Protocol):
    """Runs ``recipe`` over the Parquet file ``source`` (rows of ``kind``) into a new Parquet file ``target``
    and returns the transform report (``{"rows_in", "rows_out", "steps": [...]}``)."""

    name: str

    def run(self, recipe: Recipe, source: Path, target: Path, *, kind: DatasetKind) -> dict[str, Any]: ...


def parquet_batches(path: Path, batch_size: int, add_row_ids: bool) -> Iterator[pa.Table]:
    """The file as tables of at most ``batch_size`` rows, with ``__row`` added when asked; always at least
    one (possibly empty) table, so that an empty input still yields its schema."""
    parquet = pq.ParquetFile(path)
    offset = 0
    seen = False
    for batch in parquet.iter_batches(batch_size=batch_size):
        table = pa.Table.from_batches([batch])
        if add_row_ids:
            table = table.append_column(ROW_ID, pa.array(range(offset, offset + table.num_rows), type=pa.int64()))
        offset += table.num_rows
        seen = True
        yield table
    if not seen:
        table = parquet.schema_arrow.empty_table()
        if add_row_ids:
            table = table.append_column(ROW_ID, pa.array([], type=pa.int64()))
        yield table


class InProcessExecutor:
    """Streams Parquet batches through the recipe in this process (see the module docstring)."""

    name = "inprocess"

    def __init__(self, *, batch_size: int = 10_000) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.batch_size = batch_size

    def run(self, recipe: Recipe, source: Path, target: Path, *, kind: DatasetKind) -> dict[str, Any]:
        kind = DatasetKind(kind)
        steps = build_steps(recipe)
        stages = plan(steps)
        driver = Driver(steps, pq.ParquetFile(source).metadata.num_rows)
        with tempfile.TemporaryDirectory(prefix="llmops-clean-", dir=target.parent) as tmp:
            current = source
            for index, stage in enumerate(stages):
                last = index == len(stages) - 1
                out = target if last else Path(tmp) / f"stage-{index}.parquet"
                sink = ParquetSink(out, keep_row_id=not last)
                stage_input = driver.stage_input()
                for table in parquet_batches(current, self.batch_size, add_row_ids=index == 0):
                    sink.write(driver.absorb(run_stage(table, stage, kind, stage_input)))
                sink.close()
                if stage.global_step is not None:
                    driver.decide(stage)
                current = out
            return driver.report(sink.rows)
