"""An OpenAI-compatible server as the engine of a route: a pass-through at the protocol layer.

``openai-upstream`` routes name any OpenAI-compatible server (vLLM, TGI, llama.cpp's server, another llmops
gateway); ``vllm`` routes start ``vllm serve`` under a :class:`~llmops.serving.supervisor.ProcessSupervisor` and
then use the same engine on its loopback port. Like LiteLLM's proxy, the gateway does not re-tokenize or
re-sample what such a server does: it forwards the client's JSON body and relays the answer, while routing,
key scopes, rate limits, budgets, cost, records and metrics stay the gateway's (see
``serving/openai/passthrough.py``). So :class:`UpstreamEngine` is not a token-level
:class:`~llmops.serving.engines.base.Engine`; it offers:

- ``start``/``stop``: one pooled ``httpx.AsyncClient`` (keep-alive connections to the upstream) and, for
  ``vllm``, the supervised process;
- ``health``: ``GET {base_url}/models`` (cached for a second), and the supervisor's state when there is one.
  A server that does not answer is ``unavailable``, not ``failed``: the engine manager keeps the engine, marks
  its routes not ready (503, ``/readyz`` false) and re-probes, so it serves again as soon as the upstream
  (or the restarted process) answers, without rebuilding anything;
- ``forward(endpoint, body, stream=...)``: POST the body with ``model`` rewritten to the upstream's model name;
  returns the JSON response, or an :class:`UpstreamStream` of the raw server-sent event payloads. A stream
  always asks the upstream for ``stream_options.include_usage`` (the relay counts tokens and cost from it and
  hides it from clients that did not ask). The status is known before the first byte is relayed, so an
  upstream error keeps its status even for a stream.

Errors: an upstream's own 4xx/5xx answer is raised as :class:`UpstreamError` with its status, message, code
and param (the OpenAI error shape passes through); an upstream that cannot be reached is 503
``upstream_unavailable`` (with ``Retry-After``); a broken connection or a reply that is not JSON is 502
``upstream_error``; a timeout is 504 ``upstream_timeout``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

from llmops.errors import LLMOpsError, Unavailable
from llmops.serving.engines.base import EngineHealth, EngineStatus
from llmops.serving.supervisor import ProcessSupervisor

log = logging.getLogger("llmops.serving")

Body = dict[str, Any]
#: How long a health answer is reused (the manager, ``/metrics`` and the engines page all ask).
HEALTH_TTL = 1.0
ENDPOINTS = frozenset({"completions", "chat/completions", "embeddings"})


class UpstreamError(LLMOpsError):
    """An upstream's error answer (or a broken exchange with it), with the status the client gets."""

    code = "upstream_error"

    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message, details={"code": code or self.code, "param": param, "upstream_status": status})
        self.status = status


def _unreachable(exc: httpx.HTTPError, url: str) -> LLMOpsError:
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return Unavailable(
            f"the upstream at {url} cannot be reached: {exc or type(exc).__name__}",
            details={"code": "upstream_unavailable", "retry_after": 2},
        )
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamError(504, f"the upstream at {url} timed out ({type(exc).__name__})", code="upstream_timeout")
    return UpstreamError(502, f"the exchange with the upstream at {url} broke: {exc or type(exc).__name__}")


def error_from_response(response: httpx.Response) -> UpstreamError:
    """The upstream's error answer as an :class:`UpstreamError` (OpenAI's shape, vLLM's older flat shape,
    FastAPI's ``detail``, or plain text)."""
    status = response.status_code
    message, code, param = f"the upstream answered {status}", None, None
    try:
        data: Any = response.json()
    except ValueError:
        text = response.text.strip()
        data = None
        if text:
            message = f"the upstream answered {status}: {text[:500]}"
    if isinstance(data, dict):
        error = data.get("error")
        inner: dict[str, Any] = error if isinstance(error, dict) else data
        found = inner.get("message") or inner.get("detail") or data.get("detail")
        if found is not None:
            message = found if isinstance(found, str) else json.dumps(found)
        code = inner.get("code") if isinstance(inner.get("code"), str) else None
        param = inner.get("param") if isinstance(inner.get("param"), str) else None
    fallback = "upstream_error" if status >= 500 else "invalid_request"
    error = UpstreamError(status, message, code=code or fallback, param=param)
    retry = response.headers.get("retry-after")
    if retry and retry.replace(".", "", 1).isdigit():
        error.details["retry_after"] = float(retry)
    return error


