"""The shipped Grafana dashboard and Prometheus rules reference only metrics the gateway exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from llmops.counters.memory import MemoryCounters
from llmops.counters.resilient import ResilientCounters
from llmops.serving.gateway import Gateway

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "llmops-gateway.json"
RULES = ROOT / "deploy" / "prometheus" / "llmops-alerts.yml"
METRIC = re.compile(r"\bllmops_[a-z0-9_]+")
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"), "gauge": ("",)}


def exported() -> set[str]:
    """Every sample name GET /metrics can carry: the gateway's families with the suffixes of their types."""
    # shared counters (Redis) add the degraded gauge and the fallback counter
    registry: CollectorRegistry = Gateway(ResilientCounters(MemoryCounters())).metrics.registry
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + s for s in SUFFIXES.get(family.type, ("",)))
    return names


def test_every_metric_in_the_dashboard_and_rules_is_exported() -> None:
    names = exported()
    assert {"llmops_requests_total", "llmops_time_to_first_token_seconds_bucket", "llmops_engine_waiting"} <= names
    panels = json.loads(DASHBOARD.read_text())["panels"]
    expressions = [t["expr"] for p in panels for t in p["targets"]]
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    expressions += [r["expr"] for r in rules]
    referenced = {m for e in expressions for m in METRIC.findall(e)}
    assert len(referenced) >= 12
    assert referenced <= names, f"not exported: {sorted(referenced - names)}"


def test_the_dashboard_and_rules_are_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and dashboard["uid"] == "llmops-gateway"
    for panel in dashboard["panels"]:
        assert panel["targets"] and all(t["expr"].count("(") == t["expr"].count(")") for t in panel["targets"])
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    assert all({"alert", "expr", "labels", "annotations"} <= set(r) for r in rules)
    assert len({r["alert"] for r in rules}) == len(rules)
