"""The demo's traffic end to end: real requests through the gateway to the reference model, a planted shift
that the report finds, cost by user, and feedback that becomes a dataset version."""

from __future__ import annotations

import pyarrow.parquet as pq

from llmops.monitoring.schemas import RequestQuery
from llmops.pipelines.demo import deploy_demo_models, register_reference_model
from llmops.pipelines.traffic import send_demo_traffic
from llmops.platform import Platform
from llmops.security.actor import local_admin


def test_demo_traffic_shows_drift_cost_and_feedback(embedded_platform: Platform) -> None:
    platform = embedded_platform
    admin = local_admin(via="demo")
    reference = register_reference_model(platform, admin)
    assert reference == "reference-lm:1"
    deploy_demo_models(platform, admin, reference)
    result = send_demo_traffic(platform, admin, per_half=60, max_tokens=12, seed=3)
    assert result.statuses == {200: 120}
    assert platform.requests.count(RequestQuery(deployment="reference")) == 120
    assert set(result.cost_by_user) == {"alice", "bob"} and all(c > 0 for c in result.cost_by_user.values())
    assert result.drift_status == "ok" and result.drifted, "the planted shift was not found"
    assert any("language" in d or "script" in d or "classifier" in d for d in result.drifted), result.drifted
    html = result.report.read_text()
    assert "drift found" in html and "alice" in html and "bob" in html
    assert result.feedback > 0 and result.dataset is not None
    version = platform.datasets.get(result.dataset)
    assert version.kind == "chat" and version.rows == result.feedback
    with platform.datasets.open_parquet(version.ref) as path:
        rows = pq.read_table(path).to_pylist()
    assert all(r["messages"][-1]["role"] == "assistant" for r in rows)
    corrected = [r for r in rows if r["corrected"]]
    assert all(r["messages"][-1]["content"].startswith("Here is a short, correct answer") for r in corrected)
