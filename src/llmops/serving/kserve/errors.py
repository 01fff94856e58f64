"""The Open Inference Protocol's error shape: ``{"error": "<message>"}`` with the matching status.

``api/errors.py`` calls these for ``/v2`` and every path under it, so a domain error is mapped once per protocol.
Invalid input is a 400 (the protocol's status for a bad request), 429 and 503 carry ``Retry-After`` when the
engine says when to retry, and every error carries the request's ``x-request-id`` once one was assigned.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from llmops.errors import InvalidInput, LLMOpsError


def is_kserve_path(path: str) -> bool:
    return path == "/v2" or path.startswith("/v2/")


def kserve_error(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    out = dict(headers or {})
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        out["x-request-id"] = request_id
    return JSONResponse({"error": message}, status_code=status, headers=out)


def domain_error(request: Request, exc: LLMOpsError) -> JSONResponse:
    details = exc.details if isinstance(exc.details, dict) else {}
    headers: dict[str, str] = {}
    retry_after = details.get("retry_after")
    if isinstance(retry_after, int | float) and exc.status in (429, 503):
        headers["Retry-After"] = str(max(1, round(retry_after)))
    status = 400 if isinstance(exc, InvalidInput) else exc.status
    return kserve_error(request, status, exc.message, headers)


def validation_error(request: Request, errors: list[dict[str, Any]]) -> JSONResponse:
    parts = []
    for e in errors[:5]:
        where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {str(e.get('msg', 'invalid')).removeprefix('Value error, ')}")
    return kserve_error(request, 400, "; ".join(parts) or "invalid request")


def http_error(request: Request, status: int, message: str) -> JSONResponse:
    return kserve_error(request, status, message)


def internal_error(request: Request, exc: Exception) -> JSONResponse:
    return kserve_error(request, 500, f"internal error ({type(exc).__name__}); see the server log")
