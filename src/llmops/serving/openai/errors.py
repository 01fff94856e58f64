"""The OpenAI error shape: ``{"error": {"message", "type", "param", "code"}}`` with the matching status.

``api/errors.py`` calls these for every path of the OpenAI-compatible API (``/v1/...`` and vLLM's tokenizer
endpoints), so a domain error is mapped once per protocol. Invalid input is a 400 (OpenAI and vLLM return
400 for invalid parameters, not 422); 429 and 503 carry ``Retry-After`` when the engine says when to retry;
every error carries the request's ``x-request-id``.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from llmops.errors import InvalidInput, LLMOpsError, NotFound, PermissionDenied, QuotaExceeded, Unauthenticated

OPENAI_PATHS = ("/v1/",)
TOKENIZER_PATHS = frozenset({"/tokenize", "/detokenize", "/tokenizer_info"})


def is_openai_path(path: str) -> bool:
    return path.startswith(OPENAI_PATHS) or path in TOKENIZER_PATHS


def error_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def openai_error(
    request: Request,
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | int | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    out = dict(headers or {})
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        out["x-request-id"] = request_id
    body = {"error": {"message": message, "type": error_type(status), "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=out)


def _status(exc: LLMOpsError) -> int:
    if isinstance(exc, InvalidInput):
        return 400
    return exc.status


def _code(exc: LLMOpsError, details: dict[str, Any]) -> str:
    if isinstance(details.get("code"), str):
        return str(details["code"])
    if isinstance(exc, Unauthenticated):
        return "invalid_api_key"
    if isinstance(exc, NotFound):
        return "not_found"
    if isinstance(exc, PermissionDenied):
        return "permission_denied"
    if isinstance(exc, QuotaExceeded):
        return "rate_limit_exceeded"
    return exc.code


def domain_error(request: Request, exc: LLMOpsError) -> JSONResponse:
    details = exc.details if isinstance(exc.details, dict) else {}
    headers: dict[str, str] = {}
    retry_after = details.get("retry_after")
    if isinstance(retry_after, int | float) and exc.status in (429, 503):
        headers["Retry-After"] = str(max(1, round(retry_after)))
    param = details.get("param") or details.get("field")
    return openai_error(
        request,
        _status(exc),
        exc.message,
        param=param if isinstance(param, str) else None,
        code=_code(exc, details),
        headers=headers,
    )


def validation_error(request: Request, errors: list[dict[str, Any]]) -> JSONResponse:
    """Schema errors: a 400 naming the first offending parameter, as OpenAI does."""
    if any(e.get("type") == "json_invalid" for e in errors):
        return openai_error(request, 400, "request body is not valid JSON", code="invalid_json")
    parts = []
    param = None
    for e in errors[:5]:
        loc = [str(p) for p in e.get("loc", ()) if p != "body"]
        # drop union-branch labels (``str``, ``list[...]``) pydantic puts into locations
        loc = [p for p in loc if not (p[:1].islower() and ("[" in p or p in ("str", "int", "float", "bool")))]
        where = ".".join(loc) or "body"
        param = param or where
        parts.append(f"{where}: {str(e.get('msg', 'invalid')).removeprefix('Value error, ')}")
    return openai_error(request, 400, "; ".join(parts), param=param, code="invalid_request")


def http_error(request: Request, status: int, message: str) -> JSONResponse:
    code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(status, "http_error")
    return openai_error(request, status, message, code=code)


def internal_error(request: Request, exc: Exception) -> JSONResponse:
    return openai_error(
        request, 500, f"internal error ({type(exc).__name__}); see the server log", code="internal_error"
    )
