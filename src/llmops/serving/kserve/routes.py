"""HTTP routes of the Open Inference Protocol (KServe V2; thin: parse, call ``KServeServing``, render).

``GET /v2`` (server metadata), ``GET /v2/health/live`` and ``GET /v2/health/ready`` are public, as
orchestrators probe them without keys; model metadata, model readiness and ``infer`` need the ``inference``
permission and the deployment's scopes. Errors take the protocol's shape (``llmops.serving.kserve.errors``).
Every model route exists with and without ``/versions/{version}``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from llmops.api.deps import require
from llmops.security.actor import Actor
from llmops.security.roles import Permission
from llmops.serving.kserve import binary
from llmops.serving.kserve.schemas import KServeError, parse_request
from llmops.serving.kserve.serving import KServeServing
from llmops.serving.openai.routes import request_id

ERROR = {"model": KServeError, "description": 'Refused: `{"error": "<message>"}`'}
# Declared here so that they replace the platform REST error shape the app declares on every router.
router = APIRouter(tags=["kserve"], responses={"4XX": ERROR, "503": ERROR})

Caller = Annotated[Actor, Depends(require(Permission.inference))]
RequestId = Annotated[str, Depends(request_id)]


def serving(request: Request) -> KServeServing:
    service: KServeServing = request.app.state.kserve
    return service


Serving = Annotated[KServeServing, Depends(serving)]

INFER_DOC: dict[str, Any] = {
    "requestBody": {
        "description": "A JSON inference request, or (with `Inference-Header-Content-Length`) the JSON request "
        "followed by the binary tensor data",
        "content": {"application/json": {"schema": {"type": "object"}}, "application/octet-stream": {}},
    }
}


def plain(body: dict[str, Any], rid: str | None = None) -> JSONResponse:
    return JSONResponse(body, headers={"x-request-id": rid} if rid else None)


@router.get("/v2")
def server_metadata(service: Serving) -> JSONResponse:
    """Server metadata: name, version and the protocol extensions implemented."""
    return plain(service.server_metadata())


@router.get("/v2/health/live")
def server_live() -> JSONResponse:
    return plain({"live": True})


@router.get("/v2/health/ready")
def server_ready(service: Serving) -> JSONResponse:
    """Ready when every deployment serves its newest revision with every engine loaded and probed."""
    return plain(service.server_ready())


@router.get("/v2/models/{model}")
async def model_metadata(model: str, rid: RequestId, actor: Caller, service: Serving) -> JSONResponse:
    """Model metadata: name (the deployment), versions, platform, input and output tensors, parameters."""
    return plain(await service.model_metadata(actor, model, None), rid)


@router.get("/v2/models/{model}/versions/{version}")
async def version_metadata(model: str, version: str, rid: RequestId, actor: Caller, service: Serving) -> JSONResponse:
    return plain(await service.model_metadata(actor, model, version), rid)


@router.get("/v2/models/{model}/ready")
async def model_ready(model: str, rid: RequestId, actor: Caller, service: Serving) -> JSONResponse:
    """200 when the engines of the deployment's answering routes are loaded and probed, else 503."""
    return plain(await service.model_ready(actor, model, None), rid)


@router.get("/v2/models/{model}/versions/{version}/ready")
async def version_ready(model: str, version: str, rid: RequestId, actor: Caller, service: Serving) -> JSONResponse:
    return plain(await service.model_ready(actor, model, version), rid)


async def _infer(
    request: Request, service: KServeServing, actor: Actor, model: str, version: str | None, rid: str
) -> Response:
    limit: int = request.app.state.platform.settings.max_body_bytes
    body = binary.inflate(await request.body(), request.headers.get("content-encoding"), limit)
    header, data = binary.split(body, request.headers.get(binary.HEADER_LENGTH))
    result = await service.infer(parse_request(header), data, actor, model, version, rid)
    encoded = result.encode()
    media_type = encoded.headers.pop("content-type")
    return Response(encoded.body, headers=encoded.headers, media_type=media_type)


@router.post("/v2/models/{model}/infer", openapi_extra=INFER_DOC)
async def infer(model: str, request: Request, rid: RequestId, actor: Caller, service: Serving) -> Response:
    """Inference: text in (``text_input``), text out (``text_output``); JSON or binary tensors."""
    return await _infer(request, service, actor, model, None, rid)


@router.post("/v2/models/{model}/versions/{version}/infer", openapi_extra=INFER_DOC)
async def version_infer(
    model: str, version: str, request: Request, rid: RequestId, actor: Caller, service: Serving
) -> Response:
    return await _infer(request, service, actor, model, version, rid)
