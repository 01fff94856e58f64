"""A load generator for OpenAI-compatible servers, with the metrics of vLLM's ``vllm bench serve``.

Why it exists: serving claims (continuous batching beats one-at-a-time, the gateway holds under overload,
ours against ``transformers serve``) need numbers that mean the same thing as everyone else's, measured
the same way against any server — ours, vLLM, ``transformers serve``. So the definitions are vLLM's, the
code is ours, and the library is used by ``llmops bench serve``, ``benchmarks/serving_throughput.py`` and
the stress test alike.

Definitions (per request, on the client's clock, from the moment the request is sent — after the
concurrency cap let it through, as vLLM measures):

- **TTFT**: until the first chunk carrying generated text;
- **ITL**: the gaps between consecutive chunks carrying text (one per chunk: a chunk holding several
  tokens counts once, as in vLLM);
- **E2EL**: until the response is complete (``[DONE]`` or the end of the stream);
- **TPOT**: ``(E2EL - TTFT) / (output_tokens - 1)``, only for requests with more than one output token
  (the first token is excluded);
- output tokens: ``usage.completion_tokens`` of the final usage chunk (``stream_options.include_usage``),
  else the number of text chunks.

Over a run: mean, median, standard deviation and percentiles (linear interpolation, numpy's default) of
each, in milliseconds; ``request_throughput`` = completed requests / duration, ``output_throughput`` =
output tokens of completed requests / duration, ``total_token_throughput`` adds prompt tokens. Empty series
give 0, as vLLM reports them. Arrivals are a gamma process (shape ``burstiness``, mean gap ``1/rate``;
``burstiness == 1`` is Poisson) from a seeded generator, or all at once for ``rate = inf``. vLLM rescales
its sampled gaps so the last arrival lands exactly at ``n / rate``; we keep the raw process.

Besides the open-loop run (a fixed number of prompts at an arrival rate, optionally under a concurrency
cap) there is a closed-loop run (``clients`` workers sending back to back for ``seconds``, waiting out
``Retry-After`` on a 429), which is what a stress test needs; both count HTTP statuses and can sample a
server process's resident memory from ``/proc/<pid>/status`` while running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from llmops.errors import InvalidInput
from llmops.percentiles import percentile

Endpoint = Literal["completions", "chat"]
ENDPOINT_PATHS: dict[str, str] = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}
#: Percentiles reported besides mean and median (vLLM's default is 99 alone).
DEFAULT_PERCENTILES: tuple[float, ...] = (99.0,)
STATUS_CLASSES = ("2xx", "429", "5xx", "other")
#: Error messages kept in a summary (the first of each status).
MAX_ERROR_SAMPLES = 5

#: Words of the synthetic prompts: common English, so byte-level BPE tokenizers see ordinary text.
VOCABULARY = (
    "the a model server request token stream batch queue latency answer question river mountain city "
    "garden music history science story window morning evening friend teacher market ocean forest "
    "light small large quick slow bright quiet happy early late simple careful open warm cold green "
    "write read build test measure explain describe compare remember imagine travel follow begin"
)


# --- per request ----------------------------------------------------------------------------------------------
@dataclass
class RequestResult:
    """What one request did, on the client's clock (seconds; ``None`` when it never happened)."""

    index: int
    start: float = 0.0
    status: int | None = None
    retry_after: str | None = None
    ttft: float | None = None
    itl: list[float] = field(default_factory=list)
    e2el: float | None = None
    prompt_tokens: int = 0
    output_tokens: int = 0
    text_chunks: int = 0
    text: str = ""
    role: str | None = None
    finish_reason: str | None = None
    done: bool = False
    usage_seen: bool = False
    error: str | None = None
    _last: float | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """Answered 200 and streamed generated text to the end without an error event (vLLM's success)."""
        return self.status == 200 and self.error is None and self.ttft is not None and self.e2el is not None

    @property
    def complete(self) -> bool:
        """A well-formed stream: text, a finish reason and ``[DONE]`` (and a role chunk for chat, checked by
        callers that know the endpoint)."""
        return self.ok and self.finish_reason is not None and self.done

    def on_event(self, data: str, now: float) -> None:
        """One server-sent event's ``data`` received at ``now``."""
        if data == "[DONE]":
            self.done = True
            return
        try:
            chunk = json.loads(data)
        except ValueError:
            self.error = f"not JSON in the stream: {data[:200]!r}"
            return
        if not isinstance(chunk, dict):
            self.error = f"unexpected event in the stream: {data[:200]!r}"
            return
        if chunk.get("error"):
            error = chunk["error"]
            self.error = f"error event: {error.get('message', error) if isinstance(error, dict) else error}"
            return
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage_seen = True
            self.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            self.output_tokens = int(usage.get("completion_tokens") or 0)
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta")
            if isinstance(delta, dict):  # chat
                if delta.get("role"):
                    self.role = str(delta["role"])
                text = delta.get("content") or ""
            else:
                text = choice.get("text") or ""
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
            if text:
                self._token(str(text), now)

    def _token(self, text: str, now: float) -> None:
        if self._last is None:
            self.ttft = now - self.start
        else:
            self.itl.append(now - self._last)
        self._last = now
        self.text_chunks += 1
        self.text += text

    def on_end(self, now: float) -> None:
        """The stream closed at ``now``."""
        if self.status == 200 and self.error is None:
            if self.ttft is None:
                self.error = "the stream ended without generated text"
            else:
                self.e2el = now - self.start
                if not self.usage_seen:
                    self.output_tokens = self.text_chunks

    @property
    def tpot(self) -> float | None:
        """Time per output token after the first; ``None`` for one token or a failed request."""
        if not self.ok or self.output_tokens <= 1:
            return None
        assert self.e2el is not None and self.ttft is not None
        return (self.e2el - self.ttft) / (self.output_tokens - 1)


