"""Names of platform objects (principals, runs, later models and datasets).

Names become parts of paths, URLs and references (``name:3``, ``name@alias``), so they are restricted
to a safe alphabet: no path separators, no ``..``, no control characters, bounded length.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

from llmops.errors import InvalidInput

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
NAME_RULE = "1-128 characters from letters, digits, '.', '_' and '-', starting with a letter or digit, without '..'"


def name_problem(value: str) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if not NAME_RE.match(value) or ".." in value:
        return f"{value[:40]!r} is not a valid name: use {NAME_RULE}"
    return None


def check_name(value: str, field: str = "name") -> str:
    """Validate a name at the service boundary (Python API callers skip pydantic)."""
    problem = name_problem(value)
    if problem:
        raise InvalidInput(f"{field}: {problem}", details={"field": field})
    return value


def _validate(value: str) -> str:
    problem = name_problem(value)
    if problem:
        raise ValueError(problem)
    return value


Name = Annotated[str, AfterValidator(_validate)]
