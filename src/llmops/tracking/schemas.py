"""Request and response models for runs, metrics, artifacts and lineage."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from llmops.naming import Name

RunKind = Literal["train", "finetune", "distill", "eval", "compress", "data", "pipeline", "other"]
RunStatus = Literal["running", "finished", "failed", "killed"]
EndStatus = Literal["finished", "failed", "killed"]
Direction = Literal["input", "output"]
EntityKind = Literal["dataset_version", "model_version", "run", "prompt_version", "index"]

KEY_RE = re.compile(r"^[A-Za-z0-9_.\-/: ]{1,250}$")
KEY_RULE = "1-250 characters from letters, digits, space, '_', '-', '.', ':' and '/', without '..'"
ARTIFACT_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_.\-+=@ ]{1,128}$")
MAX_PARAM_VALUE = 6000
MAX_POINTS_PER_BATCH = 10_000


def key_problem(value: str) -> str | None:
    if not KEY_RE.match(value) or ".." in value or value.startswith("/"):
        return f"{value[:40]!r} is not a valid key: use {KEY_RULE}"
    return None


def artifact_path_problem(value: str) -> str | None:
    if len(value) > 512:
        return "artifact path is longer than 512 characters"
    parts = value.split("/")
    if value.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return f"{value[:60]!r} is not a relative path (no leading '/', no empty, '.' or '..' segments)"
    bad = next((p for p in parts if not ARTIFACT_SEGMENT_RE.match(p)), None)
    if bad is not None:
        return f"path segment {bad[:40]!r} has characters outside letters, digits, space and _.-+=@"
    return None


def _key(value: str) -> str:
    problem = key_problem(value)
    if problem:
        raise ValueError(problem)
    return value


Key = Annotated[str, AfterValidator(_key)]
ParamValue = Annotated[str | int | float | bool, Field()]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunCreate(Strict):
    kind: RunKind
    name: Name
    description: str | None = Field(default=None, max_length=4000)
    parent_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")
    params: dict[Key, ParamValue] = Field(default_factory=dict)
    tags: dict[Key, Annotated[str, Field(max_length=5000)]] = Field(default_factory=dict)


class ParamsIn(Strict):
    params: dict[Key, ParamValue]


class TagsIn(Strict):
    tags: dict[Key, Annotated[str, Field(max_length=5000)]]


class MetricPointIn(Strict):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    key: Key
    value: float
    step: int | None = Field(default=None, ge=0, le=2**62, description="default: the next step of this key")
    ts: int | None = Field(default=None, ge=0, le=2**62, description="epoch milliseconds; default now")


class MetricsIn(Strict):
    points: list[MetricPointIn] = Field(max_length=MAX_POINTS_PER_BATCH)


class RunEnd(Strict):
    status: EndStatus = "finished"
    reason: str | None = Field(default=None, max_length=4000)


class LineageIn(Strict):
    direction: Direction
    entity_kind: EntityKind
    entity_ref: str = Field(min_length=1, max_length=300, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-:@/]*$")


class LineageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    direction: str
    entity_kind: str
    entity_ref: str
    created_at: dt.datetime


class ArtifactOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    path: str
    digest: str
    size: int
    created_at: dt.datetime


class MetricSummary(BaseModel):
    key: str
    last: float
    min: float
    max: float
    last_step: int
    count: int


class MetricPointOut(BaseModel):
    step: int
    value: float
    ts: int


class MetricSeries(BaseModel):
    run_id: str
    key: str
    points: list[MetricPointOut]


class RunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str
    name: str
    status: str
    parent_id: str | None
    description: str | None
    created_by: str
    started_at: dt.datetime
    ended_at: dt.datetime | None
    end_reason: str | None


class RunDetail(RunOut):
    params: dict[str, str]
    tags: dict[str, str]
    metrics: list[MetricSummary]
    artifacts: list[ArtifactOut]
    lineage: list[LineageOut]


class RunList(BaseModel):
    runs: list[RunOut]
    total: int


class RunComparison(BaseModel):
    runs: list[RunDetail]
    param_keys: list[str]
    differing_params: list[str]
    metric_keys: list[str]
