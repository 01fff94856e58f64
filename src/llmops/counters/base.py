"""The ``Counters`` protocol."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Counters(Protocol):
    def incr(self, key: str, amount: int = 1, *, ttl_seconds: float | None = None) -> int:
        """Add ``amount`` and return the new value; ``ttl_seconds`` starts the expiry on creation."""
        ...

    def get(self, key: str) -> int: ...

    def set_value(self, key: str, value: bytes, *, ttl_seconds: float | None = None) -> None: ...

    def get_value(self, key: str) -> bytes | None: ...

    def delete(self, key: str) -> None: ...

    def ping(self) -> None: ...
