"""Counters that keep working when the shared backend does not.

The gateway reads and bumps counters on every request (rate limits, budgets). If Redis goes away, refusing
all traffic would turn a monitoring dependency into an outage, so ``ResilientCounters`` falls back to
in-process counters: limits then hold per gateway process instead of across replicas. It says so — a
warning in the log (at most once per ``retry_seconds``), ``degraded`` for ``/readyz`` and the metrics, and a
count of fallbacks — and tries the shared backend again after ``retry_seconds``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from llmops.counters.base import Counters
from llmops.counters.memory import MemoryCounters

log = logging.getLogger("llmops.counters")
T = TypeVar("T")


class ResilientCounters:
    def __init__(self, primary: Counters, *, retry_seconds: float = 5.0) -> None:
        self.primary = primary
        self.fallback = MemoryCounters()
        self.retry_seconds = retry_seconds
        self.fallbacks = 0  # operations served locally because the primary failed
        self._down_since: float | None = None
        self._lock = threading.Lock()

    @property
    def degraded(self) -> bool:
        return self._down_since is not None

    def _use_primary(self) -> bool:
        with self._lock:
            return self._down_since is None or time.monotonic() - self._down_since >= self.retry_seconds

    def _call(self, primary: Callable[[], T], fallback: Callable[[], T]) -> T:
        if self._use_primary():
            try:
                value = primary()
            except Exception as exc:  # any client error: connection refused, timeout, reset
                with self._lock:
                    first = self._down_since is None
                    self._down_since = time.monotonic()
                if first:
                    log.warning(
                        "shared counters unavailable (%s: %s); limits now hold per process", type(exc).__name__, exc
                    )
            else:
                if self._down_since is not None:
                    with self._lock:
                        self._down_since = None
                    log.warning("shared counters are back; limits hold across processes again")
                return value
        with self._lock:
            self.fallbacks += 1
        return fallback()

    def incr(self, key: str, amount: int = 1, *, ttl_seconds: float | None = None) -> int:
        return self._call(
            lambda: self.primary.incr(key, amount, ttl_seconds=ttl_seconds),
            lambda: self.fallback.incr(key, amount, ttl_seconds=ttl_seconds),
        )

    def get(self, key: str) -> int:
        return self._call(lambda: self.primary.get(key), lambda: self.fallback.get(key))

    def set_value(self, key: str, value: bytes, *, ttl_seconds: float | None = None) -> None:
        self._call(
            lambda: self.primary.set_value(key, value, ttl_seconds=ttl_seconds),
            lambda: self.fallback.set_value(key, value, ttl_seconds=ttl_seconds),
        )

    def get_value(self, key: str) -> bytes | None:
        return self._call(lambda: self.primary.get_value(key), lambda: self.fallback.get_value(key))

    def delete(self, key: str) -> None:
        self.fallback.delete(key)
        self._call(lambda: self.primary.delete(key), lambda: None)

    def ping(self) -> None:
        self.primary.ping()
