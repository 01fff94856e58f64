"""Tables of the monitoring domain: stored requests, their texts, cost rollups, feedback and alerts.

``requests`` holds one row per request record (shadow copies included; they share the caller's request id,
so the key is a surrogate id and ``request_id`` is an index). Texts live in their own table so that listing
and aggregating never read them and retention can delete them without touching the numbers. Costs are kept
in micro-units of the currency (integers sum exactly); ``cost_rollups`` holds one row per UTC day,
deployment, version, user, key and currency, upserted with every batch, so cost reports and budgets read a
few rows instead of scanning requests.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from llmops.db.base import Base, JSONType, UTCDateTime, utcnow

BigId = BigInteger().with_variant(Integer, "sqlite")


class StoredRequest(Base):
    __tablename__ = "requests"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(128), index=True)
    deployment: Mapped[str] = mapped_column(String(128))
    endpoint: Mapped[str] = mapped_column(String(32))
    route: Mapped[str | None] = mapped_column(String(64), default=None)
    version: Mapped[str | None] = mapped_column(String(300), default=None)
    revision: Mapped[int | None] = mapped_column(Integer, default=None)
    mode: Mapped[str] = mapped_column(String(16))
    key_prefix: Mapped[str | None] = mapped_column(String(64), default=None)
    user: Mapped[str | None] = mapped_column(String(160), default=None)
    request_user: Mapped[str | None] = mapped_column(String(256), default=None)
    stream: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(64), default=None)
    finish_reason: Mapped[str | None] = mapped_column(String(64), default=None)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    queue_time: Mapped[float | None] = mapped_column(Float, default=None)
    ttft: Mapped[float | None] = mapped_column(Float, default=None)
    tpot: Mapped[float | None] = mapped_column(Float, default=None)
    latency: Mapped[float] = mapped_column(Float)
    cost_micros: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    cache_hit: Mapped[bool] = mapped_column(Boolean)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # Quality signals (see llmops.monitoring.quality); the text-based ones are null when no text was kept.
    empty: Mapped[bool] = mapped_column(Boolean)
    truncated: Mapped[bool] = mapped_column(Boolean)
    slow: Mapped[bool | None] = mapped_column(Boolean, default=None)  # latency objective breached
    repetitive: Mapped[bool | None] = mapped_column(Boolean, default=None)
    refusal: Mapped[bool | None] = mapped_column(Boolean, default=None)
    pii_output: Mapped[bool | None] = mapped_column(Boolean, default=None)
    toxic: Mapped[bool | None] = mapped_column(Boolean, default=None)
    signals: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)

    __table_args__ = (
        Index("ix_requests_started_at", "started_at"),
        Index("ix_requests_deployment_started_at", "deployment", "started_at"),
        Index("ix_requests_version_started_at", "version", "started_at"),
        Index("ix_requests_user_started_at", "user", "started_at"),
    )


class RequestText(Base):
    """The prompt and completion of a stored request, when its deployment keeps texts (PII redacted)."""

    __tablename__ = "request_texts"

    request_row: Mapped[int] = mapped_column(ForeignKey("requests.id", ondelete="CASCADE"), primary_key=True)
    prompt: Mapped[str | None] = mapped_column(Text, default=None)
    messages: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType, default=None)
    completion: Mapped[str | None] = mapped_column(Text, default=None)
    redactions: Mapped[dict[str, int] | None] = mapped_column(JSONType, default=None)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


class CostRollup(Base):
    """Requests, tokens and cost per UTC day × deployment × version × user × key × currency ('' = none)."""

    __tablename__ = "cost_rollups"

    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD (sorts and compares)
    deployment: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[str] = mapped_column(String(300), primary_key=True)
    user: Mapped[str] = mapped_column(String(160), primary_key=True)
    key_prefix: Mapped[str] = mapped_column(String(64), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    errors: Mapped[int] = mapped_column(BigInteger, default=0)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_micros: Mapped[int] = mapped_column(BigInteger, default=0)


class Feedback(Base):
    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(128), index=True)
    score: Mapped[float | None] = mapped_column(Float, default=None)  # thumbs: 1 up, 0 down; or numeric
    kind: Mapped[str] = mapped_column(String(16))  # thumbs | numeric | none
    label: Mapped[str | None] = mapped_column(String(128), default=None)
    comment: Mapped[str | None] = mapped_column(Text, default=None)
    correction: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    created_by: Mapped[str] = mapped_column(String(160))


class AlertRuleRow(Base):
    __tablename__ = "alert_rules"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(160))


class AlertEvent(Base):
    __tablename__ = "alert_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    rule: Mapped[str] = mapped_column(String(128), index=True)
    deployment: Mapped[str | None] = mapped_column(String(128), default=None)
    state: Mapped[str] = mapped_column(String(16))  # firing | resolved
    value: Mapped[float | None] = mapped_column(Float, default=None)
    threshold: Mapped[float] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSONType)
    fired_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    acked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    acked_by: Mapped[str | None] = mapped_column(String(160), default=None)
