"""The deployment page's live traffic charts and the monitoring page, in headless Chromium.

Requests are stored through the request store's writer (as the gateway does), with a planted language shift
between the two days; the page must show them, refresh the traffic section as new requests arrive, and
show the drift and cost by user. As everywhere in ``tests/e2e``, console errors and foreign requests fail.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from playwright.sync_api import expect

from llmops.monitoring.writer import DatabaseWriter
from llmops.security.actor import local_admin
from tests.e2e.conftest import UI, Server
from tests.monitoring.conftest import make_window
from tests.monitoring.records import record

pytestmark = pytest.mark.e2e
DEPLOYMENT = "watched"


@pytest.fixture(scope="module")
def watched(server: Server) -> DatabaseWriter:
    platform = server.platform
    platform.deployments.deploy(
        local_admin(via="cli"),
        DEPLOYMENT,
        model=None,
        engine="openai-upstream",
        engine_options={"base_url": "http://127.0.0.1:9/v1"},
    )
    writer = DatabaseWriter(platform.requests)
    now = dt.datetime.now(dt.UTC).timestamp()
    for day, shift, user in ((2, "no_shift", "carol"), (1, "new_language", "dave")):
        window = make_window(shift, 120, seed=day)
        writer.write_now(
            [
                record(
                    deployment=DEPLOYMENT,
                    user=user,
                    started_at=now - day * 86400 + i * 600,
                    prompt=p,
                    completion=c,
                )
                for i, (p, c) in enumerate(zip(window.prompts, window.completions, strict=True))
            ]
        )
    return writer


def test_deployment_page_charts_traffic_live(ui: UI, watched: DatabaseWriter) -> None:
    ui.use_key(ui.server.admin_key)
    ui.goto(f"/deployments/{DEPLOYMENT}")
    traffic = ui.page.get_by_test_id("traffic")
    expect(traffic.get_by_test_id("latency-chart").locator("svg")).to_have_count(1)
    expect(traffic.get_by_test_id("throughput-chart").locator("svg path")).to_have_count(1)
    summary = traffic.get_by_test_id("traffic-summary")
    expect(summary).to_contain_text(re.compile(r"^\d+ requests"))
    before = int(summary.inner_text().split()[0])
    now = dt.datetime.now(dt.UTC).timestamp()
    watched.write_now([record(deployment=DEPLOYMENT, started_at=now - 5, latency=0.4) for _ in range(7)])
    expect(summary).to_contain_text(f"{before + 7} requests", timeout=20_000)  # refreshed without a reload
    expect(ui.page.get_by_test_id("monitoring-link")).to_have_attribute("href", f"/deployments/{DEPLOYMENT}/monitoring")


def test_monitoring_page_shows_drift_cost_and_signals(ui: UI, watched: DatabaseWriter) -> None:
    ui.use_key(ui.server.admin_key)
    ui.page.goto(ui.url(f"/deployments/{DEPLOYMENT}/monitoring?window=1d&reference=previous"), timeout=120_000)
    expect(ui.page.get_by_test_id("drift-status")).to_contain_text("drift found", timeout=60_000)
    expect(ui.page.get_by_test_id("descriptors-prompts")).to_contain_text("language")
    costs = ui.page.get_by_test_id("cost-by-user")
    expect(costs).to_contain_text("dave")
    expect(ui.page.get_by_test_id("signals")).to_contain_text("refusal")
    assert ui.page.locator("section[data-testid=drift] svg").count() >= 4
    ui.screenshot("monitoring")


def test_viewers_see_traffic_but_not_monitoring(ui: UI, watched: DatabaseWriter) -> None:
    ui.use_key(ui.server.viewer_key)
    ui.goto(f"/deployments/{DEPLOYMENT}")
    expect(ui.page.get_by_test_id("traffic").get_by_test_id("latency-chart")).to_have_count(1)
    expect(ui.page.get_by_test_id("monitoring-link")).to_have_count(0)
    ui.expect_status(403)
    ui.goto(f"/deployments/{DEPLOYMENT}/monitoring")
    expect(ui.page.locator("body")).to_contain_text("monitoring:read")
