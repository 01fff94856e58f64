"""Liveness, readiness and effective configuration."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from llmops import __version__
from llmops.api.deps import PlatformDep, require
from llmops.errors import Unavailable
from llmops.security.actor import Actor
from llmops.security.roles import Permission

router = APIRouter(tags=["system"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok", "version": __version__}


@router.get("/readyz")
async def readyz(request: Request, platform: PlatformDep) -> JSONResponse:
    """Readiness: the metadata database, the blob store and (when configured) Redis are reachable, and every
    deployed route's engine is loaded and answered a probe."""
    checks: dict[str, str] = {}
    probes = [("database", platform.db.ping), ("blobs", platform.blobs.ping)]
    if platform.settings.redis_url:
        probes.append(("redis", platform.counters.ping))
    for name, ping in probes:
        try:
            await run_in_threadpool(ping)
            checks[name] = "ok"
        except Unavailable as exc:
            checks[name] = exc.message
    engines = getattr(request.app.state, "engines", None)
    if engines is not None and (engines.deployments_known() or not engines.ready):  # every route's engine answers
        checks["engines"] = "ok" if engines.ready else "engines loading or failed (see /api/v1/serving/engines)"
    gateway = getattr(request.app.state, "gateway", None)
    if gateway is not None and gateway.draining:
        checks["gateway"] = "draining: shutting down, new requests are refused"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks}, status_code=200 if ready else 503
    )


@router.get("/api/v1/config")
def config(platform: PlatformDep, actor: Annotated[Actor, Depends(require(Permission.config_read))]) -> dict[str, Any]:
    """Effective settings, secrets masked."""
    return platform.settings.masked()
