"""Fixtures for the cleaning transforms: Parquet files of each kind and a small local Ray instance."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llmops.datasets.kinds import MESSAGE_TYPE, DatasetKind
from llmops.datasets.transforms.report import StepReport

WriteParquet = Callable[..., Path]


def text_table(texts: list[str], **extra: list[Any]) -> pa.Table:
    return pa.table({"text": pa.array(texts, type=pa.string()), **extra})


def chat_table(conversations: list[list[tuple[str, str]]]) -> pa.Table:
    messages = [[{"role": r, "content": c} for r, c in conv] for conv in conversations]
    return pa.table({"messages": pa.array(messages, type=pa.list_(MESSAGE_TYPE))})


def report(step: str = "step") -> StepReport:
    return StepReport(step=step, position=0)


@pytest.fixture
def write_parquet(tmp_path: Path) -> WriteParquet:
    counter = iter(range(1_000_000))

    def write(table: pa.Table, *, row_group_size: int | None = None) -> Path:
        path = tmp_path / f"in-{next(counter)}.parquet"
        pq.write_table(table, path, row_group_size=row_group_size)
        return path

    return write


@pytest.fixture(scope="session")
def ray_local() -> Iterator[Any]:
    """One local Ray instance (2 CPUs, no dashboard) for the whole session."""
    ray = pytest.importorskip("ray", reason="the Ray executor needs the ray extra: pip install -e '.[dev]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


KINDS = DatasetKind
