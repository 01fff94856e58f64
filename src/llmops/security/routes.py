"""HTTP routes: sign-in, principals, API keys, audit log."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from starlette.concurrency import run_in_threadpool

from llmops.api.deps import SESSION_COOKIE, PlatformDep, require
from llmops.security.actor import Actor
from llmops.security.roles import Permission
from llmops.security.schemas import (
    AuditEventOut,
    AuditVerifyOut,
    KeyCreate,
    KeyCreated,
    KeyOut,
    LoginRequest,
    PrincipalCreate,
    PrincipalOut,
    PrincipalUpdate,
    WhoAmI,
)

router = APIRouter(prefix="/api/v1", tags=["security"])

Viewer = Annotated[Actor, Depends(require(Permission.keys_self))]
PrincipalsRead = Annotated[Actor, Depends(require(Permission.principals_read))]
PrincipalsAdmin = Annotated[Actor, Depends(require(Permission.principals_admin))]
AuditRead = Annotated[Actor, Depends(require(Permission.audit_read))]


def _whoami(actor: Actor) -> WhoAmI:
    return WhoAmI(name=actor.name, role=actor.role.name, principal_id=actor.principal_id)


@router.post("/auth/login", response_model=WhoAmI)
def login(body: LoginRequest, platform: PlatformDep, response: Response) -> WhoAmI:
    actor = platform.security.authenticate(body.key)
    response.set_cookie(SESSION_COOKIE, body.key, httponly=True, samesite="strict", max_age=7 * 24 * 3600)
    return _whoami(actor)


@router.post("/auth/logout", status_code=204)
def logout(response: Response) -> Response:
    response.status_code = 204
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/auth/whoami", response_model=WhoAmI)
def whoami(actor: Viewer) -> WhoAmI:
    return _whoami(actor)


@router.get("/principals", response_model=list[PrincipalOut])
def list_principals(platform: PlatformDep, actor: PrincipalsRead) -> list[PrincipalOut]:
    return platform.security.list_principals()


@router.post("/principals", response_model=PrincipalOut, status_code=201)
def create_principal(body: PrincipalCreate, platform: PlatformDep, actor: PrincipalsAdmin) -> PrincipalOut:
    return platform.security.create_principal(actor, body.name, kind=body.kind, role=body.role, email=body.email)


@router.get("/principals/{name}", response_model=PrincipalOut)
def get_principal(name: str, platform: PlatformDep, actor: PrincipalsRead) -> PrincipalOut:
    return platform.security.get_principal(name)


@router.patch("/principals/{name}", response_model=PrincipalOut)
def update_principal(name: str, body: PrincipalUpdate, platform: PlatformDep, actor: PrincipalsAdmin) -> PrincipalOut:
    return platform.security.update_principal(actor, name, role=body.role, disabled=body.disabled)


@router.get("/keys", response_model=list[KeyOut])
def list_keys(
    platform: PlatformDep, actor: Viewer, principal: Annotated[str | None, Query(max_length=128)] = None
) -> list[KeyOut]:
    return platform.security.list_keys(actor, principal)


@router.post("/keys", response_model=KeyCreated, status_code=201)
def create_key(body: KeyCreate, platform: PlatformDep, actor: Viewer) -> KeyCreated:
    expires = dt.timedelta(days=body.expires_in_days) if body.expires_in_days else None
    return platform.security.create_key(
        actor, principal=body.principal, name=body.name, expires_in=expires, scopes=body.scopes
    )


@router.delete("/keys/{prefix}", response_model=KeyOut)
def revoke_key(prefix: str, platform: PlatformDep, actor: Viewer) -> KeyOut:
    return platform.security.revoke_key(actor, prefix)


@router.get("/audit", response_model=list[AuditEventOut])
def list_audit(
    platform: PlatformDep,
    actor: AuditRead,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    actor_name: Annotated[str | None, Query(alias="actor", max_length=160)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    target: Annotated[str | None, Query(max_length=512)] = None,
) -> list[AuditEventOut]:
    return platform.audit.list(limit=limit, before=before, actor=actor_name, action=action, target=target)


@router.get("/audit/verify", response_model=AuditVerifyOut)
async def verify_audit(platform: PlatformDep, actor: AuditRead) -> AuditVerifyOut:
    result = await run_in_threadpool(platform.audit.verify)
    return AuditVerifyOut(ok=result.ok, checked=result.checked, head_hash=result.head_hash, problems=result.problems)
