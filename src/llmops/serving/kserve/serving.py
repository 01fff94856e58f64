"""Open Inference Protocol requests served by the OpenAI layer, so routing, admission and accounting are shared.

- A model is a deployment; its versions are the registry version numbers of its primary and canary routes
  (``lm:2`` is version ``2``; the full reference is accepted too). ``/v2/models/{m}/versions/{v}/...`` pins the
  route serving that version instead of the sticky choice (a version no route serves is a 404); shadow routes
  still get their mirrored copy.
- ``infer`` on a generation deployment turns ``text_input`` (each element a prompt) and the request's
  generation parameters into one :class:`~llmops.serving.openai.schemas.CompletionRequest` (several prompts
  are one batched request) and calls :meth:`OpenAIServing.completions`; each prompt's completion becomes an
  element of ``text_output``. On an embeddings deployment it calls :meth:`OpenAIServing.embeddings` and returns
  ``embedding``. Token usage goes into the response's ``parameters``; the OpenAI layer's response headers
  (request id, route, version, revision, cost) are passed on.
- Scopes: a deployment the key may not use is a 404 for metadata and readiness (as ``/v1/models`` hides it)
  and a 403 for ``infer`` (as ``/v1/completions`` refuses it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from llmops import __version__
from llmops.errors import InvalidInput, NotFound, Unavailable
from llmops.security.actor import Actor
from llmops.serving.deployments.schemas import DeploymentOut, RouteSpec
from llmops.serving.kserve import binary
from llmops.serving.kserve.schemas import (
    DATATYPES,
    EMBEDDING_OUTPUT,
    GENERATION_PARAMETERS,
    PROTOCOL_PARAMETERS,
    TENSOR_PARAMETERS,
    TEXT_INPUT,
    TEXT_OUTPUT,
    InferInputTensor,
    InferRequest,
    describe,
    tensor_metadata,
)
from llmops.serving.manager import EngineManager
from llmops.serving.openai.schemas import CompletionRequest, EmbeddingRequest
from llmops.serving.openai.serving import OpenAIServing, Served, Target, may_use

Body = dict[str, Any]

SERVER_NAME = "llmops"
#: Protocol extensions this server implements (reported by ``GET /v2``).
EXTENSIONS = ["binary_tensor_data", "parameters"]


def version_number(ref: str | None) -> str | None:
    """``lm:2`` → ``2``: the version a route serves, as the protocol numbers versions."""
    if not ref:
        return None
    return ref.rsplit(":", 1)[-1]


def served_routes(deployment: DeploymentOut, version: str | None) -> list[RouteSpec]:
    """The routes that answer requests (primary first, then canaries), or those serving ``version``."""
    routes = sorted((r for r in deployment.spec.routes if r.mode != "shadow"), key=lambda r: r.mode != "primary")
    if version is None:
        return routes
    chosen = [r for r in routes if r.version and version in (r.version, version_number(r.version))]
    if not chosen:
        versions = ", ".join(v for v in versions_of(deployment)) or "none"
        raise NotFound(
            f"model {deployment.name} has no version {version} (versions: {versions})",
            details={"code": "version_not_found"},
        )
    return chosen


def versions_of(deployment: DeploymentOut) -> list[str]:
    out: list[str] = []
    for r in served_routes(deployment, None):
        number = version_number(r.version)
        if number is not None and number not in out:
            out.append(number)
    return out


class _Pinned(OpenAIServing):
    """The shared :class:`OpenAIServing` with ``target`` pinned to the route serving one version, for one request.

    It shares the shared object's instance dictionary, so every attribute read or written (the gateway's
    admission, accounting, records, shadows) is exactly that of an unpinned request; only the route differs.
    """

    __slots__ = ("pinned_version",)

    def __init__(self, shared: OpenAIServing, version: str) -> None:  # no super().__init__: the state is shared
        self.__dict__ = shared.__dict__
        self.pinned_version = version

    async def target(self, model: str, actor: Actor, user: str | None, request_id: str) -> Target:
        chosen = await super().target(model, actor, user, request_id)
        route = served_routes(chosen.deployment, self.pinned_version)[0]
        return dataclasses.replace(chosen, route=route)


@dataclass
class InferResult:
    """An inference response: its JSON header, the binary outputs after it (in output order), its headers."""

    header: Body
    buffers: list[bytes] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> binary.Encoded:
        encoded = binary.encode(self.header, self.buffers)
        encoded.headers.update(self.headers)
        return encoded


def _flatten(data: Any, name: str) -> list[str]:
    if isinstance(data, str):
        return [data]
    if isinstance(data, list):
        return [x for item in data for x in _flatten(item, name)]
    raise InvalidInput(f"input {name}: BYTES data must be strings (UTF-8 text), got {type(data).__name__}")


def _check_parameters(given: Sequence[str], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise InvalidInput(
            f"{where}: parameter {', '.join(unknown)} is not supported here (supported: {', '.join(sorted(allowed))})"
        )


def prompts_of(req: InferRequest, data: bytes) -> tuple[list[str], list[int]]:
    """The prompts of ``text_input`` (inline or binary) and its shape; any other input is refused."""
    reader = binary.Reader(data)
    found: tuple[list[str], list[int]] | None = None
    for tensor in req.inputs:
        if tensor.datatype not in DATATYPES:
            raise InvalidInput(f"input {tensor.name}: {tensor.datatype} is not a datatype of the protocol")
        if tensor.name != TEXT_INPUT:
            raise InvalidInput(f"unknown input {tensor.name}: this model takes one BYTES input, {TEXT_INPUT}")
        if tensor.datatype != "BYTES":
            raise InvalidInput(f"input {TEXT_INPUT} must be BYTES (UTF-8 text), got {tensor.datatype}")
        if found is not None:
            raise InvalidInput(f"input {TEXT_INPUT} is given twice")
        found = (_elements(tensor, reader), tensor.shape)
    reader.finish()
    if found is None:
        raise InvalidInput(f"input {TEXT_INPUT} is missing")
    return found


def _elements(tensor: InferInputTensor, reader: binary.Reader) -> list[str]:
    _check_parameters(list(tensor.parameters), frozenset({"binary_data_size"}), f"input {tensor.name}")
    size = tensor.parameters.get("binary_data_size")
    if size is not None:
        if tensor.data is not None:
            raise InvalidInput(f"input {tensor.name}: give data or binary_data_size, not both")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidInput(f"input {tensor.name}: binary_data_size must be a byte count, got {size!r}")
        raw = binary.decode_bytes(reader.take(size, tensor.name), tensor.name)
        try:
            elements = [e.decode() for e in raw]
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"input {tensor.name}: an element is not UTF-8 text ({exc.reason})") from None
    elif tensor.data is None:
        raise InvalidInput(f"input {tensor.name} has no data: give data or parameters.binary_data_size")
    else:
        elements = _flatten(tensor.data, tensor.name)
    expected = math.prod(tensor.shape)
    if len(elements) != expected:
        raise InvalidInput(
            f"input {tensor.name}: shape {tensor.shape} holds {expected} elements but {len(elements)} were given"
        )
    if not elements:
        raise InvalidInput(f"input {tensor.name} is empty: give at least one prompt")
    return elements


def generation_fields(parameters: dict[str, Any]) -> dict[str, Any]:
    """The completion fields among the request's parameters; an unknown parameter is refused."""
    _check_parameters(list(parameters), frozenset(GENERATION_PARAMETERS) | PROTOCOL_PARAMETERS, "the request")
    return {k: v for k, v in parameters.items() if k in GENERATION_PARAMETERS}


