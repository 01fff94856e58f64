"""Every route of the app declares a permission (``llmops.api.deps.require``) or is listed in
``PUBLIC_ROUTES``; the list holds no stale entries; and the check itself catches an unguarded route."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route

try:
    from fastapi.routing import iter_route_contexts
except ImportError:  # FastAPI before lazily included routers: app.routes is already flat

    def iter_route_contexts(routes: Any) -> Iterator[Any]:  # type: ignore[misc]
        yield from routes


from llmops.api.app import create_app
from llmops.api.deps import PUBLIC_ROUTES, authenticate, require
from llmops.platform import Platform
from llmops.security.roles import Permission


def permissions_of(dependant: Dependant) -> set[Permission]:
    """Permissions declared anywhere in a route's dependency tree."""
    found: set[Permission] = set()
    for dep in dependant.dependencies:
        permission = getattr(dep.call, "llmops_permission", None)
        if permission is not None:
            found.add(permission)
        found |= permissions_of(dep)
    return found


def endpoints(app: FastAPI) -> Iterator[tuple[str, str, set[Permission] | None]]:
    """``(method, path, permissions)`` of every route; ``None`` for non-FastAPI routes (docs, OpenAPI).

    Included routers are expanded with their prefix and router-level dependencies (recent FastAPI keeps
    them as lazy ``_IncludedRouter`` entries in ``app.routes``; ``iter_route_contexts`` flattens them).
    """
    for ctx in iter_route_contexts(app.routes):
        route = getattr(ctx, "original_route", ctx)
        if isinstance(route, Mount):
            continue  # static files: exempt
        path = str(ctx.path)
        methods: set[str] = set(ctx.methods or ())
        if isinstance(route, APIRoute):
            declared = permissions_of(ctx.dependant)
            for method in sorted(methods):
                yield method, path, declared
        elif isinstance(route, Route):
            for method in sorted(methods - {"HEAD"}):
                yield method, path, None
        else:
            raise AssertionError(f"unexpected route type {type(route).__name__} at {getattr(ctx, 'path', '?')}")


def unguarded(app: FastAPI) -> list[str]:
    """Routes that declare no permission and are not deliberately public."""
    return sorted(
        f"{method} {path}"
        for method, path, declared in endpoints(app)
        if not declared and (method, path) not in PUBLIC_ROUTES
    )


@pytest.fixture
def app(embedded_platform: Platform) -> FastAPI:
    return create_app(platform=embedded_platform)


def test_every_route_declares_a_permission_or_is_public(app: FastAPI) -> None:
    assert unguarded(app) == []


def stale_public_entries(app: FastAPI, public: frozenset[tuple[str, str]] = PUBLIC_ROUTES) -> list[str]:
    """Allow-list entries with no route, or whose route requires a permission after all."""
    routes = {(method, path): declared for method, path, declared in endpoints(app)}
    missing = [f"{m} {p} (no such route)" for m, p in public if (m, p) not in routes]
    guarded = [f"{m} {p} (requires a permission)" for m, p in public if routes.get((m, p))]
    return sorted(missing + guarded)


def test_public_routes_exist_and_declare_nothing(app: FastAPI) -> None:
    assert stale_public_entries(app) == []


def test_the_api_routes_are_guarded(app: FastAPI) -> None:
    """Spot checks that the walk sees the permissions that routes declare."""
    routes = {(method, path): declared for method, path, declared in endpoints(app)}
    assert routes[("POST", "/api/v1/runs")] == {Permission.runs_write}
    assert routes[("GET", "/api/v1/runs")] == {Permission.runs_read}
    assert routes[("PUT", "/api/v1/runs/{run_id}/artifacts/{path:path}")] == {Permission.runs_write}
    assert routes[("GET", "/api/v1/audit")] == {Permission.audit_read}
    assert routes[("PATCH", "/api/v1/principals/{name}")] == {Permission.principals_admin}
    assert routes[("GET", "/api/v1/config")] == {Permission.config_read}
    assert routes[("GET", "/healthz")] == set()
    mutating = [(m, p) for m, p in routes if m in ("POST", "PUT", "PATCH", "DELETE") and p.startswith("/api/")]
    assert len(mutating) >= 10


def _endpoint() -> dict[str, Any]:
    return {}


def test_check_catches_an_unguarded_route(app: FastAPI) -> None:
    app.add_api_route("/api/v1/fake", _endpoint, methods=["POST"])
    assert unguarded(app) == ["POST /api/v1/fake"]


def test_check_catches_an_authenticated_route_without_a_permission(app: FastAPI) -> None:
    """Signing in is not enough: a route must say which permission it needs."""
    app.add_api_route("/api/v1/fake", _endpoint, methods=["DELETE"], dependencies=[Depends(authenticate)])
    assert unguarded(app) == ["DELETE /api/v1/fake"]


def test_check_accepts_a_guarded_route_at_any_depth(app: FastAPI) -> None:
    def nested(actor: Any = Depends(require(Permission.store_admin))) -> None:  # noqa: B008
        return None

    direct = [Depends(require(Permission.runs_write))]
    app.add_api_route("/api/v1/fake-direct", _endpoint, methods=["POST"], dependencies=direct)
    app.add_api_route("/api/v1/fake-nested", _endpoint, methods=["POST"], dependencies=[Depends(nested)])
    assert unguarded(app) == []
    routes = {(m, p): d for m, p, d in endpoints(app)}
    assert routes[("POST", "/api/v1/fake-nested")] == {Permission.store_admin}


def test_check_catches_a_stale_public_entry(app: FastAPI) -> None:
    stale = PUBLIC_ROUTES | {("DELETE", "/api/v1/gone"), ("GET", "/api/v1/runs")}
    assert stale_public_entries(app, stale) == [
        "DELETE /api/v1/gone (no such route)",
        "GET /api/v1/runs (requires a permission)",
    ]