class UpstreamStream:
    """The ``data:`` payloads of an upstream's event stream, as text (``[DONE]`` included); closing it closes
    the upstream response, which ends the upstream's generation (vLLM aborts a request whose client left)."""

    def __init__(self, response: httpx.Response, url: str) -> None:
        self.response = response
        self.url = url
        self._lines: AsyncIterator[str] = response.aiter_lines()
        self._closed = False

    def __aiter__(self) -> UpstreamStream:
        return self

    async def __anext__(self) -> str:
        data: list[str] = []
        while True:
            try:
                line = await self._lines.__anext__()
            except StopAsyncIteration:
                await self.aclose()
                if data:
                    return "\n".join(data)
                raise
            except httpx.HTTPError as exc:
                await self.aclose()
                raise _unreachable(exc, self.url) from exc
            if not line:
                if data:
                    return "\n".join(data)
                continue
            if line.startswith("data:"):
                data.append(line[6:] if line.startswith("data: ") else line[5:])
            # ``event:``, ``id:``, ``retry:`` and ``:`` comments carry nothing an OpenAI client reads

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self.response.aclose()


class UpstreamEngine:
    """One OpenAI-compatible upstream (see the module docstring).

    ``base_url`` is the API root as OpenAI clients take it (``http://host:8000/v1``); ``upstream_model`` the
    name the upstream serves the model under (None: the client's ``model``, i.e. the deployment name, is sent
    as is); ``api_key`` is sent as a bearer token; ``timeout`` bounds each read from the upstream (a stream
    may last longer, as long as chunks keep coming). ``supervisor`` is the process behind a ``vllm`` route.
    """

    def __init__(
        self,
        base_url: str,
        upstream_model: str | None,
        *,
        api_key: str | None = None,
        timeout: float = 600.0,
        name: str | None = None,
        supervisor: ProcessSupervisor | None = None,
        max_connections: int = 1000,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.upstream_model = upstream_model
        self.api_key = api_key
        self.timeout = timeout
        self.supervisor = supervisor
        self.max_connections = max_connections
        self._name = name or upstream_model or self.base_url
        self._client: httpx.AsyncClient | None = None
        self._health: EngineHealth | None = None
        self._health_at = 0.0
        self.context_length: int | None = None
        self.forwarded = 0

    @property
    def model_name(self) -> str:
        return self._name

    @property
    def root_url(self) -> str:
        """The server root (vLLM serves ``/tokenize`` and ``/health`` there): ``base_url`` without ``/v1``."""
        return self.base_url.removesuffix("/v1")

    # --- lifecycle ------------------------------------------------------------------------------------------
    async def start(self) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self._client = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(self.timeout, connect=min(10.0, self.timeout)),
            limits=httpx.Limits(max_connections=self.max_connections, max_keepalive_connections=100),
        )
        if self.supervisor is not None:
            try:
                await self.supervisor.start()
            except BaseException:
                await self._client.aclose()
                raise

    async def stop(self, drain_timeout: float = 0.0) -> None:
        """Close the connections and stop the supervised process (it drains its own requests on SIGTERM)."""
        try:
            if self.supervisor is not None:
                await self.supervisor.stop()
        finally:
            if self._client is not None:
                await self._client.aclose()
                self._client = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise Unavailable(f"the upstream engine {self._name} is not running", details={"code": "engine_not_ready"})
        return self._client

    # --- health ---------------------------------------------------------------------------------------------
    async def health(self) -> EngineHealth:
        now = time.monotonic()
        fresh = self._health is not None and now - self._health_at < HEALTH_TTL
        if fresh and self._health is not None and (self.supervisor is None or self.supervisor.ready):
            return self._health  # a supervised server that went down is reported at once, not after the TTL
        status, error = await self._probe()
        self._health = EngineHealth(
            status=status, model=self._name, context_length=self.context_length or 0, last_error=error
        )
        self._health_at = now
        return self._health

    async def _probe(self) -> tuple[EngineStatus, str | None]:
        if self._client is None:
            return "stopped", None
        supervisor = self.supervisor
        if supervisor is not None and not supervisor.ready:
            status: EngineStatus = "failed" if supervisor.status == "failed" else "unavailable"
            return status, f"engine server {supervisor.status}: {supervisor.last_error or 'no detail'}"
        url = f"{self.base_url}/models"
        try:
            response = await self._client.get(url, timeout=5.0)
        except httpx.HTTPError as exc:
            return "unavailable", f"GET {url}: {type(exc).__name__}: {exc}"
        if response.status_code != 200:
            return "unavailable", f"GET {url} answered {response.status_code}"
        with_len = None
        try:
            models = response.json().get("data") or []
            wanted = [m for m in models if isinstance(m, dict) and m.get("id") == self.upstream_model] or models[:1]
            with_len = wanted[0].get("max_model_len") if wanted and isinstance(wanted[0], dict) else None
        except (ValueError, AttributeError):
            pass
        if isinstance(with_len, int):
            self.context_length = with_len
        return "ready", None

    # --- requests -------------------------------------------------------------------------------------------
    def upstream_body(self, body: Mapping[str, Any], *, stream: bool) -> Body:
        """The body sent upstream: the client's, ``model`` renamed, and usage asked for on streams."""
        out = dict(body)
        if self.upstream_model is not None:
            out["model"] = self.upstream_model
        if stream:
            out["stream"] = True
            options = out.get("stream_options")
            out["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        else:
            out.pop("stream", None)
            out.pop("stream_options", None)
        return out

    async def forward(self, endpoint: str, body: Mapping[str, Any], *, stream: bool) -> Body | UpstreamStream:
        """POST ``body`` to ``{base_url}/{endpoint}``: the JSON answer, or the event stream when ``stream``."""
        if endpoint not in ENDPOINTS:
            raise ValueError(f"not an OpenAI endpoint: {endpoint}")
        self.check_ready()
        return await self.post(f"{self.base_url}/{endpoint}", self.upstream_body(body, stream=stream), stream=stream)

    async def post(self, url: str, payload: Mapping[str, Any], *, stream: bool = False) -> Body | UpstreamStream:
        client = self.client
        request = client.build_request("POST", url, json=payload)
        try:
            response = await client.send(request, stream=stream)
        except httpx.HTTPError as exc:
            raise _unreachable(exc, url) from exc
        if response.status_code >= 400:
            if stream:
                try:
                    await response.aread()
                except httpx.HTTPError:
                    pass
                finally:
                    await response.aclose()
            raise error_from_response(response)
        self.forwarded += 1
        if stream:
            return UpstreamStream(response, url)
        try:
            data = response.json()
        except ValueError as exc:
            raise UpstreamError(502, f"the upstream at {url} answered with something that is not JSON") from exc
        if not isinstance(data, dict):
            raise UpstreamError(502, f"the upstream at {url} answered with JSON that is not an object")
        return data

    async def get(self, url: str, params: Mapping[str, str] | None = None) -> Body:
        self.check_ready()
        try:
            response = await self.client.get(url, params=params)
        except httpx.HTTPError as exc:
            raise _unreachable(exc, url) from exc
        if response.status_code >= 400:
            raise error_from_response(response)
        data = response.json()
        if not isinstance(data, dict):
            raise UpstreamError(502, f"the upstream at {url} answered with JSON that is not an object")
        return data

    def check_ready(self) -> None:
        """A supervised server that is restarting gets no requests (503 at once, not a connect timeout)."""
        supervisor = self.supervisor
        if supervisor is not None and not supervisor.ready:
            raise Unavailable(
                f"the engine server of {self._name} is {supervisor.status}; retry shortly",
                details={"code": "engine_not_ready", "retry_after": 2},
            )


__all__ = ["UpstreamEngine", "UpstreamError", "UpstreamStream", "error_from_response"]
