"""The curated public API: ``llmops.__all__`` is exactly what we promise, and every name resolves."""

from __future__ import annotations

import llmops

EXPECTED = {
    "ActiveRun",
    "AlreadyExists",
    "Conflict",
    "DataCorrupted",
    "InvalidInput",
    "LLMOpsError",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "Platform",
    "QuotaExceeded",
    "Settings",
    "Unauthenticated",
    "Unavailable",
    "__version__",
    "default_platform",
    "start_run",
}


def test_all_is_curated() -> None:
    assert set(llmops.__all__) == EXPECTED
    for name in llmops.__all__:
        assert getattr(llmops, name) is not None


def test_errors_share_a_base() -> None:
    for name in EXPECTED:
        obj = getattr(llmops, name)
        if isinstance(obj, type) and name not in ("ActiveRun", "Platform", "Settings"):
            assert issubclass(obj, llmops.LLMOpsError), name
