"""Which route serves a request: sticky canary assignment and shadow sampling.

Assignment hashes ``deployment/sticky key`` (the user, else the key) into 10,000 buckets; canaries take
consecutive bucket ranges in route order and the primary takes the rest. The same user therefore stays on
the same route while the percentages stand, and raising a canary's percent only moves users onto it
(buckets are never reshuffled). Shadows sample requests with an independent hash per request id.
"""

from __future__ import annotations

import hashlib

from llmops.serving.deployments.schemas import DeploymentSpec, RouteSpec

BUCKETS = 10_000


def bucket(*parts: str) -> int:
    digest = hashlib.blake2b("/".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def choose_route(deployment: str, spec: DeploymentSpec, sticky_key: str) -> RouteSpec:
    """The route (primary or a canary) that serves ``sticky_key`` on this deployment."""
    position = bucket(deployment, sticky_key)
    start = 0.0
    for route in spec.routes:
        if route.mode != "canary":
            continue
        end = start + route.percent * BUCKETS / 100
        if start <= position < end:
            return route
        start = end
    return spec.primary


def shadows_for(deployment: str, spec: DeploymentSpec, request_id: str) -> list[RouteSpec]:
    """The shadow routes this request is mirrored to (each samples its percent of requests)."""
    return [
        r
        for r in spec.routes
        if r.mode == "shadow" and bucket(deployment, r.name, request_id) < r.percent * BUCKETS / 100
    ]
