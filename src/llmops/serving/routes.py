"""HTTP routes of the serving state (thin: read the manager or the gateway, render).

``GET /api/v1/serving/engines`` (``deployments:read``) and ``GET /metrics``, the Prometheus exposition, public
on the serving port as vLLM's is (``api/deps.PUBLIC_ROUTES``): its labels carry deployments, versions and engines,
never users, keys or prompts.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from llmops.api.deps import require
from llmops.security.actor import Actor
from llmops.security.roles import Permission
from llmops.serving.metrics import CONTENT_TYPE

router = APIRouter(prefix="/api/v1/serving", tags=["serving"])
metrics_router = APIRouter(tags=["serving"])


@router.get("/engines")
async def engines(
    request: Request, actor: Annotated[Actor, Depends(require(Permission.deployments_read))]
) -> dict[str, Any]:
    """Readiness, each deployment's newest and serving revision, and every engine: state, errors, load."""
    manager = request.app.state.engines
    health: dict[str, Any] = await manager.health()
    return health


@metrics_router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus exposition: latency histograms, request, token and cost counters, engine and gateway gauges."""
    body = await request.app.state.gateway.scrape(request.app.state.engines.engine_entries())
    return Response(body, media_type=CONTENT_TYPE)
