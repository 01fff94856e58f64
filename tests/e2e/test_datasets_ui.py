"""The dataset pages in headless Chromium: sign in, open a version, see its charts, page and expand sample rows.

The datasets are those of ``tests/ui/tiny_datasets.py``, imported into the test server's platform on first use;
figures are checked against what the dataset service answers. As in ``test_ui.py``, the ``ui`` fixture fails a
test on console errors and on requests to other hosts.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from llmops.ui.routes import ROWS_PAGE_SIZE
from tests.e2e.conftest import UI, Server
from tests.ui.tiny_datasets import CHAT, CHAT_ROWS, TEXT, Datasets, import_datasets

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def datasets(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Datasets:
    return import_datasets(server.platform, tmp_path_factory.mktemp("ui-datasets"))


def row_numbers(ui: UI) -> list[int]:
    return [int(n or -1) for n in ui.page.get_by_test_id("sample-row").evaluate_all("rs => rs.map(r => r.dataset.row)")]


def test_sign_in_open_a_version_see_its_charts_and_page_its_rows(ui: UI, datasets: Datasets) -> None:
    service = ui.server.platform.datasets
    ui.sign_in(ui.server.viewer_key)
    ui.page.get_by_role("navigation", name="Main").get_by_role("link", name="Datasets").click()
    ui.page.wait_for_url(ui.url("/datasets"))
    expect(ui.page.locator(f'[data-testid="dataset-row"][data-dataset="{CHAT}"]')).to_have_count(1)
    row = ui.page.locator(f'[data-testid="dataset-row"][data-dataset="{TEXT}"]')
    row.get_by_role("link", name=TEXT, exact=True).click()
    expect(ui.page.get_by_test_id("version-row")).to_have_count(2)
    ui.page.get_by_role("link", name=datasets.clean, exact=True).click()
    expect(ui.page.get_by_test_id("version-ref")).to_have_text(datasets.clean)

    # The length histogram: one SVG bar per bin, as tall as its count, all standing on one baseline.
    version = service.get(datasets.clean)
    counts = version.stats["lengths"]["text"]["histogram"]["counts"]
    chart = ui.page.locator('[data-testid="length-chart"][data-column="text"] svg[data-testid="histogram"]')
    expect(chart).to_be_visible()
    bars = chart.locator("rect.hist-bar")
    expect(bars).to_have_count(len(counts))
    boxes = [bars.nth(i).bounding_box() for i in range(len(counts))]
    top = boxes[max(range(len(counts)), key=lambda i: counts[i])]
    assert top is not None and top["height"] > 50
    for count, box in zip(counts, boxes, strict=True):
        assert box is not None
        assert box["height"] == pytest.approx(top["height"] * count / max(counts), abs=1.5)
        assert box["y"] + box["height"] == pytest.approx(top["y"] + top["height"], abs=1)
    languages = ui.page.get_by_test_id("languages").locator("svg.bar")
    expect(languages).to_have_count(len(version.stats["languages"]))
    expect(ui.page.get_by_test_id("report-step")).to_have_count(len(version.report["steps"]) if version.report else 0)
    expect(ui.page.locator('[data-testid="report-step"][data-step="pii"] [data-testid="step-counts"]')).to_contain_text(
        "EMAIL"
    )
    ui.screenshot("datasets-version")

    # Lineage links back to the parent; then to a chat dataset, whose rows are paged and expand.
    ui.page.locator(f'[data-testid="lineage-parent"][data-ref="{datasets.raw}"] a').click()
    expect(ui.page.get_by_test_id("version-ref")).to_have_text(datasets.raw)
    expect(ui.page.locator(f'[data-testid="lineage-child"][data-ref="{datasets.clean}"]')).to_have_count(1)

    ui.goto(f"/datasets/{CHAT}/1")
    assert row_numbers(ui) == list(range(ROWS_PAGE_SIZE))
    turns = ui.page.get_by_test_id("sample-row").first.get_by_test_id("turn")
    expect(turns).to_have_count(3)
    assert [t.get_attribute("data-role") for t in turns.all()] == ["system", "user", "assistant"]
    ui.page.get_by_test_id("rows-next").click()
    ui.page.wait_for_url(re.compile(rf"/datasets/{CHAT}/1\?offset={ROWS_PAGE_SIZE}#rows$"))
    assert row_numbers(ui) == list(range(ROWS_PAGE_SIZE, 2 * ROWS_PAGE_SIZE))
    ui.page.get_by_test_id("rows-next").click()
    ui.page.wait_for_url(re.compile(rf"offset={2 * ROWS_PAGE_SIZE}#rows$"))
    assert row_numbers(ui) == list(range(2 * ROWS_PAGE_SIZE, CHAT_ROWS))
    expect(ui.page.get_by_test_id("rows-next")).to_have_count(0)

    expected = service.head(datasets.chat, 1, offset=2 * ROWS_PAGE_SIZE)[0]["messages"][-1]["content"]
    first = ui.page.get_by_test_id("sample-row").first
    expand = first.get_by_test_id("expand")
    full = expand.locator(".full")
    expect(full).to_be_hidden()
    expand.locator("summary").click()
    expect(full).to_be_visible()
    assert full.inner_text().strip() == expected.strip()
    expect(expand.locator(".preview")).to_be_hidden()
    ui.screenshot("datasets-rows")

    ui.page.get_by_test_id("rows-prev").click()
    ui.page.wait_for_url(re.compile(rf"offset={ROWS_PAGE_SIZE}#rows$"))
    assert row_numbers(ui)[0] == ROWS_PAGE_SIZE


def test_dataset_pages_fit_a_phone_screen(ui: UI, datasets: Datasets) -> None:
    ui.page.set_viewport_size({"width": 390, "height": 800})
    ui.use_key(ui.server.viewer_key)
    for path in ("/datasets", f"/datasets/{TEXT}", f"/datasets/{TEXT}/2", f"/datasets/{CHAT}/1"):
        ui.goto(path)
        overflow = ui.page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{path} is {overflow}px wider than a phone screen"
    ui.screenshot("datasets-narrow-version")
