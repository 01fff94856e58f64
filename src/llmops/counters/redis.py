"""Counters in Redis, shared by every process of an installation.

``incr`` with a TTL runs INCRBY and sets the expiry only when the key is new (``EXPIRE … NX``) in one
pipeline, so a fixed window starts at its first hit and concurrent increments never reset it.
"""

from __future__ import annotations

from typing import Any

from llmops.errors import Unavailable


class RedisCounters:
    def __init__(self, client: Any, *, namespace: str = "llmops") -> None:
        self._r = client
        self._ns = namespace

    @classmethod
    def from_url(cls, url: str, *, namespace: str = "llmops") -> RedisCounters:
        import redis

        return cls(redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5), namespace=namespace)

    def _key(self, key: str) -> str:
        return f"{self._ns}:{key}"

    def incr(self, key: str, amount: int = 1, *, ttl_seconds: float | None = None) -> int:
        k = self._key(key)
        pipe = self._r.pipeline(transaction=True)
        pipe.incrby(k, amount)
        if ttl_seconds:
            pipe.pexpire(k, int(ttl_seconds * 1000), nx=True)
        return int(pipe.execute()[0])

    def get(self, key: str) -> int:
        value = self._r.get(self._key(key))
        return int(value) if value is not None else 0

    def set_value(self, key: str, value: bytes, *, ttl_seconds: float | None = None) -> None:
        self._r.set(self._key(key), value, px=int(ttl_seconds * 1000) if ttl_seconds else None)

    def get_value(self, key: str) -> bytes | None:
        value = self._r.get(self._key(key))
        return bytes(value) if value is not None else None

    def delete(self, key: str) -> None:
        self._r.delete(self._key(key))

    def ping(self) -> None:
        try:
            self._r.ping()
        except Exception as exc:
            raise Unavailable(f"Redis unreachable ({type(exc).__name__}: {exc}); check LLMOPS_REDIS_URL") from exc
