"""Dataset pages without a browser: what the server sends for datasets, versions, stats, rows, reports, diffs.

One platform for the module with the datasets of ``tests/ui/tiny_datasets.py``; the raw version's free text
(description, tags) is hostile markup, which must arrive escaped, and so must every row shown. The browser
test is ``tests/e2e/test_datasets_ui.py``.
"""

from __future__ import annotations

import html as htmllib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from llmops.api.app import create_app
from llmops.platform import Platform
from llmops.security.actor import local_admin
from llmops.security.roles import Permission
from llmops.settings import Settings
from llmops.ui import histogram
from llmops.ui.routes import NAV, ROWS_PAGE_SIZE, router
from tests.ui.tiny_datasets import CHAT, CHAT_ROWS, TEXT, Datasets, import_datasets

HOSTILE = "<script>alert('x')</script>"
ESCAPED = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"


@dataclass
class Site:
    client: TestClient
    platform: Platform
    viewer_key: str
    datasets: Datasets

    def get(self, path: str, **kwargs: Any) -> Any:
        headers = {"Accept": "text/html", "Authorization": f"Bearer {self.viewer_key}"}
        return self.client.get(path, headers=headers, follow_redirects=False, **kwargs)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    home = tmp_path_factory.mktemp("ui-datasets")
    platform = Platform(Settings(home=home / "home"))
    admin = local_admin(via="cli")
    platform.security.create_principal(admin, "vic", role="viewer")
    viewer_key = platform.security.create_key(admin, principal="vic").key
    datasets = import_datasets(platform, home / "data", text=HOSTILE)
    with TestClient(create_app(platform=platform)) as client:
        yield Site(client, platform, viewer_key, datasets)
    platform.close()


def text_of(fragment: str) -> str:
    return htmllib.unescape(re.sub(r"<[^>]+>", "", fragment))


def test_every_dataset_page_renders_for_a_viewer(site: Site) -> None:
    d = site.datasets
    pages = {
        "/datasets": ["<h1>Datasets</h1>", f'href="/datasets/{TEXT}"', f'href="/datasets/{CHAT}"', ">web:2</a>"],
        f"/datasets/{TEXT}": [
            f'data-testid="dataset-name">{TEXT}</h1>',
            f'data-ref="{d.raw}"',
            f'data-ref="{d.clean}"',
            'data-testid="compare-latest"',
        ],
        f"/datasets/{TEXT}/2": [
            f'data-testid="version-ref">{d.clean}</h1>',
            'data-testid="card"',
            'data-testid="histogram"',
            'data-testid="languages"',
            'data-testid="sample-rows"',
            'data-testid="recipe"',
            'data-testid="report-step"',
            'data-testid="lineage"',
            'data-testid="diff-form"',
        ],
        f"/datasets/{CHAT}/1": [f'data-testid="version-ref">{d.chat}</h1>', 'data-testid="turn"'],
        f"/datasets/-/diff?a={d.raw}&b={d.clean}": ["<h1>Compare dataset versions</h1>", 'data-testid="diff-counts"'],
        "/datasets/-/diff": ["<h1>Compare dataset versions</h1>", "Enter two references"],
    }
    for path, snippets in pages.items():
        response = site.get(path)
        assert response.status_code == 200, (path, response.text[:500])
        assert "default-src 'self'" in response.headers["content-security-policy"]
        assert 'data-testid="whoami-name">vic<' in response.text
        assert '<a href="/datasets" aria-current="page">Datasets</a>' in response.text, path
        for snippet in snippets:
            assert snippet in response.text, (path, snippet)


def test_datasets_is_in_the_nav_for_readers() -> None:
    item = next(i for i in NAV if i.label == "Datasets")
    assert item.href == "/datasets" and item.permission is Permission.datasets_read


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


