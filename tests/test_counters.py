"""The Counters contract on the in-process implementation and on a real Redis (127.0.0.1:6379)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from llmops.counters.base import Counters
from llmops.counters.memory import MemoryCounters
from llmops.counters.redis import RedisCounters
from llmops.counters.resilient import ResilientCounters
from llmops.errors import Unavailable
from llmops.platform import build_counters
from llmops.settings import Settings

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["memory", "redis"])
def counters(request: pytest.FixtureRequest) -> Iterator[Counters]:
    if request.param == "memory":
        yield MemoryCounters()
        return
    c = RedisCounters.from_url(REDIS_URL, namespace=f"test-{uuid.uuid4().hex[:8]}")
    try:
        c.ping()
    except Unavailable as exc:
        pytest.fail(f"Redis at {REDIS_URL} is required: {exc}")
    yield c


def test_incr_get_delete(counters: Counters) -> None:
    assert counters.get("a") == 0
    assert counters.incr("a") == 1
    assert counters.incr("a", 5) == 6
    assert counters.get("a") == 6
    counters.delete("a")
    assert counters.get("a") == 0


def test_ttl_window_starts_at_first_hit(counters: Counters) -> None:
    assert counters.incr("w", ttl_seconds=0.3) == 1
    time.sleep(0.15)
    assert counters.incr("w", ttl_seconds=0.3) == 2  # the second hit does not extend the window
    time.sleep(0.25)
    assert counters.get("w") == 0
    assert counters.incr("w", ttl_seconds=0.3) == 1


def test_values_with_ttl(counters: Counters) -> None:
    assert counters.get_value("v") is None
    counters.set_value("v", b"\x00bytes", ttl_seconds=0.2)
    assert counters.get_value("v") == b"\x00bytes"
    time.sleep(0.3)
    assert counters.get_value("v") is None


def test_concurrent_increments_are_not_lost(counters: Counters) -> None:
    def work() -> None:
        for _ in range(200):
            counters.incr("c")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counters.get("c") == 1600


def test_platform_picks_backend_by_url(tmp_path: object) -> None:
    assert isinstance(build_counters(Settings(home=tmp_path)), MemoryCounters)  # type: ignore[arg-type]
    shared = build_counters(Settings(home=tmp_path, redis_url=REDIS_URL))  # type: ignore[arg-type]
    assert isinstance(shared, ResilientCounters) and isinstance(shared.primary, RedisCounters)


def test_unreachable_redis_is_a_clear_error() -> None:
    c = RedisCounters.from_url("redis://127.0.0.1:1/0")
    with pytest.raises(Unavailable, match="LLMOPS_REDIS_URL"):
        c.ping()
