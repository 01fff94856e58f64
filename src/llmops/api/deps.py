"""Request dependencies: the platform, the caller, and per-route permissions.

``require(permission)`` is how a route declares what it needs. ``tests/api/test_route_permissions.py``
walks every route of the app and fails on one that declares nothing and is not in ``PUBLIC_ROUTES``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from llmops.errors import PermissionDenied, Unauthenticated
from llmops.platform import Platform
from llmops.security.actor import Actor
from llmops.security.roles import PERMISSION_ROLE, Permission

SESSION_COOKIE = "llmops_key"

# Routes that are deliberately reachable without a key.
PUBLIC_ROUTES: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),  # Prometheus scrapes without a key, as vLLM's /metrics; no per-user data in it
        ("GET", "/v2"),  # KServe V2 server metadata and health, probed without keys
        ("GET", "/v2/health/live"),
        ("GET", "/v2/health/ready"),
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/logout"),
        ("GET", "/login"),
        ("POST", "/login"),
        ("POST", "/logout"),
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
        ("GET", "/docs/oauth2-redirect"),
        ("GET", "/redoc"),
    }
)

_bearer = HTTPBearer(auto_error=False, description="An llmops API key: `Authorization: Bearer llmops_…`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False)
_cookie = APIKeyCookie(name=SESSION_COOKIE, auto_error=False)


def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


def authenticate(
    request: Request,
    platform: PlatformDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header: Annotated[str | None, Depends(_header)],
    cookie: Annotated[str | None, Depends(_cookie)],
) -> Actor:
    token = (bearer.credentials if bearer else None) or header or cookie
    if not token:
        raise Unauthenticated("an API key is required: send `Authorization: Bearer <key>` or sign in")
    actor = platform.security.authenticate(token)
    request.state.actor = actor
    return actor


def require(permission: Permission) -> Callable[[Actor], Actor]:
    def dependency(actor: Annotated[Actor, Depends(authenticate)]) -> Actor:
        if not actor.can(permission):
            needed = PERMISSION_ROLE[permission].name
            raise PermissionDenied(
                f"{permission.value} needs the {needed} role; {actor.name} has {actor.role.name}",
                details={"permission": permission.value, "required_role": needed},
            )
        return actor

    dependency.llmops_permission = permission  # type: ignore[attr-defined]
    dependency.__name__ = f"require_{permission.name}"
    return dependency


def actor_with(permission: Permission) -> object:
    """``actor: Annotated[Actor, actor_with(Permission.x)]`` in a route signature."""
    return Depends(require(permission))
