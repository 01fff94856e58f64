"""The UI in headless Chromium: sign-in, navigation, runs, charts, comparison, audit, roles.

Every test also fails (in the ``ui`` fixture) on console errors it did not expect and on requests to
any host other than the test server.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, expect

from tests.e2e.conftest import EVAL_EVERY, STEPS, UI, baseline_loss

pytestmark = pytest.mark.e2e


def ready_chart(ui: UI, key: str) -> Locator:
    chart = ui.page.locator(f'[data-testid="chart-{key}"]')
    expect(chart).to_have_attribute("data-state", "ready")
    return chart


def path_points(chart: Locator, series: str | None = None) -> int:
    """How many vertices the drawn line has (one ``M``/``L`` command per point)."""
    selector = f'path[data-series="{series}"]' if series else "path[data-series]"
    d = chart.locator(selector).first.get_attribute("d") or ""
    return len(re.findall(r"[ML]", d))


def test_wrong_key_shows_the_error(ui: UI) -> None:
    ui.expect_status(401)
    ui.goto("/login")
    ui.page.get_by_test_id("login-key").fill("llmops_deadbeef_not-a-real-key")
    ui.page.get_by_test_id("login-submit").click()
    expect(ui.page.get_by_test_id("login-error")).to_contain_text("invalid API key")
    assert ui.page.url.endswith("/login")
    assert not any(c["name"] == "llmops_key" for c in ui.context.cookies())


def test_admin_signs_in_to_the_overview(ui: UI) -> None:
    ui.sign_in(ui.server.admin_key)
    assert ui.page.url == ui.url("/")
    expect(ui.page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(ui.page.get_by_test_id("whoami-name")).to_have_text("ada")
    expect(ui.page.get_by_test_id("whoami-role")).to_have_text("admin")
    nav = ui.page.get_by_role("navigation", name="Main")
    for label in ("Overview", "Runs", "Audit", "Access", "Store"):
        expect(nav.get_by_role("link", name=label, exact=True)).to_be_visible()
    cookie = next(c for c in ui.context.cookies() if c["name"] == "llmops_key")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"


def test_runs_page_lists_both_runs_and_filters(ui: UI) -> None:
    ui.use_key(ui.server.admin_key)
    ui.goto("/")
    ui.page.get_by_role("navigation", name="Main").get_by_role("link", name="Runs").click()
    rows = ui.page.get_by_test_id("run-row")
    table = ui.page.get_by_test_id("runs-table")
    for name in ("baseline", "high-lr"):
        expect(table.get_by_role("link", name=name, exact=True)).to_have_count(1)
    expect(rows.filter(has_text="baseline")).to_contain_text("finished")
    ui.page.locator('input[name="name"]').fill("high")
    ui.page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("high-lr")
    assert "name=high" in ui.page.url


def test_run_page_chart_has_every_point_and_a_tooltip(ui: UI) -> None:
    ui.use_key(ui.server.admin_key)
    ui.goto("/runs")
    ui.page.get_by_role("link", name="baseline").click()
    expect(ui.page.get_by_test_id("run-name")).to_have_text("baseline")
    expect(ui.page.get_by_test_id("params")).to_contain_text("0.001")
    expect(ui.page.get_by_test_id("lineage")).to_contain_text("corpus:1")

    chart = ready_chart(ui, "loss")
    line = chart.locator("path[data-series]")
    expect(line).to_have_count(1)
    expect(line).to_have_attribute("data-points", str(STEPS))
    assert path_points(chart) == STEPS
    eval_chart = ready_chart(ui, "eval/loss")  # a key with a slash goes through the URL intact
    assert path_points(eval_chart) == STEPS // EVAL_EVERY

    overlay = chart.get_by_test_id("chart-overlay")
    box = overlay.bounding_box()
    assert box is not None
    overlay.hover(position={"x": box["width"] / 2, "y": box["height"] / 2})
    tooltip = chart.get_by_test_id("chart-tooltip")
    expect(tooltip).to_be_visible()
    match = re.search(r"step (\d+)", tooltip.inner_text())
    assert match, tooltip.inner_text()
    step = int(match.group(1))
    assert abs(step - (STEPS - 1) / 2) <= 2
    shown = float(tooltip.locator(".tooltip-value").inner_text())
    assert shown == pytest.approx(baseline_loss(step), rel=1e-5)
    ui.page.mouse.move(0, 0)
    expect(tooltip).to_be_hidden()

    log = chart.get_by_test_id("chart-log")
    log.check()
    assert path_points(chart) == STEPS

    link = ui.page.get_by_test_id("artifacts").get_by_role("link", name="reports/summary.txt")
    response = ui.page.request.get(ui.url(link.get_attribute("href") or ""))
    assert response.status == 200 and response.text() == "baseline finished\n"
    ui.screenshot("run")


def test_compare_highlights_differing_params_and_overlays_series(ui: UI) -> None:
    ui.use_key(ui.server.admin_key)
    ui.goto("/runs")
    button = ui.page.get_by_test_id("compare-button")
    expect(button).to_be_disabled()
    for run_id in (ui.server.baseline_id, ui.server.high_lr_id):
        ui.page.locator(f'[data-run-id="{run_id}"] input[name="ids"]').check()
    expect(button).to_be_enabled()
    button.click()
    ui.page.wait_for_url(re.compile(r"/runs/compare\?ids=[0-9a-f]{32},[0-9a-f]{32}$"))

    lr = ui.page.locator('[data-testid="param-row"][data-param="lr"]')
    expect(lr).to_have_attribute("data-differs", "true")
    expect(lr).to_have_class(re.compile(r"\bdiffers\b"))
    batch = ui.page.locator('[data-testid="param-row"][data-param="batch_size"]')
    expect(batch).to_have_attribute("data-differs", "false")
    expect(batch).not_to_have_class(re.compile(r"\bdiffers\b"))

    chart = ready_chart(ui, "loss")
    lines = chart.locator("path[data-series]")
    expect(lines).to_have_count(2)
    assert path_points(chart, "baseline") == STEPS
    assert path_points(chart, "high-lr") == STEPS
    strokes = {lines.nth(i).get_attribute("stroke") for i in range(2)}
    assert len(strokes) == 2, "each run gets its own color"
    legend = chart.get_by_test_id("legend-item")
    expect(legend).to_have_count(2)

    overlay = chart.get_by_test_id("chart-overlay")
    box = overlay.bounding_box()
    assert box is not None
    overlay.hover(position={"x": box["width"] * 0.25, "y": box["height"] / 2})
    expect(chart.get_by_test_id("chart-tooltip").locator(".tooltip-row")).to_have_count(2)
    ui.screenshot("compare")


def test_legend_entry_toggles_its_series(ui: UI) -> None:
    ui.use_key(ui.server.admin_key)
    ui.goto(f"/runs/compare?ids={ui.server.baseline_id},{ui.server.high_lr_id}")
    chart = ready_chart(ui, "loss")
    item = chart.locator('[data-testid="legend-item"][data-series="high-lr"]')
    item.click()
    expect(item).to_have_attribute("aria-pressed", "false")
    expect(chart.locator('path[data-series="high-lr"]')).to_be_hidden()
    expect(chart.locator('path[data-series="baseline"]')).to_be_visible()
    overlay = chart.get_by_test_id("chart-overlay")
    overlay.hover()
    expect(chart.get_by_test_id("chart-tooltip").locator(".tooltip-row")).to_have_count(1)
    item.click()
    expect(chart.locator('path[data-series="high-lr"]')).to_be_visible()


def test_audit_page_shows_events_and_verification(ui: UI) -> None:
    ui.use_key(ui.server.admin_key)
    ui.goto("/audit")
    verify = ui.page.get_by_test_id("audit-verify")
    expect(verify).to_have_attribute("data-ok", "true")
    expect(verify).to_contain_text("verified")
    expect(ui.page.get_by_test_id("audit-head")).to_have_text(re.compile(r"^[0-9a-f]{64}$"))
    assert ui.page.locator('[data-testid="audit-row"][data-action="run.create"]').count() >= 2
    seqs = [int(s) for s in ui.page.locator('[data-testid="audit-row"] td:first-child').all_inner_texts()]
    assert seqs == sorted(seqs, reverse=True), "newest first"

    ui.page.locator('input[name="action"]').fill("run.create")
    ui.page.get_by_role("button", name="Filter").click()
    rows = ui.page.get_by_test_id("audit-row")
    assert rows.count() >= 2
    assert set(rows.evaluate_all("rows => rows.map(r => r.dataset.action)")) == {"run.create"}


def test_signed_out_visit_returns_after_sign_in(ui: UI) -> None:
    ui.goto("/runs?kind=train&status=finished")
    ui.page.wait_for_url(re.compile(r"/login\?next="))
    ui.sign_in(ui.server.admin_key, path="")
    assert ui.page.url == ui.url("/runs?kind=train&status=finished")
    expect(ui.page.get_by_test_id("run-row")).to_have_count(2)


def test_viewer_gets_a_readable_403_on_audit(ui: UI) -> None:
    ui.expect_status(403)
    ui.sign_in(ui.server.viewer_key)
    expect(ui.page.get_by_test_id("whoami-role")).to_have_text("viewer")
    nav = ui.page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Audit")).to_have_count(0)
    response = ui.page.goto(ui.url("/audit"))
    assert response is not None and response.status == 403
    expect(ui.page.get_by_role("heading", name="Permission denied")).to_be_visible()
    expect(ui.page.get_by_test_id("error-page")).to_contain_text("maintainer")
    expect(ui.page.get_by_test_id("whoami-name")).to_have_text("vic")


def test_sign_out(ui: UI) -> None:
    ui.sign_in(ui.server.admin_key)
    ui.page.get_by_test_id("sign-out").click()
    ui.page.wait_for_url(ui.url("/login"))
    assert not any(c["name"] == "llmops_key" for c in ui.context.cookies())
    ui.goto("/runs")
    ui.page.wait_for_url(re.compile(r"/login\?next=/runs$"))


def test_a_running_runs_chart_keeps_up(ui: UI) -> None:
    run = ui.server.platform.start_run(kind="eval", name="live")  # other tests only look at kind=train
    try:
        for step in range(5):
            run.log_metric("score", 0.1 * step, step=step)
        run.flush()
        ui.use_key(ui.server.admin_key)
        ui.goto(f"/runs/{run.id}")
        chart = ready_chart(ui, "score")
        line = chart.locator("path[data-series]")
        expect(line).to_have_attribute("data-points", "5")
        for step in range(5, 12):
            run.log_metric("score", 0.1 * step, step=step)
        run.flush()
        expect(line).to_have_attribute("data-points", "12", timeout=12_000)
        assert path_points(chart) == 12
    finally:
        run.end()


def test_narrow_screen_has_no_horizontal_overflow(ui: UI) -> None:
    ui.page.set_viewport_size({"width": 390, "height": 800})
    ui.use_key(ui.server.admin_key)
    for path in (f"/runs/{ui.server.baseline_id}", "/runs", "/audit"):
        ui.goto(path)
        if path.startswith("/runs/"):
            ready_chart(ui, "loss")
        overflow = ui.page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{path} is {overflow}px wider than a phone screen"
    ui.screenshot("narrow-audit")
