"""Server-rendered UI pages, served by the API process at ``/``.

Pages are thin like every route: declare a permission, call platform services, render a template.
Charts fetch their series from the REST API in the browser (same-origin, the session cookie
authenticates), so a page renders fast however long its runs are.

- ``NAV`` is the one list of top-level sections; later domains append to it.
- ``PageRoute`` renders domain errors raised while serving a page (a missing run, a role that is too
  low) as readable HTML pages. ``Unauthenticated`` is left to ``api/errors.py``, which redirects a
  browser to the sign-in page.
- Every page is sent with a Content-Security-Policy that allows only this origin: a template that
  reached for a CDN or an inline script would break visibly (and fail the browser tests).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute

from llmops.api.deps import SESSION_COOKIE, PlatformDep, require
from llmops.errors import LLMOpsError, PermissionDenied, Unauthenticated
from llmops.security.actor import Actor
from llmops.security.roles import Permission
from llmops.tracking.schemas import RunDetail
from llmops.tracking.service import RUN_KINDS
from llmops.ui.templating import STATIC_DIR, build_environment

__all__ = ["NAV", "STATIC_DIR", "NavItem", "router"]


@dataclass(frozen=True)
class NavItem:
    """A top-level section; shown only to callers whose role holds ``permission``."""

    label: str
    href: str
    permission: Permission


NAV: list[NavItem] = [
    NavItem("Overview", "/", Permission.runs_read),
    NavItem("Runs", "/runs", Permission.runs_read),
    NavItem("Audit", "/audit", Permission.audit_read),
    NavItem("Access", "/access", Permission.principals_read),
    NavItem("Store", "/store", Permission.store_read),
]

RUN_STATUSES = ("running", "finished", "failed", "killed")
RUNS_PAGE_SIZE = 50
AUDIT_PAGE_SIZE = 50
SESSION_MAX_AGE = 7 * 24 * 3600  # the same lifetime as the REST sign-in cookie
MAX_KEY_LENGTH = 512

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

ERROR_TITLES = {
    403: "Permission denied",
    404: "Not found",
    409: "Conflict",
    422: "Invalid request",
}

_env = build_environment()


# rendering --------------------------------------------------------------------------------------------
def _nav(actor: Actor | None, path: str) -> list[dict[str, Any]]:
    if actor is None:
        return []
    return [
        {
            "label": item.label,
            "href": item.href,
            "active": path == item.href or (item.href != "/" and path.startswith(item.href + "/")),
        }
        for item in NAV
        if actor.can(item.permission)
    ]


def render(
    request: Request, template: str, *, actor: Actor | None, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """Render a page inside the layout (navigation, who is signed in) with the security headers."""
    html = _env.get_template(template).render(
        actor=actor, nav=_nav(actor, request.url.path), path=request.url.path, **context
    )
    return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)


def render_error(request: Request, exc: LLMOpsError) -> HTMLResponse:
    actor = getattr(request.state, "actor", None)
    return render(
        request,
        "error.html",
        actor=actor,
        status_code=exc.status,
        title=ERROR_TITLES.get(exc.status, "Something went wrong"),
        status=exc.status,
        message=exc.message,
        denied=isinstance(exc, PermissionDenied),
    )


class PageRoute(APIRoute):
    """A UI route: domain errors become HTML pages instead of the REST JSON shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except Unauthenticated:
                raise  # api/errors.py redirects browsers to /login?next=…
            except LLMOpsError as exc:
                return render_error(request, exc)

        return page_handler


router = APIRouter(include_in_schema=False, route_class=PageRoute)

RunsReader = Annotated[Actor, Depends(require(Permission.runs_read))]
AuditReader = Annotated[Actor, Depends(require(Permission.audit_read))]
PrincipalsReader = Annotated[Actor, Depends(require(Permission.principals_read))]
StoreReader = Annotated[Actor, Depends(require(Permission.store_read))]
Filter = Annotated[str, Query(max_length=128)]


# sign-in ----------------------------------------------------------------------------------------------
def safe_next(value: str | None) -> str:
    """Where to go after signing in: only a path on this site, never another host.

    ``//evil.example`` and ``/\\evil.example`` are host names to a browser, so a target must start
    with exactly one ``/`` and carry no backslash, scheme, host or control character.
    """
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def _cross_site(request: Request) -> bool:
    """A form posted from another site (login CSRF): its ``Origin`` names a different host."""
    origin = request.headers.get("origin")
    if origin is None:
        return False
    return urlsplit(origin).netloc != request.headers.get("host", "")


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next_url: Annotated[str, Query(alias="next", max_length=2048)] = "/") -> HTMLResponse:
    return render(request, "login.html", actor=None, next=safe_next(next_url), error=None)


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    platform: PlatformDep,
    key: Annotated[str, Form()] = "",
    next_url: Annotated[str, Form(alias="next")] = "/",
) -> Response:
    target = safe_next(next_url)
    key = key.strip()
    if _cross_site(request):
        error, status = "sign-in must be posted from this site", 403
    elif not key:
        error, status = "enter an API key", 401
    elif len(key) > MAX_KEY_LENGTH:
        error, status = "malformed API key: too long", 401
    else:
        try:
            platform.security.authenticate(key)
        except Unauthenticated as exc:
            error, status = exc.message, 401
        else:
            response = RedirectResponse(target, status_code=303)
            response.set_cookie(
                SESSION_COOKIE,
                key,
                max_age=SESSION_MAX_AGE,
                path="/",
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
            )
            return response
    return render(request, "login.html", actor=None, status_code=status, next=target, error=error)


