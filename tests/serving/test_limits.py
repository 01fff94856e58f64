"""Gateway admission policies: per-minute request and token limits, budgets, costs; on in-process counters
and on the local Redis (shared by two processes), and the fallback when Redis is unreachable."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmops.counters.base import Counters
from llmops.counters.memory import MemoryCounters
from llmops.counters.redis import RedisCounters
from llmops.counters.resilient import ResilientCounters
from llmops.errors import QuotaExceeded
from llmops.serving.deployments.schemas import Budget, Pricing, RateLimit
from llmops.serving.limits import BudgetGuard, RateLimiter
from llmops.serving.pricing import request_cost

REDIS_URL = "redis://127.0.0.1:6379/0"
REPO = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
def counters(request: pytest.FixtureRequest) -> Iterator[Counters]:
    if request.param == "memory":
        yield MemoryCounters()
    else:
        yield RedisCounters.from_url(REDIS_URL, namespace=f"test-{uuid.uuid4().hex[:8]}")


def test_requests_per_minute_per_key_and_user(counters: Counters) -> None:
    clock = Clock(1_000_040.0)  # 20 s into a window (minute windows start at multiples of 60)
    limiter = RateLimiter(counters, clock=clock)
    limit = RateLimit(requests_per_minute=3)
    for _ in range(3):
        limiter.admit("chat", {"key": "k1", "user": "ann"}, limit)
    with pytest.raises(QuotaExceeded) as refused:
        limiter.admit("chat", {"key": "k1", "user": "ann"}, limit)
    assert refused.value.details["retry_after"] == 40 and refused.value.details["limit"] == "requests_per_minute"
    assert "3 requests per minute" in refused.value.message
    limiter.admit("chat", {"key": "k2", "user": "bob"}, limit)  # other subjects have their own allowance
    limiter.admit("other", {"key": "k1", "user": "ann"}, limit)  # and other deployments
    with pytest.raises(QuotaExceeded, match="user 'ann'"):
        limiter.admit("chat", {"key": "k3", "user": "ann"}, limit)  # a new key does not reset the user's count
    clock.now += 40  # the next window
    limiter.admit("chat", {"key": "k1", "user": "ann"}, limit)


def test_refused_requests_do_not_use_the_allowance(counters: Counters) -> None:
    limiter = RateLimiter(counters, clock=Clock(2_000_000.0))
    limit = RateLimit(requests_per_minute=2)
    limiter.admit("d", {"key": "k", "user": "u"}, limit)
    limiter.admit("d", {"key": "k", "user": "u"}, limit)
    for _ in range(5):
        with pytest.raises(QuotaExceeded):
            limiter.admit("d", {"key": "k", "user": "u"}, limit)
    # The key's window still holds 2, not 7: raising the limit by one admits exactly one more.
    limiter.admit("d", {"key": "k", "user": "u"}, RateLimit(requests_per_minute=3))
    with pytest.raises(QuotaExceeded):
        limiter.admit("d", {"key": "k", "user": "u"}, RateLimit(requests_per_minute=3))


def test_tokens_per_minute_count_finished_responses(counters: Counters) -> None:
    limiter = RateLimiter(counters, clock=Clock(3_000_000.0))
    limit = RateLimit(tokens_per_minute=100)
    subjects = {"key": "k", "user": "u"}
    limiter.admit("d", subjects, limit)
    limiter.record_tokens("d", subjects, limit, 60)
    limiter.admit("d", subjects, limit)  # 60 < 100
    limiter.record_tokens("d", subjects, limit, 45)  # a streamed response's tokens count too
    with pytest.raises(QuotaExceeded, match="used 105 of 100 tokens per minute"):
        limiter.admit("d", subjects, limit)


def test_budgets_per_period(counters: Counters) -> None:
    clock = Clock(1_767_225_000.0)  # 2025-12-31 23:50 UTC
    guard = BudgetGuard(counters, clock=clock)
    budget = Budget(amount=0.01, currency="EUR", period="day", per="user")
    pricing = Pricing(input_per_million=1000.0, output_per_million=2000.0)
    cost = request_cost(pricing, prompt_tokens=3, completion_tokens=2)  # 0.003 + 0.004
    assert cost == pytest.approx(0.007)
    guard.check("d", {"user": "ann"}, budget)
    guard.charge("d", {"user": "ann"}, budget, cost)
    guard.check("d", {"user": "ann"}, budget)
    guard.charge("d", {"user": "ann"}, budget, cost)
    with pytest.raises(QuotaExceeded, match="the daily budget of 0.01 EUR per user on d is spent") as refused:
        guard.check("d", {"user": "ann"}, budget)
    assert refused.value.details["code"] == "budget_exceeded" and refused.value.details["retry_after"] == 600
    guard.check("d", {"user": "bob"}, budget)
    clock.now += 601  # a new UTC day, a new budget
    guard.check("d", {"user": "ann"}, budget)
    assert guard.spent("d", {"user": "ann"}, budget) == 0
    hourly = Pricing(hourly=3.6)
    assert request_cost(hourly, prompt_tokens=10, completion_tokens=10, busy_seconds=2.0) == pytest.approx(0.002)


def test_two_processes_share_one_limit_on_redis() -> None:
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    code = textwrap.dedent(
        f"""
        import json, sys
        from llmops.counters.redis import RedisCounters
        from llmops.errors import QuotaExceeded
        from llmops.serving.deployments.schemas import RateLimit
        from llmops.serving.limits import RateLimiter
        limiter = RateLimiter(RedisCounters.from_url({REDIS_URL!r}, namespace={namespace!r}), clock=lambda: 4_000_000.0)
        admitted = 0
        for _ in range(40):
            try:
                limiter.admit("shared", {{"key": "k"}}, RateLimit(requests_per_minute=50))
                admitted += 1
            except QuotaExceeded:
                pass
        print(json.dumps(admitted))
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, cwd=REPO) for _ in range(2)]
    counts = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert sum(counts) == 50 and all(c >= 10 for c in counts)  # 80 tries, one shared allowance of 50


def test_unreachable_redis_falls_back_to_local_limits(caplog: pytest.LogCaptureFixture) -> None:
    down = RedisCounters.from_url("redis://127.0.0.1:1/0")  # nothing listens on port 1
    counters = ResilientCounters(down, retry_seconds=60)
    limiter = RateLimiter(counters, clock=Clock(5_000_000.0))
    limit = RateLimit(requests_per_minute=2)
    limiter.admit("d", {"key": "k"}, limit)
    limiter.admit("d", {"key": "k"}, limit)
    with pytest.raises(QuotaExceeded):
        limiter.admit("d", {"key": "k"}, limit)  # limits still hold, per process
    assert counters.degraded and counters.fallbacks >= 3
    assert "limits now hold per process" in caplog.text
    live = RedisCounters.from_url(REDIS_URL, namespace=f"test-{uuid.uuid4().hex[:8]}")
    counters.primary, counters.retry_seconds = live, 0.0  # Redis is back: the next call uses it again
    assert counters.incr("x") == 1 and live.get("x") == 1 and not counters.degraded