def status_class(status: int | None) -> str:
    """``2xx``, ``429``, ``5xx`` or ``other`` (other 4xx, and no HTTP answer at all)."""
    if status is None:
        return "other"
    if 200 <= status < 300:
        return "2xx"
    if status == 429:
        return "429"
    if 500 <= status < 600:
        return "5xx"
    return "other"


# --- statistics -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stats:
    """Mean, median, population standard deviation and percentiles of a series, in milliseconds."""

    mean: float
    median: float
    std: float
    percentiles: dict[float, float]

    @classmethod
    def of(cls, seconds: Sequence[float], percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> Stats:
        ms = [s * 1000 for s in seconds]
        if not ms:
            return cls(0.0, 0.0, 0.0, {p: 0.0 for p in percentiles})
        spread = {p: percentile(ms, p) for p in percentiles}
        return cls(statistics.fmean(ms), statistics.median(ms), statistics.pstdev(ms), spread)


def _pword(p: float) -> str:
    return str(int(p)) if int(p) == p else str(p)


@dataclass(frozen=True)
class Summary:
    """A run's figures, named as vLLM names them in its JSON (see the module docstring)."""

    completed: int
    failed: int
    duration: float
    total_input_tokens: int
    total_output_tokens: int
    request_throughput: float
    output_throughput: float
    total_token_throughput: float
    ttft: Stats
    tpot: Stats
    itl: Stats
    e2el: Stats
    status_counts: dict[str, int]
    statuses: dict[str, int]
    retry_after_missing: int
    max_in_flight: int
    errors: list[str]
    rss: dict[str, int] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "duration": round(self.duration, 4),
            "completed": self.completed,
            "failed": self.failed,
            "total_input_tokens": self.total_input_tokens,
            "total_output_tokens": self.total_output_tokens,
            "request_throughput": round(self.request_throughput, 4),
            "output_throughput": round(self.output_throughput, 4),
            "total_token_throughput": round(self.total_token_throughput, 4),
        }
        for name in ("ttft", "tpot", "itl", "e2el"):
            stats: Stats = getattr(self, name)
            out[f"mean_{name}_ms"] = round(stats.mean, 4)
            out[f"median_{name}_ms"] = round(stats.median, 4)
            out[f"std_{name}_ms"] = round(stats.std, 4)
            for p, value in stats.percentiles.items():
                out[f"p{_pword(p)}_{name}_ms"] = round(value, 4)
        out["status_counts"] = dict(self.status_counts)
        out["statuses"] = dict(self.statuses)
        out["retry_after_missing"] = self.retry_after_missing
        out["max_in_flight"] = self.max_in_flight
        out["errors"] = list(self.errors)
        if self.rss is not None:
            out["rss_bytes"] = dict(self.rss)
        return out