@router.post("/logout")
def logout(request: Request) -> Response:
    if _cross_site(request):
        return render(
            request,
            "error.html",
            actor=None,
            status_code=403,
            title="Permission denied",
            status=403,
            message="sign-out must be posted from this site",
            denied=False,
        )
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


# pages ------------------------------------------------------------------------------------------------
@router.get("/", response_class=HTMLResponse)
def overview(request: Request, platform: PlatformDep, actor: RunsReader) -> HTMLResponse:
    recent = platform.tracking.list_runs(limit=10)
    counts = {status: platform.tracking.list_runs(status=status, limit=1).total for status in RUN_STATUSES}
    events = platform.audit.list(limit=8) if actor.can(Permission.audit_read) else None
    return render(request, "overview.html", actor=actor, recent=recent, counts=counts, events=events)


@router.get("/runs", response_class=HTMLResponse)
def runs_page(
    request: Request,
    platform: PlatformDep,
    actor: RunsReader,
    kind: Filter = "",
    status: Filter = "",
    name: Filter = "",
    page: Annotated[int, Query(ge=1, le=10**6)] = 1,
) -> HTMLResponse:
    result = platform.tracking.list_runs(
        kind=kind or None,
        status=status or None,
        name=name or None,
        limit=RUNS_PAGE_SIZE,
        offset=(page - 1) * RUNS_PAGE_SIZE,
    )
    filters = {k: v for k, v in (("kind", kind), ("status", status), ("name", name)) if v}
    pages = {
        "prev": f"/runs?{urlencode({**filters, 'page': page - 1})}" if page > 1 else None,
        "next": f"/runs?{urlencode({**filters, 'page': page + 1})}" if page * RUNS_PAGE_SIZE < result.total else None,
    }
    return render(
        request,
        "runs.html",
        actor=actor,
        result=result,
        kinds=RUN_KINDS,
        statuses=RUN_STATUSES,
        filters={"kind": kind, "status": status, "name": name},
        page=page,
        pages=pages,
        now=_now(),
    )


@router.get("/runs/compare", response_class=HTMLResponse)
def compare_page(
    request: Request,
    platform: PlatformDep,
    actor: RunsReader,
    ids: Annotated[list[str] | None, Query()] = None,
) -> HTMLResponse:
    run_ids = list(dict.fromkeys(i.strip() for raw in ids or [] for i in raw.split(",") if i.strip()))
    comparison = platform.tracking.compare(run_ids)
    labels = _series_labels(comparison.runs)
    charts = [
        {
            "key": key,
            "runs": [
                {"id": run.id, "label": labels[run.id], "color": index}
                for index, run in enumerate(comparison.runs)
                if any(m.key == key for m in run.metrics)
            ],
        }
        for key in comparison.metric_keys
    ]
    last = {run.id: {m.key: m for m in run.metrics} for run in comparison.runs}
    return render(
        request,
        "compare.html",
        actor=actor,
        comparison=comparison,
        labels=labels,
        charts=charts,
        last=last,
        differing=set(comparison.differing_params),
        running=any(r.status == "running" for r in comparison.runs),
    )


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str, platform: PlatformDep, actor: RunsReader) -> HTMLResponse:
    run = platform.tracking.get_run(run_id)
    series = [{"id": run.id, "label": run.name, "color": 0}]
    return render(request, "run.html", actor=actor, run=run, series=series, now=_now())


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    platform: PlatformDep,
    actor: AuditReader,
    action: Filter = "",
    by: Annotated[str, Query(alias="actor", max_length=160)] = "",
    target: Annotated[str, Query(max_length=512)] = "",
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> HTMLResponse:
    rows = platform.audit.list(
        limit=AUDIT_PAGE_SIZE + 1, before=before, actor=by or None, action=action or None, target=target or None
    )
    events, more = rows[:AUDIT_PAGE_SIZE], len(rows) > AUDIT_PAGE_SIZE
    verification = platform.audit.verify()
    filters = {k: v for k, v in (("action", action), ("actor", by), ("target", target)) if v}
    pages = {
        "newest": f"/audit?{urlencode(filters)}" if before is not None else None,
        "older": f"/audit?{urlencode({**filters, 'before': events[-1].seq})}" if more else None,
    }
    return render(
        request,
        "audit.html",
        actor=actor,
        events=events,
        verification=verification,
        filters={"action": action, "actor": by, "target": target},
        pages=pages,
    )


@router.get("/access", response_class=HTMLResponse)
def access_page(request: Request, platform: PlatformDep, actor: PrincipalsReader) -> HTMLResponse:
    principals = platform.security.list_principals()
    keys = platform.security.list_keys(actor, actor.name) if actor.principal_id is not None else []
    return render(request, "access.html", actor=actor, principals=principals, keys=keys, now=_now())


@router.get("/store", response_class=HTMLResponse)
def store_page(request: Request, platform: PlatformDep, actor: StoreReader) -> HTMLResponse:
    return render(request, "store.html", actor=actor, stats=platform.store.stats())


# presentation helpers ---------------------------------------------------------------------------------
def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _series_labels(runs: list[RunDetail]) -> dict[str, str]:
    """Legend labels: the run name, plus a short id where two compared runs share a name."""
    names = [run.name for run in runs]
    return {run.id: run.name if names.count(run.name) == 1 else f"{run.name} ({run.id[:6]})" for run in runs}
