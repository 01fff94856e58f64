"""Promotion policies: what evidence a protected alias needs before it may point at a version.

A policy is stored per model (JSON); without one, ``DEFAULT_POLICY`` applies: ``production`` is
protected, the maintainer role is required, and the weights must be in a safe format. Evidence comes from
the platform's own records: evaluation runs that read the version (lineage edge ``input`` →
``model_version``) and finished, with their metrics compared to thresholds; the version's format and
pickle conversion record; its signature checked against the policy's trusted keys.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmops.tracking.schemas import RunDetail

OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
}


class MetricRequirement(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    metric: str = Field(min_length=1, max_length=250)
    op: Literal[">=", ">", "<=", "<", "=="] = ">="
    value: float
    run_kind: str = "eval"


class PromotionPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    protected_aliases: list[str] = Field(default_factory=lambda: ["production"])
    require_safe_format: bool = True
    require_signature: bool = False
    trusted_keys: list[str] = Field(
        default_factory=list, description="Ed25519 public keys (hex) whose signatures count"
    )
    evaluations: list[MetricRequirement] = Field(default_factory=list)


DEFAULT_POLICY = PromotionPolicy()


def check(
    policy: PromotionPolicy,
    *,
    format: str,
    signature: dict[str, Any] | None,
    signature_valid: bool,
    eval_runs: list[RunDetail],
) -> list[str]:
    """The requirements that are NOT met, each as a sentence; empty when promotion may proceed."""
    failures: list[str] = []
    if policy.require_safe_format and format in ("unknown",):
        failures.append(f"safe format: the version's format is {format!r}, not a safetensors-based format")
    if policy.require_signature:
        if signature is None:
            failures.append("signature: the version is not signed (llmops models sign REF --key KEY)")
        elif not signature_valid:
            failures.append("signature: the version's signature does not verify against its manifest")
        elif policy.trusted_keys and signature.get("public_key") not in policy.trusted_keys:
            failures.append("signature: signed by a key that is not in the policy's trusted_keys")
    for req in policy.evaluations:
        candidates = [r for r in eval_runs if r.kind == req.run_kind and r.status == "finished"]
        values = [m.last for r in candidates for m in r.metrics if m.key == req.metric]
        if not values:
            failures.append(f"evaluation: no finished {req.run_kind} run that read this version logged {req.metric!r}")
        elif not any(OPS[req.op](v, req.value) for v in values):
            best = max(values) if req.op in (">=", ">") else min(values)
            failures.append(f"evaluation: {req.metric} {req.op} {req.value:g} not met (best evidence {best:g})")
    return failures