def summarize(
    results: Sequence[RequestResult],
    duration: float,
    *,
    max_in_flight: int = 0,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    rss: dict[str, int] | None = None,
) -> Summary:
    """The run's figures from its requests and its wall-clock ``duration`` in seconds."""
    if duration <= 0:
        raise InvalidInput(f"a run's duration must be positive, not {duration}")
    done = [r for r in results if r.ok]
    ttfts = [r.ttft for r in done if r.ttft is not None]
    e2els = [r.e2el for r in done if r.e2el is not None]
    tpots = [t for t in (r.tpot for r in done) if t is not None]
    itls = [gap for r in done for gap in r.itl]
    output = sum(r.output_tokens for r in done)
    prompt = sum(r.prompt_tokens for r in done)
    classes = Counter(status_class(r.status) for r in results)
    exact = Counter("none" if r.status is None else str(r.status) for r in results)
    first_by_status: dict[int | None, str] = {}  # one message per status, so a rare failure is not crowded out
    for r in results:
        if not r.ok and r.error and r.status not in first_by_status and len(first_by_status) < MAX_ERROR_SAMPLES:
            first_by_status[r.status] = r.error
    errors = list(first_by_status.values())
    return Summary(
        completed=len(done),
        failed=len(results) - len(done),
        duration=duration,
        total_input_tokens=prompt,
        total_output_tokens=output,
        request_throughput=len(done) / duration,
        output_throughput=output / duration,
        total_token_throughput=(prompt + output) / duration,
        ttft=Stats.of(ttfts, percentiles),
        tpot=Stats.of(tpots, percentiles),
        itl=Stats.of(itls, percentiles),
        e2el=Stats.of(e2els, percentiles),
        status_counts={name: classes.get(name, 0) for name in STATUS_CLASSES},
        statuses=dict(sorted(exact.items())),
        retry_after_missing=sum(1 for r in results if r.status == 429 and r.retry_after is None),
        max_in_flight=max_in_flight,
        errors=errors,
        rss=rss,
    )


# --- workload ------------------------------------------------------------------------------------------------
def arrival_offsets(n: int, rate: float, *, seed: int, burstiness: float = 1.0) -> list[float]:
    """When each of ``n`` requests is sent, in seconds from the start: gaps drawn from a gamma distribution
    with shape ``burstiness`` and mean ``1 / rate`` (exponential, i.e. Poisson arrivals, for burstiness 1);
    all zero for ``rate = inf``. The same seed gives the same schedule."""
    if n < 0:
        raise InvalidInput(f"the number of requests must not be negative, not {n}")
    if not rate > 0:
        raise InvalidInput(f"the request rate must be positive (or inf), not {rate}")
    if not burstiness > 0:
        raise InvalidInput(f"burstiness must be positive, not {burstiness}")
    if math.isinf(rate):
        return [0.0] * n
    rng = random.Random(seed)
    scale = 1.0 / (rate * burstiness)
    out: list[float] = []
    t = 0.0
    for _ in range(n):
        t += rng.gammavariate(burstiness, scale)
        out.append(t)
    return out


def synthetic_prompts(n: int, *, seed: int, min_words: int = 8, max_words: int = 24) -> list[str]:
    """``n`` reproducible prompts of ``min_words..max_words`` common English words."""
    if n < 0 or min_words < 1 or max_words < min_words:
        raise InvalidInput(f"need n >= 0 and 1 <= min_words <= max_words (got {n}, {min_words}, {max_words})")
    rng = random.Random(seed)
    words = VOCABULARY.split()
    return [" ".join(rng.choice(words) for _ in range(rng.randint(min_words, max_words))) for _ in range(n)]


def parse_rate(value: str | float) -> float:
    """A request rate from the command line: a positive number or ``inf``."""
    try:
        rate = float(value)
    except ValueError:
        raise InvalidInput(f"the request rate must be a positive number or inf, not {value!r}") from None
    if not rate > 0:
        raise InvalidInput(f"the request rate must be a positive number or inf, not {value!r}")
    return rate


# --- memory ---------------------------------------------------------------------------------------------------
def read_rss(pid: int) -> int:
    """Resident set size of process ``pid`` in bytes (``VmRSS`` of ``/proc/<pid>/status``)."""
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise InvalidInput(f"process {pid} reports no VmRSS (a kernel thread or a zombie?)")


