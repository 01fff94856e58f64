"""In-process counters: the embedded default (one process; thread-safe)."""

from __future__ import annotations

import threading
import time


class MemoryCounters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, tuple[int | bytes, float | None]] = {}

    def _live(self, key: str) -> int | bytes | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        value, expires = entry
        if expires is not None and expires <= time.monotonic():
            del self._data[key]
            return None
        return value

    def incr(self, key: str, amount: int = 1, *, ttl_seconds: float | None = None) -> int:
        with self._lock:
            current = self._live(key)
            if current is None:
                expires = time.monotonic() + ttl_seconds if ttl_seconds else None
                self._data[key] = (amount, expires)
                return amount
            if not isinstance(current, int):
                raise TypeError(f"counter {key!r} holds a value, not a number")
            self._data[key] = (current + amount, self._data[key][1])
            return current + amount

    def get(self, key: str) -> int:
        with self._lock:
            value = self._live(key)
        return value if isinstance(value, int) else 0

    def set_value(self, key: str, value: bytes, *, ttl_seconds: float | None = None) -> None:
        with self._lock:
            self._data[key] = (bytes(value), time.monotonic() + ttl_seconds if ttl_seconds else None)

    def get_value(self, key: str) -> bytes | None:
        with self._lock:
            value = self._live(key)
        return value if isinstance(value, bytes) else None

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def ping(self) -> None:
        return None
