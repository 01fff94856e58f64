"""Request and response models for models, versions, aliases, lineage and diffs."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmops.naming import Name

Derivation = Literal["import", "finetune", "quantize", "prune", "distill", "merge"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VersionOut(BaseModel):
    model: str
    version: int
    ref: str
    format: str
    architecture: str | None
    manifest_digest: str
    logical_bytes: int
    physical_bytes: int
    parameters: int
    dtype: str | None
    context_length: int | None
    base: str | None
    derivation: str
    run_id: str | None
    description: str | None
    tags: dict[str, str]
    conversion: dict[str, Any] | None
    signature: dict[str, Any] | None
    aliases: list[str]
    created_at: dt.datetime
    created_by: str


class FileOut(BaseModel):
    path: str
    size: int
    digest: str = Field(description="The whole file's digest, as algorithm:hex (blake3; sha256 before schema 2).")
    kind: str
    tensors: int


class TensorOut(BaseModel):
    file: str
    name: str
    dtype: str
    shape: tuple[int, ...]
    bytes: int
    digest: str
    encoding: str
    stored_bytes: int
    base_digest: str | None


class VersionDetail(VersionOut):
    files: list[FileOut]
    tensors: list[TensorOut]


class ModelOut(BaseModel):
    name: str
    description: str | None
    created_at: dt.datetime
    created_by: str
    versions: int
    latest: int | None
    aliases: dict[str, int]
    policy: dict[str, Any] | None


class ImportReport(BaseModel):
    version: VersionOut
    reused_existing_version: bool = Field(description="identical content was already this model's latest version")
    tensors: int
    new_tensors: int
    deduplicated_tensors: int
    delta_tensors: int
    compressed_tensors: int
    raw_tensors: int
    logical_bytes: int
    stored_bytes: int


class AliasSet(Strict):
    version: int = Field(ge=1, le=2**31 - 1)
    reason: str | None = Field(default=None, max_length=2000)


class AliasOut(BaseModel):
    alias: str
    version: int
    updated_at: dt.datetime
    updated_by: str


class AliasEventOut(BaseModel):
    alias: str
    from_version: int | None
    to_version: int | None
    actor: str
    reason: str | None
    ts: dt.datetime


class LineageNode(BaseModel):
    ref: str
    derivation: str
    run_id: str | None
    datasets: list[str]
    base: LineageNode | None = None
    derived: list[str] = Field(default_factory=list)


class TensorChange(BaseModel):
    name: str
    status: Literal["changed", "added", "removed", "unchanged"]
    dtype: str | None
    shape: tuple[int, ...] | None
    relative_l2: float | None
    stored_bytes: int
    encoding: str | None


class VersionDiff(BaseModel):
    a: str
    b: str
    changed: int
    added: int
    removed: int
    unchanged: int
    tensors: list[TensorChange]


class ModelCreate(Strict):
    name: Name
    description: str | None = Field(default=None, max_length=4000)