def test_every_dataset_route_declares_datasets_read() -> None:
    routes = [r for r in router.routes if isinstance(r, APIRoute) and r.path.startswith("/datasets")]
    assert {r.path for r in routes} == {
        "/datasets",
        "/datasets/-/diff",
        "/datasets/{name}",
        "/datasets/{name}/{version}",
    }
    for route in routes:
        assert _permissions(route) == {Permission.datasets_read}, route.path
    paths = [r.path for r in router.routes if isinstance(r, APIRoute)]
    assert paths.index("/datasets/-/diff") < paths.index("/datasets/{name}"), "diff must not be a dataset name"


def test_signed_out_browsers_are_sent_to_sign_in(site: Site) -> None:
    response = site.client.get(f"/datasets/{TEXT}/2?offset=20", headers={"Accept": "text/html"}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next=/datasets/{TEXT}/2%3Foffset%3D20"


def test_list_shows_the_latest_version_of_each_dataset(site: Site) -> None:
    html = site.get("/datasets").text
    clean = site.platform.datasets.get(site.datasets.clean)
    row = re.search(rf'data-testid="dataset-row" data-dataset="{TEXT}">(.*?)</tr>', html, re.S)
    assert row, html
    cells = row.group(1)
    assert '<td class="num">2</td>' in cells
    assert f'href="/datasets/{TEXT}/2">{clean.ref}</a>' in cells
    assert f'data-value="{clean.rows}">{clean.rows:,}<' in cells
    assert f'data-bytes="{clean.bytes}"' in cells
    assert '<span class="badge kind-text">text</span>' in cells
    assert 'data-dataset="chat"' in html and "kind-chat" in html


def test_versions_table_has_parents_recipe_and_digest(site: Site) -> None:
    d = site.datasets
    html = site.get(f"/datasets/{TEXT}").text
    rows = re.findall(r'data-testid="version-row" data-ref="([^"]+)"', html)
    assert rows == [d.clean, d.raw], "newest first"
    clean = re.search(rf'data-ref="{d.clean}">(.*?)</tr>', html, re.S)
    raw = re.search(rf'data-ref="{d.raw}">(.*?)</tr>', html, re.S)
    assert clean and raw
    assert f'<a class="mono" href="/datasets/{TEXT}/1">{d.raw}</a>' in clean.group(1)
    assert 'data-testid="has-recipe" data-value="yes"' in clean.group(1)
    assert 'data-testid="has-recipe" data-value="no"' in raw.group(1)
    digest = site.platform.datasets.get(d.clean).content_digest
    assert f'title="{digest}">{digest[:12]}…' in clean.group(1)
    assert f'href="/datasets/-/diff?a={d.raw.replace(":", "%3A")}&amp;b={d.clean.replace(":", "%3A")}"' in html


def test_the_card_shows_what_the_service_knows(site: Site) -> None:
    d = site.datasets
    v = site.platform.datasets.get(d.clean)
    html = site.get(f"/datasets/{TEXT}/2").text
    assert 'data-field="kind"><th scope="row">Kind</th><td data-value="text">' in html
    assert f'data-value="{v.rows}">{v.rows:,}<' in html
    assert f'data-value="{v.bytes}"' in html
    assert f'data-value="{v.content_digest}"' in html
    assert f'href="/runs/{d.run_id}"' in html
    assert f'<a class="mono" href="/datasets/{TEXT}/1">{d.raw}</a>' in html
    for column in v.columns:
        assert f'<code>{column.name}</code> <span class="muted">{column.type}</span>' in html
    raw = site.get(f"/datasets/{TEXT}/1").text
    assert 'data-testid="tags"' in raw and 'data-testid="description"' in raw
    assert 'data-testid="no-recipe"' in raw and 'data-testid="no-report"' in raw


def test_stats_are_drawn_as_svg_bars(site: Site) -> None:
    v = site.platform.datasets.get(site.datasets.raw)
    html = site.get(f"/datasets/{TEXT}/1").text
    hist = v.stats["lengths"]["text"]["histogram"]
    chart = re.search(r'data-testid="length-chart" data-column="text">(.*?)</svg>', html, re.S)
    assert chart, "a histogram of the text column"
    counts = [int(c) for c in re.findall(r'data-testid="hist-bar" data-count="(\d+)"', chart.group(1))]
    assert counts == hist["counts"] and sum(counts) == v.rows
    tallest = max(hist["counts"])
    assert "<title>" in chart.group(1) and f"{tallest:,} rows</title>" in chart.group(1)
    summary = v.stats["lengths"]["text"]
    assert f'data-stat="p50">{summary["p50"]:.6g}<' in html and f'data-stat="max">{summary["max"]:.6g}<' in html
    for name, share in v.stats["languages"].items():
        assert f'<tr data-name="{name}" data-share="{share}">' in html
    assert set(v.stats["languages"]) >= {"en", "zh"} and set(v.stats["scripts"]) >= {"Latin", "Han"}
    assert html.count('<svg class="bar"') >= len(v.stats["languages"]) + len(v.stats["scripts"])

    chat = site.platform.datasets.get(site.datasets.chat)
    html = site.get(f"/datasets/{CHAT}/1").text
    turns = re.search(r'data-testid="length-chart" data-column="turns">(.*?)</svg>', html, re.S)
    assert turns and sum(int(c) for c in re.findall(r'data-count="(\d+)"', turns.group(1))) == chat.rows
    assert 'data-testid="roles"' in html and f"assistant {CHAT_ROWS}<" in html


def test_sample_rows_page_with_offset(site: Site) -> None:
    service = site.platform.datasets
    first = site.get(f"/datasets/{CHAT}/1").text
    numbers = [int(n) for n in re.findall(r'data-testid="sample-row" data-row="(\d+)"', first)]
    assert numbers == list(range(ROWS_PAGE_SIZE))
    assert 'data-testid="rows-next"' in first and 'data-testid="rows-prev"' not in first
    assert f'href="?offset={ROWS_PAGE_SIZE}#rows"' in first

    last = site.get(f"/datasets/{CHAT}/1?offset=40").text
    numbers = [int(n) for n in re.findall(r'data-testid="sample-row" data-row="(\d+)"', last)]
    assert numbers == list(range(40, CHAT_ROWS))
    assert 'data-testid="rows-next"' not in last and 'href="?offset=20#rows"' in last
    expected = service.head(site.datasets.chat, 1, offset=40)[0]["messages"]
    roles = re.findall(r'data-testid="turn" data-role="([a-z]+)"', last)
    assert roles[:3] == [m["role"] for m in expected]
    assert "Question 40?" in last

    beyond = site.get(f"/datasets/{CHAT}/1?offset=1000")
    assert beyond.status_code == 200 and 'data-testid="no-rows"' in beyond.text


def test_long_texts_are_cut_with_an_expand(site: Site) -> None:
    html = site.get(f"/datasets/{TEXT}/1?offset=30").text
    long_row = site.platform.datasets.head(site.datasets.raw, ROWS_PAGE_SIZE, offset=30)[-1]["text"]
    assert len(long_row) > 280
    expand = re.search(r'<details class="more" data-testid="expand">(.*?)</details>', html, re.S)
    assert expand, "a long text is cut"
    assert f"show all {len(long_row):,} characters" in expand.group(1)
    assert f'<div class="full">{long_row}</div>' in expand.group(1)
    assert f'<span class="preview">{long_row[:280]}…</span>' in expand.group(1)
    chat = site.get(f"/datasets/{CHAT}/1").text
    assert chat.count('data-testid="expand"') == ROWS_PAGE_SIZE, "every long assistant turn is cut"


@pytest.mark.parametrize("offset", ["abc", "-1", "%C2%B2", "99999999999999999999"])
def test_bad_offset_is_a_422_with_the_rest_of_the_page(site: Site, offset: str) -> None:
    response = site.get(f"/datasets/{TEXT}/2?offset={offset}")
    assert response.status_code == 422
    assert "offset must be a whole number" in response.text
    assert 'data-testid="card"' in response.text and 'data-testid="sample-rows"' not in response.text


def test_recipe_and_transform_report(site: Site) -> None:
    v = site.platform.datasets.get(site.datasets.clean)
    assert v.recipe is not None and v.report is not None
    html = site.get(f"/datasets/{TEXT}/2").text
    recipe = re.search(r'data-testid="recipe">(.*?)</pre>', html, re.S)
    assert recipe and yaml.safe_load(htmllib.unescape(recipe.group(1))) == v.recipe

    report = v.report
    assert f'data-testid="report-rows-in">{report["rows_in"]:,}<' in html
    assert f'data-testid="report-rows-out">{report["rows_out"]:,}<' in html
    steps = re.findall(r'data-testid="report-step" data-step="([a-z_]+)" data-position="(\d+)"', html)
    assert steps == [(s["step"], str(s["position"])) for s in report["steps"]]
    sections = dict(re.findall(r'data-step="([a-z_]+)"(.*?)</section>', html, re.S))
    for step in report["steps"]:
        section = sections[step["step"]]
        assert f'data-testid="step-removed" data-count="{step["removed"]}"' in section
        assert f'data-testid="step-changed" data-count="{step["changed"]}"' in section
        for key, n in step["counts"].items():
            assert f'<tr data-key="{key}" data-count="{n}">' in section, (step["step"], key)
        assert section.count('data-testid="step-example"') == len(step["examples"])

    pii = next(s for s in report["steps"] if s["step"] == "pii")
    assert pii["counts"]["EMAIL"] > 0 and "PII found, by type" in sections["pii"]
    assert "&lt;EMAIL&gt;" in sections["pii"] and 'data-shape="redacted"' in sections["pii"]
    assert 'data-shape="edit"' in sections["normalize"] and "Row   number 0" in sections["normalize"]
    assert 'data-shape="removed"' in sections["filter"] and "length" in sections["filter"]
    dedup = next(s for s in report["steps"] if s["step"] == "dedup")
    assert dedup["removed"] == 3 and dedup["counts"]["clusters"] == 2  # one row up to whitespace, two copies
    assert sections["dedup"].count('data-shape="cluster"') == 2 and "这是一个中文句子" in sections["dedup"]


def test_lineage_links_parents_and_children(site: Site) -> None:
    d = site.datasets
    child = site.get(f"/datasets/{TEXT}/2").text
    assert f'data-testid="lineage-parent" data-ref="{d.raw}"><a class="mono" href="/datasets/{TEXT}/1">' in child
    assert f'data-testid="lineage-ancestor" data-ref="{d.raw}"' in child
    assert f'name="a" value="{d.raw}"' in child and f'name="b" value="{d.clean}"' in child
    parent = site.get(f"/datasets/{TEXT}/1").text
    assert f'data-testid="lineage-child" data-ref="{d.clean}"><a class="mono" href="/datasets/{TEXT}/2">' in parent
    assert 'none <span class="muted">(imported)</span>' in parent


def test_diff_page_counts_schema_and_stats(site: Site) -> None:
    d = site.datasets
    diff = site.platform.datasets.diff(d.raw, d.clean)
    html = site.get(f"/datasets/-/diff?a={TEXT}:1&b={TEXT}").text  # the bare name is the latest version
    for name, value in (("added", diff.rows_added), ("removed", diff.rows_removed), ("common", diff.rows_common)):
        assert f'data-testid="diff-{name}" data-count="{value}"' in html
    changes = re.findall(r'data-testid="column-change" data-column="([^"]+)" data-change="([a-z_]+)"', html)
    assert changes == [(c.name, c.change) for c in diff.columns] == [("split", "added")]
    assert f'<tr data-key="rows" data-value="{diff.stats_delta["rows"]}"><th scope="row">rows</th>' in html
    assert f"−{-diff.stats_delta['rows']}" in html
    assert html.count('data-testid="sample-row"') == len(diff.added_examples) + len(diff.removed_examples)
    same = site.get(f"/datasets/-/diff?a={d.raw}&b={d.raw}").text
    assert 'data-testid="diff-identical"' in same and 'data-testid="same-columns"' in same


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/datasets/nope", 404, "dataset 'nope' does not exist"),
        (f"/datasets/{TEXT}/9", 404, "has no version 9"),
        ("/datasets/nope/1", 404, "does not exist"),
        (f"/datasets/-/diff?a=nope:1&b={TEXT}:1", 404, "does not exist"),
        (f"/datasets/-/diff?a={TEXT}:9&b={TEXT}:1", 404, "has no version 9"),
        ("/datasets/bad%20name", 422, "not a valid name"),
        ("/datasets/bad%20name/1", 422, "not a valid name"),
        (f"/datasets/{TEXT}/two", 422, "must be a positive number"),
        (f"/datasets/{TEXT}/0", 422, "must be a positive number"),
        (f"/datasets/{TEXT}/%C2%B2", 422, "must be a positive number"),
        (f"/datasets/{TEXT}/99999999999999999999", 422, "must be a positive number"),
        (f"/datasets/-/diff?a={TEXT}:x&b={TEXT}:1", 422, "must be a positive number"),
        (f"/datasets/-/diff?a={TEXT}@prod&b={TEXT}:1", 422, "not a valid name"),
    ],
)
def test_errors_render_the_error_page(site: Site, path: str, status: int, message: str) -> None:
    response = site.get(path)
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"].startswith("text/html")
    assert 'data-testid="error-page"' in response.text
    match = re.search(r'data-testid="error-message">([^<]*)<', response.text)
    assert match and message in htmllib.unescape(match.group(1))


