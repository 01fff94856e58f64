"""Model pages without a browser: what the server sends for models, versions, lineage, alias history, diffs.

One platform for the module with the tiny model family of ``tests/ui/tiny_models.py``; its free text
(description, tags, alias reasons) is hostile markup, which must arrive escaped. ``tiny-llama:1`` is signed;
``tiny-llama-merged`` has a policy that its version does not meet. The browser tests are in
``tests/e2e/test_models_ui.py``.
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
from llmops.platform import Platform
from llmops.registry import signing
from llmops.registry.promotion import MetricRequirement, PromotionPolicy
from llmops.registry.schemas import LineageNode
from llmops.security.actor import local_admin
from llmops.security.roles import Permission
from llmops.settings import Settings
from llmops.ui import lineage
from llmops.ui.routes import NAV, router
from tests.ui.tiny_models import DATASET, MERGED, MODEL, Family, import_family, model_dirs

HOSTILE = "<script>alert('x')</script>"
ESCAPED = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"


@dataclass
class Site:
    client: TestClient
    platform: Platform
    viewer_key: str
    family: Family

    def get(self, path: str, **kwargs: Any) -> Any:
        headers = {"Accept": "text/html", "Authorization": f"Bearer {self.viewer_key}"}
        return self.client.get(path, headers=headers, follow_redirects=False, **kwargs)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    home = tmp_path_factory.mktemp("ui-models")
    platform = Platform(Settings(home=home / "home"))
    admin = local_admin(via="cli")
    platform.security.create_principal(admin, "vic", role="viewer")
    viewer_key = platform.security.create_key(admin, principal="vic").key
    family = import_family(platform, model_dirs(tmp_path_factory), text=HOSTILE)
    signing.generate_keypair(home / "signing.pem")
    platform.registry.sign(admin, family.base, home / "signing.pem")
    policy = PromotionPolicy(require_signature=True, evaluations=[MetricRequirement(metric="accuracy", value=0.8)])
    platform.registry.set_policy(admin, MERGED, policy)
    with TestClient(create_app(platform=platform)) as client:
        yield Site(client, platform, viewer_key, family)
    platform.close()


def by_testid(html: str, name: str) -> str:
    """The element with ``data-testid=name`` up to the end of its line (enough for single-line figures)."""
    match = re.search(rf'data-testid="{re.escape(name)}"[^\n]*', html)
    assert match, f"no {name} in the page"
    return match.group(0)


def data_bytes(fragment: str) -> int:
    match = re.search(r'data-bytes="(\d+)"', fragment)
    assert match, fragment
    return int(match.group(1))


def test_every_model_page_renders_for_a_viewer(site: Site) -> None:
    f = site.family
    pages = {
        "/models": ["<h1>Models</h1>", f'href="/models/{MODEL}"', f'href="/models/{MERGED}"', "production → 1"],
        f"/models/{MODEL}": [
            f'data-testid="model-name">{MODEL}</h1>',
            f'data-ref="{f.base}"',
            f'data-ref="{f.finetune}"',
            'data-testid="alias-history"',
            'data-testid="policy"',
        ],
        f"/models/{MODEL}/2": [
            f'data-testid="version-ref">{f.finetune}</h1>',
            'data-testid="card"',
            'data-testid="files"',
            'data-testid="tensors"',
            'data-testid="storage"',
            'data-testid="plan-table"',
            'data-testid="promotion"',
            'data-testid="diff-form"',
        ],
        f"/models/{MODEL}/1/lineage": ['data-testid="lineage-graph"', f'data-ref="{f.finetune}"'],
        f"/models/-/diff?a={f.base}&b={f.finetune}": ["<h1>Compare versions</h1>", 'data-testid="diff-table"'],
        "/models/-/diff": ["<h1>Compare versions</h1>", "Enter two references"],
    }
    for path, snippets in pages.items():
        response = site.get(path)
        assert response.status_code == 200, (path, response.text[:500])
        assert "default-src 'self'" in response.headers["content-security-policy"]
        assert 'data-testid="whoami-name">vic<' in response.text
        assert '<a href="/models" aria-current="page">Models</a>' in response.text, path
        for snippet in snippets:
            assert snippet in response.text, (path, snippet)


def test_models_is_in_the_nav_for_readers() -> None:
    item = next(i for i in NAV if i.label == "Models")
    assert item.href == "/models" and item.permission is Permission.models_read
    assert [i.href for i in NAV].count("/models") == 1


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


def test_every_model_route_declares_models_read() -> None:
    routes = [r for r in router.routes if isinstance(r, APIRoute) and r.path.startswith("/models")]
    assert {r.path for r in routes} == {
        "/models",
        "/models/-/diff",
        "/models/{name}",
        "/models/{name}/{version}",
        "/models/{name}/{version}/lineage",
    }
    for route in routes:
        assert _permissions(route) == {Permission.models_read}, route.path
    paths = [r.path for r in router.routes if isinstance(r, APIRoute)]
    assert paths.index("/models/-/diff") < paths.index("/models/{name}"), "diff must not be taken for a model name"


def test_signed_out_browsers_are_sent_to_sign_in(site: Site) -> None:
    response = site.client.get(f"/models/{MODEL}/2", headers={"Accept": "text/html"}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next=/models/{MODEL}/2"


def test_the_card_shows_what_the_service_knows(site: Site) -> None:
    f = site.family
    detail = site.platform.registry.get_version(f.finetune)
    html = site.get(f"/models/{MODEL}/2").text
    assert f'data-value="{detail.parameters}">{detail.parameters:,}' in html
    assert f'data-value="{detail.manifest_digest}"' in html
    assert f'data-value="{detail.context_length}"' in html
    assert f'<a class="mono" href="/models/{MODEL}/1">{f.base}</a>' in html
    assert f'href="/runs/{f.run_id}"' in html
    assert 'data-value="unsigned"' in html
    assert f'href="/models/{MODEL}/2/lineage"' in html
    for file in detail.files:
        assert f'/api/v1/models/{MODEL}/versions/2/files/{file.path}" download>{file.path}</a>' in html
    assert html.count('data-testid="tensor-row"') == len(detail.tensors)
    for tensor in detail.tensors:
        assert f'data-tensor="{tensor.name}"' in html

    signed = site.get(f"/models/{MODEL}/1").text
    assert 'data-value="verified"' in signed and ">verified</span>" in signed


def test_storage_summary_adds_up(site: Site) -> None:
    detail = site.platform.registry.get_version(site.family.finetune)
    html = site.get(f"/models/{MODEL}/2").text
    assert data_bytes(by_testid(html, "storage-logical")) == sum(t.bytes for t in detail.tensors)
    stored = sum({t.digest: t.stored_bytes for t in detail.tensors}.values())
    assert data_bytes(by_testid(html, "storage-stored")) == stored
    assert data_bytes(by_testid(html, "storage-added")) == detail.physical_bytes
    assert f"stored is {stored / sum(t.bytes for t in detail.tensors) * 100:.1f}% of logical" in html
    encodings = {t.encoding for t in detail.tensors}
    assert "xor-zstd" in encodings, "the fine-tune's trained layer is stored as deltas against its base"
    for encoding in encodings:
        count = sum(1 for t in detail.tensors if t.encoding == encoding)
        assert re.search(rf'data-encoding="{encoding}">.*?<td class="num">{count}</td>', html), encoding
    assert '<rect class="bar-fill" width="' in html


def test_plan_follows_the_form(site: Site) -> None:
    registry = site.platform.registry
    ref = site.family.finetune
    default = registry.plan(ref)
    html = site.get(f"/models/{MODEL}/2").text
    assert data_bytes(by_testid(html, "plan-kv")) == default.kv_bytes_total
    for label, value in default.rows():
        assert f'<th scope="row">{label}</th><td class="mono">{value}</td>' in html.replace("&#39;", "'")
    bigger = registry.plan(ref, context=8192, batch=4, precision="int4")
    html = site.get(f"/models/{MODEL}/2?context=8192&batch=4&precision=int4").text
    assert data_bytes(by_testid(html, "plan-kv")) == bigger.kv_bytes_total > default.kv_bytes_total
    assert data_bytes(by_testid(html, "plan-weights")) == bigger.serving_weights_bytes
    assert 'name="context" value="8192"' in html and '<option value="int4" selected>' in html


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("context=abc", "context must be a whole number"),
        ("batch=0", "batch must be a whole number"),
        ("batch=%C2%B2", "batch must be a whole number"),
        ("context=99999999999999", "context must be a whole number"),
        ("precision=fp3", "precision must be one of"),
    ],
)
def test_bad_plan_input_is_a_422_with_the_rest_of_the_page(site: Site, query: str, message: str) -> None:
    response = site.get(f"/models/{MODEL}/2?{query}")
    assert response.status_code == 422
    assert message in by_testid(response.text, "plan-error")
    assert 'data-testid="card"' in response.text and 'data-testid="plan-table"' not in response.text


def test_promotion_check_lists_what_is_missing(site: Site) -> None:
    assert 'data-testid="promotion" data-ready="true"' in site.get(f"/models/{MODEL}/1").text
    html = site.get(f"/models/{MERGED}/1").text
    assert 'data-testid="promotion" data-ready="false"' in html
    for reason in site.platform.registry.promotion_check(site.family.merged):
        assert f"<li>{reason}</li>" in html.replace("&#39;", "'")
    policy = site.get(f"/models/{MERGED}").text
    assert "<code>accuracy &gt;= 0.8</code>" in policy
    assert '<th scope="row">Signature</th><td>required</td>' in policy


def test_alias_history_shows_every_move_newest_first(site: Site) -> None:
    html = site.get(f"/models/{MODEL}").text
    events = re.findall(r'data-testid="alias-event" data-alias="([a-z]+)" data-from="(\d*)" data-to="(\d*)"', html)
    assert events == [("staging", "1", "2"), ("production", "", "1"), ("staging", "", "1")]
    assert "last layer tuned" in html


def test_lineage_graph_nodes_edges_and_links(site: Site) -> None:
    f = site.family
    html = site.get(f"/models/{MODEL}/1/lineage").text
    nodes = dict(re.findall(r'data-testid="lineage-node" data-ref="([^"]+)" data-role="([a-z]+)"', html))
    assert nodes == {f.base: "current", f.finetune: "derived", f.merged: "derived"}
    edges = set(re.findall(r'data-testid="lineage-edge" data-from="([^"]+)" data-to="([^"]+)"', html))
    assert edges == {(f.base, f.finetune), (f.base, f.merged)}
    assert html.count('marker-end="url(#arrow)"') == 2
    assert f'<a href="/models/{MERGED}/1" class="node node-derived"' in html
    assert f'href="/runs/{f.run_id}"' in html and DATASET in html

    up = site.get(f"/models/{MODEL}/2/lineage").text
    nodes = dict(re.findall(r'data-testid="lineage-node" data-ref="([^"]+)" data-role="([a-z]+)"', up))
    assert nodes == {f.base: "ancestor", f.finetune: "current"}


def test_diff_page_counts_and_bars(site: Site) -> None:
    f = site.family
    diff = site.platform.registry.diff(f.base, f.merged)
    html = site.get(f"/models/-/diff?a={MODEL}@production&b={f.merged}").text  # an alias resolves
    for status in ("changed", "added", "removed", "unchanged"):
        assert f'data-testid="diff-{status}" data-count="{getattr(diff, status)}"' in html
    rows = re.findall(r'data-testid="diff-row" data-tensor="([^"]+)" data-status="([a-z]+)"', html)
    assert rows == [(c.name, c.status) for c in diff.tensors if c.status != "unchanged"]
    assert html.count('<svg class="bar"') == len(rows)
    assert f'href="/models/{MODEL}/1">{f.base}</a> → <a class="mono" href="/models/{MERGED}/1">' in html


def test_version_page_offers_the_base_to_compare_with(site: Site) -> None:
    html = site.get(f"/models/{MERGED}/1").text
    assert f'name="a" value="{site.family.base}"' in html
    assert f'name="b" value="{site.family.merged}"' in html


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/models/nope", 404, "model &#39;nope&#39; does not exist"),
        (f"/models/{MODEL}/9", 404, "has no version 9"),
        (f"/models/{MODEL}/9/lineage", 404, "has no version 9"),
        ("/models/nope/1", 404, "does not exist"),
        ("/models/-/diff?a=nope:1&b=tiny-llama:1", 404, "does not exist"),
        ("/models/bad%20name", 422, "not a valid name"),
        (f"/models/{MODEL}/two", 422, "must be a positive number"),
        (f"/models/{MODEL}/0", 422, "must be a positive number"),
        (f"/models/{MODEL}/%C2%B2", 422, "must be a positive number"),
        (f"/models/{MODEL}/99999999999999999999", 422, "must be a positive number"),
        ("/models/-/diff?a=tiny-llama:x&b=tiny-llama:1", 422, "must be a positive number"),
        ("/models/-/diff?a=tiny-llama:1&b=tiny-llama:%C2%B2", 422, "must be a positive number"),
        ("/models/-/diff?a=tiny-llama@BAD&b=tiny-llama:1", 422, "alias"),
    ],
)
def test_errors_render_the_error_page(site: Site, path: str, status: int, message: str) -> None:
    response = site.get(path)
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"].startswith("text/html")
    assert 'data-testid="error-page"' in response.text
    assert message in by_testid(response.text, "error-message")


def test_everything_user_supplied_is_escaped(site: Site) -> None:
    for path in (f"/models/{MODEL}", f"/models/{MODEL}/1", "/models"):
        html = site.get(path).text
        assert HOSTILE not in html, path
    assert ESCAPED in site.get(f"/models/{MODEL}/1").text  # description and tags
    assert ESCAPED in site.get(f"/models/{MODEL}").text  # an alias reason
    html = site.get("/models/-/diff", params={"a": HOSTILE, "b": HOSTILE})
    assert html.status_code == 422 and HOSTILE not in html.text


# lineage layout ---------------------------------------------------------------------------------------
def _tree(fanout: dict[str, list[str]]) -> tuple[LineageNode, Any]:
    def fetch(ref: str) -> LineageNode:
        return LineageNode(ref=ref, derivation="finetune", run_id=None, datasets=[], derived=fanout.get(ref, []))

    return fetch("m:1"), fetch


def test_layout_centres_parents_over_children_without_overlap() -> None:
    root, fetch = _tree({"m:1": ["m:2", "m:3"], "m:2": ["m:4", "m:5", "m:6"], "m:3": ["m:7"]})
    root = root.model_copy(update={"base": LineageNode(ref="b:1", derivation="import", run_id=None, datasets=[])})
    graph = lineage.build(root, fetch)
    by_ref = {n.ref: n for n in graph.nodes}
    assert set(by_ref) == {"b:1", *(f"m:{i}" for i in range(1, 8))}
    assert by_ref["b:1"].role == "ancestor" and by_ref["m:1"].role == "current"
    assert by_ref["b:1"].cx == by_ref["m:1"].cx and by_ref["b:1"].y < by_ref["m:1"].y
    assert by_ref["m:2"].cx == pytest.approx(by_ref["m:5"].cx)  # centred over its three children
    assert {(e.source, e.target) for e in graph.edges} == {
        ("b:1", "m:1"), ("m:1", "m:2"), ("m:1", "m:3"), ("m:2", "m:4"), ("m:2", "m:5"), ("m:2", "m:6"), ("m:3", "m:7")
    }  # fmt: skip
    for layer in {n.y for n in graph.nodes}:
        xs = sorted(n.x for n in graph.nodes if n.y == layer)
        assert all(b - a >= lineage.NODE_WIDTH for a, b in zip(xs, xs[1:], strict=False))
    assert all(n.x >= 0 and n.x + lineage.NODE_WIDTH <= graph.width for n in graph.nodes)
    assert all(n.y + lineage.NODE_HEIGHT <= graph.height for n in graph.nodes)
    assert graph.hidden == 0


def test_layout_caps_what_it_draws() -> None:
    many = {"m:1": [f"c:{i}" for i in range(1, lineage.MAX_NODES + 11)]}
    root, fetch = _tree(many)
    graph = lineage.build(root, fetch)
    assert len(graph.nodes) == lineage.MAX_NODES + 1 and graph.hidden == 10
    chain = {f"m:{i}": [f"m:{i + 1}"] for i in range(1, 20)}
    root, fetch = _tree(chain)
    graph = lineage.build(root, fetch)
    assert len(graph.nodes) == lineage.MAX_DEPTH + 1 and graph.hidden == 1
    long = lineage.build(LineageNode(ref="x" * 120 + ":1", derivation="import", run_id=None, datasets=[]), fetch)
    assert len(long.nodes[0].label) == lineage.LABEL_CHARS and long.nodes[0].label.endswith("…")
