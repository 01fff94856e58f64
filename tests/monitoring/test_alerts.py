"""Alert rules: YAML with line-numbered errors, evaluation over stored requests (fire once, resolve), signed
webhooks received by a real HTTP server, pipeline hooks, acknowledgement, and the CLI."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmops.cli.main import app as cli
from llmops.errors import InvalidInput
from llmops.monitoring.alerts import parse_rules, register_pipeline_hook, sign
from llmops.monitoring.writer import DatabaseWriter
from llmops.percentiles import percentile
from llmops.platform import Platform
from llmops.security.actor import Actor
from tests.monitoring.records import record

RULES = """
rules:
  - name: errors
    deployment: lm
    metric: error_rate
    window: 10m
    op: ">"
    threshold: 0.2
    min_requests: 5
    actions:
      - {type: log}
      - {type: webhook, url: "URL", secret_env: LLMOPS_TEST_ALERT_SECRET}
      - {type: pipeline, pipeline: retrain, params: {dataset: feedback}}
  - name: slow
    metric: latency_p95
    window: 10m
    threshold: 1.5
    min_requests: 5
"""


class Receiver:
    """A webhook receiver on 127.0.0.1 that checks signatures as a real receiver would."""

    def __init__(self, secret: str) -> None:
        self.calls: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                timestamp = self.headers["x-llmops-timestamp"]
                valid = sign(secret, timestamp, body) == self.headers["x-llmops-signature"]
                receiver.calls.append({"body": json.loads(body), "valid": valid})
                self.send_response(204 if valid else 401)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    monkeypatch.setenv("LLMOPS_TEST_ALERT_SECRET", "s3cret")
    r = Receiver("s3cret")
    yield r
    r.server.shutdown()


def test_rule_files_report_problems_with_their_line() -> None:
    with pytest.raises(InvalidInput) as bad:
        parse_rules("rules:\n  - name: x\n    metric: latency_p42\n    threshold: 1\n    colour: red\n")
    message = bad.value.message
    assert "line 3: rules[0].metric: unknown metric 'latency_p42'" in message
    assert "line 5: rules[0].colour: unknown key 'colour'" in message
    with pytest.raises(InvalidInput, match="line 2: rules\\[0\\].window: window '10 minutes'"):
        parse_rules("rules:\n  - {name: x, metric: cost, threshold: 1, window: 10 minutes}\n")
    with pytest.raises(InvalidInput, match="repeated: x"):
        parse_rules("rules:\n  - {name: x, metric: cost, threshold: 1}\n  - {name: x, metric: cost, threshold: 2}\n")
    with pytest.raises(InvalidInput, match="not valid YAML at line 1"):
        parse_rules("rules: [")


def test_percentile_matches_linear_interpolation() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 99) == 5.0
    assert percentile([0.0, 10.0], 95) == pytest.approx(9.5)


def test_rules_fire_once_notify_and_resolve(platform: Platform, admin: Actor, receiver: Receiver) -> None:
    pipelines: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    register_pipeline_hook("retrain", lambda name, params, event: pipelines.append((name, params, event)))
    platform.alerts.apply_rules(admin, parse_rules(RULES.replace("URL", receiver.url)))
    writer = DatabaseWriter(platform.requests)
    now = dt.datetime.now(dt.UTC)
    t = now.timestamp()

    # too few requests: nothing is evaluated, nothing fires
    writer.write_now([record(started_at=t - 60, status=500, error="internal_error") for _ in range(3)])
    results = {r.rule: r for r in platform.alerts.evaluate(now)}
    assert results["errors"].status == "not_enough_data" and results["errors"].requests == 3
    # 3 errors of 6 = 0.5 > 0.2: fires once, even when evaluated again
    writer.write_now([record(started_at=t - 30, latency=0.1) for _ in range(3)])
    first = {r.rule: r for r in platform.alerts.evaluate(now)}
    assert first["errors"].status == "firing" and first["errors"].value == pytest.approx(0.5)
    assert first["errors"].fired is not None
    assert first["slow"].status == "ok"  # p95 of latencies 0.25 x3 and 0.1 x3
    again = {r.rule: r for r in platform.alerts.evaluate(now)}
    assert again["errors"].status == "firing" and again["errors"].fired is None
    [event] = platform.alerts.events()
    assert event.state == "firing" and "error_rate of lm over 10m is 0.5" in event.message
    assert [c["valid"] for c in receiver.calls] == [True]
    assert receiver.calls[0]["body"]["rule"] == "errors" and receiver.calls[0]["body"]["state"] == "firing"
    assert pipelines == [("retrain", {"dataset": "feedback"}, receiver.calls[0]["body"])]
    assert [a["type"] for a in event.details["actions_firing"]] == ["log", "webhook", "pipeline"]
    assert all(a["ok"] for a in event.details["actions_firing"])

    # healthy traffic later: the window slides past the errors and the event resolves
    later = now + dt.timedelta(minutes=11)
    writer.write_now([record(started_at=later.timestamp() - 10) for _ in range(6)])
    resolved = {r.rule: r for r in platform.alerts.evaluate(later)}
    assert resolved["errors"].status == "ok" and resolved["errors"].resolved == event.id
    assert receiver.calls[-1]["body"]["state"] == "resolved"
    acked = platform.alerts.ack(admin, event.id)
    assert acked.acked_by is not None
    assert platform.alerts.events(open_only=True) == []


def test_a_failing_webhook_is_recorded_and_does_not_stop_the_rest(platform: Platform, admin: Actor) -> None:
    rules = parse_rules(
        "rules:\n  - name: any\n    metric: requests\n    threshold: 0\n    min_requests: 1\n    actions:\n"
        "      - {type: webhook, url: 'http://127.0.0.1:9/nothing', timeout: 0.5}\n      - {type: log}\n"
    )
    platform.alerts.apply_rules(admin, rules)
    DatabaseWriter(platform.requests).write_now([record()])
    [result] = platform.alerts.evaluate()
    assert result.status == "firing"
    [event] = platform.alerts.events()
    webhook, logged = event.details["actions_firing"]
    assert webhook["ok"] is False and "failed after 3 attempts" in webhook["error"]
    assert logged == {"type": "log", "ok": True}


def test_alerts_cli(embedded_platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_HOME", str(embedded_platform.settings.home))
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {name: busy, metric: requests, threshold: 1, min_requests: 0, window: 1h}\n")
    runner = CliRunner()
    applied = runner.invoke(cli, ["alerts", "apply", str(rules)])
    assert applied.exit_code == 0, applied.output
    assert "1 alert rules in force: busy" in applied.output
    DatabaseWriter(embedded_platform.requests).write_now([record(), record()])
    evaluated = runner.invoke(cli, ["alerts", "evaluate", "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.output)[0]["status"] == "firing"
    listed = runner.invoke(cli, ["alerts", "list", "--json"])
    event_id = json.loads(listed.output)[0]["id"]
    assert runner.invoke(cli, ["alerts", "ack", str(event_id)]).exit_code == 0
    assert json.loads(runner.invoke(cli, ["alerts", "list", "--json"]).output) == []
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules:\n  - {name: b, metric: nope, threshold: 1}\n")
    failed = runner.invoke(cli, ["alerts", "apply", str(broken)])
    assert failed.exit_code == 1 and "line 2" in failed.output and "unknown metric 'nope'" in failed.output
    assert [r.name for r in embedded_platform.alerts.rules()] == ["busy"]  # a broken file changes nothing


def test_a_rule_on_a_drift_descriptor(platform: Platform, admin: Actor) -> None:
    from tests.monitoring.conftest import make_window

    now = dt.datetime.now(dt.UTC)
    writer = DatabaseWriter(platform.requests)
    for hours_ago, shift, seed in ((2, "no_shift", 1), (1, "new_language", 2)):
        window = make_window(shift, 150, seed)
        start = (now - dt.timedelta(hours=hours_ago)).timestamp()
        writer.write_now(
            [
                record(started_at=start + i * 20, prompt=p, completion=c)
                for i, (p, c) in enumerate(zip(window.prompts, window.completions, strict=True))
            ]
        )
    rules = parse_rules(
        "rules:\n  - {name: language-shift, deployment: lm, metric: drift, descriptor: prompts.language,\n"
        "     statistic: drift, window: 1h, threshold: 0.5, min_requests: 30}\n"
        "  - {name: topic-shift, deployment: lm, metric: drift, descriptor: prompts.classifier,\n"
        "     statistic: auc, window: 1h, threshold: 0.99, min_requests: 30}\n"
    )
    platform.alerts.apply_rules(admin, rules)
    results = {r.rule: r for r in platform.alerts.evaluate(now)}
    assert results["language-shift"].status == "firing" and results["language-shift"].value == 1.0
    auc = results["topic-shift"].value
    assert auc is not None and 0.5 < auc <= 1.0
    [event] = [e for e in platform.alerts.events() if e.rule == "language-shift"]
    assert "drift drift of prompts.language against previous" in event.message
    with pytest.raises(InvalidInput, match="metric drift needs a descriptor"):
        parse_rules("rules:\n  - {name: d, metric: drift, threshold: 0.2}\n")
