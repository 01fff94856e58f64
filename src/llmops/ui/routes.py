"""Server-rendered UI pages, served by the API process at ``/``.

Pages are thin like every route: declare a permission, call platform services, render a template.
Charts fetch their series from the REST API in the browser (same-origin, the session cookie
authenticates), so a page renders fast however long its runs are.

- ``NAV`` is the one list of top-level sections; later domains append to it.
- Model pages (``/models…``) read the registry; the lineage graph is laid out by ``ui/lineage.py`` and
  drawn as server-side SVG, so it needs no script.
- Dataset pages (``/datasets…``) read the dataset service: a version's length histograms are laid out by
  ``ui/histogram.py`` and drawn as server-side SVG too; sample rows are paged with ``?offset=``.
- ``PageRoute`` renders domain errors raised while serving a page (a missing run, a role that is too
  low) as readable HTML pages. ``Unauthenticated`` is left to ``api/errors.py``, which redirects a
  browser to the sign-in page.
- Every page is sent with a Content-Security-Policy that allows only this origin: a template that
  reached for a CDN or an inline script would break visibly (and fail the browser tests).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from llmops.api.deps import SESSION_COOKIE, PlatformDep, require
from llmops.datasets.refs import parse_dataset_ref
from llmops.errors import InvalidInput, LLMOpsError, NotFound, PermissionDenied, Unauthenticated
from llmops.monitoring.report import report_context
from llmops.naming import check_name
from llmops.registry import planner
from llmops.registry.promotion import DEFAULT_POLICY, PromotionPolicy
from llmops.registry.refs import parse_ref
from llmops.registry.schemas import TensorChange, VersionDetail
from llmops.registry.service import RegistryService
from llmops.security.actor import Actor
from llmops.security.roles import Permission
from llmops.tracking.schemas import RunDetail
from llmops.tracking.service import RUN_KINDS
from llmops.ui import dataset_views, lineage
from llmops.ui.templating import STATIC_DIR, build_environment, url_path

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
    NavItem("Models", "/models", Permission.models_read),
    NavItem("Datasets", "/datasets", Permission.datasets_read),
    NavItem("Deployments", "/deployments", Permission.deployments_read),
]

RUN_STATUSES = ("running", "finished", "failed", "killed")
RUNS_PAGE_SIZE = 50
AUDIT_PAGE_SIZE = 50
SESSION_MAX_AGE = 7 * 24 * 3600  # the same lifetime as the REST sign-in cookie
MAX_KEY_LENGTH = 512
MAX_VERSION = 2**31  # version numbers and plan inputs beyond this are typos, not requests
ROWS_PAGE_SIZE = 20  # sample rows per page of a dataset version
MAX_OFFSET = 2**40

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
ModelsReader = Annotated[Actor, Depends(require(Permission.models_read))]
DatasetsReader = Annotated[Actor, Depends(require(Permission.datasets_read))]
DeploymentsReader = Annotated[Actor, Depends(require(Permission.deployments_read))]
DeploymentsWriter = Annotated[Actor, Depends(require(Permission.deployments_write))]
MonitoringReader = Annotated[Actor, Depends(require(Permission.monitoring_read))]
Filter = Annotated[str, Query(max_length=128)]
RefQuery = Annotated[str, Query(max_length=300)]


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


# models -----------------------------------------------------------------------------------------------
# Path segments are taken as plain strings and checked like any reference, so that a bad name or version
# is a readable 422 page rather than the REST validation body. ``/models/-/diff`` is declared before
# ``/models/{name}``, which would otherwise take "diff" for a model name.
@router.get("/models", response_class=HTMLResponse)
def models_page(request: Request, platform: PlatformDep, actor: ModelsReader) -> HTMLResponse:
    return render(request, "models.html", actor=actor, models=platform.registry.list_models())


@router.get("/models/-/diff", response_class=HTMLResponse)
def model_diff_page(
    request: Request, platform: PlatformDep, actor: ModelsReader, a: RefQuery = "", b: RefQuery = ""
) -> HTMLResponse:
    a, b = a.strip(), b.strip()
    if not (a and b):
        return render(request, "model_diff.html", actor=actor, a=a, b=b, diff=None, rows=[], versions=None)
    registry = platform.registry
    for text in (a, b):
        parse_ref(text)
    versions = (registry.get_version(a), registry.get_version(b))  # resolves aliases; 404 before any work
    diff = registry.diff(versions[0].ref, versions[1].ref)
    return render(
        request, "model_diff.html", actor=actor, a=a, b=b, diff=diff, rows=_diff_rows(diff.tensors), versions=versions
    )


@router.get("/models/{name}", response_class=HTMLResponse)
def model_page(request: Request, name: str, platform: PlatformDep, actor: ModelsReader) -> HTMLResponse:
    check_name(name, "model")
    registry = platform.registry
    versions = registry.list_versions(name)
    policy = registry.get_policy(name)
    return render(
        request,
        "model.html",
        actor=actor,
        name=name,
        versions=versions,
        history=registry.alias_history(name),
        policy=policy,
        default_policy=policy == DEFAULT_POLICY,
    )


@router.get("/models/{name}/{version}", response_class=HTMLResponse)
def model_version_page(
    request: Request,
    name: str,
    version: str,
    platform: PlatformDep,
    actor: ModelsReader,
    context: Annotated[str, Query(max_length=64)] = "",
    batch: Annotated[str, Query(max_length=64)] = "",
    precision: Annotated[str, Query(max_length=64)] = "",
) -> HTMLResponse:
    ref = _version_ref(name, version)
    registry = platform.registry
    detail = registry.get_version(ref)
    policy = registry.get_policy(name)
    status, plan, plan_error = 200, None, None
    try:
        options = _plan_options(context, batch, precision)
    except InvalidInput as exc:
        status, plan_error = exc.status, exc.message
    else:
        try:
            plan = registry.plan(ref, **options)
        except (NotFound, InvalidInput) as exc:  # no config.json, or one the planner cannot read
            plan_error = exc.message
    siblings = registry.list_versions(name)
    return render(
        request,
        "model_version.html",
        actor=actor,
        status_code=status,
        v=detail,
        policy=policy,
        unmet=registry.promotion_check(ref),
        signature=_signature(registry, detail, policy),
        storage=_storage(detail),
        plan=plan,
        plan_error=plan_error,
        form={"context": context, "batch": batch, "precision": precision or "bf16"},
        precisions=list(planner.PRECISION_BYTES),
        compare_default=detail.base or next((s.ref for s in siblings if s.version < detail.version), ""),
        compare_refs=list(
            dict.fromkeys([*(s.ref for s in siblings if s.ref != detail.ref), *filter(None, [detail.base])])
        ),
    )


@router.get("/models/{name}/{version}/lineage", response_class=HTMLResponse)
def model_lineage_page(
    request: Request, name: str, version: str, platform: PlatformDep, actor: ModelsReader
) -> HTMLResponse:
    ref = _version_ref(name, version)
    root = platform.registry.lineage(ref)
    graph = lineage.build(root, lambda derived: platform.registry.lineage(derived, bases=False))
    return render(
        request,
        "model_lineage.html",
        actor=actor,
        ref=ref,
        name=name,
        graph=graph,
        node_width=lineage.NODE_WIDTH,
        node_height=lineage.NODE_HEIGHT,
    )


def _version_ref(name: str, version: str) -> str:
    """``name:version`` from two path segments, checked like any reference (a bad one is a 422 page)."""
    return str(parse_ref(f"{name}:{version}"))


def _positive(field: str, value: str) -> int:
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_VERSION:
        raise InvalidInput(f"{field} must be a whole number from 1 to {MAX_VERSION:,}, got {text[:16]!r}")
    return int(text)


def _plan_options(context: str, batch: str, precision: str) -> dict[str, Any]:
    """The memory-plan form's fields; empty ones keep the planner's defaults (context: the model's own)."""
    options: dict[str, Any] = {}
    if context.strip():
        options["context"] = _positive("context", context)
    if batch.strip():
        options["batch"] = _positive("batch", batch)
    if precision:
        if precision not in planner.PRECISION_BYTES:
            raise InvalidInput(f"precision must be one of {', '.join(planner.PRECISION_BYTES)}, got {precision!r}")
        options["precision"] = precision
    return options


def _signature(registry: RegistryService, detail: VersionDetail, policy: PromotionPolicy) -> dict[str, Any]:
    """Whether the version is signed, whether that verifies, and whether the policy trusts the key."""
    signature = detail.signature
    if not signature:
        return {"state": "unsigned", "text": "unsigned", "by": None, "at": None, "key": None}
    valid = registry.verify_signature(detail.ref)
    key = str(signature.get("public_key", ""))
    trusted = valid and (not policy.trusted_keys or key in policy.trusted_keys)
    if not valid:
        state, text = "invalid", "signature does not verify"
    elif not trusted:
        state, text = "untrusted", "verifies, but the key is not in the policy's trusted keys"
    else:
        state, text = "verified", "verified"
    return {"state": state, "text": text, "by": signature.get("by"), "at": _timestamp(signature.get("at")), "key": key}


def _timestamp(value: Any) -> dt.datetime | None:
    """An ISO 8601 time stored in a JSON record, or None when it is missing or not one."""
    try:
        return dt.datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _storage(detail: VersionDetail) -> dict[str, Any]:
    """Logical against stored bytes of a version's tensors, and how many are stored in each encoding.

    A tensor object shared by two entries (or versions) is stored once, so stored bytes count each digest
    once; ``added`` is what importing this version added to the store.
    """
    logical = sum(t.bytes for t in detail.tensors)
    unique = {t.digest: t for t in detail.tensors}
    stored = sum(t.stored_bytes for t in unique.values())
    tensors = Counter(t.encoding for t in detail.tensors)
    by_encoding = [
        {
            "encoding": encoding,
            "tensors": tensors[encoding],
            "bytes": sum(t.bytes for t in detail.tensors if t.encoding == encoding),
            "stored": sum(t.stored_bytes for t in unique.values() if t.encoding == encoding),
        }
        for encoding in sorted(tensors)
    ]
    ratio = stored / logical if logical else None
    return {
        "logical": logical,
        "stored": stored,
        "added": detail.physical_bytes,
        "ratio": ratio,
        "bar": min(ratio, 1.0) * 100 if ratio is not None else 0.0,
        "by_encoding": by_encoding,
    }


def _diff_rows(changes: list[TensorChange]) -> list[dict[str, Any]]:
    """Tensors that differ, each with its bar (relative L2 as a share of the largest finite one)."""
    rows = [c for c in changes if c.status != "unchanged"]
    finite = [c.relative_l2 for c in rows if c.relative_l2 is not None and math.isfinite(c.relative_l2)]
    largest = max(finite, default=0.0)
    out = []
    for change in rows:
        rel = change.relative_l2
        if rel is None:
            bar, text = None, "—"
        elif not math.isfinite(rel):
            bar, text = 100.0, "∞"
        else:
            bar, text = (rel / largest * 100 if largest > 0 else 0.0), f"{rel:.4g}"
        out.append({"change": change, "bar": bar, "text": text})
    return out


# datasets ---------------------------------------------------------------------------------------------
# As with models, path segments are plain strings checked like any reference, and ``/datasets/-/diff`` is
# declared before ``/datasets/{name}``. Statistics and transform reports are stored JSON written by other
# code (and by older versions of it), so the helpers below read them defensively: a field of an unexpected
# shape is left out of the page, never a 500.
@router.get("/datasets", response_class=HTMLResponse)
def datasets_page(request: Request, platform: PlatformDep, actor: DatasetsReader) -> HTMLResponse:
    service = platform.datasets
    items = [
        {"dataset": d, "latest": service.get(f"{d.name}:{d.latest}") if d.latest is not None else None}
        for d in service.list_datasets()
    ]
    return render(request, "datasets.html", actor=actor, items=items)


@router.get("/datasets/-/diff", response_class=HTMLResponse)
def dataset_diff_page(
    request: Request, platform: PlatformDep, actor: DatasetsReader, a: RefQuery = "", b: RefQuery = ""
) -> HTMLResponse:
    a, b = a.strip(), b.strip()
    if not (a and b):
        return render(request, "dataset_diff.html", actor=actor, a=a, b=b, diff=None)
    for text in (a, b):
        parse_dataset_ref(text)
    diff = platform.datasets.diff(a, b)
    columns = dataset_views.example_columns([*diff.added_examples, *diff.removed_examples])
    return render(
        request,
        "dataset_diff.html",
        actor=actor,
        a=a,
        b=b,
        diff=diff,
        delta=dataset_views.stats_delta(diff.stats_delta),
        columns=columns,
        added=dataset_views.rows_view(columns, diff.added_examples, chat="messages" in columns),
        removed=dataset_views.rows_view(columns, diff.removed_examples, chat="messages" in columns),
    )


@router.get("/datasets/{name}", response_class=HTMLResponse)
def dataset_page(request: Request, name: str, platform: PlatformDep, actor: DatasetsReader) -> HTMLResponse:
    check_name(name, "dataset")
    service = platform.datasets
    dataset = service.get_dataset(name)
    return render(request, "dataset.html", actor=actor, dataset=dataset, versions=service.list_versions(name))


@router.get("/datasets/{name}/{version}", response_class=HTMLResponse)
def dataset_version_page(
    request: Request,
    name: str,
    version: str,
    platform: PlatformDep,
    actor: DatasetsReader,
    offset: Annotated[str, Query(max_length=64)] = "",
) -> HTMLResponse:
    ref = _dataset_ref(name, version)
    service = platform.datasets
    detail = service.get(ref)
    status, rows_error, start, rows = 200, None, 0, []
    try:
        start = _offset(offset)
    except InvalidInput as exc:
        status, rows_error = exc.status, exc.message
    else:
        rows = service.head(ref, ROWS_PAGE_SIZE, offset=start)
    columns = [c.name for c in detail.columns]
    pages = {
        "first": "?offset=0#rows" if start > 0 else None,
        "prev": f"?offset={max(start - ROWS_PAGE_SIZE, 0)}#rows" if start > 0 else None,
        "next": f"?offset={start + ROWS_PAGE_SIZE}#rows" if start + ROWS_PAGE_SIZE < detail.rows else None,
    }
    siblings = service.list_versions(name)
    return render(
        request,
        "dataset_version.html",
        actor=actor,
        status_code=status,
        v=detail,
        stats=dataset_views.stats_view(detail.stats),
        columns=columns,
        rows=dataset_views.rows_view(columns, rows, chat=detail.kind == "chat", first=start),
        rows_error=rows_error,
        offset=start,
        page_size=ROWS_PAGE_SIZE,
        pages=pages,
        recipe=dataset_views.as_yaml(detail.recipe) if detail.recipe is not None else None,
        report=dataset_views.report_view(detail.report),
        report_json=detail.report,
        lineage=service.lineage(ref),
        compare_default=dataset_views.compare_default(detail, siblings),
        compare_refs=[s.ref for s in siblings if s.ref != detail.ref],
    )


def _dataset_ref(name: str, version: str) -> str:
    """``name:version`` from two path segments, checked like any dataset reference (a bad one is a 422)."""
    return str(parse_dataset_ref(f"{name}:{version}"))


def _offset(value: str) -> int:
    text = value.strip()
    if not text:
        return 0
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_OFFSET:
        raise InvalidInput(f"offset must be a whole number from 0 to {MAX_OFFSET:,}, got {text[:16]!r}")
    return int(text)


# deployments ------------------------------------------------------------------------------------------
# Promotion and rollback are forms posted to this site (the session cookie is SameSite=strict, and a post
# whose Origin names another host is refused); each answers with a redirect back to the deployment page.
@router.get("/deployments", response_class=HTMLResponse)
async def deployments_page(request: Request, platform: PlatformDep, actor: DeploymentsReader) -> HTMLResponse:
    deployments = platform.deployments.list_deployments()
    return render(
        request, "deployments.html", actor=actor, deployments=deployments, serving=await _serving_state(request)
    )


@router.get("/deployments/{name}", response_class=HTMLResponse)
async def deployment_page(request: Request, name: str, platform: PlatformDep, actor: DeploymentsReader) -> HTMLResponse:
    check_name(name, "deployment")
    deployment = platform.deployments.get(name)
    return render(
        request,
        "deployment.html",
        actor=actor,
        deployment=deployment,
        revisions=platform.deployments.revisions(name),
        serving=await _serving_state(request),
        can_change=actor.can(Permission.deployments_write),
        can_monitor=actor.can(Permission.monitoring_read),
    )


@router.get("/deployments/{name}/traffic", response_class=HTMLResponse)
async def deployment_traffic(
    request: Request,
    name: str,
    platform: PlatformDep,
    actor: DeploymentsReader,
    window: Annotated[str, Query(max_length=16)] = "1h",
) -> HTMLResponse:
    """Latency and tokens per second of the deployment's recent traffic (a fragment the page refreshes)."""
    check_name(name, "deployment")
    summary = await run_in_threadpool(platform.monitor.summary, name, window=window)
    return render(request, "deployment_traffic.html", actor=actor, **report_context(summary, None))


@router.get("/deployments/{name}/monitoring", response_class=HTMLResponse)
async def monitoring_page(
    request: Request,
    name: str,
    platform: PlatformDep,
    actor: MonitoringReader,
    window: Annotated[str, Query(max_length=16)] = "24h",
    reference: Annotated[str, Query(max_length=300)] = "previous",
    embeddings: bool = False,
) -> HTMLResponse:
    """The deployment's traffic (refreshed live), quality signals and drift against a reference."""
    check_name(name, "deployment")
    platform.deployments.get(name)

    view = await run_in_threadpool(
        lambda: platform.monitor.view(name, window=window, reference=reference, embeddings=embeddings)
    )
    context = report_context(*view)
    live = f"/deployments/{url_path(name)}/monitoring/traffic?window={quote(window)}"
    return render(
        request, "monitoring.html", actor=actor, window=window, reference=reference, embeddings=embeddings,
        live_src=live, **context,
    )  # fmt: skip


@router.get("/deployments/{name}/monitoring/traffic", response_class=HTMLResponse)
async def monitoring_traffic(
    request: Request,
    name: str,
    platform: PlatformDep,
    actor: MonitoringReader,
    window: Annotated[str, Query(max_length=16)] = "24h",
) -> HTMLResponse:
    check_name(name, "deployment")
    summary = await run_in_threadpool(platform.monitor.summary, name, window=window)
    return render(request, "monitoring_traffic.html", actor=actor, **report_context(summary, None))


@router.post("/deployments/{name}/promote")
def promote_deployment(
    request: Request, name: str, platform: PlatformDep, actor: DeploymentsWriter, route: Annotated[str, Form()] = ""
) -> Response:
    check_name(name, "deployment")
    if _cross_site(request):
        raise PermissionDenied("changes must be posted from this site")
    platform.deployments.promote(actor, name, route=route or "canary", reason="promoted in the web UI")
    return RedirectResponse(f"/deployments/{name}", status_code=303)


@router.post("/deployments/{name}/rollback")
def rollback_deployment(
    request: Request, name: str, platform: PlatformDep, actor: DeploymentsWriter, to: Annotated[str, Form()] = ""
) -> Response:
    check_name(name, "deployment")
    if _cross_site(request):
        raise PermissionDenied("changes must be posted from this site")
    target = _positive("revision", to) if to.strip() else None
    platform.deployments.rollback(actor, name, to=target, reason="rolled back in the web UI")
    return RedirectResponse(f"/deployments/{name}", status_code=303)


async def _serving_state(request: Request) -> dict[str, dict[str, Any]]:
    """Per deployment: the revision the gateway serves and, per route, its engine's state and load."""
    manager = getattr(request.app.state, "engines", None)
    if manager is None:
        return {}
    health = await manager.health()
    engines = {e.get("engine"): e for e in health.get("engines", [])}
    return {
        d["name"]: {
            "serving_revision": d.get("serving_revision"),
            "routes": {r["name"]: engines.get(r["engine"], {}) for r in d.get("routes", [])},
        }
        for d in health.get("deployments", [])
    }


# presentation helpers ---------------------------------------------------------------------------------
def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _series_labels(runs: list[RunDetail]) -> dict[str, str]:
    """Legend labels: the run name, plus a short id where two compared runs share a name."""
    names = [run.name for run in runs]
    return {run.id: run.name if names.count(run.name) == 1 else f"{run.name} ({run.id[:6]})" for run in runs}
