"""A deployment's window: summary numbers from stored requests, drift against the previous window and against
a dataset version, the HTML report, and empty windows that say so."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmops.cli.main import app as cli
from llmops.monitoring.report import render_report
from llmops.monitoring.writer import DatabaseWriter
from llmops.platform import Platform
from llmops.security.actor import Actor
from tests.monitoring.conftest import make_window
from tests.monitoring.records import record

NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)
HOUR = 3600.0


def fill(platform: Platform, shift: str, start: dt.datetime, n: int, seed: int, **fields: object) -> None:
    window = make_window(shift, n, seed)
    step = 24 * HOUR / n
    DatabaseWriter(platform.requests).write_now(
        [
            record(
                deployment="chat",
                started_at=start.timestamp() + i * step,
                prompt=prompt,
                completion=completion,
                **fields,  # type: ignore[arg-type]
            )
            for i, (prompt, completion) in enumerate(zip(window.prompts, window.completions, strict=True))
        ]
    )


@pytest.fixture
def shifted(embedded_platform: Platform) -> Platform:
    fill(embedded_platform, "no_shift", NOW - dt.timedelta(hours=48), 300, seed=1, user="alice", cost=0.001)
    fill(embedded_platform, "new_language", NOW - dt.timedelta(hours=24), 300, seed=2, user="bob", cost=0.002)
    return embedded_platform


def test_summary_counts_the_window(shifted: Platform) -> None:
    summary = shifted.monitor.summary("chat", window="24h", now=NOW)
    assert summary.requests == 300 and summary.errors == 0
    assert [u.user for u in summary.cost_by_user] == ["bob"]
    assert summary.cost_by_user[0].cost == pytest.approx(0.6)
    assert summary.latency.p50 == pytest.approx(0.25)
    assert sum(b.requests for b in summary.buckets) == 300 and len(summary.buckets) == 24
    assert summary.signals["refusal"] is not None and 0 < summary.signals["refusal"] < 0.2
    assert summary.signals["slow"] is None  # no latency objective: not measured, not "0 %"


def test_planted_language_shift_is_found_against_the_previous_window(shifted: Platform) -> None:
    drift = shifted.monitor.drift("chat", window="24h", reference="previous", now=NOW)
    assert drift.status == "ok" and drift.drift
    assert any("language" in name for name in drift.drifted), drift.drifted
    assert drift.prompts.reference_rows == 300 and drift.prompts.current_rows == 300
    length = next(c for c in drift.prompts.numeric if c.name == "length_tokens")
    assert len(length.bin_edges) == 13 and len(length.reference_histogram) == 12
    assert sum(length.reference_histogram) == pytest.approx(1.0, abs=1e-4)
    assert sum(length.current_histogram) == pytest.approx(1.0, abs=1e-4)
    steady = shifted.monitor.drift("chat", window="24h", now=NOW - dt.timedelta(hours=24))
    assert steady.status == "not_enough_data"  # nothing before the first window


def test_a_dataset_version_as_the_reference(shifted: Platform, admin: Actor, tmp_path: Path) -> None:
    reference = make_window("no_shift", 300, seed=3)
    path = tmp_path / "tuning.jsonl"

    path.write_text(
        "".join(
            json.dumps({"prompt": p, "completion": c}) + "\n"
            for p, c in zip(reference.prompts, reference.completions, strict=True)
        )
    )
    version = shifted.datasets.import_path(admin, path, name="tuning")
    drift = shifted.monitor.drift("chat", window="24h", reference=f"dataset:{version.ref}", now=NOW)
    assert drift.reference_label == version.ref and drift.drift
    with pytest.raises(Exception, match="reference 'last week'"):
        shifted.monitor.drift("chat", reference="last week", now=NOW)


def test_report_and_empty_windows(
    shifted: Platform, admin: Actor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    html = render_report(
        shifted.monitor.summary("chat", window="24h", now=NOW),
        shifted.monitor.drift("chat", window="24h", now=NOW),
    )
    assert "<script" not in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "drift found" in html and "Words that most separate the windows" in html
    assert html.count("<svg") >= 8  # latency, throughput, requests, cost, signals, descriptors
    assert re.search(r"bob</td><td class=\"num\">300</td>", html)
    empty = render_report(shifted.monitor.summary("nobody", window="1h"), shifted.monitor.drift("nobody", window="1h"))
    assert "No requests in this window" in empty and "Not enough data" in empty

    monkeypatch.setenv("LLMOPS_HOME", str(shifted.settings.home))
    shifted.deployments.deploy(
        admin,
        "chat",
        model=None,
        engine="openai-upstream",
        engine_options={"base_url": "http://127.0.0.1:9/v1"},
    )
    out = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["monitor", "report", "chat", "--window", "100d", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "600 requests in the last 100d" in result.output and out.read_text().startswith("<!doctype html>")
