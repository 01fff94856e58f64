"""HTTP routes of the OpenAI-compatible API (thin: parse, call ``OpenAIServing``, render).

``/v1/models``, ``/v1/completions``, ``/v1/chat/completions``, ``/v1/embeddings``, and vLLM's tokenizer
endpoints at the server root (``/tokenize``, ``/detokenize``, ``/tokenizer_info``), where
lm-evaluation-harness's remote tokenizer looks for them. Every route needs the ``inference`` permission;
errors take the OpenAI shape (``llmops.serving.openai.errors``). Every response carries ``x-request-id``
(the client's own when it sends a sane one), and served requests ``x-llmops-route``, ``x-llmops-version``
and ``x-llmops-revision``. Generation and embedding routes hand ``Request.json`` to the serving object, which
reads the client's raw body only when the request goes to an upstream route (forwarded as it came).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from llmops.api.deps import require
from llmops.security.actor import Actor
from llmops.security.roles import Permission
from llmops.serving.engines.base import new_request_id
from llmops.serving.openai.schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    DetokenizeRequest,
    EmbeddingRequest,
    TokenizeRequest,
)
from llmops.serving.openai.serving import OpenAIServing, Served
from llmops.serving.openai.streaming import EventStreamResponse

router = APIRouter(tags=["openai"])

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id(request: Request) -> str:
    """The request's id: the client's ``x-request-id`` when it is sane, else a new one."""
    given = request.headers.get("x-request-id")
    rid = given if given and _REQUEST_ID.fullmatch(given) else new_request_id()
    request.state.request_id = rid
    return rid


# The request id comes first, so that even an authentication error carries it.
Caller = Annotated[Actor, Depends(require(Permission.inference))]
RequestId = Annotated[str, Depends(request_id)]


def serving(request: Request) -> OpenAIServing:
    service: OpenAIServing = request.app.state.openai
    return service


Serving = Annotated[OpenAIServing, Depends(serving)]


def render(served: Served) -> Response:
    if served.stream is not None:
        return EventStreamResponse(served.stream, headers=served.headers)
    return JSONResponse(served.body, headers=served.headers)


def plain(body: dict[str, Any], rid: str) -> JSONResponse:
    return JSONResponse(body, headers={"x-request-id": rid})


@router.get("/v1/models")
async def list_models(rid: RequestId, actor: Caller, service: Serving) -> JSONResponse:
    """The deployments this key may call, as OpenAI model objects."""
    return plain(await service.models(actor), rid)


@router.get("/v1/models/{model:path}")
async def get_model(model: str, rid: RequestId, actor: Caller, service: Serving) -> JSONResponse:
    return plain(await service.model(actor, model), rid)


@router.post("/v1/completions", response_model=None)
async def completions(
    request: Request, body: CompletionRequest, rid: RequestId, actor: Caller, service: Serving
) -> Response:
    return render(await service.completions(body, actor, rid, raw=request.json))


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    request: Request, body: ChatCompletionRequest, rid: RequestId, actor: Caller, service: Serving
) -> Response:
    return render(await service.chat(body, actor, rid, raw=request.json))


@router.post("/v1/embeddings")
async def embeddings(
    request: Request, body: EmbeddingRequest, rid: RequestId, actor: Caller, service: Serving
) -> Response:
    return render(await service.embeddings(body, actor, rid, raw=request.json))


@router.post("/tokenize")
async def tokenize(body: TokenizeRequest, rid: RequestId, actor: Caller, service: Serving) -> JSONResponse:
    return plain(await service.tokenize(body, actor), rid)


@router.post("/detokenize")
async def detokenize(body: DetokenizeRequest, rid: RequestId, actor: Caller, service: Serving) -> JSONResponse:
    return plain(await service.detokenize(body, actor), rid)


@router.get("/tokenizer_info")
async def tokenizer_info(
    rid: RequestId,
    actor: Caller,
    service: Serving,
    model: Annotated[str | None, Query(max_length=128)] = None,
) -> JSONResponse:
    return plain(await service.tokenizer_info(model, actor), rid)
