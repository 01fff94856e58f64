"""HTTP routes for runs, metrics, artifacts and lineage (thin: parse, call the service, render)."""

from __future__ import annotations

import tempfile
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from llmops.api.deps import PlatformDep, require
from llmops.errors import InvalidInput
from llmops.security.actor import Actor
from llmops.security.roles import Permission
from llmops.tracking.schemas import (
    ArtifactOut,
    LineageIn,
    LineageOut,
    MetricSeries,
    MetricsIn,
    ParamsIn,
    RunComparison,
    RunCreate,
    RunDetail,
    RunEnd,
    RunKind,
    RunList,
    RunOut,
    RunStatus,
    TagsIn,
)
from llmops.tracking.service import now_ms

router = APIRouter(prefix="/api/v1/runs", tags=["runs"])

Reader = Annotated[Actor, Depends(require(Permission.runs_read))]
Writer = Annotated[Actor, Depends(require(Permission.runs_write))]
RunId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="32 hex characters")]
SPOOL_BYTES = 8 * 1024 * 1024


@router.post("", response_model=RunOut, status_code=201)
def create_run(body: RunCreate, platform: PlatformDep, actor: Writer) -> RunOut:
    return platform.tracking.create_run(
        actor,
        kind=body.kind,
        name=body.name,
        params=body.params,
        tags=body.tags,
        parent_id=body.parent_id,
        description=body.description,
    )


@router.get("", response_model=RunList)
def list_runs(
    platform: PlatformDep,
    actor: Reader,
    kind: RunKind | None = None,
    status: RunStatus | None = None,
    name: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> RunList:
    return platform.tracking.list_runs(kind=kind, status=status, name=name, limit=limit, offset=offset)


@router.get("/compare", response_model=RunComparison)
def compare_runs(
    platform: PlatformDep, actor: Reader, ids: Annotated[str, Query(max_length=20 * 33, description="comma-separated")]
) -> RunComparison:
    return platform.tracking.compare([i.strip() for i in ids.split(",") if i.strip()])


@router.get("/{run_id}", response_model=RunDetail)
def get_run(run_id: RunId, platform: PlatformDep, actor: Reader) -> RunDetail:
    return platform.tracking.get_run(run_id)


@router.post("/{run_id}/params", status_code=204)
def log_params(run_id: RunId, body: ParamsIn, platform: PlatformDep, actor: Writer) -> None:
    platform.tracking.log_params(run_id, body.params)


@router.post("/{run_id}/tags", status_code=204)
def set_tags(run_id: RunId, body: TagsIn, platform: PlatformDep, actor: Writer) -> None:
    platform.tracking.set_tags(actor, run_id, body.tags)


@router.post("/{run_id}/metrics", status_code=204)
def log_metrics(run_id: RunId, body: MetricsIn, platform: PlatformDep, actor: Writer) -> None:
    ts = now_ms()
    points = [(p.key, p.value, p.step, p.ts if p.ts is not None else ts) for p in body.points]
    platform.tracking.log_metrics(run_id, points)


@router.get("/{run_id}/metrics/{key:path}", response_model=MetricSeries)
def metric_series(run_id: RunId, key: str, platform: PlatformDep, actor: Reader) -> MetricSeries:
    return platform.tracking.metric_series(run_id, key)


@router.post("/{run_id}/heartbeat", status_code=204)
def heartbeat(run_id: RunId, platform: PlatformDep, actor: Writer) -> None:
    platform.tracking.heartbeat(run_id)


@router.post("/{run_id}/end", response_model=RunOut)
def end_run(run_id: RunId, body: RunEnd, platform: PlatformDep, actor: Writer) -> RunOut:
    return platform.tracking.end_run(actor, run_id, body.status, body.reason)


@router.post("/{run_id}/lineage", response_model=LineageOut, status_code=201)
def add_lineage(run_id: RunId, body: LineageIn, platform: PlatformDep, actor: Writer) -> LineageOut:
    return platform.tracking.add_lineage(actor, run_id, body.direction, body.entity_kind, body.entity_ref)


@router.get("/{run_id}/artifacts", response_model=list[ArtifactOut])
def list_artifacts(run_id: RunId, platform: PlatformDep, actor: Reader) -> list[ArtifactOut]:
    return platform.tracking.list_artifacts(run_id)


@router.put(
    "/{run_id}/artifacts/{path:path}",
    response_model=ArtifactOut,
    status_code=201,
    openapi_extra={
        "requestBody": {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
    },
)
async def upload_artifact(
    run_id: RunId, path: str, request: Request, platform: PlatformDep, actor: Writer
) -> ArtifactOut:
    if not path:
        raise InvalidInput("path: an artifact path is required", details={"field": "path"})
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        async for chunk in request.stream():
            spool.write(chunk)
        spool.seek(0)
        return await run_in_threadpool(platform.tracking.log_artifact, actor, run_id, path, spool)  # type: ignore[arg-type]


@router.get("/{run_id}/artifacts/{path:path}", response_class=StreamingResponse)
def download_artifact(run_id: RunId, path: str, platform: PlatformDep, actor: Reader) -> StreamingResponse:
    info, stream = platform.tracking.open_artifact(run_id, path)

    def chunks() -> object:
        with stream:
            while chunk := stream.read(1 << 20):
                yield chunk

    return StreamingResponse(
        chunks(),  # type: ignore[arg-type]
        media_type="application/octet-stream",
        headers={"Content-Length": str(info.size), "X-Blob-Digest": info.digest},
    )
