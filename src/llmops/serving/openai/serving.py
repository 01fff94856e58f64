"""OpenAI-compatible requests turned into engine calls, and engine output into OpenAI-shaped bodies.

One :class:`OpenAIServing` serves every endpoint over the :class:`~llmops.serving.manager.EngineManager`:

- the ``model`` field names a deployment; the caller's key must carry one of the deployment's scopes when it
  lists any; the route is chosen by :func:`~llmops.serving.deployments.routing.choose_route` with the sticky
  key ``user`` (the request's ``user`` field) or ``key:<key id>``, so a user or key stays on one route;
- shadow routes get a mirrored copy in the background (sampled per request id); its output is discarded, and
  the manager counts it (``shadow_requests``) and the log says so;
- ``n`` choices are ``n`` engine sequences with seeds ``seed + i``; several prompts give ``prompts x n``
  sequences, choice ``index = prompt * n + i`` (as vLLM numbers them); usage counts each prompt once;
- every sequence is admitted (validated, tokenized, queued) before a byte is returned, so a prompt over the
  context (400 ``context_length_exceeded``) or a full queue (429) is a proper error even when streaming;
- a route served by an OpenAI-compatible upstream (``openai-upstream``, ``vllm``) takes the pass-through path
  after routing and admission: :meth:`OpenAIServing._forward` and :mod:`llmops.serving.openai.passthrough`.

Chunks and bodies are plain dictionaries shaped as vLLM's OpenAI server shapes them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import logging
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from llmops.errors import InvalidInput, LLMOpsError, NotFound, PermissionDenied
from llmops.security.actor import Actor
from llmops.serving.deployments.routing import choose_route, shadows_for
from llmops.serving.deployments.schemas import DeploymentOut, RouteSpec
from llmops.serving.engines.base import (
    DEFAULT_CHAT_TEMPLATE,
    Engine,
    EngineTokenizer,
    GenerationChunk,
    GenerationRequest,
    GenerationStream,
    ScoreRequest,
    TokenLogprob,
)
from llmops.serving.engines.upstream import UpstreamEngine, UpstreamStream
from llmops.serving.gateway import CLIENT_CLOSED, Gateway, Tally, Ticket
from llmops.serving.manager import EngineManager
from llmops.serving.openai import passthrough
from llmops.serving.openai.passthrough import RawBody
from llmops.serving.openai.schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    DetokenizeRequest,
    EmbeddingRequest,
    Sampling,
    TokenizeRequest,
)
from llmops.serving.openai.streaming import DONE, error_event, event, merge
from llmops.serving.response_cache import CachedResponse

log = logging.getLogger("llmops.serving")

Body = dict[str, Any]
LogprobEntry = tuple[int, TokenLogprob | None]


@dataclass
class Target:
    """Where a request goes: the deployment as it serves now, the chosen route and the shadows to mirror to."""

    deployment: DeploymentOut
    route: RouteSpec
    shadows: list[RouteSpec]

    def headers(self, request_id: str) -> dict[str, str]:
        return {
            "x-request-id": request_id,
            "x-llmops-route": self.route.name,
            "x-llmops-version": self.route.version or "",
            "x-llmops-revision": str(self.deployment.revision),
        }


@dataclass
class Served:
    """A response: a JSON body, or a stream of server-sent events; and its headers."""

    body: Body | None = None
    stream: AsyncIterator[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def sticky_key(actor: Actor, user: str | None) -> str:
    """What keeps a caller on one route: the request's ``user``, else its API key, else its principal."""
    if user:
        return user
    if actor.key_id is not None:
        return f"key:{actor.key_id}"
    return f"principal:{actor.name}"


def may_use(actor: Actor, deployment: DeploymentOut) -> bool:
    scopes = deployment.spec.scopes
    return not scopes or bool(set(actor.scopes) & set(scopes))


# --- logprob shapes -----------------------------------------------------------------------------------------
def completion_logprobs(entries: Sequence[LogprobEntry], tok: EngineTokenizer, k: int, offset: int) -> Body:
    """The legacy completions shape: tokens, token_logprobs, top_logprobs (dicts), text_offset."""
    tokens: list[str] = []
    token_logprobs: list[float | None] = []
    top: list[dict[str, float] | None] = []
    offsets: list[int] = []
    at = offset
    for token_id, lp in entries:
        text = tok.token_text(token_id)
        tokens.append(text)
        offsets.append(at)
        at += len(text)
        if lp is None:
            token_logprobs.append(None)
            top.append(None)
            continue
        token_logprobs.append(lp.logprob)
        alternatives = {alt.token: alt.logprob for alt in lp.top[:k]}
        alternatives.setdefault(text, lp.logprob)  # the sampled token is always listed, as vLLM does
        top.append(alternatives)
    return {"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": top, "text_offset": offsets}


