"""HTTP routes of deployments (thin: parse, call ``DeploymentService``, render)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from llmops.api.deps import PlatformDep, require
from llmops.naming import Name
from llmops.security.actor import Actor
from llmops.security.roles import Permission
from llmops.serving.deployments.schemas import (
    Budget,
    DeploymentOut,
    Engine,
    OptionValue,
    Pricing,
    RateLimit,
    RevisionOut,
    Strict,
)

router = APIRouter(prefix="/api/v1/deployments", tags=["deployments"])

Reader = Annotated[Actor, Depends(require(Permission.deployments_read))]
Writer = Annotated[Actor, Depends(require(Permission.deployments_write))]
DeploymentName = Annotated[str, Path(max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
RouteName = Annotated[str, Path(max_length=32, pattern=r"^[a-z][a-z0-9_-]*$")]
Reason = Annotated[str | None, Field(max_length=2000)]
ModelRef = Annotated[str, Field(min_length=1, max_length=300)]


class MonitoringPatch(Strict):
    """Monitoring policy fields to change; a field left out keeps its current value."""

    capture_text: bool | None = None
    retention_days: Annotated[int, Field(ge=1, le=3650)] | None = None
    redact_pii: bool | None = None
    latency_objective_ms: Annotated[float, Field(gt=0)] | None = None


class Policies(Strict):
    """Deployment policies; a field left out keeps its current value."""

    require_signature: bool | None = None
    trusted_keys: list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] | None = None
    rate_limit: RateLimit | None = None
    budget: Budget | None = None
    pricing: Pricing | None = None
    response_cache: bool | None = None
    monitoring: MonitoringPatch | None = None
    scopes: list[Annotated[str, Field(max_length=64)]] | None = None

    def given(self) -> dict[str, Any]:
        out = {k: v for k, v in self.model_dump().items() if k in self.model_fields_set}
        if self.monitoring is not None:
            out["monitoring"] = self.monitoring.model_dump(exclude_unset=True)
        return out


class DeployRequest(Policies):
    name: Name
    model: ModelRef | None = None
    engine: Engine = "torch"
    engine_options: dict[str, OptionValue] = Field(default_factory=dict)
    description: Annotated[str | None, Field(max_length=4000)] = None
    reason: Reason = None

    def given(self) -> dict[str, Any]:
        return {k: v for k, v in super().given().items() if k in Policies.model_fields}


class RouteRequest(Strict):
    mode: Annotated[str, Field(pattern=r"^(canary|shadow)$")]
    model: ModelRef
    percent: Annotated[float, Field(ge=0, le=100)]
    engine: Engine | None = None
    engine_options: dict[str, OptionValue] = Field(default_factory=dict)
    reason: Reason = None


class PolicyRequest(Policies):
    reason: Reason = None

    def given(self) -> dict[str, Any]:
        return {k: v for k, v in super().given().items() if k != "reason"}


class ChangeRequest(Strict):
    reason: Reason = None


@router.get("", response_model=list[DeploymentOut])
def list_deployments(platform: PlatformDep, actor: Reader) -> list[DeploymentOut]:
    return platform.deployments.list_deployments()


@router.post("", response_model=DeploymentOut, status_code=201)
async def deploy(body: DeployRequest, platform: PlatformDep, actor: Writer) -> DeploymentOut:
    """Create a deployment, or give it a new primary route; a new revision either way."""
    return await run_in_threadpool(
        lambda: platform.deployments.deploy(
            actor,
            body.name,
            model=body.model,
            engine=body.engine,
            engine_options=body.engine_options,
            description=body.description,
            reason=body.reason,
            **body.given(),
        )
    )


@router.get("/{name}", response_model=DeploymentOut)
def get_deployment(name: DeploymentName, platform: PlatformDep, actor: Reader) -> DeploymentOut:
    return platform.deployments.get(name)


@router.get("/{name}/revisions", response_model=list[RevisionOut])
def list_revisions(name: DeploymentName, platform: PlatformDep, actor: Reader) -> list[RevisionOut]:
    return platform.deployments.revisions(name)


@router.put("/{name}/routes/{route}", response_model=DeploymentOut)
async def set_route(
    name: DeploymentName, route: RouteName, body: RouteRequest, platform: PlatformDep, actor: Writer
) -> DeploymentOut:
    """Add or replace a canary or shadow route."""
    return await run_in_threadpool(
        lambda: platform.deployments.set_route(
            actor,
            name,
            mode=body.mode,
            model=body.model,
            percent=body.percent,
            route=route,
            engine=body.engine,
            engine_options=body.engine_options,
            reason=body.reason,
        )
    )


@router.delete("/{name}/routes/{route}", response_model=DeploymentOut)
def remove_route(name: DeploymentName, route: RouteName, platform: PlatformDep, actor: Writer) -> DeploymentOut:
    return platform.deployments.remove_route(actor, name, route)


@router.patch("/{name}/policies", response_model=DeploymentOut)
def set_policies(name: DeploymentName, body: PolicyRequest, platform: PlatformDep, actor: Writer) -> DeploymentOut:
    return platform.deployments.set_policies(actor, name, reason=body.reason, **body.given())


@router.post("/{name}/promote", response_model=DeploymentOut)
def promote(
    name: DeploymentName,
    platform: PlatformDep,
    actor: Writer,
    body: ChangeRequest | None = None,
    route: Annotated[str, Query(max_length=32, pattern=r"^[a-z][a-z0-9_-]*$")] = "canary",
) -> DeploymentOut:
    return platform.deployments.promote(actor, name, route=route, reason=body.reason if body else None)


@router.post("/{name}/rollback", response_model=DeploymentOut)
def rollback(
    name: DeploymentName,
    platform: PlatformDep,
    actor: Writer,
    body: ChangeRequest | None = None,
    to: Annotated[int | None, Query(ge=1, le=2**31)] = None,
) -> DeploymentOut:
    return platform.deployments.rollback(actor, name, to=to, reason=body.reason if body else None)


@router.delete("/{name}", status_code=204)
def delete_deployment(name: DeploymentName, platform: PlatformDep, actor: Writer) -> None:
    platform.deployments.delete(actor, name)
