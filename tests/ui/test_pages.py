"""UI pages without a browser: rendering, permissions, sign-in rules, escaping, shipped assets.

The browser behaviour (charts, legend, tooltips, navigation) is in ``tests/e2e``; these tests are the
fast ones that pin down what the server sends.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from llmops.api.app import create_app
from llmops.api.deps import PUBLIC_ROUTES, SESSION_COOKIE
from llmops.platform import Platform
from llmops.security.actor import local_admin
from llmops.security.roles import Permission
from llmops.settings import Settings
from llmops.ui.routes import NAV, router
from llmops.ui.templating import STATIC_DIR, TEMPLATES_DIR

HOSTILE = "<script>alert('x')</script>"
# XML namespace names are identifiers that are never fetched; an SVG element must be created in one.
NAMESPACE_URIS = {"http://www.w3.org/2000/svg"}


@dataclass
class Site:
    client: TestClient
    admin_key: str
    viewer_key: str
    run_ids: list[str]

    def get(self, path: str, key: str | None = None, **kwargs: Any) -> Any:
        headers = {"Accept": "text/html"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return self.client.get(path, headers=headers, follow_redirects=False, **kwargs)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One embedded platform for the module: the tests only read (sign-in changes no state they check)."""
    platform = Platform(Settings(home=tmp_path_factory.mktemp("ui") / "home"))
    bootstrap = local_admin(via="cli")
    platform.security.create_principal(bootstrap, "ada", role="admin")
    platform.security.create_principal(bootstrap, "vic", role="viewer")
    admin_key = platform.security.create_key(bootstrap, principal="ada").key
    viewer_key = platform.security.create_key(bootstrap, principal="vic").key
    ids = []
    for name, lr in (("baseline", 0.001), ("high-lr", 0.01)):
        params = {"lr": lr, "note": HOSTILE}
        with platform.start_run(kind="train", name=name, params=params, tags={"t": HOSTILE}) as run:
            for step in range(5):
                run.log_metric("loss", 1.0 / (step + 1), step=step)
            run.log_text("hi", "out/report.txt")
            ids.append(run.id)
    with TestClient(create_app(platform=platform)) as client:
        yield Site(client, admin_key, viewer_key, ids)
    platform.close()


@pytest.fixture(autouse=True)
def fresh_cookies(site: Site) -> Iterator[None]:
    """Sign-in tests leave a session cookie in the shared client; no other test may inherit it."""
    site.client.cookies.clear()
    yield
    site.client.cookies.clear()


def pages(site: Site) -> dict[str, str]:
    """Every UI page and a heading it must show."""
    a, b = site.run_ids
    return {
        "/": "Overview",
        "/runs": "Runs",
        "/runs?kind=train&status=finished&name=base": "Runs",
        f"/runs/{a}": "baseline",
        f"/runs/compare?ids={a},{b}": "Compare runs",
        "/audit": "Audit log",
        "/audit?action=run.&before=5": "Audit log",
        "/access": "Access",
        "/store": "Blob store",
    }


def test_every_page_renders_for_an_admin(site: Site) -> None:
    for path, heading in pages(site).items():
        response = site.get(path, site.admin_key)
        assert response.status_code == 200, (path, response.text[:500])
        assert response.headers["content-type"].startswith("text/html")
        assert re.search(rf"<h1[^>]*>{re.escape(heading)}</h1>", response.text), path
        assert "default-src 'self'" in response.headers["content-security-policy"]
        assert 'data-testid="whoami-name">ada<' in response.text


def test_run_page_has_a_chart_per_metric_and_artifact_links(site: Site) -> None:
    run_id = site.run_ids[0]
    html = site.get(f"/runs/{run_id}", site.admin_key).text
    assert 'data-testid="chart-loss"' in html
    assert f"/api/v1/runs/{run_id}/artifacts/out/report.txt" in html
    site.client.cookies.set(SESSION_COOKIE, site.admin_key)
    assert site.client.get(f"/api/v1/runs/{run_id}/artifacts/out/report.txt").text == "hi"


def test_compare_marks_differing_params_and_takes_repeated_ids(site: Site) -> None:
    a, b = site.run_ids
    html = site.get(f"/runs/compare?ids={a}&ids={b}", site.admin_key).text
    assert re.search(r'data-param="lr" data-differs="true" class="differs"', html)
    assert 'data-param="note" data-differs="false"' in html
    assert html.count('data-testid="chart-loss"') == 1


def test_everything_user_supplied_is_escaped(site: Site) -> None:
    a, b = site.run_ids
    for path in (f"/runs/{a}", f"/runs/compare?ids={a},{b}"):
        html = site.get(path, site.admin_key).text
        assert HOSTILE not in html
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html


def test_errors_render_as_pages(site: Site) -> None:
    missing = site.get("/runs/" + "0" * 32, site.admin_key)
    assert missing.status_code == 404 and "Not found" in missing.text
    one = site.get(f"/runs/compare?ids={site.run_ids[0]}", site.admin_key)
    assert one.status_code == 422 and "compare takes 2 to 20 run ids" in one.text
    denied = site.get("/audit", site.viewer_key)
    assert denied.status_code == 403
    assert "<h1>Permission denied</h1>" in denied.text and "maintainer" in denied.text
    assert site.get("/", site.viewer_key).status_code == 200


