"""Admission and accounting around every request the gateway serves.

:class:`Gateway` is what ``OpenAIServing`` (and through it KServe) calls around the engines:

1. ``open`` — refuses new work with 503 ``server_shutting_down`` while the gateway drains, counts the request
   in flight and starts its clock;
2. ``admit`` — once the deployment and route are known: the budget (``BudgetGuard.check``, read only) and then
   the rate limits (``RateLimiter.admit``, which counts the request for the key and for the user), so a
   refusal is a 429 with ``Retry-After`` and code ``rate_limit_exceeded`` or ``budget_exceeded``;
3. ``lookup``/``store`` — the response cache (see :mod:`llmops.serving.response_cache`);
4. :meth:`Ticket.finish` — when the response has finished (for streams: when the stream ends or the client goes
   away): the request's prompt + completion tokens go to the token limit, its cost (``request_cost`` under the
   deployment's price table) is charged to the budget, and one :class:`~llmops.serving.records.RequestRecord`
   goes to the sink and the metrics. ``finish`` never awaits and never raises, so it can run in a stream's
   ``finally`` even while the task is being cancelled; with shared counters (Redis) the counter writes run in
   a background thread, in-process counters are updated at once.

Subjects of limits and budgets are the API key (its prefix) and the user — the key's principal, never the
request's ``user`` field, which a caller could vary to escape a limit. A cache hit counts as a request
against the request limit but adds no tokens and costs nothing. Shadow copies produce records (mode
``shadow``) but are neither limited nor charged to the caller.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from llmops.counters.base import Counters
from llmops.counters.memory import MemoryCounters
from llmops.errors import InvalidInput, LLMOpsError, QuotaExceeded, Unavailable
from llmops.security.actor import Actor
from llmops.serving.deployments.schemas import DeploymentOut, RouteSpec
from llmops.serving.engines.base import GenerationChunk
from llmops.serving.limits import BudgetGuard, Ledger, RateLimiter
from llmops.serving.metrics import EngineSample, GatewayState, ServingMetrics
from llmops.serving.openai.schemas import ChatCompletionRequest, CompletionRequest
from llmops.serving.pricing import request_cost
from llmops.serving.records import CapturedText, NullSink, RecordSink, RequestRecord
from llmops.serving.response_cache import MAX_BYTES, CachedResponse, cache_key, cacheable

log = logging.getLogger("llmops.serving")

COST_HEADER = "x-llmops-cost"
CURRENCY_HEADER = "x-llmops-cost-currency"
CACHE_HEADER = "x-llmops-cache"
CLIENT_CLOSED = 499  # nginx's "client closed request"


def format_cost(cost: float) -> str:
    """A cost for a header: fixed point, up to 9 decimals, no trailing zeros (``0.000123``, ``0``)."""
    text = f"{cost:.9f}".rstrip("0").rstrip(".")
    return text or "0"


def outcome(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and error code a caller gets for ``exc``."""
    if isinstance(exc, LLMOpsError):
        details = exc.details if isinstance(exc.details, dict) else {}
        status = 400 if isinstance(exc, InvalidInput) else exc.status
        code = details.get("code")
        return status, str(code) if isinstance(code, str) else exc.code
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        return CLIENT_CLOSED, "client_closed"
    return 500, "internal_error"


def subjects_of(actor: Actor | None) -> dict[str, str]:
    """Who limits and budgets count: ``{"key": key prefix, "user": the key's principal}``."""
    if actor is None:
        return {}
    out: dict[str, str] = {}
    if actor.key_prefix:
        out["key"] = actor.key_prefix
    elif actor.key_id is not None:
        out["key"] = f"id{actor.key_id}"
    out["user"] = actor.name
    return out


