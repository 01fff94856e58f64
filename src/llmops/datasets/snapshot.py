"""Writing a stream of validated batches as the stored Parquet file of a version, and hashing rows.

The content digest of a version is BLAKE3 over a canonical encoding of its rows, not over the Parquet
bytes: Parquet output depends on the writer (library version, page sizes, statistics), while the rows do
not. The encoding is a header line with the column names and types in order, then one line per row: the
row's values as compact JSON (keys of nested objects sorted, non-ASCII kept, bytes as hex). Each row's own
BLAKE3 (16 bytes) is what ``diff`` compares, so two versions can be compared without holding either.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from blake3 import blake3

from llmops.datasets.kinds import DatasetKind
from llmops.datasets.stats import StatsBuilder

ROW_GROUP_ROWS = 50_000
ROW_HASH_BYTES = 16
Progress = Callable[[str, int, int], None]


def _default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | dt.timedelta):
        return str(value)
    return repr(value)


def _encode(values: tuple[Any, ...]) -> bytes:
    return json.dumps(
        values, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=_default, allow_nan=True
    ).encode()


def schema_columns(schema: pa.Schema) -> list[dict[str, str]]:
    return [{"name": f.name, "type": str(f.type)} for f in schema]


def header(schema: pa.Schema) -> bytes:
    return json.dumps(schema_columns(schema), separators=(",", ":")).encode() + b"\n"


def row_encodings(batch: pa.RecordBatch | pa.Table) -> Iterator[bytes]:
    """The canonical encoding of each row of a batch."""
    columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
    for values in zip(*columns, strict=True):
        yield _encode(values)


def row_hashes(batch: pa.RecordBatch | pa.Table) -> list[bytes]:
    return [blake3(enc).digest(length=ROW_HASH_BYTES) for enc in row_encodings(batch)]


@dataclass
class Snapshot:
    """What writing a version's file found out."""

    path: Path
    kind: DatasetKind
    schema: pa.Schema
    rows: int
    bytes: int
    content_digest: str
    stats: dict[str, Any]


def write_snapshot(
    kind: DatasetKind,
    schema: pa.Schema,
    batches: Iterator[pa.RecordBatch],
    dest: Path,
    *,
    progress: Progress | None = None,
) -> Snapshot:
    """Write ``batches`` to ``dest`` (zstd, row groups of at most 50,000 rows) while hashing the rows and
    computing the statistics, one batch in memory at a time."""
    content = blake3()
    content.update(header(schema))
    stats = StatsBuilder(kind)
    rows = 0
    with pq.ParquetWriter(dest, schema, compression="zstd") as writer:
        for batch in batches:
            for enc in row_encodings(batch):
                content.update(enc)
                content.update(b"\n")
            stats.update(batch)
            writer.write_batch(batch, row_group_size=ROW_GROUP_ROWS)
            rows += batch.num_rows
            if progress is not None:
                progress("rows", rows, 0)
    size = dest.stat().st_size
    return Snapshot(
        path=dest,
        kind=kind,
        schema=schema,
        rows=rows,
        bytes=size,
        content_digest=content.hexdigest(),
        stats=stats.result(rows=rows, parquet_bytes=size),
    )
