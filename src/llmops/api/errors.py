"""Maps errors to the platform REST shape ``{"error": {"code", "message", "details"}}``, once.

HTML pages get a redirect to the sign-in page instead of a 401. Paths of the OpenAI-compatible API
(``/v1/...``, ``/tokenize``, ``/detokenize``, ``/tokenizer_info``) get the OpenAI shape instead
(``llmops.serving.openai.errors``), and KServe V2 paths (``/v2``, ``/v2/...``) its ``{"error": "..."}``
(``llmops.serving.kserve.errors``).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmops.errors import LLMOpsError, Unauthenticated
from llmops.serving.kserve import errors as kserve_errors
from llmops.serving.openai import errors as openai_errors

log = logging.getLogger("llmops.api")

STATUS_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


class ErrorInfo(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    """The body of every platform REST error."""

    error: ErrorInfo


# Declared on every REST router so that the OpenAPI document describes the error body actually sent
# (it also replaces FastAPI's default 422 schema, ``{"detail": [...]}``, which this API never returns).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorBody, "description": 'Refused: `{"error": {"code", "message", "details"}}`'},
}


def error_response(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "details": details}}, status_code=status)


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith(("/api/", "/v1/", "/v2/")) and "text/html" in request.headers.get(
        "accept", ""
    )


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)] or ["body"]
    return ".".join(parts)


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value if not isinstance(value, str) else value[:200]
    return str(value)[:200]


async def _domain(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LLMOpsError)
    if openai_errors.is_openai_path(request.url.path):
        if exc.status >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, exc.message)
        return openai_errors.domain_error(request, exc)
    if kserve_errors.is_kserve_path(request.url.path):
        if exc.status >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, exc.message)
        return kserve_errors.domain_error(request, exc)
    if isinstance(exc, Unauthenticated) and _wants_html(request):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)
    if exc.status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc.message)
    return error_response(exc.status, exc.code, exc.message, _clean(exc.details))


async def _validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if openai_errors.is_openai_path(request.url.path):
        return openai_errors.validation_error(request, list(errors))
    if kserve_errors.is_kserve_path(request.url.path):
        return kserve_errors.validation_error(request, list(errors))
    if any(e.get("type") == "json_invalid" for e in errors):
        first = next(e for e in errors if e.get("type") == "json_invalid")
        reason = (first.get("ctx") or {}).get("error", "JSON decode error")
        position = first["loc"][1] if len(first["loc"]) > 1 else "?"
        return error_response(
            400, "malformed_json", f"request body is not valid JSON: {reason} at character {position}", None
        )
    details = [
        {"field": _location(tuple(e["loc"])), "rule": e["type"], "message": e["msg"].removeprefix("Value error, ")}
        for e in errors
    ]
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:5])
    return error_response(422, "invalid_input", summary, _clean(details))


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = STATUS_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    if exc.status_code == 404 and message == "Not Found":
        message = f"no route for {request.method} {request.url.path}"
    if openai_errors.is_openai_path(request.url.path):
        return openai_errors.http_error(request, exc.status_code, message)
    if kserve_errors.is_kserve_path(request.url.path):
        return kserve_errors.http_error(request, exc.status_code, message)
    return error_response(exc.status_code, code, message, None)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("%s %s crashed", request.method, request.url.path)
    if openai_errors.is_openai_path(request.url.path):
        return openai_errors.internal_error(request, exc)
    if kserve_errors.is_kserve_path(request.url.path):
        return kserve_errors.internal_error(request, exc)
    return error_response(500, "internal_error", f"internal error ({type(exc).__name__}); see the server log", None)


def install(app: FastAPI) -> None:
    app.add_exception_handler(LLMOpsError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