class Tally:
    """Tokens, timings and finish reasons of one request's sequences, as their chunks arrive.

    ``n`` is the number of choices per prompt: a prompt's tokens are counted once (choice ``index % n == 0``),
    as the OpenAI usage counts them. Counts come from the tokens seen, replaced by the engine's usage when a
    sequence's last chunk brings it, so a stream cut short still reports what it used.
    """

    def __init__(self, arrival: float, n: int = 1) -> None:
        self.arrival = arrival
        self.n = n
        self.prompt: dict[int, int] = {}
        self.completion: dict[int, int] = {}
        self.finish: dict[int, str] = {}
        self.first_token_at: float | None = None
        self.last_token_at: float | None = None
        self.queue_time: float | None = None
        self.texts: dict[int, list[str]] | None = None  # generated text per sequence, when it is kept

    def keep_text(self, index: int, text: str | None) -> None:
        if self.texts is not None and text:
            self.texts.setdefault(index, []).append(text)

    def completion_text(self) -> str | None:
        if self.texts is None:
            return None
        return "\n\n".join("".join(self.texts[i]) for i in sorted(self.texts))

    def add(self, index: int, chunk: GenerationChunk) -> None:
        now = time.monotonic()
        if chunk.prompt_token_ids is not None and index not in self.prompt:
            self.prompt[index] = len(chunk.prompt_token_ids)
        self.keep_text(index, chunk.text)
        if chunk.token_ids:
            if self.first_token_at is None:
                self.first_token_at = now
            self.last_token_at = now
            self.completion[index] = self.completion.get(index, 0) + len(chunk.token_ids)
        if chunk.usage is not None:
            self.prompt[index] = chunk.usage.prompt_tokens
            self.completion[index] = chunk.usage.completion_tokens
            q = chunk.usage.queue_time
            self.queue_time = q if self.queue_time is None else max(self.queue_time, q)
        if chunk.finish_reason is not None:
            self.finish[index] = chunk.finish_reason

    def add_delta(self, index: int, tokens: int, finish_reason: str | None = None, text: str | None = None) -> None:
        """A relayed upstream chunk (no token ids): ``tokens`` generated tokens (an estimate until the usage)."""
        self.keep_text(index, text)
        if tokens:
            now = time.monotonic()
            if self.first_token_at is None:
                self.first_token_at = now
            self.last_token_at = now
            self.completion[index] = self.completion.get(index, 0) + tokens
        if finish_reason is not None:
            self.finish[index] = finish_reason

    def set_usage(self, prompt_tokens: int, completion_tokens: int) -> None:
        """The whole request's usage as an upstream reports it (replaces the per-sequence counts)."""
        self.n = 1
        self.prompt = {0: prompt_tokens}
        self.completion = {0: completion_tokens}

    def set_prompt_tokens(self, tokens: int) -> None:
        """For requests without generated sequences (prompt scoring, embeddings)."""
        self.n = 1
        self.prompt = {0: tokens}

    @property
    def prompt_tokens(self) -> int:
        return sum(v for i, v in self.prompt.items() if i % self.n == 0)

    @property
    def completion_tokens(self) -> int:
        return sum(self.completion.values())

    def usage(self) -> dict[str, int]:
        p, c = self.prompt_tokens, self.completion_tokens
        return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}

    @property
    def finish_reason(self) -> str | None:
        reasons = sorted(set(self.finish.values()))
        return ",".join(reasons) if reasons else None

    @property
    def time_to_first_token(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.arrival

    @property
    def time_per_output_token(self) -> float | None:
        """(last token - first token) / (tokens of the longest sequence - 1), as vLLM's TPOT."""
        longest = max(self.completion.values(), default=0)
        if self.first_token_at is None or self.last_token_at is None or longest < 2:
            return None
        return (self.last_token_at - self.first_token_at) / (longest - 1)


class Ticket:
    """One request's passage through the gateway (see the module docstring)."""

    def __init__(
        self,
        gateway: Gateway,
        *,
        endpoint: str,
        actor: Actor | None,
        request_id: str,
        request_user: str | None,
        stream: bool,
        shadow: bool = False,
    ) -> None:
        self.gateway = gateway
        self.endpoint = endpoint
        self.actor = actor
        self.request_id = request_id
        self.request_user = request_user
        self.stream = stream
        self.shadow = shadow
        self.started_at = time.time()
        self.arrival = time.monotonic()
        self.tally = Tally(self.arrival)
        self.deployment: DeploymentOut | None = None
        self.route: RouteSpec | None = None
        self.cache_hit = False
        self.cache_key: str | None = None
        self.sequences = 1
        self.occupancy = 1  # sequences sharing the engine when this request was admitted (hourly pricing)
        self.cost = 0.0
        self.record: RequestRecord | None = None
        self.body: BaseModel | None = None  # the request, for the texts a monitored deployment keeps
        self._done = False

    # --- what the request is ------------------------------------------------------------------------------
    def bind(self, deployment: DeploymentOut, route: RouteSpec) -> None:
        self.deployment, self.route = deployment, route
        if deployment.spec.monitoring.capture_text and self.endpoint != "embeddings":
            self.tally.texts = {}

    @property
    def subjects(self) -> dict[str, str]:
        return subjects_of(self.actor)

    @property
    def currency(self) -> str:
        return self.deployment.spec.pricing.currency if self.deployment else "USD"

    @property
    def done(self) -> bool:
        return self._done

    @property
    def needs_occupancy(self) -> bool:
        return bool(self.deployment and self.deployment.spec.pricing.hourly)

    def headers(self) -> dict[str, str]:
        """The cost headers of a finished, non-streamed response (and the cache header when caching is on)."""
        out = {COST_HEADER: format_cost(self.cost), CURRENCY_HEADER: self.currency}
        out.update(self.cache_headers())
        return out

    def cache_headers(self) -> dict[str, str]:
        if self.deployment is None or not self.deployment.spec.response_cache:
            return {}
        return {CACHE_HEADER: "hit" if self.cache_hit else ("miss" if self.cache_key else "bypass")}

    # --- the end ------------------------------------------------------------------------------------------
    def finish(self, status: int = 200, error: str | None = None) -> float:
        """Settle tokens and cost, emit the record; returns the cost. Idempotent; never awaits or raises."""
        if self._done:
            return self.cost
        self._done = True
        try:
            return self._finish(status, error)
        except Exception:  # accounting must never break a response
            log.exception("request %s: accounting failed", self.request_id)
            return self.cost
        finally:
            if not self.shadow:
                self.gateway._left()

    def fail(self, exc: BaseException) -> None:
        status, code = outcome(exc)
        self.finish(status, code)

    def _finish(self, status: int, error: str | None) -> float:
        finished = time.monotonic()
        deployment, route, tally = self.deployment, self.route, self.tally
        if deployment is None or route is None:
            return 0.0  # refused before a deployment was known (unknown model): nothing to account
        spec = deployment.spec
        charged = not self.cache_hit and status != 429
        if charged and (tally.prompt_tokens or tally.completion_tokens):
            busy = 0.0
            if spec.pricing.hourly:
                end = tally.last_token_at or finished
                in_engine = max(0.0, end - self.arrival - (tally.queue_time or 0.0))
                busy = in_engine * min(1.0, self.sequences / max(1, self.occupancy))
            self.cost = request_cost(
                spec.pricing,
                prompt_tokens=tally.prompt_tokens,
                completion_tokens=tally.completion_tokens,
                busy_seconds=busy,
            )
            if not self.shadow:
                self.gateway._settle(self, tally.prompt_tokens + tally.completion_tokens, self.cost)
        self.record = RequestRecord(
            request_id=self.request_id,
            deployment=deployment.name,
            endpoint=self.endpoint,
            route=route.name,
            version=route.version,
            revision=deployment.revision,
            mode=route.mode,
            key_prefix=self.subjects.get("key"),
            user=self.actor.name if self.actor else None,
            request_user=self.request_user,
            stream=self.stream,
            status=status,
            error=error,
            finish_reason=tally.finish_reason if status < 400 or status == CLIENT_CLOSED else None,
            prompt_tokens=tally.prompt_tokens,
            completion_tokens=tally.completion_tokens,
            queue_time=tally.queue_time,
            time_to_first_token=tally.time_to_first_token,
            time_per_output_token=tally.time_per_output_token,
            latency=finished - self.arrival,
            cost=self.cost,
            currency=spec.pricing.currency,
            cache_hit=self.cache_hit,
            started_at=self.started_at,
            finished_at=self.started_at + (finished - self.arrival),
            text=self._captured() if tally.texts is not None else None,
            policy=spec.monitoring,
        )
        self.gateway.metrics.observe(self.record)
        self.gateway.sink.emit(self.record)
        return self.cost

    def _captured(self) -> CapturedText:
        prompt: str | None = None
        messages: list[dict[str, str]] | None = None
        body = self.body
        if isinstance(body, ChatCompletionRequest):
            messages = [{"role": m.role, "content": m.text()} for m in body.messages]
            users = [m["content"] for m in messages if m["role"] == "user"]
            prompt = users[-1] if users else messages[-1]["content"]
        elif isinstance(body, CompletionRequest):
            texts = [p for p in body.prompts() if isinstance(p, str)]
            prompt = "\n\n".join(texts) if texts else None  # token-id prompts are not kept as text
        return CapturedText(prompt=prompt, messages=messages, completion=self.tally.completion_text())


class Gateway:
    """Policies, cache, records, metrics and drain of one gateway process (see the module docstring)."""

    def __init__(
        self,
        counters: Counters | None = None,
        *,
        sink: RecordSink | None = None,
        metrics: ServingMetrics | None = None,
        cache_ttl: float = 3600.0,
        clock: Callable[[], float] = time.time,
        ledger: Ledger | None = None,
    ) -> None:
        self.counters: Counters = counters if counters is not None else MemoryCounters()
        self.limiter = RateLimiter(self.counters, clock=clock)
        self.budgets = BudgetGuard(self.counters, clock=clock, ledger=ledger)
        self.sink: RecordSink = sink if sink is not None else NullSink()
        self.metrics = metrics or ServingMetrics()
        self.cache_ttl = cache_ttl
        # In-process counters are a dict under a lock: call them inline. Anything else (Redis) does network
        # I/O, which must not run on the event loop.
        self.inline = isinstance(self.counters, MemoryCounters)
        self.in_flight = 0
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._background: set[asyncio.Task[Any]] = set()
        self._engines: list[EngineSample] = []
        self.metrics.bind(self.state)

    # --- requests -----------------------------------------------------------------------------------------
    def open(self, endpoint: str, actor: Actor, request_id: str, *, request_user: str | None, stream: bool) -> Ticket:
        if self.draining:
            raise Unavailable(
                "the gateway is shutting down and takes no new requests; retry on another replica",
                details={"code": "server_shutting_down", "retry_after": 1},
            )
        self.in_flight += 1
        self._idle.clear()
        return Ticket(
            self, endpoint=endpoint, actor=actor, request_id=request_id, request_user=request_user, stream=stream
        )

    def shadow_ticket(self, parent: Ticket, deployment: DeploymentOut, route: RouteSpec) -> Ticket:
        ticket = Ticket(
            self,
            endpoint=parent.endpoint,
            actor=parent.actor,
            request_id=parent.request_id,
            request_user=parent.request_user,
            stream=False,
            shadow=True,
        )
        ticket.bind(deployment, route)
        return ticket

    def _left(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)
        if self.in_flight == 0:
            self._idle.set()

    async def admit(self, ticket: Ticket) -> None:
        """Budget, then rate limits, for the ticket's deployment; ``QuotaExceeded`` (429) when refused."""
        deployment = ticket.deployment
        assert deployment is not None
        spec = deployment.spec
        limit = spec.rate_limit
        if spec.budget is None and limit.requests_per_minute is None and limit.tokens_per_minute is None:
            return
        subjects = ticket.subjects

        def check() -> None:
            self.budgets.check(deployment.name, subjects, spec.budget)
            self.limiter.admit(deployment.name, subjects, limit)

        try:
            await self._run(check)
        except QuotaExceeded as exc:
            code = exc.details.get("code") if isinstance(exc.details, dict) else None
            self.metrics.refused.labels(deployment.name, str(code or "rate_limit_exceeded")).inc()
            raise

    def _settle(self, ticket: Ticket, tokens: int, cost: float) -> None:
        deployment = ticket.deployment
        assert deployment is not None
        spec, subjects = deployment.spec, ticket.subjects

        def settle() -> None:
            self.limiter.record_tokens(deployment.name, subjects, spec.rate_limit, tokens)
            self.budgets.charge(deployment.name, subjects, spec.budget, cost)

        if spec.rate_limit.tokens_per_minute is None and (spec.budget is None or cost <= 0):
            return
        if self.inline:
            try:
                settle()
            except Exception:
                log.exception("request %s: could not count tokens and cost", ticket.request_id)
            return
        self._spawn(asyncio.to_thread(settle), f"request {ticket.request_id}: counting tokens and cost")

    # --- response cache -----------------------------------------------------------------------------------
    async def lookup(self, ticket: Ticket, req: BaseModel) -> CachedResponse | None:
        """The cached response for ``req`` when the deployment caches and the request is deterministic."""
        deployment, route = ticket.deployment, ticket.route
        if deployment is None or route is None or not deployment.spec.response_cache or not cacheable(req):
            return None
        key = ticket.cache_key = cache_key(ticket.endpoint, deployment.name, route.version, req)
        try:
            data = await self._run(lambda: self.counters.get_value(key))
        except Exception as exc:
            log.warning("response cache: lookup failed (%s); serving without it", exc)
            return None
        cached = CachedResponse.decode(data) if data is not None else None
        self.metrics.cache.labels(deployment.name, "hit" if cached else "miss").inc()
        if cached is not None:
            ticket.cache_hit = True
            ticket.tally.set_prompt_tokens(cached.prompt_tokens)
            ticket.tally.completion = {0: cached.completion_tokens}
        return cached

    def store(self, ticket: Ticket, body: dict[str, Any]) -> None:
        """Keep a finished, successful response for the ticket's cache key (in the background)."""
        key, deployment = ticket.cache_key, ticket.deployment
        if key is None or deployment is None or ticket.cache_hit or "abort" in ticket.tally.finish.values():
            return
        data = CachedResponse(body, ticket.tally.prompt_tokens, ticket.tally.completion_tokens).encode()
        if len(data) > MAX_BYTES:
            return
        self.metrics.cache.labels(deployment.name, "store").inc()
        if self.inline:
            self.counters.set_value(key, data, ttl_seconds=self.cache_ttl)
            return
        self._spawn(
            asyncio.to_thread(self.counters.set_value, key, data, ttl_seconds=self.cache_ttl), "response cache: store"
        )

    # --- lifecycle ----------------------------------------------------------------------------------------
    def begin_drain(self) -> None:
        if not self.draining:
            self.draining = True
            log.info("gateway draining: %d request(s) in flight; new requests get 503", self.in_flight)

    async def drain(self, timeout: float) -> bool:
        """Refuse new requests, wait up to ``timeout`` seconds for those in flight; True when none is left."""
        self.begin_drain()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            log.warning("gateway drain: %d request(s) still in flight after %.0f s; stopping", self.in_flight, timeout)
            return False
        finally:
            await self.wait_background(1.0)
        return True

    async def wait_background(self, timeout: float = 5.0) -> None:
        """Wait for background counter writes (tests; shutdown)."""
        if self._background:
            await asyncio.wait(list(self._background), timeout=timeout)

    def _spawn(self, coro: Any, what: str) -> None:
        async def guarded() -> None:
            try:
                await coro
            except Exception as exc:
                log.warning("%s failed: %s", what, exc)

        task = asyncio.get_running_loop().create_task(guarded())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _run(self, fn: Callable[[], Any]) -> Any:
        return fn() if self.inline else await asyncio.to_thread(fn)

    # --- metrics ------------------------------------------------------------------------------------------
    async def sample_engines(self, entries: list[Any]) -> None:
        """Read every engine's health for the scrape-time gauges (``entries``: the manager's engine entries)."""
        samples = []
        for entry in entries:
            key = entry.key
            engine = entry.engine
            health = None
            if engine is not None:
                try:
                    health = await engine.health()
                except Exception:  # a dying engine: report it as not ready
                    health = None
            samples.append(
                EngineSample(
                    engine=key.label,
                    version=key.version or "",
                    kind=key.engine,
                    state=entry.state if health is None or health.ready else "failed",
                    running=getattr(health, "running", 0),
                    waiting=getattr(health, "waiting", 0),
                    max_batch_size=getattr(health, "max_batch_size", 0),
                    steps=getattr(health, "steps", 0),
                )
            )
        self._engines = samples

    async def scrape(self, entries: list[Any]) -> bytes:
        """The Prometheus exposition, with the engine gauges sampled now."""
        await self.sample_engines(entries)
        return self.metrics.exposition()

    def state(self) -> GatewayState:
        counters: Any = self.counters
        degraded = getattr(counters, "degraded", None)
        fallbacks = getattr(counters, "fallbacks", None)
        return GatewayState(
            engines=list(self._engines),
            counters_degraded=degraded if isinstance(degraded, bool) else None,
            counters_fallbacks=fallbacks if isinstance(fallbacks, int) else None,
            records_dropped=int(getattr(self.sink, "dropped", 0)),
            records_pending=int(getattr(self.sink, "pending", 0)),
            records_failed=dict(getattr(self.sink, "failed_by", {})),
            in_flight=self.in_flight,
            draining=self.draining,
        )


__all__ = [
    "CACHE_HEADER",
    "CLIENT_CLOSED",
    "COST_HEADER",
    "CURRENCY_HEADER",
    "Gateway",
    "Tally",
    "Ticket",
    "format_cost",
    "outcome",
    "subjects_of",
]