class RssSampler:
    """Samples a process's RSS every ``interval`` seconds on a daemon thread while in a ``with`` block."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        if interval <= 0:
            raise InvalidInput(f"the sampling interval must be positive, not {interval}")
        read_rss(pid)  # fail now, not silently in the thread
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while True:
            try:
                self.samples.append((time.monotonic(), read_rss(self.pid)))
            except (OSError, InvalidInput):
                return  # the process is gone
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, name=f"rss-{self.pid}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def summary(self) -> dict[str, int]:
        """Bytes: first, last, max, and the medians of the first and last thirds of the samples."""
        values = [v for _, v in self.samples]
        if not values:
            return {}
        third = max(1, len(values) // 3)
        return {
            "samples": len(values),
            "first": values[0],
            "last": values[-1],
            "max": max(values),
            "first_third_median": int(statistics.median(values[:third])),
            "last_third_median": int(statistics.median(values[-third:])),
        }


# --- running --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """An OpenAI-compatible server and the model to ask for. ``base_url`` may end in ``/v1`` or not."""

    base_url: str
    model: str
    endpoint: Endpoint = "completions"
    api_key: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.endpoint not in ENDPOINT_PATHS:
            raise InvalidInput(f"endpoint must be completions or chat, not {self.endpoint!r}")
        if not self.base_url.startswith(("http://", "https://")):
            raise InvalidInput(f"base URL must start with http:// or https://, not {self.base_url!r}")
        if not self.model:
            raise InvalidInput("a model name is required")

    @property
    def url(self) -> str:
        root = self.base_url.rstrip("/").removesuffix("/v1")
        return root + ENDPOINT_PATHS[self.endpoint]

    def request_headers(self) -> dict[str, str]:
        out = dict(self.headers)
        if self.api_key:
            out["Authorization"] = f"Bearer {self.api_key}"
        return out


@dataclass(frozen=True)
class Sampling:
    """What every request asks for. ``ignore_eos`` (vLLM's and llmops' extension) makes each request produce
    exactly ``max_tokens`` tokens on servers that honour it, so runs compare equal work."""

    max_tokens: int = 64
    ignore_eos: bool = True
    temperature: float | None = None
    extra_body: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise InvalidInput(f"max_tokens must be at least 1, not {self.max_tokens}")

    def body(self, target: Target, prompt: str) -> dict[str, Any]:
        body: dict[str, Any] = {"model": target.model, "max_tokens": self.max_tokens, "stream": True}
        body["stream_options"] = {"include_usage": True}
        if target.endpoint == "chat":
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        if self.ignore_eos:
            body["ignore_eos"] = True
        if self.temperature is not None:
            body["temperature"] = self.temperature
        body.update(self.extra_body)
        return body


@dataclass
class LoadRun:
    """A finished run: every request, the wall-clock duration and the most requests seen in flight."""

    results: list[RequestResult]
    duration: float
    max_in_flight: int
    rss: dict[str, int] | None = None

    def summary(self, percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> Summary:
        return summarize(
            self.results, self.duration, max_in_flight=self.max_in_flight, percentiles=percentiles, rss=self.rss
        )


class LoadGenerator:
    """Sends streaming requests to one :class:`Target` (see the module docstring for what is measured).

    ``keep_alive`` reuses connections between requests (off by default, as in vLLM's client); ``clock`` is the
    time source for every timestamp (``time.perf_counter``; tests may pass their own).
    """

    def __init__(
        self,
        target: Target,
        sampling: Sampling | None = None,
        *,
        timeout: float = 600.0,
        keep_alive: bool = False,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if timeout <= 0:
            raise InvalidInput(f"timeout must be positive, not {timeout}")
        self.target = target
        self.sampling = sampling or Sampling()
        self.timeout = timeout
        self.keep_alive = keep_alive
        self.clock = clock
        self._in_flight = 0
        self._max_in_flight = 0

    def _client(self, connections: int | None) -> httpx.AsyncClient:
        # httpx pools 100 connections by default, which would cap concurrency silently: size the pool to the cap.
        # Without keep-alive every request opens its own connection (as vLLM's client does): a pooled connection
        # the server closes for idleness just as a request goes out would otherwise be a spurious failure.
        idle = (connections or 256) if self.keep_alive else 0
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=idle)
        return httpx.AsyncClient(timeout=httpx.Timeout(self.timeout, connect=30.0), limits=limits)

    async def send(self, client: httpx.AsyncClient, prompt: str, index: int = 0) -> RequestResult:
        """One streamed request; never raises for what the server or the network does (it is recorded)."""
        result = RequestResult(index=index)
        body = self.sampling.body(self.target, prompt)
        self._in_flight += 1
        self._max_in_flight = max(self._max_in_flight, self._in_flight)
        result.start = self.clock()
        try:
            async with client.stream("POST", self.target.url, json=body, headers=self.target.request_headers()) as r:
                result.status = r.status_code
                if r.status_code != 200:
                    result.retry_after = r.headers.get("retry-after")
                    detail = (await r.aread()).decode(errors="replace")[:300]
                    result.error = f"HTTP {r.status_code}: {detail}"
                    return result
                async for line in r.aiter_lines():
                    if line.startswith("data:"):
                        result.on_event(line[5:].strip(), self.clock())
                result.on_end(self.clock())
        except httpx.HTTPError as exc:
            result.error = f"{type(exc).__name__}: {exc}"
        finally:
            self._in_flight -= 1
        return result

    def _reset(self) -> None:
        self._in_flight = 0
        self._max_in_flight = 0

    async def warmup(self, prompts: Sequence[str], concurrency: int = 1) -> list[RequestResult]:
        """Send ``prompts`` (not measured), at most ``concurrency`` at a time."""
        if concurrency < 1:
            raise InvalidInput(f"warm-up concurrency must be at least 1, not {concurrency}")
        gate = asyncio.Semaphore(concurrency)
        async with self._client(concurrency) as client:

            async def one(i: int, prompt: str) -> RequestResult:
                async with gate:
                    return await self.send(client, prompt, i)

            out = await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts)))
        self._reset()
        return list(out)

    async def run(
        self,
        prompts: Sequence[str],
        *,
        request_rate: float = math.inf,
        burstiness: float = 1.0,
        seed: int = 0,
        max_concurrency: int | None = None,
        rss_pid: int | None = None,
    ) -> LoadRun:
        """Open loop: prompt ``i`` is sent at its arrival time (see :func:`arrival_offsets`), waiting for a
        place when ``max_concurrency`` requests are already in flight."""
        if not prompts:
            raise InvalidInput("give at least one prompt")
        if max_concurrency is not None and max_concurrency < 1:
            raise InvalidInput(f"max concurrency must be at least 1, not {max_concurrency}")
        offsets = arrival_offsets(len(prompts), request_rate, seed=seed, burstiness=burstiness)
        gate: asyncio.Semaphore | None = asyncio.Semaphore(max_concurrency) if max_concurrency else None
        self._reset()
        with self._sampler(rss_pid) as sampler:
            async with self._client(max_concurrency) as client:

                async def one(i: int, prompt: str) -> RequestResult:
                    if gate is None:
                        return await self.send(client, prompt, i)
                    async with gate:
                        return await self.send(client, prompt, i)

                began = time.perf_counter()
                tasks: list[asyncio.Task[RequestResult]] = []
                for i, (prompt, offset) in enumerate(zip(prompts, offsets, strict=True)):
                    wait = began + offset - time.perf_counter()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    tasks.append(asyncio.create_task(one(i, prompt)))
                results = list(await asyncio.gather(*tasks))
                duration = time.perf_counter() - began
        return LoadRun(results, duration, self._max_in_flight, sampler.summary() if sampler else None)

    async def run_clients(
        self,
        prompts: Sequence[str],
        *,
        clients: int,
        seconds: float,
        max_retry_wait: float = 1.0,
        rss_pid: int | None = None,
    ) -> LoadRun:
        """Closed loop: ``clients`` workers each send one request after another (prompts taken in turn) until
        ``seconds`` have passed; after a 429 a worker waits ``Retry-After`` seconds, at most
        ``max_retry_wait``. Requests in flight at the deadline finish and count."""
        if not prompts:
            raise InvalidInput("give at least one prompt")
        if clients < 1 or seconds <= 0 or max_retry_wait < 0:
            raise InvalidInput("clients must be at least 1, seconds positive and max_retry_wait not negative")
        results: list[RequestResult] = []
        counter = iter(range(1 << 62))
        self._reset()
        with self._sampler(rss_pid) as sampler:
            async with self._client(clients) as client:
                began = time.perf_counter()
                deadline = began + seconds

                async def worker() -> None:
                    while time.perf_counter() < deadline:
                        i = next(counter)
                        result = await self.send(client, prompts[i % len(prompts)], i)
                        results.append(result)
                        if result.status == 429:
                            await asyncio.sleep(min(max_retry_wait, _seconds(result.retry_after, max_retry_wait)))

                await asyncio.gather(*(worker() for _ in range(clients)))
                duration = time.perf_counter() - began
        results.sort(key=lambda r: r.index)
        return LoadRun(results, duration, self._max_in_flight, sampler.summary() if sampler else None)

    @contextlib.contextmanager
    def _sampler(self, pid: int | None) -> Iterator[RssSampler | None]:
        if pid is None:
            yield None
            return
        with RssSampler(pid) as sampler:
            yield sampler


def _seconds(header: str | None, default: float) -> float:
    try:
        return max(0.0, float(header)) if header is not None else default
    except ValueError:
        return default
