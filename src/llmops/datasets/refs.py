"""Dataset references: ``name`` (the latest version) and ``name:3`` (a version)."""

from __future__ import annotations

from dataclasses import dataclass

from llmops.errors import InvalidInput
from llmops.naming import name_problem

MAX_VERSION = 2**31 - 1  # version numbers are 32-bit integers in the database


@dataclass(frozen=True)
class DatasetRef:
    name: str
    version: int | None = None

    def __str__(self) -> str:
        return f"{self.name}:{self.version}" if self.version is not None else self.name


def parse_dataset_ref(text: str) -> DatasetRef:
    """Parse a reference, saying what was wrong with it."""
    if not isinstance(text, str) or not text:
        raise InvalidInput("dataset reference is empty; write name or name:3")
    name, sep, number = text.rpartition(":") if ":" in text else (text, "", "")
    version = None
    if sep:
        if not (number.isascii() and number.isdigit()) or not 1 <= int(number) <= MAX_VERSION:
            raise InvalidInput(
                f"reference {text[:80]!r}: the version after ':' must be a positive number (at most {MAX_VERSION})"
            )
        version = int(number)
    problem = name_problem(name)
    if problem:
        raise InvalidInput(f"reference {text[:80]!r}: dataset {problem}; write name or name:3")
    return DatasetRef(name=name, version=version)
