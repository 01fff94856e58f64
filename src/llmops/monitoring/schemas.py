"""Request, cost, feedback and window schemas of the monitoring API (REST, CLI and Python share them)."""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from llmops.errors import InvalidInput

if TYPE_CHECKING:
    from llmops.monitoring.tables import RequestText, StoredRequest

SIGNALS = ("empty", "truncated", "slow", "repetitive", "refusal", "pii_output", "toxic")
Signal = Literal["empty", "truncated", "slow", "repetitive", "refusal", "pii_output", "toxic"]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, *, field: str = "window") -> dt.timedelta:
    """``30m``, ``24h``, ``7d``, ``2w`` as a timedelta."""
    match = _DURATION.match(text)
    if match is None:
        raise InvalidInput(f"{field} {text!r} is not a duration: write a number and a unit s, m, h, d or w (24h, 7d)")
    seconds = float(match.group(1)) * _UNIT[match.group(2)]
    if seconds <= 0:
        raise InvalidInput(f"{field} {text!r} must be longer than zero")
    return dt.timedelta(seconds=seconds)


def parse_time(text: str, *, field: str = "since", now: dt.datetime | None = None) -> dt.datetime:
    """A duration back from now (``7d``) or an ISO 8601 time (UTC when it has no zone)."""
    if _DURATION.match(text):
        return (now or dt.datetime.now(dt.UTC)) - parse_duration(text, field=field)
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"{field} {text!r} is neither a duration (7d, 24h) nor an ISO time (2026-11-22T10:00)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


class RequestFilter(BaseModel):
    """Which stored requests: every field narrows the result. The REST query string, the CLI options, the
    feedback export body and Python callers all use this one model; ``since`` and ``until`` take a time or
    text (a duration back from now, ``7d``, or an ISO time)."""

    model_config = ConfigDict(extra="forbid")

    deployment: str | None = Field(default=None, max_length=128)
    version: str | None = Field(default=None, max_length=300)
    user: str | None = Field(default=None, max_length=160)
    key: str | None = Field(default=None, max_length=64, description="API key prefix")
    status: int | None = Field(default=None, ge=100, le=599)
    errors_only: bool = False
    mode: Literal["primary", "canary", "shadow"] | None = None
    include_shadow: bool = False
    endpoint: Literal["completions", "chat", "embeddings"] | None = None
    since: dt.datetime | None = Field(default=None, description="a duration back from now (7d, 24h) or ISO time")
    until: dt.datetime | None = Field(default=None, description="a duration back from now (7d, 24h) or ISO time")
    signal: Signal | None = Field(default=None, description="only requests with this quality signal raised")

    @field_validator("since", "until", mode="before")
    @classmethod
    def _time_text(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            if len(value) > 64:
                raise ValueError("at most 64 characters: a duration (7d) or an ISO time")
            return parse_time(value, field=info.field_name or "since")  # InvalidInput names the field
        return value

    @model_validator(mode="after")
    def _window(self) -> RequestFilter:
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise ValueError("until must be after since")
        return self


class RequestQuery(RequestFilter):
    """A page of a request listing: the filters, how many rows, and where to continue."""

    limit: Annotated[int, Field(ge=1, le=1000)] = 50
    before: int | None = Field(
        default=None, ge=1, le=2**63 - 1, description="page: rows with a smaller row id (the last row's `row`)"
    )


class RequestOut(BaseModel):
    row: int
    request_id: str
    deployment: str
    endpoint: str
    route: str | None
    version: str | None
    revision: int | None
    mode: str
    key_prefix: str | None
    user: str | None
    request_user: str | None
    stream: bool
    status: int
    error: str | None
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    queue_time: float | None
    time_to_first_token: float | None
    time_per_output_token: float | None
    latency: float
    cost: float
    currency: str
    cache_hit: bool
    started_at: dt.datetime
    finished_at: dt.datetime
    signals: dict[str, Any]
    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    completion: str | None = None
    redactions: dict[str, int] | None = None
    feedback: list[dict[str, Any]] | None = None

    @classmethod
    def from_row(cls, r: StoredRequest, text: RequestText | None = None) -> RequestOut:
        signals: dict[str, Any] = {s: getattr(r, s) for s in SIGNALS}
        signals.update(r.signals or {})
        return cls(
            row=r.id,
            request_id=r.request_id,
            deployment=r.deployment,
            endpoint=r.endpoint,
            route=r.route,
            version=r.version,
            revision=r.revision,
            mode=r.mode,
            key_prefix=r.key_prefix,
            user=r.user,
            request_user=r.request_user,
            stream=r.stream,
            status=r.status,
            error=r.error,
            finish_reason=r.finish_reason,
            prompt_tokens=r.prompt_tokens,
            completion_tokens=r.completion_tokens,
            queue_time=r.queue_time,
            time_to_first_token=r.ttft,
            time_per_output_token=r.tpot,
            latency=r.latency,
            cost=r.cost_micros / 1_000_000,
            currency=r.currency,
            cache_hit=r.cache_hit,
            started_at=r.started_at,
            finished_at=r.finished_at,
            signals=signals,
            prompt=text.prompt if text else None,
            messages=text.messages if text else None,
            completion=text.completion if text else None,
            redactions=text.redactions if text else None,
        )


class CostRow(BaseModel):
    group: dict[str, str | None]
    currency: str
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cost: float


class FeedbackIn(BaseModel):
    """Feedback on one served request: a thumb or a numeric score, and/or a label, comment or correction."""

    model_config = ConfigDict(extra="forbid")

    request_id: Annotated[str, Field(min_length=1, max_length=128)]
    thumbs: Literal["up", "down"] | None = None
    score: float | None = Field(None, description="numeric score in [score_min, score_max]")
    score_min: float = 0.0
    score_max: float = 1.0
    label: Annotated[str, Field(max_length=128)] | None = None
    comment: Annotated[str, Field(max_length=10_000)] | None = None
    correction: Annotated[str, Field(max_length=100_000)] | None = Field(
        None, description="the answer the model should have given"
    )

    @model_validator(mode="after")
    def _check(self) -> FeedbackIn:
        if self.thumbs is not None and self.score is not None:
            raise ValueError("give either thumbs or score, not both")
        if self.score_max <= self.score_min:
            raise ValueError("score_max must be greater than score_min")
        if self.score is not None and not (self.score_min <= self.score <= self.score_max):
            raise ValueError(f"score {self.score} is outside [{self.score_min}, {self.score_max}]")
        if self.thumbs is None and self.score is None and not (self.label or self.comment or self.correction):
            raise ValueError("feedback needs thumbs, a score, a label, a comment or a correction")
        return self


class FeedbackOut(BaseModel):
    id: int
    request_id: str
    kind: str
    score: float | None
    label: str | None
    comment: str | None
    correction: str | None
    created_at: dt.datetime
    created_by: str