def test_nav_shows_only_what_the_role_may_open(site: Site) -> None:
    html = site.get("/", site.viewer_key).text
    assert 'href="/runs"' in html and 'href="/store"' in html
    assert 'href="/audit"' not in html and 'href="/access"' not in html


def test_signed_out_browsers_go_to_sign_in_and_keep_the_query(site: Site) -> None:
    response = site.get("/runs/compare?ids=a,b")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/runs/compare%3Fids%3Da%2Cb"
    form = site.get("/login?next=/runs/compare%3Fids%3Da%2Cb")
    assert 'name="next" value="/runs/compare?ids=a,b"' in form.text


def test_sign_in_sets_a_strict_http_only_cookie(site: Site) -> None:
    form = {"key": site.admin_key, "next": "/audit?action=run."}
    response = site.client.post("/login", data=form, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/audit?action=run."
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}={site.admin_key};")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie


@pytest.mark.parametrize(
    "target",
    ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)", "runs", "/\x00x", ""],
)
def test_sign_in_never_redirects_off_site(site: Site, target: str) -> None:
    response = site.client.post("/login", data={"key": site.admin_key, "next": target}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/"


def test_wrong_or_missing_key_re_renders_the_form(site: Site) -> None:
    cases = (("llmops_abcdef12_nope", "invalid API key"), ("", "enter an API key"), ("x", "malformed API key"))
    for key, message in cases:
        response = site.client.post("/login", data={"key": key, "next": "/runs"}, follow_redirects=False)
        assert response.status_code == 401
        assert message in response.text
        assert 'name="next" value="/runs"' in response.text
        assert "set-cookie" not in response.headers


def test_cross_site_sign_in_is_refused(site: Site) -> None:
    response = site.client.post(
        "/login", data={"key": site.admin_key}, headers={"Origin": "https://evil.example"}, follow_redirects=False
    )
    assert response.status_code == 403 and "set-cookie" not in response.headers


def test_sign_out_clears_the_cookie(site: Site) -> None:
    response = site.client.post("/logout", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f'{SESSION_COOKIE}="";') and "Max-Age=0" in cookie


def _permissions(route: APIRoute) -> set[Permission]:
    found: set[Permission] = set()
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        permission = getattr(dependant.call, "llmops_permission", None)
        if permission is not None:
            found.add(permission)
        stack.extend(dependant.dependencies)
    return found


def test_every_ui_route_declares_its_permission() -> None:
    expected = {
        "/": Permission.runs_read,
        "/runs": Permission.runs_read,
        "/runs/compare": Permission.runs_read,
        "/runs/{run_id}": Permission.runs_read,
        "/audit": Permission.audit_read,
        "/access": Permission.principals_read,
        "/store": Permission.store_read,
        "/models": Permission.models_read,
        "/models/-/diff": Permission.models_read,
        "/models/{name}": Permission.models_read,
        "/models/{name}/{version}": Permission.models_read,
        "/models/{name}/{version}/lineage": Permission.models_read,
        "/datasets": Permission.datasets_read,
        "/datasets/-/diff": Permission.datasets_read,
        "/datasets/{name}": Permission.datasets_read,
        "/datasets/{name}/{version}": Permission.datasets_read,
        "/deployments": Permission.deployments_read,
        "/deployments/{name}": Permission.deployments_read,
        "/deployments/{name}/promote": Permission.deployments_write,
        "/deployments/{name}/rollback": Permission.deployments_write,
        "/deployments/{name}/traffic": Permission.deployments_read,
        "/deployments/{name}/monitoring": Permission.monitoring_read,
        "/deployments/{name}/monitoring/traffic": Permission.monitoring_read,
    }
    ui_routes = [r for r in router.routes if isinstance(r, APIRoute)]
    assert ui_routes
    for route in ui_routes:
        for method in route.methods or ():
            if (method, route.path) in PUBLIC_ROUTES:
                continue
            assert _permissions(route) == {expected[route.path]}, (method, route.path)
    for item in NAV:
        route = next(r for r in ui_routes if r.path == item.href)
        assert _permissions(route) == {item.permission}, item


def test_static_assets_are_served_from_the_package(site: Site) -> None:
    names = sorted(p.name for p in STATIC_DIR.iterdir() if p.is_file())
    assert {"app.css", "app.js", "charts.js", "favicon.svg"} <= set(names)
    for name in names:
        response = site.client.get(f"/static/{name}")
        assert response.status_code == 200
        assert response.content == (STATIC_DIR / name).read_bytes()
    html = site.get(f"/runs/{site.run_ids[0]}", site.admin_key).text
    refs = re.findall(r'(?:src|href)="([^"#][^"]*)"', html)
    assert any(ref.startswith("/static/charts.js") for ref in refs)
    for ref in refs:
        assert ref.startswith("/") and not ref.startswith("//"), ref


def test_no_template_or_asset_points_at_another_host() -> None:
    files = [p for d in (TEMPLATES_DIR, STATIC_DIR) for p in d.iterdir() if p.is_file()]
    assert len(files) > 5
    for path in files:
        for url in re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}[^\s\"'<>)]*", path.read_text()):
            assert url in NAMESPACE_URIS, f"{path.name} refers to {url}: ship it with the package instead"
