"""Request records for the monitoring tests, as the gateway makes them."""

from __future__ import annotations

import dataclasses
import itertools
import time
from typing import Any

from llmops.serving.deployments.schemas import Monitoring
from llmops.serving.records import CapturedText, RequestRecord

_ids = itertools.count(1)


def record(**overrides: Any) -> RequestRecord:
    """A finished chat request on deployment ``lm`` (version ``lm:1``) by user ``alice`` with key ``k1``."""
    now = overrides.pop("started_at", time.time())
    prompt = overrides.pop("prompt", None)
    completion = overrides.pop("completion", None)
    base = RequestRecord(
        request_id=f"req{next(_ids):06d}",
        deployment="lm",
        endpoint="chat",
        route="primary",
        version="lm:1",
        revision=1,
        mode="primary",
        key_prefix="k1",
        user="alice",
        request_user=None,
        stream=False,
        status=200,
        error=None,
        finish_reason="stop",
        prompt_tokens=10,
        completion_tokens=20,
        queue_time=0.01,
        time_to_first_token=0.05,
        time_per_output_token=0.01,
        latency=0.25,
        cost=0.0015,
        currency="USD",
        cache_hit=False,
        started_at=now,
        finished_at=now + 0.25,
        text=None,
        policy=Monitoring(),
    )
    if prompt is not None or completion is not None:
        overrides.setdefault(
            "text",
            CapturedText(prompt=prompt, messages=[{"role": "user", "content": prompt or ""}], completion=completion),
        )
        overrides.setdefault("policy", Monitoring(capture_text=True))
    return dataclasses.replace(base, **overrides)
