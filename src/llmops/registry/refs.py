"""Model references: ``name`` (the latest version), ``name:3`` (a version), ``name@production`` (an alias)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmops.errors import InvalidInput
from llmops.naming import name_problem

ALIAS_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
MAX_VERSION = 2**31 - 1  # version numbers are 32-bit integers in the database
ALIAS_RULE = "1-64 lowercase letters, digits, '_' and '-', starting with a letter"


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name


def check_alias(alias: str) -> str:
    if not ALIAS_RE.match(alias):
        raise InvalidInput(f"alias: {alias[:40]!r} is not valid: use {ALIAS_RULE}", details={"field": "alias"})
    return alias


def parse_ref(text: str) -> ModelRef:
    """Parse a reference, saying what was wrong with it."""
    if "@" in text:
        name, _, alias = text.partition("@")
        ref = ModelRef(name=name, alias=check_alias(alias))
    elif ":" in text:
        name, _, number = text.rpartition(":")
        if not (number.isascii() and number.isdigit()) or not 1 <= int(number) <= MAX_VERSION:
            raise InvalidInput(
                f"reference {text[:80]!r}: the version after ':' must be a positive number (at most {MAX_VERSION})"
            )
        ref = ModelRef(name=name, version=int(number))
    else:
        ref = ModelRef(name=text)
    problem = name_problem(ref.name)
    if problem:
        raise InvalidInput(f"reference {text[:80]!r}: model {problem}; write name, name:3 or name@alias")
    return ref
