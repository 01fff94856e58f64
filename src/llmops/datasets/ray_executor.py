"""``RayExecutor``: the same stages as in-process (``pipeline.py``) on Ray Data, for clusters.

- The driver streams the parent Parquet file batch by batch into the Ray object store
  (``ray.data.from_arrow_refs``), adding each row's ``__row`` number on the way (Ray Data has no stable row
  index of its own, and ``Dataset.zip`` is deprecated). Workers therefore need no access to the driver's
  files, which is what a remote cluster needs; Ray spills the object store to disk beyond its memory.
- Each stage is one ``map_batches(run_stage)``: row-wise steps and the signatures of a global step run in
  parallel on the workers.
- The driver reads the stage output in order (``preserve_order`` is switched on, so the order is the
  parent's): it folds the batch reports, runs the global step's ``decide`` over the signature column only
  (the LSH pass), and sends the drop mask to the next stage's ``map_batches``. Stage outputs that feed a
  decision are materialised once so that the next stage does not recompute them.
- The last stage's rows stream to the driver and into the same ``ParquetSink`` as in-process, so the output
  holds the same rows in the same order and the same row groups.

``address=None`` starts (or joins) a local Ray instance; ``"ray://host:10001"`` or ``"auto"`` joins a
cluster. The driver writes the output locally.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from llmops.datasets.executor import parquet_batches
from llmops.datasets.kinds import DatasetKind
from llmops.datasets.pipeline import PLACEHOLDER, REPORT, SIG, Driver, ParquetSink, Stage, StageInput, plan, run_stage
from llmops.datasets.recipe import Recipe, build_steps
from llmops.datasets.transforms.columns import ROW_ID


def _stage_batch(table: pa.Table, stage: Stage, kind: str, stage_input: StageInput) -> pa.Table:
    return run_stage(table, stage, DatasetKind(kind), stage_input)


class RayExecutor:
    """Runs recipes on Ray Data (see the module docstring). Needs the ``ray`` extra."""

    name = "ray"

    def __init__(self, address: str | None = None, *, batch_size: int = 10_000) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.address = address
        self.batch_size = batch_size

    def _ray(self) -> Any:
        try:
            import ray
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError("the Ray executor needs Ray: pip install 'llmops[ray]'") from exc
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        return ray

    def run(self, recipe: Recipe, source: Path, target: Path, *, kind: DatasetKind) -> dict[str, Any]:
        ray = self._ray()
        kind = DatasetKind(kind)
        steps = build_steps(recipe)
        stages = plan(steps)
        num_rows = pq.ParquetFile(source).metadata.num_rows
        driver = Driver(steps, num_rows)
        refs = [ray.put(table) for table in parquet_batches(source, self.batch_size, add_row_ids=True)]
        ds = ray.data.from_arrow_refs(refs)
        sink = ParquetSink(target)
        empty = pq.read_schema(source)
        for index, stage in enumerate(stages):
            out = ds.map_batches(
                _stage_batch,
                fn_kwargs={"stage": stage, "kind": kind.value, "stage_input": driver.stage_input()},
                batch_format="pyarrow",
                batch_size=self.batch_size,
            )
            if index == len(stages) - 1:
                for table in out.iter_batches(batch_format="pyarrow", batch_size=None):
                    sink.write(driver.absorb(table))
                break
            out = out.materialize()
            wanted = [ROW_ID, SIG, REPORT, PLACEHOLDER]
            for table in out.select_columns(wanted).iter_batches(batch_format="pyarrow", batch_size=None):
                driver.absorb(table)
            driver.decide(stage)
            ds = out
        sink.close(schema=empty)
        return driver.report(sink.rows)