def _binary_outputs(req: InferRequest, names: Sequence[str]) -> list[tuple[str, bool]]:
    """The outputs to return and, for each, whether in binary (``binary_data``, else ``binary_data_output``)."""
    default = req.parameters.get("binary_data_output", False)
    if not isinstance(default, bool):
        raise InvalidInput(f"parameter binary_data_output must be true or false, got {default!r}")
    if req.outputs is None:
        return [(n, default) for n in names]
    out: list[tuple[str, bool]] = []
    for o in req.outputs:
        if o.name not in names:
            raise InvalidInput(f"unknown output {o.name}: this model returns {', '.join(names)}")
        _check_parameters(list(o.parameters), TENSOR_PARAMETERS - {"binary_data_size"}, f"output {o.name}")
        flag = o.parameters.get("binary_data", default)
        if not isinstance(flag, bool):
            raise InvalidInput(f"output {o.name}: binary_data must be true or false, got {flag!r}")
        out.append((o.name, flag))
    return out


class KServeServing:
    """The Open Inference Protocol over one :class:`OpenAIServing` (see the module docstring)."""

    def __init__(self, openai: OpenAIServing) -> None:
        self.openai = openai

    @property
    def manager(self) -> EngineManager:
        return self.openai.manager

    # --- server ---------------------------------------------------------------------------------------------
    @staticmethod
    def server_metadata() -> Body:
        return {"name": SERVER_NAME, "version": __version__, "extensions": list(EXTENSIONS)}

    def server_ready(self) -> Body:
        if not self.manager.ready:
            raise Unavailable(
                "not ready: engines are loading or failed (see /api/v1/serving/engines)",
                details={"code": "engine_not_ready", "retry_after": 2},
            )
        return {"ready": True}

    # --- models ---------------------------------------------------------------------------------------------
    async def _deployment(self, actor: Actor, model: str) -> DeploymentOut:
        """The deployment as it serves (else as deployed, while it loads); one the key may not use is a 404."""
        deployment = self.manager.serving(model) or next(
            (d for d in self.manager.deployments_known() if d.name == model), None
        )
        if deployment is None:
            deployment = await self.manager.lookup(model)  # NotFound, or Unavailable while it first loads
        if not may_use(actor, deployment):
            raise NotFound(f"The model `{model}` does not exist.", details={"code": "model_not_found"})
        return deployment

    @staticmethod
    def _embedding(routes: Sequence[RouteSpec]) -> bool:
        return routes[0].engine == "embeddings"

    async def model_metadata(self, actor: Actor, model: str, version: str | None) -> Body:
        deployment = await self._deployment(actor, model)
        routes = served_routes(deployment, version)
        if self._embedding(routes):
            dimension = -1
            with contextlib.suppress(Unavailable):
                dimension = int(getattr(self.manager.entry(routes[0]).engine, "dimension", -1))
            outputs = [tensor_metadata(EMBEDDING_OUTPUT, "FP32", [-1, dimension])]
            parameters: Body = {"user": GENERATION_PARAMETERS["user"]}
        else:
            outputs = [tensor_metadata(TEXT_OUTPUT, "BYTES", [-1])]
            parameters = dict(GENERATION_PARAMETERS)
        return {
            "name": deployment.name,
            "versions": [version_number(routes[0].version)] if version is not None else versions_of(deployment),
            "platform": f"llmops_{routes[0].engine}".replace("-", "_"),
            "inputs": [tensor_metadata(TEXT_INPUT, "BYTES", [-1])],
            "outputs": outputs,
            "parameters": parameters,
        }

    async def model_ready(self, actor: Actor, model: str, version: str | None) -> Body:
        """Ready when the engine of every route that answers (or of the pinned version) is loaded and probed."""
        deployment = await self._deployment(actor, model)
        for route in served_routes(deployment, version):
            self.manager.entry(route)  # Unavailable (503) while it loads or after it failed
        return {"name": deployment.name, "ready": True}

    # --- inference ------------------------------------------------------------------------------------------
    def _openai(self, version: str | None) -> OpenAIServing:
        return self.openai if version is None else _Pinned(self.openai, version)

    async def infer(
        self, req: InferRequest, data: bytes, actor: Actor, model: str, version: str | None, request_id: str
    ) -> InferResult:
        prompts, shape = prompts_of(req, data)
        fields = generation_fields(req.parameters)
        service = self._openai(version)
        deployment = await self.manager.lookup(model)  # NotFound, or Unavailable while it loads
        if deployment.spec.primary.engine == "embeddings":
            return await self._embed(req, prompts, shape, fields, service, actor, model, request_id)
        outputs = _binary_outputs(req, [TEXT_OUTPUT])  # a bad output request fails before anything runs
        try:
            completion = CompletionRequest.model_validate({**fields, "model": model, "prompt": prompts})
        except ValidationError as exc:
            raise InvalidInput(describe(exc, "parameters.")) from None
        served = await service.completions(completion, actor, request_id)
        body = self._body(served)
        texts = [c["text"] for c in sorted(body["choices"], key=lambda c: int(c["index"]))]
        encoded = [t.encode() for t in texts]
        result = self._result(req, served, model, body.get("usage"))
        for name, as_binary in outputs:
            tensor: Body = {"name": name, "datatype": "BYTES", "shape": shape}
            if as_binary:
                raw = binary.encode_bytes(encoded)
                tensor["parameters"] = {"binary_data_size": len(raw)}
                result.buffers.append(raw)
            else:
                tensor["data"] = texts
            result.header["outputs"].append(tensor)
        return result

    async def _embed(
        self,
        req: InferRequest,
        prompts: list[str],
        shape: list[int],
        fields: dict[str, Any],
        service: OpenAIServing,
        actor: Actor,
        model: str,
        request_id: str,
    ) -> InferResult:
        extra = sorted(set(fields) - {"user"})
        if extra:
            raise InvalidInput(f"{', '.join(extra)}: an embeddings model takes no generation parameters")
        outputs = _binary_outputs(req, [EMBEDDING_OUTPUT])
        try:
            request = EmbeddingRequest(model=model, input=prompts, encoding_format="float", user=fields.get("user"))
        except ValidationError as exc:
            raise InvalidInput(describe(exc, "parameters.")) from None
        served = await service.embeddings(request, actor, request_id)
        body = self._body(served)
        vectors = [list(d["embedding"]) for d in sorted(body["data"], key=lambda d: int(d["index"]))]
        dimension = len(vectors[0]) if vectors else 0
        result = self._result(req, served, model, body.get("usage"))
        for name, as_binary in outputs:
            flat = [float(x) for v in vectors for x in v]
            tensor: Body = {"name": name, "datatype": "FP32", "shape": [math.prod(shape), dimension]}
            if as_binary:
                raw = binary.encode_fp32(flat)
                tensor["parameters"] = {"binary_data_size": len(raw)}
                result.buffers.append(raw)
            else:
                tensor["data"] = flat
            result.header["outputs"].append(tensor)
        return result

    @staticmethod
    def _body(served: Served) -> Body:
        if served.body is None:  # the OpenAI layer streams only when asked to, which this path never does
            raise InvalidInput("streaming is not supported by the KServe V2 infer endpoint")
        return served.body

    @staticmethod
    def _result(req: InferRequest, served: Served, model: str, usage: Any) -> InferResult:
        header: Body = {"model_name": model, "model_version": version_number(served.headers.get("x-llmops-version"))}
        if req.id is not None:
            header["id"] = req.id
        if isinstance(usage, dict):
            header["parameters"] = {k: v for k, v in usage.items() if isinstance(v, int | float | str | bool)}
        header["outputs"] = []
        return InferResult(header=header, headers=dict(served.headers))


__all__ = ["EXTENSIONS", "InferResult", "KServeServing", "served_routes", "version_number", "versions_of"]
