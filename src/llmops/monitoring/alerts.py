"""Alert rules over the request store, evaluated on a schedule, with webhook, log and pipeline actions.

A rule names a metric of a deployment's traffic over a trailing window, a comparison and a threshold::

    rules:
      - name: reference-errors
        deployment: reference          # omit for every deployment together
        metric: error_rate             # see METRICS
        window: 15m
        op: ">"
        threshold: 0.05
        min_requests: 20               # fewer requests in the window: not evaluated
        actions:
          - {type: log}
          - {type: webhook, url: "https://hooks.example.com/llmops", secret_env: LLMOPS_ALERT_SECRET}
          - {type: pipeline, pipeline: retrain, params: {dataset: feedback}}

Evaluation (``AlertService.evaluate``, every ``LLMOPS_ALERT_INTERVAL_SECONDS`` in ``llmops serve`` and on
demand with ``llmops alerts evaluate``) runs under a database lock, so several gateway replicas never raise
the same alert twice: a rule whose condition holds and that has no open event gets a ``firing`` event and
its actions run; an open event whose condition no longer holds is ``resolved`` (actions run again with that
state). Events stay until acknowledged (``llmops alerts ack``).

Webhooks are POSTed as JSON with ``X-LLMops-Timestamp`` and ``X-LLMops-Signature: sha256=<hex>``, the
HMAC-SHA256 of ``"<timestamp>.<body>"`` under the secret read from the environment variable the rule names
(secrets never sit in the database); receivers recompute it and refuse old timestamps, as Stripe's and
GitHub's webhooks are checked. A ``pipeline`` action calls the hooks registered for that pipeline name with
:func:`register_pipeline_hook` (the pipelines package registers its runners there); with none registered it
is recorded on the event as pending.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import select

from llmops.db.base import utcnow
from llmops.db.database import Database
from llmops.errors import InvalidInput, NotFound
from llmops.monitoring.drift import CategoricalDrift, DriftReport, NumericDrift
from llmops.monitoring.schemas import RequestQuery, parse_duration
from llmops.monitoring.store import RequestStore
from llmops.monitoring.tables import AlertEvent, AlertRuleRow
from llmops.percentiles import percentile
from llmops.security.actor import Actor
from llmops.security.audit import AuditLog
from llmops.yamlspec import parse_model

log = logging.getLogger("llmops.alerts")

# metric -> (description, unit); rates are shares of the window's requests in [0, 1].
METRICS: dict[str, str] = {
    "requests": "requests in the window",
    "error_rate": "share of requests answered with status >= 400",
    "rate_limited_rate": "share of requests refused with 429",
    "latency_p50": "median end-to-end latency, seconds",
    "latency_p95": "95th percentile end-to-end latency, seconds",
    "latency_p99": "99th percentile end-to-end latency, seconds",
    "ttft_p95": "95th percentile time to first token, seconds",
    "tpot_p95": "95th percentile time per output token, seconds",
    "cost": "cost of the window's requests (the deployment's currency)",
    "tokens": "prompt + completion tokens",
    "empty_rate": "share of empty answers",
    "truncated_rate": "share of answers cut at max_tokens (finish_reason length)",
    "slow_rate": "share of requests over the latency objective",
    "repetitive_rate": "share of repetitive answers (kept texts only)",
    "refusal_rate": "share of refusals (kept texts only)",
    "pii_output_rate": "share of answers with PII (kept texts only)",
    "toxic_rate": "share of answers matching the toxicity lexicon (kept texts only)",
    "drift": "a drift check of the window against `reference` (needs `descriptor`; kept texts only)",
}
DRIFT_STATISTICS = ("psi", "statistic", "auc", "mmd2", "drift")
SIGNAL_RATES = {f"{s}_rate": s for s in ("empty", "truncated", "slow", "repetitive", "refusal", "pii_output", "toxic")}
OPS: dict[str, Callable[[float, float], bool]] = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}
PipelineHook = Callable[[str, dict[str, Any], dict[str, Any]], None]
_PIPELINE_HOOKS: dict[str, list[PipelineHook]] = {}


def register_pipeline_hook(pipeline: str, hook: PipelineHook) -> None:
    """Call ``hook(pipeline, params, event)`` when an alert's ``pipeline`` action names ``pipeline``."""
    _PIPELINE_HOOKS.setdefault(pipeline, []).append(hook)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LogAction(_Strict):
    type: Literal["log"]


