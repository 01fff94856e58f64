"""``key=value`` pairs as users type them (``--tag team=nlp``, ``?tag=team=nlp``, ``--option tp=2``)."""

from __future__ import annotations

from collections.abc import Iterable

from llmops.errors import InvalidInput


def parse_pairs(items: Iterable[str], *, field: str) -> dict[str, str]:
    """Split each item at its first ``=``; a missing ``=`` or key is an error naming ``field``."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{field} {item[:80]!r}: write key=value", details={"field": field.lstrip("-")})
        out[key] = value
    return out
