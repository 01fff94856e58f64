"""HTTP routes of monitoring: stored requests, costs, feedback, alerts (thin: parse, call the services, render)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from llmops.api.deps import PlatformDep, require
from llmops.datasets.schemas import DatasetVersionOut
from llmops.monitoring.alerts import AlertEventOut, Evaluation, RuleSet
from llmops.monitoring.monitor import Summary
from llmops.monitoring.report import render_report
from llmops.monitoring.schemas import (
    CostRow,
    FeedbackIn,
    FeedbackOut,
    RequestFilter,
    RequestOut,
    RequestQuery,
    parse_time,
)
from llmops.naming import Name
from llmops.security.actor import Actor
from llmops.security.roles import Permission

router = APIRouter(tags=["monitoring"])
MAX_ID = 2**63 - 1  # row ids are 64-bit: a larger number is a 422, never a database error

RequestsReader = Annotated[Actor, Depends(require(Permission.requests_read))]
CostsReader = Annotated[Actor, Depends(require(Permission.costs_read))]
FeedbackWriter = Annotated[Actor, Depends(require(Permission.feedback_write))]
DatasetWriter = Annotated[Actor, Depends(require(Permission.datasets_write))]
TimeText = Annotated[str | None, Query(max_length=64, description="a duration back from now (7d, 24h) or ISO time")]
Dimension = Literal["user", "key", "deployment", "version", "day", "currency"]


class RequestPage(BaseModel):
    items: list[RequestOut]
    next_before: int | None = Field(description="pass as `before` for the next (older) page")


class ExportRequest(RequestFilter):
    name: Name
    kind: Literal["chat", "prompt_completion"] = "chat"
    min_score: float | None = None
    max_score: float | None = None
    label: str | None = Field(None, max_length=128)
    all: bool = Field(False, description="also requests without feedback (their served answer)")
    description: str | None = Field(None, max_length=4000)


@router.get("/api/v1/requests", response_model=RequestPage)
async def list_requests(
    platform: PlatformDep,
    actor: RequestsReader,
    query: Annotated[RequestQuery, Query()],
) -> RequestPage:
    items = await run_in_threadpool(platform.requests.list_requests, query)
    return RequestPage(items=items, next_before=items[-1].row if len(items) == query.limit else None)


@router.get("/api/v1/requests/{request_id}", response_model=list[RequestOut])
async def get_request(
    platform: PlatformDep,
    actor: RequestsReader,
    request_id: Annotated[str, PathParam(max_length=128)],
) -> list[RequestOut]:
    """The stored rows of one request id: the served one, then its shadow copies; texts and feedback."""
    return await run_in_threadpool(platform.requests.get, request_id)


@router.get(
    "/api/v1/costs",
    response_model=list[CostRow],
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "JSON, or CSV"}},
)
async def costs(
    platform: PlatformDep,
    actor: CostsReader,
    by: Annotated[list[Dimension], Query()] = ["user"],  # noqa: B006 - FastAPI copies defaults
    since: TimeText = "7d",
    until: TimeText = None,
    deployment: Annotated[str | None, Query(max_length=128)] = None,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> list[CostRow] | Response:
    """Requests, tokens and cost grouped by user, key, deployment, version and/or day (from the rollups)."""
    rows = await run_in_threadpool(
        platform.requests.costs,
        by,
        since=parse_time(since, field="since") if since else None,
        until=parse_time(until, field="until") if until else None,
        deployment=deployment,
    )
    if format == "csv":
        return Response(costs_csv(rows, by), media_type="text/csv")
    return rows


def costs_csv(rows: Sequence[CostRow], by: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    dims = [b for b in by if b != "currency"]
    writer.writerow([*dims, "currency", "requests", "errors", "prompt_tokens", "completion_tokens", "cost"])
    for r in rows:
        writer.writerow(
            [
                *(r.group.get(d) or "" for d in dims),
                r.currency,
                r.requests,
                r.errors,
                r.prompt_tokens,
                r.completion_tokens,
                f"{r.cost:.6f}",
            ]
        )
    return out.getvalue()


@router.post("/api/v1/feedback", response_model=FeedbackOut, status_code=201)
async def add_feedback(platform: PlatformDep, actor: FeedbackWriter, body: FeedbackIn) -> FeedbackOut:
    """Feedback on a served request, by the id from its ``x-request-id`` response header."""
    return await run_in_threadpool(platform.feedback.add, actor, body)


@router.get("/api/v1/feedback", response_model=list[FeedbackOut])
async def list_feedback(
    platform: PlatformDep,
    actor: RequestsReader,
    request_id: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[FeedbackOut]:
    return await run_in_threadpool(platform.feedback.list_feedback, request_id, limit=limit)


@router.post("/api/v1/feedback/export", response_model=DatasetVersionOut, status_code=201)
async def export_feedback(platform: PlatformDep, actor: DatasetWriter, body: ExportRequest) -> DatasetVersionOut:
    """Selected requests and their corrections as a new dataset version (lineage back to the requests)."""
    filters = RequestFilter.model_validate(body.model_dump(include=set(RequestFilter.model_fields)))
    return await run_in_threadpool(
        lambda: platform.feedback.export_dataset(
            actor,
            body.name,
            filters,
            kind=body.kind,
            min_score=body.min_score,
            max_score=body.max_score,
            label=body.label,
            with_feedback_only=not body.all,
            description=body.description,
        )
    )


# --- alerts ------------------------------------------------------------------------------------------------
AlertsReader = Annotated[Actor, Depends(require(Permission.alerts_read))]
AlertsWriter = Annotated[Actor, Depends(require(Permission.alerts_write))]


@router.get("/api/v1/alerts", response_model=list[AlertEventOut])
async def list_alerts(
    platform: PlatformDep,
    actor: AlertsReader,
    open_only: Annotated[bool, Query(alias="open")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AlertEventOut]:
    """Alert events, newest first (``open=true``: not acknowledged)."""
    return await run_in_threadpool(lambda: platform.alerts.events(open_only=open_only, limit=limit))


@router.post("/api/v1/alerts/{event_id}/ack", response_model=AlertEventOut)
async def ack_alert(
    platform: PlatformDep, actor: AlertsWriter, event_id: Annotated[int, PathParam(ge=1, le=MAX_ID)]
) -> AlertEventOut:
    return await run_in_threadpool(platform.alerts.ack, actor, event_id)


@router.get("/api/v1/alerts/rules", response_model=RuleSet)
async def alert_rules(platform: PlatformDep, actor: AlertsReader) -> RuleSet:
    return RuleSet(rules=await run_in_threadpool(platform.alerts.rules))


@router.put("/api/v1/alerts/rules", response_model=RuleSet)
async def apply_alert_rules(platform: PlatformDep, actor: AlertsWriter, body: RuleSet) -> RuleSet:
    """Replace the rules with these (the same document as the YAML file, as JSON)."""
    return RuleSet(rules=await run_in_threadpool(platform.alerts.apply_rules, actor, body))


@router.post("/api/v1/alerts/evaluate", response_model=list[Evaluation])
async def evaluate_alerts(platform: PlatformDep, actor: AlertsWriter) -> list[Evaluation]:
    """Evaluate every rule now (the server also does it every LLMOPS_ALERT_INTERVAL_SECONDS)."""
    return await run_in_threadpool(platform.alerts.evaluate)


# --- monitoring views --------------------------------------------------------------------------------------
MonitoringReader = Annotated[Actor, Depends(require(Permission.monitoring_read))]
DeploymentPath = Annotated[str, PathParam(max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
WindowText = Annotated[str, Query(max_length=16, description="24h, 7d, 30m")]
ReferenceText = Annotated[
    str, Query(max_length=300, description="previous, a duration before the window (7d), or dataset:NAME:VERSION")
]


@router.get("/api/v1/monitoring/{deployment}/summary", response_model=Summary)
async def monitoring_summary(
    platform: PlatformDep, actor: MonitoringReader, deployment: DeploymentPath, window: WindowText = "24h"
) -> Summary:
    """Requests, latency percentiles, throughput and errors over time, cost by user, quality signal shares."""
    return await run_in_threadpool(lambda: platform.monitor.summary(deployment, window=window))


@router.get("/api/v1/monitoring/{deployment}/drift")
async def monitoring_drift(
    platform: PlatformDep,
    actor: MonitoringReader,
    deployment: DeploymentPath,
    window: WindowText = "24h",
    reference: ReferenceText = "previous",
    embeddings: bool = False,
    perplexity: bool = False,
) -> dict[str, Any]:
    """Prompt and completion drift of the window against the reference (every check with its statistic)."""
    report = await run_in_threadpool(
        lambda: platform.monitor.drift(
            deployment, window=window, reference=reference, embeddings=embeddings, perplexity=perplexity
        )
    )
    return report.to_dict()


@router.get(
    "/api/v1/monitoring/{deployment}/report",
    response_class=Response,
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}, "description": "The HTML report"}},
)
async def monitoring_report(
    platform: PlatformDep,
    actor: MonitoringReader,
    deployment: DeploymentPath,
    window: WindowText = "24h",
    reference: ReferenceText = "previous",
    embeddings: bool = False,
) -> Response:
    """The self-contained HTML report (what ``llmops monitor report`` writes)."""

    view = await run_in_threadpool(
        lambda: platform.monitor.view(deployment, window=window, reference=reference, embeddings=embeddings)
    )
    html = render_report(*view)
    filename = f"llmops-{deployment}-{window}.html"
    return Response(
        html, media_type="text/html; charset=utf-8", headers={"Content-Disposition": f'inline; filename="{filename}"'}
    )