class WebhookAction(_Strict):
    type: Literal["webhook"]
    url: Annotated[str, Field(pattern=r"^https?://", max_length=2000)]
    secret_env: Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")] | None = Field(
        None, description="environment variable holding the HMAC secret"
    )
    timeout: Annotated[float, Field(gt=0, le=60)] = 5.0


class PipelineAction(_Strict):
    type: Literal["pipeline"]
    pipeline: Annotated[str, Field(min_length=1, max_length=128)]
    params: dict[str, Any] = Field(default_factory=dict)


Action = Annotated[LogAction | WebhookAction | PipelineAction, Field(discriminator="type")]


def _default_actions() -> list[LogAction | WebhookAction | PipelineAction]:
    return [LogAction(type="log")]


class AlertRule(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    deployment: str | None = None
    metric: str
    window: str = "15m"
    op: Literal[">", ">=", "<", "<="] = ">"
    threshold: float
    min_requests: Annotated[int, Field(ge=0)] = 10
    description: str | None = None
    descriptor: Annotated[str, Field(pattern=r"^(prompts|completions)\.[a-z_]+$")] | None = Field(
        default=None,
        description="for metric drift: prompts|completions . a descriptor (length_tokens, language, ...), "
        "classifier or embedding",
    )
    statistic: Literal["psi", "statistic", "auc", "mmd2", "drift"] = Field(
        default="psi", description="for metric drift: which number of the check (drift: 1 if it alarmed, else 0)"
    )
    reference: str = Field(default="previous", description="for metric drift: previous, 7d or dataset:NAME:V")
    actions: list[Action] = Field(default_factory=_default_actions)

    @model_validator(mode="after")
    def _drift(self) -> AlertRule:
        if self.metric == "drift" and self.descriptor is None:
            raise ValueError("metric drift needs a descriptor, e.g. prompts.language or prompts.classifier")
        if self.metric != "drift" and self.descriptor is not None:
            raise ValueError("descriptor applies to metric drift only")
        return self

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        if value not in METRICS:
            raise ValueError(f"unknown metric {value!r}; choose from {', '.join(METRICS)}")
        return value

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        try:
            parse_duration(value)
        except InvalidInput as exc:
            raise ValueError(exc.message) from None
        return value


class RuleSet(_Strict):
    rules: list[AlertRule]


class AlertEventOut(BaseModel):
    id: int
    rule: str
    deployment: str | None
    state: str
    value: float | None
    threshold: float
    message: str
    details: dict[str, Any]
    fired_at: dt.datetime
    resolved_at: dt.datetime | None
    acked_at: dt.datetime | None
    acked_by: str | None


class Evaluation(BaseModel):
    rule: str
    status: Literal["ok", "firing", "not_enough_data"]
    value: float | None
    requests: int
    fired: int | None = None
    resolved: int | None = None


def parse_rules(text: str, source: str = "alert rules") -> RuleSet:
    rules = parse_model(text, RuleSet, source)
    names = [r.name for r in rules.rules]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidInput(f"{source}: rule names must be unique; repeated: {', '.join(dupes)}")
    return rules


DriftFn = Callable[..., DriftReport]


def drift_value(report: DriftReport, descriptor: str, statistic: str) -> float | None:
    """One number of a drift report: ``prompts.language`` + ``psi``, ``prompts.classifier`` + ``auc``, ...;
    None when that check had not enough data or has no such number."""
    field_name, check_name = descriptor.split(".", 1)
    field = report.prompts if field_name == "prompts" else report.completions
    check: Any
    if check_name == "classifier":
        check = field.classifier
    elif check_name == "embedding":
        check = field.embedding
    else:
        named: list[NumericDrift | CategoricalDrift] = [*field.numeric, *field.categorical]
        check = next((c for c in named if c.name == check_name), None)
    if check is None or check.status != "ok":
        return None
    if statistic == "drift":
        return 1.0 if check.drift else 0.0
    value = getattr(check, statistic, None)
    return float(value) if isinstance(value, int | float) else None


def window_metric(
    store: RequestStore, rule: AlertRule, now: dt.datetime, drift: DriftFn | None = None
) -> tuple[float | None, int]:
    """The rule's metric over its window and the window's request count (``None`` when nothing to measure)."""
    query = RequestQuery(deployment=rule.deployment, since=now - parse_duration(rule.window), until=now)
    metric = rule.metric
    if metric == "drift":
        n = store.count(query)
        if drift is None or rule.deployment is None or rule.descriptor is None or n == 0:
            return None, n
        report = drift(rule.deployment, window=rule.window, reference=rule.reference, now=now)
        return drift_value(report, rule.descriptor, rule.statistic), n
    columns = ["status", "latency", "ttft", "tpot", "cost_micros", "prompt_tokens", "completion_tokens"]
    signal = SIGNAL_RATES.get(metric)
    if signal is not None:
        columns.append(signal)
    rows = store.series(query, columns)
    n = len(rows)
    if metric == "requests":
        return float(n), n
    if n == 0:
        return None, 0
    if metric == "error_rate":
        return sum(1 for r in rows if r[0] >= 400) / n, n
    if metric == "rate_limited_rate":
        return sum(1 for r in rows if r[0] == 429) / n, n
    if metric == "cost":
        return sum(r[4] for r in rows) / 1_000_000, n
    if metric == "tokens":
        return float(sum(r[5] + r[6] for r in rows)), n
    if metric.startswith(("latency_", "ttft_", "tpot_")):
        index = {"latency": 1, "ttft": 2, "tpot": 3}[metric.split("_")[0]]
        values = [r[index] for r in rows if r[index] is not None]
        return (percentile(values, int(metric.rsplit("p", 1)[1])) if values else None), n
    flags = [r[-1] for r in rows if r[-1] is not None]  # text-based signals exist only where texts were kept
    return (sum(1 for f in flags if f) / len(flags) if flags else None), n


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, "<timestamp>.<body>")."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class AlertService:
    """Rules, events and evaluation; ``drift`` (``MonitorService.drift``) serves rules on metric ``drift``."""

    def __init__(self, db: Database, store: RequestStore, audit: AuditLog, *, drift: DriftFn | None = None) -> None:
        self.db = db
        self.store = store
        self.audit = audit
        self.drift = drift

    # --- rules ----------------------------------------------------------------------------------------------
    def apply_rules(self, actor: Actor, rules: RuleSet, *, prune: bool = True) -> list[AlertRule]:
        """Make the stored rules these (``prune``: remove rules not in the set), audited."""
        with self.db.write() as session:
            self.db.lock(session, "alerts")
            existing = {r.name: r for r in session.scalars(select(AlertRuleRow))}
            for rule in rules.rules:
                spec = rule.model_dump(mode="json")
                row = existing.pop(rule.name, None)
                if row is None:
                    session.add(AlertRuleRow(name=rule.name, spec=spec, updated_by=actor.label))
                elif row.spec != spec:
                    row.spec, row.updated_by, row.updated_at = spec, actor.label, utcnow()
            if prune:
                for row in existing.values():
                    session.delete(row)
            self.audit.append(session, actor, "alerts.apply", "alerts/rules", {"rules": [r.name for r in rules.rules]})
        return self.rules()

    def rules(self) -> list[AlertRule]:
        with self.db.read() as session:
            return [AlertRule.model_validate(r.spec) for r in session.scalars(select(AlertRuleRow).order_by("name"))]

    # --- events ---------------------------------------------------------------------------------------------
    def events(self, *, open_only: bool = False, limit: int = 100) -> list[AlertEventOut]:
        stmt = select(AlertEvent).order_by(AlertEvent.id.desc()).limit(min(limit, 1000))
        if open_only:
            stmt = stmt.where(AlertEvent.acked_at.is_(None))
        with self.db.read() as session:
            return [AlertEventOut.model_validate(e, from_attributes=True) for e in session.scalars(stmt)]

    def ack(self, actor: Actor, event_id: int) -> AlertEventOut:
        with self.db.write() as session:
            event = session.get(AlertEvent, event_id)
            if event is None:
                raise NotFound(f"no alert event {event_id}; `llmops alerts list` shows them")
            if event.acked_at is None:
                event.acked_at, event.acked_by = utcnow(), actor.label
                self.audit.append(session, actor, "alerts.ack", f"alerts/{event_id}", {"rule": event.rule})
            return AlertEventOut.model_validate(event, from_attributes=True)

    # --- evaluation -----------------------------------------------------------------------------------------
    def evaluate(self, now: dt.datetime | None = None) -> list[Evaluation]:
        """Evaluate every rule once (see the module docstring); returns what each rule found."""
        now = now or utcnow()
        results: list[Evaluation] = []
        to_notify: list[tuple[AlertRule, dict[str, Any]]] = []
        with self.db.write() as session:
            self.db.lock(session, "alerts")
            rules = [AlertRule.model_validate(r.spec) for r in session.scalars(select(AlertRuleRow))]
            for rule in rules:
                value, n = window_metric(self.store, rule, now, self.drift)
                open_event = session.scalar(
                    select(AlertEvent).where(AlertEvent.rule == rule.name, AlertEvent.state == "firing")
                )
                enough = n >= rule.min_requests and value is not None
                holds = enough and value is not None and OPS[rule.op](value, rule.threshold)
                result = Evaluation(
                    rule=rule.name, status="firing" if holds else ("ok" if enough else "not_enough_data"),
                    value=value, requests=n,
                )  # fmt: skip
                if holds and open_event is None:
                    assert value is not None
                    event = AlertEvent(
                        rule=rule.name,
                        deployment=rule.deployment,
                        state="firing",
                        value=value,
                        threshold=rule.threshold,
                        message=(
                            f"{_what(rule)} of {rule.deployment or 'all deployments'} over {rule.window} is "
                            f"{value:.6g} ({rule.op} {rule.threshold:g}; {n} requests)"
                        ),
                        details={"metric": rule.metric, "window": rule.window, "requests": n, "op": rule.op},
                        fired_at=now,
                    )
                    session.add(event)
                    session.flush()
                    result.fired = event.id
                    to_notify.append((rule, _payload(event)))
                elif open_event is not None and enough and not holds:
                    open_event.state, open_event.resolved_at = "resolved", now
                    result.resolved = open_event.id
                    to_notify.append((rule, _payload(open_event)))
                results.append(result)
        for rule, payload in to_notify:  # outside the transaction: a slow webhook never holds the lock
            deliveries = self._act(rule, payload)
            with self.db.write() as session:
                stored = session.get(AlertEvent, payload["id"])
                if stored is not None:
                    stored.details = {**stored.details, f"actions_{payload['state']}": deliveries}
        return results

    def _act(self, rule: AlertRule, payload: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for action in rule.actions:
            try:
                if isinstance(action, LogAction):
                    level = logging.WARNING if payload["state"] == "firing" else logging.INFO
                    log.log(level, "alert %s %s: %s", rule.name, payload["state"], payload["message"])
                    out.append({"type": "log", "ok": True})
                elif isinstance(action, WebhookAction):
                    out.append({"type": "webhook", "url": action.url, **_deliver(action, payload)})
                else:
                    hooks = _PIPELINE_HOOKS.get(action.pipeline, [])
                    for hook in hooks:
                        hook(action.pipeline, action.params, payload)
                    out.append(
                        {"type": "pipeline", "pipeline": action.pipeline, "ok": True,
                         "status": "started" if hooks else "pending (no runner registered)"}
                    )  # fmt: skip
            except Exception as exc:  # one failing action never stops the others
                log.warning("alert %s: %s action failed: %s", rule.name, action.type, exc)
                out.append({"type": action.type, "ok": False, "error": f"{type(exc).__name__}: {exc}"})
        return out


def _what(rule: AlertRule) -> str:
    if rule.metric == "drift":
        return f"drift {rule.statistic} of {rule.descriptor} against {rule.reference}"
    return rule.metric


def _payload(event: AlertEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "rule": event.rule,
        "deployment": event.deployment,
        "state": event.state,
        "value": event.value,
        "threshold": event.threshold,
        "message": event.message,
        "fired_at": event.fired_at.isoformat() if event.fired_at else None,
        "resolved_at": event.resolved_at.isoformat() if event.resolved_at else None,
    }


def _deliver(action: WebhookAction, payload: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps(payload, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    headers = {"content-type": "application/json", "x-llmops-timestamp": timestamp}
    if action.secret_env:
        secret = os.environ.get(action.secret_env)
        if not secret:
            raise InvalidInput(
                f"the webhook secret variable {action.secret_env} is not set in the server's environment"
            )
        headers["x-llmops-signature"] = sign(secret, timestamp, body)
    last: Exception | None = None
    for attempt in range(3):
        try:
            response = httpx.post(action.url, content=body, headers=headers, timeout=action.timeout)
            if response.status_code < 500:
                return {"ok": response.is_success, "status": response.status_code, "attempts": attempt + 1}
            last = RuntimeError(f"HTTP {response.status_code}")
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2 * (attempt + 1))
    raise RuntimeError(f"webhook {action.url} failed after 3 attempts: {last}")