def test_everything_user_supplied_is_escaped(site: Site) -> None:
    for path in ("/datasets", f"/datasets/{TEXT}", f"/datasets/{TEXT}/1", f"/datasets/{TEXT}/2"):
        html = site.get(path).text
        assert HOSTILE not in html, path
    assert ESCAPED in site.get(f"/datasets/{TEXT}/1").text  # description and tags
    response = site.get("/datasets/-/diff", params={"a": HOSTILE, "b": HOSTILE})
    assert response.status_code == 422 and HOSTILE not in response.text


def test_without_a_key_a_json_client_gets_401(site: Site) -> None:
    """``datasets:read`` is a viewer permission, so every role may read: a key is what is required."""
    response = site.client.get("/datasets", headers={"Accept": "application/json"})
    assert response.status_code == 401


# histogram layout -------------------------------------------------------------------------------------
def test_histogram_bars_fill_the_plot_in_proportion() -> None:
    chart = histogram.build({"edges": [0, 10, 20, 30], "counts": [5, 10, 0]})
    assert chart is not None and chart.total == 15 and not chart.log
    heights = [b.height for b in chart.bars]
    assert heights[1] == chart.bottom - chart.top and heights[0] == pytest.approx(heights[1] / 2) and heights[2] == 0
    assert all(b.y + b.height == pytest.approx(chart.bottom) for b in chart.bars)
    assert all(a.x + a.width < b.x for a, b in zip(chart.bars, chart.bars[1:], strict=False))
    assert chart.bars[-1].x + chart.bars[-1].width <= chart.right
    assert [t.text for t in chart.x_ticks] == ["0", "10", "20", "30"]
    assert chart.bars[0].title == "0 to 10 characters: 5 rows"
    log = histogram.build({"edges": [1, 10, 100, 1000.5], "counts": [1, 1, 1]}, unit="turns")
    assert log is not None and log.log and log.x_ticks[-1].text == "1,000"


@pytest.mark.parametrize(
    "value",
    [None, {}, {"edges": [], "counts": []}, {"edges": [0, 1], "counts": [1, 2]}, {"edges": "x", "counts": [1]},
     {"edges": [0, 1], "counts": [-1]}, {"edges": [0, float("nan")], "counts": [1]},
     {"edges": [0, True], "counts": [1]}],
)  # fmt: skip
def test_histogram_of_an_unexpected_shape_is_no_chart(value: Any) -> None:
    assert histogram.build(value) is None
