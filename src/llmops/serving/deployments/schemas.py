"""The deployment spec (what a revision holds) and the service's response shapes.

A spec is declarative: routes name pinned registry versions (an alias given at deploy time is resolved
then, so moving an alias never changes what serves without a new, audited revision), and every policy
the gateway enforces for the deployment travels with the revision that introduced it.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ENGINES = ("torch", "openai-upstream", "vllm", "embeddings")
Engine = Literal["torch", "openai-upstream", "vllm", "embeddings"]
Mode = Literal["primary", "canary", "shadow"]
OptionValue = str | int | float | bool


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RouteSpec(Strict):
    """One way a request can be served: a pinned version on an engine, with a share of the traffic.

    ``percent`` is the share of users (sticky by user or key) sent to a canary, or the share of requests
    mirrored to a shadow; the primary takes every user no canary takes.
    """

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
    mode: Mode
    model: Annotated[str | None, Field(max_length=300, description="the reference as given (name:3, name@alias)")]
    version: Annotated[str | None, Field(max_length=300, description="the pinned version it resolved to")]
    engine: Engine = "torch"
    engine_options: dict[str, OptionValue] = Field(default_factory=dict)
    percent: Annotated[float, Field(ge=0, le=100)] = 100.0

    @model_validator(mode="after")
    def _check(self) -> RouteSpec:
        if self.engine != "openai-upstream" and not (self.model and self.version):
            raise ValueError(f"route {self.name!r}: the {self.engine} engine serves a registry version; give a model")
        if self.engine == "openai-upstream" and "base_url" not in self.engine_options:
            raise ValueError(f"route {self.name!r}: the openai-upstream engine needs engine option base_url")
        return self


class RateLimit(Strict):
    """Per minute, per key and per user; None means unlimited."""

    requests_per_minute: Annotated[int, Field(ge=1)] | None = None
    tokens_per_minute: Annotated[int, Field(ge=1)] | None = None


class Budget(Strict):
    amount: Annotated[float, Field(gt=0)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    period: Literal["day", "week", "month"] = "month"
    per: Literal["key", "user", "deployment"] = "key"


class Pricing(Strict):
    """Cost per request: per-token prices, or the engine's hourly cost shared out by busy time."""

    input_per_million: Annotated[float, Field(ge=0)] = 0.0
    output_per_million: Annotated[float, Field(ge=0)] = 0.0
    hourly: Annotated[float, Field(ge=0)] | None = None
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"


class Monitoring(Strict):
    """What the request store keeps of this deployment's traffic (see ``llmops.monitoring``)."""

    capture_text: bool = Field(default=False, description="keep prompts and completions (PII redacted) for drift")
    retention_days: Annotated[int, Field(ge=1, le=3650)] = 30
    redact_pii: bool = Field(default=True, description="redact PII in kept texts before they are stored")
    latency_objective_ms: Annotated[float, Field(gt=0)] | None = None


class DeploymentSpec(Strict):
    routes: list[RouteSpec]
    require_signature: bool = False
    trusted_keys: list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = Field(default_factory=list)
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    budget: Budget | None = None
    pricing: Pricing = Field(default_factory=Pricing)
    response_cache: bool = False
    monitoring: Monitoring = Field(default_factory=Monitoring)
    scopes: list[str] = Field(default_factory=list, description="key scopes allowed; empty: any key")

    @model_validator(mode="after")
    def _check(self) -> DeploymentSpec:
        primaries = [r for r in self.routes if r.mode == "primary"]
        if len(primaries) != 1:
            raise ValueError(f"a deployment needs exactly one primary route, got {len(primaries)}")
        names = [r.name for r in self.routes]
        if len(set(names)) != len(names):
            raise ValueError(f"route names must be unique, got {names}")
        canary = sum(r.percent for r in self.routes if r.mode == "canary")
        if canary > 100:
            raise ValueError(f"canary routes take {canary:g} % of users together; at most 100 % can be sent away")
        if self.require_signature and not self.trusted_keys:
            raise ValueError("require_signature needs trusted_keys (hex Ed25519 public keys)")
        return self

    @property
    def primary(self) -> RouteSpec:
        return next(r for r in self.routes if r.mode == "primary")


class RevisionOut(BaseModel):
    deployment: str
    revision: int
    change: str
    reason: str | None
    spec: DeploymentSpec
    created_at: dt.datetime
    created_by: str
    current: bool = False


class DeploymentOut(BaseModel):
    name: str
    description: str | None
    revision: int
    spec: DeploymentSpec
    created_at: dt.datetime
    created_by: str
    updated_at: dt.datetime


def spec_json(spec: DeploymentSpec) -> dict[str, Any]:
    return spec.model_dump(mode="json")
