"""Response and request models for datasets, versions, diffs, lineage and token statistics."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmops.datasets.kinds import DatasetKind
from llmops.naming import Name

ExportFormat = Literal["jsonl", "parquet", "csv"]
SourceFormat = Literal["jsonl", "json", "csv", "parquet", "text"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ColumnOut(BaseModel):
    name: str
    type: str


class DatasetVersionOut(BaseModel):
    dataset: str
    version: int
    ref: str
    kind: DatasetKind
    content_digest: str = Field(description="BLAKE3 over the canonical encoding of the rows (columns, order)")
    blob_digest: str = Field(description="BLAKE3 of the stored Parquet file")
    rows: int
    bytes: int = Field(description="size of the Parquet file")
    columns: list[ColumnOut]
    stats: dict[str, Any]
    recipe: dict[str, Any] | None
    report: dict[str, Any] | None
    source: dict[str, Any] | None
    parents: list[str]
    run_id: str | None
    description: str | None
    tags: dict[str, str]
    created_at: dt.datetime
    created_by: str
    reused_existing_version: bool = Field(
        default=False, description="set in the answer of a write that found these rows already stored as this version"
    )


class DatasetOut(BaseModel):
    name: str
    description: str | None
    created_at: dt.datetime
    created_by: str
    versions: int
    latest: int | None
    kind: DatasetKind | None
    rows: int | None = Field(description="rows of the latest version")


class ColumnChange(BaseModel):
    name: str
    change: Literal["added", "removed", "type_changed"]
    type_a: str | None
    type_b: str | None


class DatasetDiff(BaseModel):
    a: str
    b: str
    rows_a: int
    rows_b: int
    rows_added: int = Field(description="rows of b not in a (as a multiset of row hashes)")
    rows_removed: int = Field(description="rows of a not in b")
    rows_common: int
    same_content: bool
    columns: list[ColumnChange]
    stats_delta: dict[str, Any]
    added_examples: list[dict[str, Any]]
    removed_examples: list[dict[str, Any]]


class LineageEdgeOut(BaseModel):
    ref: str
    exists: bool = Field(description="false when that version was deleted after this edge was recorded")


class DatasetLineageOut(BaseModel):
    ref: str
    parents: list[LineageEdgeOut]
    children: list[str]
    ancestors: list[str] = Field(description="every version reachable through parents, nearest first")
    run_id: str | None
    recipe: dict[str, Any] | None


class TokenGroup(BaseModel):
    group: str
    rows: int
    characters: int
    tokens: int
    tokens_per_char: float | None
    ratio_vs_english: float | None = Field(description="tokens per character divided by English's (language 'en')")


class TokenStats(BaseModel):
    ref: str
    tokenizer: str
    rows: int
    rows_measured: int
    tokens: int
    characters: int
    tokens_per_char: float | None
    max_length: int | None
    rows_over_max_length: int | None
    share_over_max_length: float | None
    by_language: list[TokenGroup]
    by_script: list[TokenGroup]
    token_lengths: dict[str, Any]


class CleanRequest(Strict):
    recipe: dict[str, Any] = Field(description="the recipe as its YAML file would parse")
    version: int | None = Field(default=None, ge=1, le=2**31 - 1, description="default: the latest version")
    output_name: Name | None = None


class CleanOut(BaseModel):
    version: DatasetVersionOut
    report: dict[str, Any]
