"""The model pages in headless Chromium: list, model, version card and plan, lineage graph, alias history, diff.

The models are tiny real Llama checkpoints imported into the test server's platform (``models`` fixture);
every figure a page shows is checked against what the registry service answers for the same ref. As in
``test_ui.py``, the ``ui`` fixture fails a test on console errors and on requests to other hosts.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, expect

from tests.e2e.conftest import UI
from tests.ui.tiny_models import MERGED, MODEL, Family

pytestmark = pytest.mark.e2e


def card_value(ui: UI, field: str) -> str:
    return ui.page.locator(f'[data-testid="card"] tr[data-field="{field}"] td').first.get_attribute("data-value") or ""


def figure_bytes(locator: Locator) -> int:
    return int(locator.locator("[data-bytes]").first.get_attribute("data-bytes") or -1)


def test_navigate_to_a_version_and_its_card_matches_the_service(ui: UI, models: Family) -> None:
    registry = ui.server.platform.registry
    ui.use_key(ui.server.admin_key)
    ui.goto("/")
    ui.page.get_by_role("navigation", name="Main").get_by_role("link", name="Models").click()
    ui.page.wait_for_url(ui.url("/models"))
    row = ui.page.locator(f'[data-testid="model-row"][data-model="{MODEL}"]')
    expect(row.locator('[data-testid="alias"][data-alias="production"]')).to_have_text("production → 1")
    expect(row.locator('[data-testid="alias"][data-alias="staging"]')).to_have_text("staging → 2")
    expect(ui.page.locator(f'[data-testid="model-row"][data-model="{MERGED}"]')).to_have_count(1)
    ui.screenshot("models-list")

    row.get_by_role("link", name=MODEL, exact=True).click()
    expect(ui.page.get_by_test_id("model-name")).to_have_text(MODEL)
    expect(ui.page.get_by_test_id("version-row")).to_have_count(2)
    ui.page.get_by_role("link", name=models.finetune, exact=True).click()
    expect(ui.page.get_by_test_id("version-ref")).to_have_text(models.finetune)

    detail = registry.get_version(models.finetune)
    assert int(card_value(ui, "parameters")) == detail.parameters
    assert int(card_value(ui, "logical_bytes")) == detail.logical_bytes
    assert int(card_value(ui, "context_length")) == detail.context_length
    assert card_value(ui, "manifest") == detail.manifest_digest
    assert card_value(ui, "signature") == "unsigned"
    card = ui.page.get_by_test_id("card")
    expect(card.locator('tr[data-field="architecture"] td')).to_have_text("LlamaForCausalLM")
    expect(card.locator('tr[data-field="derivation"] td')).to_have_text("finetune")
    expect(card.locator('tr[data-field="base"] a')).to_have_attribute("href", f"/models/{MODEL}/1")
    expect(card.locator('tr[data-field="run"] a')).to_have_attribute("href", f"/runs/{models.run_id}")

    expect(ui.page.get_by_test_id("tensor-row")).to_have_count(len(detail.tensors))
    assert figure_bytes(ui.page.get_by_test_id("storage-logical")) == sum(t.bytes for t in detail.tensors)
    assert figure_bytes(ui.page.get_by_test_id("storage-added")) == detail.physical_bytes
    encodings = {t.encoding for t in detail.tensors}
    expect(ui.page.locator('[data-testid="encodings"] tr[data-encoding]')).to_have_count(len(encodings))
    expect(ui.page.get_by_test_id("promotion")).to_have_attribute("data-ready", "true")
    ui.screenshot("models-version")

    ui.page.get_by_test_id("card").locator('tr[data-field="run"] a').click()
    expect(ui.page.get_by_test_id("run-name")).to_have_text("tune-last-layer")


def test_plan_form_changes_the_kv_cache(ui: UI, models: Family) -> None:
    registry = ui.server.platform.registry
    ui.use_key(ui.server.admin_key)
    ui.goto(f"/models/{MODEL}/2")
    kv = ui.page.get_by_test_id("plan-kv")
    default = registry.plan(models.finetune)
    assert figure_bytes(kv) == default.kv_bytes_total
    expect(ui.page.locator('[data-testid="plan-form"] input[name="context"]')).to_have_value(str(default.context))

    form = ui.page.get_by_test_id("plan-form")
    form.locator('input[name="context"]').fill("4096")
    form.locator('input[name="batch"]').fill("2")
    form.locator('select[name="precision"]').select_option("fp16")
    form.get_by_role("button", name="Plan").click()
    ui.page.wait_for_url(re.compile(r"context=4096&batch=2&precision=fp16#plan$"))
    larger = registry.plan(models.finetune, context=4096, batch=2, precision="fp16")
    assert figure_bytes(ui.page.get_by_test_id("plan-kv")) == larger.kv_bytes_total > default.kv_bytes_total
    assert figure_bytes(ui.page.get_by_test_id("plan-total")) == larger.serving_total_bytes
    expect(ui.page.locator('[data-testid="plan-form"] input[name="context"]')).to_have_value("4096")
    expect(ui.page.locator('[data-testid="plan-form"] select[name="precision"]')).to_have_value("fp16")
    table = ui.page.get_by_test_id("plan-table")
    for label, value in larger.rows():
        if label.startswith("KV cache ("):
            expect(table.locator("tr", has_text=label)).to_contain_text(value)


def test_lineage_graph_draws_bases_and_derived_versions_and_navigates(ui: UI, models: Family) -> None:
    ui.use_key(ui.server.admin_key)
    ui.goto(f"/models/{MODEL}/1/lineage")
    graph = ui.page.get_by_test_id("lineage-graph")
    nodes = graph.get_by_test_id("lineage-node")
    expect(nodes).to_have_count(3)
    roles = {n.get_attribute("data-ref"): n.get_attribute("data-role") for n in nodes.all()}
    assert roles == {models.base: "current", models.finetune: "derived", models.merged: "derived"}
    merged = graph.locator(f'[data-testid="lineage-node"][data-ref="{models.merged}"]')
    expect(merged).to_contain_text("merge")
    edges = graph.get_by_test_id("lineage-edge")
    expect(edges).to_have_count(2)
    pairs = {(e.get_attribute("data-from"), e.get_attribute("data-to")) for e in edges.all()}
    assert pairs == {(models.base, models.finetune), (models.base, models.merged)}
    assert all(e.get_attribute("marker-end") == "url(#arrow)" for e in edges.all())
    # Each arrow runs from the bottom of the base's box to the top of the derived version's box.
    base_box = graph.locator(f'[data-ref="{models.base}"] rect').bounding_box()
    for target in (models.finetune, models.merged):
        box = graph.locator(f'[data-ref="{target}"] rect').bounding_box()
        edge = graph.locator(f'[data-testid="lineage-edge"][data-to="{target}"]').bounding_box()
        assert base_box and box and edge
        assert box["y"] > base_box["y"] + base_box["height"], "derived versions are drawn below"
        assert edge["y"] == pytest.approx(base_box["y"] + base_box["height"], abs=5)
        assert edge["y"] + edge["height"] == pytest.approx(box["y"], abs=5)
    ui.screenshot("models-lineage")

    merged.click()
    ui.page.wait_for_url(ui.url(f"/models/{MERGED}/1"))
    expect(ui.page.get_by_test_id("version-ref")).to_have_text(models.merged)
    ui.page.get_by_test_id("lineage-link").click()
    up = ui.page.get_by_test_id("lineage-graph")
    expect(up.get_by_test_id("lineage-node")).to_have_count(2)
    ancestor = up.locator(f'[data-testid="lineage-node"][data-ref="{models.base}"]')
    expect(ancestor).to_have_attribute("data-role", "ancestor")
    current = up.locator(f'[data-testid="lineage-node"][data-ref="{models.merged}"]')
    a, c = ancestor.locator("rect").bounding_box(), current.locator("rect").bounding_box()
    assert a and c and a["y"] < c["y"], "bases are drawn above"


def test_alias_history_shows_the_move(ui: UI, models: Family) -> None:
    ui.use_key(ui.server.admin_key)
    ui.goto(f"/models/{MODEL}")
    events = ui.page.get_by_test_id("alias-event")
    expect(events).to_have_count(3)
    move = ui.page.locator('[data-testid="alias-event"][data-alias="staging"][data-from="1"][data-to="2"]')
    expect(move).to_contain_text("1 → 2")
    expect(move).to_contain_text("last layer tuned")
    assert events.first.get_attribute("data-to") == "2", "newest first"
    expect(ui.page.get_by_test_id("policy")).to_contain_text("production")
    rows = ui.page.get_by_test_id("version-row")
    expect(rows.filter(has=ui.page.locator('[data-alias="staging"]'))).to_have_attribute("data-ref", models.finetune)
    ui.screenshot("models-model")
    move.get_by_role("link", name="2").click()
    expect(ui.page.get_by_test_id("version-ref")).to_have_text(models.finetune)


def test_diff_from_the_version_page_shows_the_changed_tensors(ui: UI, models: Family) -> None:
    diff = ui.server.platform.registry.diff(models.base, models.merged)
    ui.use_key(ui.server.admin_key)
    ui.goto(f"/models/{MERGED}/1")
    form = ui.page.get_by_test_id("diff-form")
    expect(form.locator('input[name="a"]')).to_have_value(models.base)
    form.get_by_role("button").click()
    ui.page.wait_for_url(re.compile(r"/models/-/diff\?a=tiny-llama%3A1&b=tiny-llama-merged%3A1$"))
    for status in ("changed", "added", "removed", "unchanged"):
        expect(ui.page.get_by_test_id(f"diff-{status}")).to_have_attribute("data-count", str(getattr(diff, status)))
    changed = [c for c in diff.tensors if c.status == "changed"]
    assert changed and all(("q_proj" in c.name or "v_proj" in c.name) for c in changed)
    rows = ui.page.get_by_test_id("diff-row")
    expect(rows).to_have_count(len(changed))
    for change in changed:
        row = ui.page.locator(f'[data-testid="diff-row"][data-tensor="{change.name}"]')
        assert change.relative_l2 is not None
        shown = float(row.get_by_test_id("relative-l2").inner_text())
        assert shown == pytest.approx(change.relative_l2, rel=1e-3)
        expect(row.locator("svg.bar")).to_have_count(1)
        assert int(row.locator("[data-bytes]").get_attribute("data-bytes") or -1) == change.stored_bytes
    ui.screenshot("models-diff")


def test_model_pages_fit_a_phone_screen(ui: UI, models: Family) -> None:
    ui.page.set_viewport_size({"width": 390, "height": 800})
    ui.use_key(ui.server.admin_key)
    for path in ("/models", f"/models/{MODEL}", f"/models/{MODEL}/2", f"/models/{MODEL}/1/lineage"):
        ui.goto(path)
        overflow = ui.page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{path} is {overflow}px wider than a phone screen"
    ui.screenshot("models-narrow-lineage")


def test_unknown_version_is_a_404_page(ui: UI, models: Family) -> None:
    ui.expect_status(404)
    ui.use_key(ui.server.viewer_key)
    response = ui.page.goto(ui.url(f"/models/{MODEL}/99"))
    assert response is not None and response.status == 404
    expect(ui.page.get_by_test_id("error-message")).to_contain_text("has no version 99")
