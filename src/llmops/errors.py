"""Domain errors.

Services raise these; each protocol (platform REST, OpenAI, KServe, CLI) maps them once. ``code`` is a
stable machine-readable string, ``status`` the HTTP status the REST mapping uses.
"""

from __future__ import annotations

from typing import Any


class LLMOpsError(Exception):
    """Base of every error the platform raises on purpose."""

    code = "internal_error"
    status = 500

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidInput(LLMOpsError):
    code = "invalid_input"
    status = 422


class InvalidModel(InvalidInput):
    """A model file or directory that must not be imported: malformed, unsafe or inconsistent."""

    code = "invalid_model"


class NotFound(LLMOpsError):
    code = "not_found"
    status = 404


class AlreadyExists(LLMOpsError):
    code = "already_exists"
    status = 409


class Conflict(LLMOpsError):
    code = "conflict"
    status = 409


class Unauthenticated(LLMOpsError):
    code = "unauthenticated"
    status = 401


class PermissionDenied(LLMOpsError):
    code = "permission_denied"
    status = 403


class QuotaExceeded(LLMOpsError):
    code = "quota_exceeded"
    status = 429


class PayloadTooLarge(LLMOpsError):
    code = "payload_too_large"
    status = 413


class Unavailable(LLMOpsError):
    code = "unavailable"
    status = 503


class DataCorrupted(LLMOpsError):
    """Stored bytes do not match their recorded digest: fail closed."""

    code = "data_corrupted"
    status = 500


__all__ = [
    "AlreadyExists",
    "Conflict",
    "DataCorrupted",
    "InvalidInput",
    "InvalidModel",
    "LLMOpsError",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "QuotaExceeded",
    "Unauthenticated",
    "Unavailable",
]
