"""llmops: a self-hosted LLMOps platform.

The curated public Python API. ``tests/test_public_api.py`` checks ``__all__``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from llmops.errors import (  # noqa: E402
    AlreadyExists,
    Conflict,
    DataCorrupted,
    InvalidInput,
    LLMOpsError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    QuotaExceeded,
    Unauthenticated,
    Unavailable,
)
from llmops.platform import Platform, default_platform, start_run  # noqa: E402
from llmops.settings import Settings  # noqa: E402
from llmops.tracking.active import ActiveRun  # noqa: E402

__all__ = [
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
]