def chat_logprobs(entries: Sequence[TokenLogprob], tok: EngineTokenizer, k: int) -> Body:
    """The chat shape: ``{"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}]}``."""
    content = []
    for lp in entries:
        text = tok.token_text(lp.token_id)
        content.append(
            {
                "token": text,
                "logprob": lp.logprob,
                "bytes": list(text.encode()),
                "top_logprobs": [
                    {"token": alt.token, "logprob": alt.logprob, "bytes": list(alt.token.encode())}
                    for alt in lp.top[:k]
                ],
            }
        )
    return {"content": content}


def _generated(chunk: GenerationChunk) -> list[TokenLogprob]:
    return list(chunk.logprobs or ())


def _prompt_entries(chunk: GenerationChunk) -> list[LogprobEntry]:
    ids = chunk.prompt_token_ids or ()
    lps = chunk.prompt_logprobs or (None,) * len(ids)
    return list(zip(ids, lps, strict=False))


class _Finalized:
    """An event stream that runs ``on_close`` however it ends, even when it was never iterated.

    An async generator closed before its first ``__anext__`` never runs its ``finally``; a client that goes away
    before the first byte must still release its engine sequences and leave a request record.
    """

    def __init__(self, body: AsyncIterator[bytes], on_close: Callable[[], Awaitable[None]]) -> None:
        self.body = body
        self.on_close = on_close

    def __aiter__(self) -> _Finalized:
        return self

    async def __anext__(self) -> bytes:
        return await self.body.__anext__()

    async def aclose(self) -> None:
        try:
            aclose = getattr(self.body, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            await self.on_close()


def _usage_with_cost(tally: Tally, cost: float, ticket: Ticket) -> Body:
    """The usage of a finished stream, with its cost (``cost`` and ``cost_currency``, OpenRouter-style)."""
    return {**tally.usage(), "cost": cost, "cost_currency": ticket.currency}


class OpenAIServing:
    """Every OpenAI-compatible endpoint over one engine manager (see the module docstring).

    ``gateway`` applies the admission policies, the response cache, request records and metrics around every
    generation and embedding request (:mod:`llmops.serving.gateway`); without one, a gateway with in-process
    counters and no record writers is used.
    """

    def __init__(self, manager: EngineManager, gateway: Gateway | None = None) -> None:
        self.manager = manager
        self.gateway = gateway or Gateway()
        self._background: set[asyncio.Task[None]] = set()

    async def _routed(self, ticket: Ticket, model: str, user: str | None) -> Target:
        """Route the request, bind it to its ticket and admit it (budget, rate limits)."""
        assert ticket.actor is not None
        target = await self.target(model, ticket.actor, user, ticket.request_id)
        ticket.bind(target.deployment, target.route)
        await self.gateway.admit(ticket)
        return target

    async def _accounted(self, ticket: Ticket, work: Awaitable[Served]) -> Served:
        try:
            return await work
        except BaseException as exc:
            ticket.fail(exc)
            raise

    def _done(self, ticket: Ticket, body: Body, headers: dict[str, str]) -> Served:
        """A finished JSON response: settle, record, cache, and add the cost headers."""
        ticket.finish()
        self.gateway.store(ticket, body)
        return Served(body=body, headers={**headers, **ticket.headers()})

    def _replay(
        self, ticket: Ticket, cached: CachedResponse, headers: dict[str, str], response_id: str | None, created: int
    ) -> Served:
        """A cache hit: the cached body under this request's id; nothing reaches an engine."""
        body = dict(cached.body)
        if response_id is not None and "id" in body:
            body["id"] = response_id
        if "created" in body:
            body["created"] = created
        ticket.finish()
        return Served(body=body, headers={**headers, **ticket.headers()})

    def _stream(self, ticket: Ticket, streams: Sequence[GenerationStream], body: AsyncIterator[bytes]) -> _Finalized:
        async def on_close() -> None:
            ticket.finish(CLIENT_CLOSED, "client_closed")  # a no-op when the stream finished
            for s in streams:
                with contextlib.suppress(Exception):
                    await s.aclose()

        return _Finalized(body, on_close)

    async def _occupancy(self, ticket: Ticket, engine: Engine) -> None:
        """Hourly pricing shares the engine's time among the sequences it runs: sample how many there are."""
        if ticket.needs_occupancy:
            health = await engine.health()
            ticket.occupancy = max(ticket.sequences, health.running)

    async def drain(self, timeout: float) -> bool:
        """Refuse new requests (503) and wait up to ``timeout`` seconds for those in flight and mirrored ones."""
        deadline = time.monotonic() + timeout
        drained = await self.gateway.drain(timeout)
        if self._background:
            await asyncio.wait(list(self._background), timeout=max(0.0, deadline - time.monotonic()))
        return drained

    # --- routing --------------------------------------------------------------------------------------------
    async def target(self, model: str, actor: Actor, user: str | None, request_id: str) -> Target:
        deployment = await self.manager.lookup(model)
        if not may_use(actor, deployment):
            raise PermissionDenied(
                f"this API key may not call {model}: the deployment needs a key with one of the scopes "
                f"{', '.join(deployment.spec.scopes)}",
                details={"code": "insufficient_scope", "param": "model"},
            )
        route = choose_route(deployment.name, deployment.spec, sticky_key(actor, user))
        return Target(deployment, route, shadows_for(deployment.name, deployment.spec, request_id))

    # --- models ---------------------------------------------------------------------------------------------
    def _card(self, deployment: DeploymentOut) -> Body:
        max_len: int | None = None
        try:
            entry = self.manager.entry(deployment.spec.primary)
            engine: Any = entry.engine
            if isinstance(engine, UpstreamEngine):
                max_len = engine.context_length
            else:
                max_len = engine.max_input_tokens if entry.key.embedding else engine.tokenizer.context_length
        except LLMOpsError:
            pass
        return {
            "id": deployment.name,
            "object": "model",
            "created": int(deployment.created_at.timestamp()),
            "owned_by": "llmops",
            "root": deployment.spec.primary.version,
            "parent": None,
            "max_model_len": max_len,
            "permission": [],
        }

    async def models(self, actor: Actor) -> Body:
        cards = [self._card(d) for d in self.manager.deployments_known() if may_use(actor, d)]
        return {"object": "list", "data": cards}

    async def model(self, actor: Actor, model: str) -> Body:
        for d in self.manager.deployments_known():
            if d.name == model:
                if not may_use(actor, d):
                    break
                return self._card(d)
        raise NotFound(f"The model `{model}` does not exist.", details={"code": "model_not_found", "param": "model"})

    # --- generation helpers ---------------------------------------------------------------------------------
    @staticmethod
    def _request(
        req: Sampling,
        prompt: str | list[int],
        *,
        index: int,
        seed_offset: int,
        request_id: str,
        max_tokens: int | None,
        stop: Sequence[str],
        logprobs: int | None,
        prompt_logprobs: int | None,
        add_special_tokens: bool,
    ) -> GenerationRequest:
        return GenerationRequest(
            prompt=prompt,
            max_tokens=max_tokens,
            temperature=1.0 if req.temperature is None else req.temperature,
            top_p=1.0 if req.top_p is None else req.top_p,
            top_k=req.top_k or 0,
            seed=None if req.seed is None else req.seed + seed_offset,
            stop=tuple(stop),
            stop_token_ids=tuple(req.stop_token_ids or ()),
            ignore_eos=req.ignore_eos,
            logprobs=logprobs,
            prompt_logprobs=prompt_logprobs,
            add_special_tokens=add_special_tokens,
            request_id=f"{request_id}-{index}",
        )

    @staticmethod
    async def _admit(engine: Engine, requests: Sequence[GenerationRequest]) -> list[GenerationStream]:
        streams: list[GenerationStream] = []
        try:
            for r in requests:
                streams.append(await engine.generate(r))
        except BaseException:
            for s in streams:
                await s.aclose()
            raise
        return streams

    @staticmethod
    async def _drain(stream: GenerationStream, index: int, tally: Tally) -> list[GenerationChunk]:
        chunks: list[GenerationChunk] = []
        try:
            async for chunk in stream:
                tally.add(index, chunk)
                chunks.append(chunk)
            return chunks
        finally:
            await stream.aclose()

    async def _collect(self, streams: Sequence[GenerationStream], tally: Tally) -> list[list[GenerationChunk]]:
        tasks = [asyncio.ensure_future(self._drain(s, i, tally)) for i, s in enumerate(streams)]
        try:
            return list(await asyncio.gather(*tasks))
        finally:
            for t in tasks:
                t.cancel()

    def _mirror(self, target: Target, requests: Sequence[GenerationRequest], parent: Ticket, req: BaseModel) -> None:
        """Send a copy of the request to every shadow route, in the background; the output is discarded."""
        for route in target.shadows:
            ticket = self.gateway.shadow_ticket(parent, target.deployment, route)
            ticket.tally.n = parent.tally.n
            if self._upstream_or_none(route) is not None:
                body = req.model_dump(mode="json", exclude_unset=True)
                self._background_task(self._shadow_forward(ticket, route, parent.endpoint, body))
            else:
                self._background_task(self._shadow(ticket, route, requests))

    def _background_task(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _upstream_or_none(self, route: RouteSpec) -> UpstreamEngine | None:
        """The route's upstream engine, or None (not an upstream route, or its engine is not ready)."""
        try:
            return self.manager.upstream_engine(route)
        except LLMOpsError:
            return None

    async def _shadow(self, ticket: Ticket, route: RouteSpec, requests: Sequence[GenerationRequest]) -> None:
        deployment = ticket.deployment.name if ticket.deployment else "?"
        try:
            engine = self.manager.generation_engine(route)
            copies = [dataclasses.replace(r, request_id=f"{r.request_id}-shadow-{route.name}") for r in requests]
            streams = await self._admit(engine, copies)
            await self._collect(streams, ticket.tally)
            self.manager.record(route, shadow=True)
            ticket.finish()
            log.info(
                "shadow %s/%s (%s): mirrored %s, %d tokens generated, response discarded",
                deployment,
                route.name,
                route.version,
                requests[0].request_id if requests else "?",
                ticket.tally.completion_tokens,
            )
        except BaseException as exc:  # a shadow never affects the caller
            ticket.fail(exc)
            if not isinstance(exc, Exception):
                raise
            log.warning("shadow %s/%s: mirrored request failed: %s", deployment, route.name, exc)

    async def drain_background(self) -> None:
        """Wait for mirrored requests still running (tests and shutdown)."""
        if self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    # --- upstream routes: pass-through (see ``passthrough.py``) -----------------------------------------------
    async def _forward(
        self,
        ticket: Ticket,
        target: Target,
        engine: UpstreamEngine,
        endpoint: str,
        req: CompletionRequest | ChatCompletionRequest | EmbeddingRequest,
        raw: RawBody | None,
    ) -> Served:
        """The request forwarded to an upstream route; routing, admission and the cache already happened."""
        headers = target.headers(ticket.request_id)
        cached = await self.gateway.lookup(ticket, req)
        if cached is not None:
            return self._replay(ticket, cached, headers, None, int(time.time()))
        body = await passthrough.client_body(req, raw)
        stream = bool(getattr(req, "stream", False))
        answer = await engine.forward(endpoint, body, stream=stream)
        self.manager.record(target.route)
        for route in target.shadows:
            shadow = self.gateway.shadow_ticket(ticket, target.deployment, route)
            self._background_task(self._shadow_forward(shadow, route, endpoint, body))
        if isinstance(answer, UpstreamStream):
            upstream = answer
            include_usage = isinstance(req, CompletionRequest | ChatCompletionRequest) and req.include_usage
            events = passthrough.relay(upstream, ticket, model=req.model, include_usage=include_usage)

            async def on_close() -> None:
                ticket.finish(CLIENT_CLOSED, "client_closed")  # a no-op when the stream finished
                await upstream.aclose()

            return Served(stream=_Finalized(events, on_close), headers={**headers, **ticket.cache_headers()})
        passthrough.absorb(ticket.tally, answer)
        if "model" in answer:
            answer["model"] = req.model
        return self._done(ticket, answer, headers)

    async def _shadow_forward(self, ticket: Ticket, route: RouteSpec, endpoint: str, body: Body) -> None:
        """A mirrored copy of a request to an upstream route: forwarded (not streamed), answer discarded."""
        deployment = ticket.deployment.name if ticket.deployment else "?"
        try:
            engine = self.manager.upstream_engine(route)
            if engine is None:
                raise InvalidInput(
                    f"shadow route {route.name} runs on the {route.engine} engine; an upstream route's requests "
                    "are mirrored only to other upstream routes"
                )
            answer = await engine.forward(endpoint, body, stream=False)
            if isinstance(answer, dict):
                passthrough.absorb(ticket.tally, answer)
            self.manager.record(route, shadow=True)
            ticket.finish()
            log.info("shadow %s/%s: mirrored %s to the upstream, response discarded", deployment, route.name, endpoint)
        except BaseException as exc:  # a shadow never affects the caller
            ticket.fail(exc)
            if not isinstance(exc, Exception):
                raise
            log.warning("shadow %s/%s: mirrored request failed: %s", deployment, route.name, exc)

    # --- completions ----------------------------------------------------------------------------------------
    async def completions(
        self, req: CompletionRequest, actor: Actor, request_id: str, raw: RawBody | None = None
    ) -> Served:
        """``raw`` reads the client's JSON body, which an upstream route forwards as it came."""
        ticket = self.gateway.open("completions", actor, request_id, request_user=req.user, stream=req.stream)
        ticket.body = req
        return await self._accounted(ticket, self._completions(req, ticket, raw))

    async def _completions(self, req: CompletionRequest, ticket: Ticket, raw: RawBody | None = None) -> Served:
        request_id = ticket.request_id
        target = await self._routed(ticket, req.model, req.user)
        upstream = self.manager.upstream_engine(target.route)
        if upstream is not None:
            return await self._forward(ticket, target, upstream, "completions", req, raw)
        engine = self.manager.generation_engine(target.route)
        tok = engine.tokenizer
        prompts = req.prompts()
        headers = target.headers(request_id)
        created = int(time.time())
        response_id = f"cmpl-{request_id}"
        if req.max_tokens == 0 and req.stream:
            raise InvalidInput("max_tokens 0 (scoring the prompt) cannot be streamed", details={"param": "stream"})
        cached = await self.gateway.lookup(ticket, req)
        if cached is not None:
            return self._replay(ticket, cached, headers, response_id, created)
        if req.max_tokens == 0:
            body = await self._score_prompts(engine, req, prompts, response_id, created, request_id)
            ticket.tally.set_prompt_tokens(body["usage"]["prompt_tokens"])
            self.manager.record(target.route)
            return self._done(ticket, body, headers)
        echo_logprobs = req.logprobs if req.echo and req.logprobs is not None else None
        requests = [
            self._request(
                req,
                p,
                index=k * req.n + i,
                seed_offset=i,
                request_id=request_id,
                max_tokens=req.max_tokens,
                stop=req.stop_list,
                logprobs=req.logprobs,
                prompt_logprobs=echo_logprobs,
                add_special_tokens=req.add_special_tokens,
            )
            for k, p in enumerate(prompts)
            for i in range(req.n)
        ]
        ticket.tally.n, ticket.sequences = req.n, len(requests)
        streams = await self._admit(engine, requests)
        await self._occupancy(ticket, engine)
        self.manager.record(target.route)
        self._mirror(target, requests, ticket, req)
        echo_texts = [self._prompt_text(tok, p) if req.echo else "" for p in prompts for _ in range(req.n)]
        if req.stream:
            events = self._completion_events(req, tok, streams, echo_texts, response_id, created, ticket)
            return Served(stream=self._stream(ticket, streams, events), headers={**headers, **ticket.cache_headers()})
        results = await self._collect(streams, ticket.tally)
        choices = [
            self._completion_choice(req, tok, index, chunks, echo_texts[index]) for index, chunks in enumerate(results)
        ]
        body = {
            "id": response_id,
            "object": "text_completion",
            "created": created,
            "model": req.model,
            "choices": choices,
            "usage": ticket.tally.usage(),
        }
        return self._done(ticket, body, headers)

    @staticmethod
    def _prompt_text(tok: EngineTokenizer, prompt: str | list[int]) -> str:
        return prompt if isinstance(prompt, str) else tok.decode(prompt)

    @staticmethod
    def _completion_choice(
        req: CompletionRequest, tok: EngineTokenizer, index: int, chunks: list[GenerationChunk], echo: str
    ) -> Body:
        last = chunks[-1]
        text = echo + "".join(c.text for c in chunks)
        logprobs = None
        if req.logprobs is not None:
            entries: list[LogprobEntry] = _prompt_entries(chunks[0]) if req.echo else []
            entries += [(lp.token_id, lp) for c in chunks for lp in _generated(c)]
            logprobs = completion_logprobs(entries, tok, req.logprobs, 0)
        return {
            "index": index,
            "text": text,
            "logprobs": logprobs,
            "finish_reason": last.finish_reason,
            "stop_reason": last.stop_reason,
        }

    async def _completion_events(
        self,
        req: CompletionRequest,
        tok: EngineTokenizer,
        streams: list[GenerationStream],
        echo_texts: list[str],
        response_id: str,
        created: int,
        ticket: Ticket,
    ) -> AsyncIterator[bytes]:
        tally = ticket.tally
        offsets = [0] * len(streams)
        echoed: set[int] = set()
        chunks = merge(streams)
        try:
            async for index, chunk in chunks:
                tally.add(index, chunk)
                text = chunk.text
                entries: list[LogprobEntry] = []
                if req.echo and index not in echoed:
                    echoed.add(index)
                    text = echo_texts[index] + text
                    entries += _prompt_entries(chunk) if req.logprobs is not None else []
                entries += [(lp.token_id, lp) for lp in _generated(chunk)]
                if not text and chunk.finish_reason is None and not (entries and req.logprobs is not None):
                    continue
                logprobs = None
                if req.logprobs is not None:
                    logprobs = completion_logprobs(entries, tok, req.logprobs, offsets[index])
                offsets[index] += len(text)
                choice = {
                    "index": index,
                    "text": text,
                    "logprobs": logprobs,
                    "finish_reason": chunk.finish_reason,
                    "stop_reason": chunk.stop_reason,
                }
                yield event(
                    {
                        "id": response_id,
                        "object": "text_completion",
                        "created": created,
                        "model": req.model,
                        "choices": [choice],
                    }
                )
            cost = ticket.finish()
            if req.include_usage:
                yield event(
                    {
                        "id": response_id,
                        "object": "text_completion",
                        "created": created,
                        "model": req.model,
                        "choices": [],
                        "usage": _usage_with_cost(tally, cost, ticket),
                    }
                )
            yield DONE
        except Exception as exc:
            log.warning("stream %s failed: %s", response_id, exc)
            ticket.fail(exc)
            yield error_event(exc)
            yield DONE
        finally:
            ticket.finish(CLIENT_CLOSED, "client_closed")  # the client went away (a no-op otherwise)
            await chunks.aclose()  # type: ignore[attr-defined]

    async def _score_prompts(
        self,
        engine: Engine,
        req: CompletionRequest,
        prompts: list[str | list[int]],
        response_id: str,
        created: int,
        request_id: str,
    ) -> Body:
        """``echo`` with ``max_tokens=0``: the prompt's logprobs, what lm-evaluation-harness's loglikelihood asks."""
        tok = engine.tokenizer
        k = req.logprobs or 0
        choices = []
        prompt_tokens = 0
        for index, p in enumerate(prompts):
            result = await engine.score(
                ScoreRequest(
                    prompt=p,
                    top_logprobs=k,
                    add_special_tokens=req.add_special_tokens,
                    request_id=f"{request_id}-{index}",
                )
            )
            prompt_tokens += len(result.token_ids)
            logprobs = None
            if req.logprobs is not None:
                entries = list(zip(result.token_ids, result.logprobs, strict=True))
                logprobs = completion_logprobs(entries, tok, k, 0)
            for i in range(req.n):
                choices.append(
                    {
                        "index": index * req.n + i,
                        "text": self._prompt_text(tok, p),
                        "logprobs": logprobs,
                        "finish_reason": "length",
                        "stop_reason": None,
                    }
                )
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": 0, "total_tokens": prompt_tokens}
        return {
            "id": response_id,
            "object": "text_completion",
            "created": created,
            "model": req.model,
            "choices": choices,
            "usage": usage,
        }

    # --- chat -----------------------------------------------------------------------------------------------
    @staticmethod
    def render(tok: EngineTokenizer, req: ChatCompletionRequest | TokenizeRequest) -> str:
        messages = []
        for m in req.messages or []:
            message: dict[str, Any] = {"role": m.role, "content": m.text()}
            if m.name:
                message["name"] = m.name
            messages.append(message)
        kwargs = getattr(req, "chat_template_kwargs", None) or {}
        try:
            return tok.render_chat(messages, add_generation_prompt=req.add_generation_prompt, **kwargs)
        except Exception as exc:
            raise InvalidInput(
                f"the chat template cannot render these messages: {exc}",
                details={"code": "invalid_messages", "param": "messages"},
            ) from exc

    async def chat(
        self, req: ChatCompletionRequest, actor: Actor, request_id: str, raw: RawBody | None = None
    ) -> Served:
        ticket = self.gateway.open("chat", actor, request_id, request_user=req.user, stream=req.stream)
        ticket.body = req
        return await self._accounted(ticket, self._chat(req, ticket, raw))

    async def _chat(self, req: ChatCompletionRequest, ticket: Ticket, raw: RawBody | None = None) -> Served:
        request_id = ticket.request_id
        target = await self._routed(ticket, req.model, req.user)
        upstream = self.manager.upstream_engine(target.route)
        if upstream is not None:
            return await self._forward(ticket, target, upstream, "chat/completions", req, raw)
        engine = self.manager.generation_engine(target.route)
        tok = engine.tokenizer
        headers = target.headers(request_id)
        created = int(time.time())
        response_id = f"chatcmpl-{request_id}"
        cached = await self.gateway.lookup(ticket, req)
        if cached is not None:
            return self._replay(ticket, cached, headers, response_id, created)
        prompt = self.render(tok, req)
        k = (req.top_logprobs or 0) if req.logprobs else None
        stop = [*req.stop_list, *(s for s in tok.chat_stop if s not in req.stop_list)]
        requests = [
            self._request(
                req,
                prompt,
                index=i,
                seed_offset=i,
                request_id=request_id,
                max_tokens=req.completion_limit,
                stop=stop,
                logprobs=k,
                prompt_logprobs=None,
                add_special_tokens=req.add_special_tokens,
            )
            for i in range(req.n)
        ]
        ticket.tally.n, ticket.sequences = req.n, len(requests)
        streams = await self._admit(engine, requests)
        await self._occupancy(ticket, engine)
        self.manager.record(target.route)
        self._mirror(target, requests, ticket, req)
        if req.stream:
            events = self._chat_events(req, tok, streams, k, response_id, created, ticket)
            return Served(stream=self._stream(ticket, streams, events), headers={**headers, **ticket.cache_headers()})
        results = await self._collect(streams, ticket.tally)
        choices = []
        for index, chunks in enumerate(results):
            last = chunks[-1]
            choices.append(
                {
                    "index": index,
                    "message": {"role": "assistant", "content": "".join(c.text for c in chunks)},
                    "logprobs": None
                    if k is None
                    else chat_logprobs([lp for c in chunks for lp in _generated(c)], tok, k),
                    "finish_reason": last.finish_reason,
                    "stop_reason": last.stop_reason,
                }
            )
        body = {
            "id": response_id,
            "object": "chat.completion",
            "created": created,
            "model": req.model,
            "choices": choices,
            "usage": ticket.tally.usage(),
        }
        return self._done(ticket, body, headers)

    async def _chat_events(
        self,
        req: ChatCompletionRequest,
        tok: EngineTokenizer,
        streams: list[GenerationStream],
        k: int | None,
        response_id: str,
        created: int,
        ticket: Ticket,
    ) -> AsyncIterator[bytes]:
        head = {"id": response_id, "object": "chat.completion.chunk", "created": created, "model": req.model}
        tally = ticket.tally
        chunks = merge(streams)
        try:
            for index in range(len(streams)):
                role = {"index": index, "delta": {"role": "assistant", "content": ""}, "logprobs": None}
                yield event({**head, "choices": [{**role, "finish_reason": None}]})
            async for index, chunk in chunks:
                tally.add(index, chunk)
                generated = _generated(chunk)
                if not chunk.text and chunk.finish_reason is None and not (generated and k is not None):
                    continue
                choice: Body = {
                    "index": index,
                    "delta": {"content": chunk.text} if chunk.text or chunk.finish_reason is None else {},
                    "logprobs": None if k is None else chat_logprobs(generated, tok, k),
                    "finish_reason": chunk.finish_reason,
                }
                if chunk.finish_reason is not None:
                    choice["stop_reason"] = chunk.stop_reason
                yield event({**head, "choices": [choice]})
            cost = ticket.finish()
            if req.include_usage:
                yield event({**head, "choices": [], "usage": _usage_with_cost(tally, cost, ticket)})
            yield DONE
        except Exception as exc:
            log.warning("stream %s failed: %s", response_id, exc)
            ticket.fail(exc)
            yield error_event(exc)
            yield DONE
        finally:
            ticket.finish(CLIENT_CLOSED, "client_closed")  # the client went away (a no-op otherwise)
            await chunks.aclose()  # type: ignore[attr-defined]

    # --- embeddings -----------------------------------------------------------------------------------------
    async def embeddings(
        self, req: EmbeddingRequest, actor: Actor, request_id: str, raw: RawBody | None = None
    ) -> Served:
        ticket = self.gateway.open("embeddings", actor, request_id, request_user=req.user, stream=False)
        return await self._accounted(ticket, self._embeddings(req, ticket, raw))

    async def _embeddings(self, req: EmbeddingRequest, ticket: Ticket, raw: RawBody | None = None) -> Served:
        target = await self._routed(ticket, req.model, req.user)
        upstream = self.manager.upstream_engine(target.route)
        if upstream is not None:
            return await self._forward(ticket, target, upstream, "embeddings", req, raw)
        engine = self.manager.embedding_engine(target.route)
        if req.dimensions is not None and req.dimensions != engine.dimension:
            raise InvalidInput(
                f"dimensions: {req.model} returns {engine.dimension}-dimensional vectors and cannot shorten them",
                details={"code": "invalid_request", "param": "dimensions"},
            )
        headers = target.headers(ticket.request_id)
        cached = await self.gateway.lookup(ticket, req)
        if cached is not None:
            return self._replay(ticket, cached, headers, None, int(time.time()))
        inputs = req.inputs()
        result = await engine.embed(inputs)
        ticket.tally.set_prompt_tokens(result.total_tokens)
        self.manager.record(target.route)
        for route in target.shadows:
            shadow = self.gateway.shadow_ticket(ticket, target.deployment, route)
            if self._upstream_or_none(route) is not None:
                body = req.model_dump(mode="json", exclude_unset=True)
                self._background_task(self._shadow_forward(shadow, route, "embeddings", body))
            else:
                self._background_task(self._shadow_embed(shadow, route, inputs))
        data = []
        for index, vector in enumerate(result.vectors):
            encoded: Any = vector
            if req.encoding_format == "base64":
                encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        body = {
            "object": "list",
            "data": data,
            "model": req.model,
            "usage": {"prompt_tokens": result.total_tokens, "total_tokens": result.total_tokens},
        }
        return self._done(ticket, body, headers)

    async def _shadow_embed(self, ticket: Ticket, route: RouteSpec, inputs: list[str | list[int]]) -> None:
        deployment = ticket.deployment.name if ticket.deployment else "?"
        try:
            result = await self.manager.embedding_engine(route).embed(inputs)
            ticket.tally.set_prompt_tokens(result.total_tokens)
            self.manager.record(route, shadow=True)
            ticket.finish()
            log.info(
                "shadow %s/%s: mirrored %d embedding inputs, response discarded", deployment, route.name, len(inputs)
            )
        except BaseException as exc:
            ticket.fail(exc)
            if not isinstance(exc, Exception):
                raise
            log.warning("shadow %s/%s: mirrored embedding request failed: %s", deployment, route.name, exc)

    # --- tokenizer endpoints (vLLM; lm-evaluation-harness's remote tokenizer) --------------------------------
    async def _tokenizer_route(self, model: str | None, actor: Actor) -> tuple[str, RouteSpec]:
        if model is None:
            names = [
                d.name
                for d in self.manager.deployments_known()
                if may_use(actor, d) and d.spec.primary.engine != "embeddings"
            ]
            if len(names) != 1:
                raise InvalidInput(
                    "model is required: name the deployment whose tokenizer to use"
                    + (f" (one of {', '.join(names)})" if names else ""),
                    details={"code": "invalid_request", "param": "model"},
                )
            model = names[0]
        target = await self.target(model, actor, None, "tokenizer")
        return model, target.route

    async def tokenize(self, req: TokenizeRequest, actor: Actor) -> Body:
        name, route = await self._tokenizer_route(req.model, actor)
        upstream = self.manager.upstream_engine(route)
        if upstream is not None:
            return await passthrough.tokenizer_call(upstream, "tokenize", name, req.model_dump(exclude_none=True))
        tok = self.manager.generation_engine(route).tokenizer
        if req.prompt is not None:
            special = True if req.add_special_tokens is None else req.add_special_tokens
            ids = tok.encode(req.prompt, add_special_tokens=special)
        else:
            special = False if req.add_special_tokens is None else req.add_special_tokens
            ids = tok.encode(self.render(tok, req), add_special_tokens=special)
        return {
            "count": len(ids),
            "max_model_len": tok.context_length,
            "tokens": ids,
            "token_strs": [tok.token_text(t) for t in ids] if req.return_token_strs else None,
        }

    async def detokenize(self, req: DetokenizeRequest, actor: Actor) -> Body:
        name, route = await self._tokenizer_route(req.model, actor)
        upstream = self.manager.upstream_engine(route)
        if upstream is not None:
            return await passthrough.tokenizer_call(upstream, "detokenize", name, req.model_dump(exclude_none=True))
        tok = self.manager.generation_engine(route).tokenizer
        bad = [t for t in req.tokens if t >= tok.vocab_size]
        if bad:
            raise InvalidInput(
                f"token ids out of the vocabulary (0..{tok.vocab_size - 1}): {bad[:5]}",
                details={"code": "invalid_token_ids", "param": "tokens"},
            )
        return {"prompt": tok.decode(req.tokens, skip_special_tokens=False)}

    async def tokenizer_info(self, model: str | None, actor: Actor) -> Body:
        name, route = await self._tokenizer_route(model, actor)
        upstream = self.manager.upstream_engine(route)
        if upstream is not None:
            params = {"model": upstream.upstream_model} if upstream.upstream_model else None
            return await passthrough.tokenizer_call(upstream, "tokenizer_info", name, params=params)
        tok = self.manager.generation_engine(route).tokenizer
        hf: Any = getattr(tok, "hf_tokenizer", None)
        info: Body = {
            "model": name,
            "tokenizer_class": type(hf).__name__ if hf is not None else type(tok).__name__,
            "model_max_length": tok.context_length,
            "vocab_size": tok.vocab_size,
            "eos_token_ids": sorted(tok.eos_token_ids),
            "chat_template": (getattr(hf, "chat_template", None) if tok.has_chat_template else None)
            or DEFAULT_CHAT_TEMPLATE,
        }
        for name_ in ("eos_token", "bos_token", "pad_token", "unk_token"):
            value = getattr(hf, name_, None) if hf is not None else None
            info[name_] = value if isinstance(value, str) else None
        for flag in ("add_bos_token", "add_eos_token"):
            value = getattr(hf, flag, None) if hf is not None else None
            if isinstance(value, bool):
                info[flag] = value
        return info


__all__ = ["OpenAIServing", "Served", "Target", "chat_logprobs", "completion_logprobs", "may_use", "sticky_key"]
