"""The load generator (``llmops.serving.loadgen``) and ``llmops bench serve``.

Metrics are checked against hand-computed values from fixed timestamps (no wall-clock assertions); the
request machinery against a small FastAPI server in this process whose behaviour each prompt selects (token
count, a status, an error event) and which counts requests in flight itself, so the concurrency cap is
checked on the server's side; the command against the stand-in OpenAI server (``standin_server.py``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from typer.testing import CliRunner, Result

from llmops.cli.main import app as cli_app
from llmops.errors import InvalidInput
from llmops.serving.loadgen import (
    LoadGenerator,
    RequestResult,
    RssSampler,
    Sampling,
    Target,
    arrival_offsets,
    parse_rate,
    percentile,
    read_rss,
    status_class,
    summarize,
    synthetic_prompts,
)
from tests.conftest import free_port
from tests.serving import server as server_module
from tests.serving.conftest import run

STANDIN = Path(__file__).with_name("standin_server.py")


# --- metrics from known timestamps -----------------------------------------------------------------------------
def chunk(text: str | None = None, *, chat: bool = True, finish: str | None = None, role: bool = False) -> str:
    if chat:
        delta: dict[str, Any] = {"role": "assistant"} if role else ({"content": text} if text is not None else {})
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
    else:
        choice = {"index": 0, "text": text or "", "finish_reason": finish}
    return json.dumps({"choices": [choice]})


def usage(prompt: int, completion: int) -> str:
    return json.dumps({"choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion}})


def replay(events: list[tuple[float, str]], start: float, end: float, status: int = 200) -> RequestResult:
    result = RequestResult(index=0, start=start, status=status)
    for now, data in events:
        result.on_event(data, now)
    result.on_end(end)
    return result


def test_one_chat_stream_from_known_timestamps() -> None:
    r = replay(
        [
            (10.05, chunk(role=True)),  # the role chunk carries no text: not the first token
            (10.10, chunk("Hel")),
            (10.15, chunk("lo")),
            (10.30, chunk(" you")),
            (10.31, chunk(finish="length")),
            (10.32, usage(5, 3)),
            (10.33, "[DONE]"),
        ],
        start=10.0,
        end=10.33,
    )
    assert r.ok and r.complete and r.role == "assistant" and r.finish_reason == "length"
    assert r.text == "Hello you" and r.prompt_tokens == 5 and r.output_tokens == 3
    assert r.ttft == pytest.approx(0.10)
    assert r.itl == pytest.approx([0.05, 0.15])
    assert r.e2el == pytest.approx(0.33)
    assert r.tpot == pytest.approx((0.33 - 0.10) / 2)  # the first token excluded


def test_completion_stream_without_usage_counts_chunks() -> None:
    r = replay([(1.2, chunk("a", chat=False)), (1.5, chunk("b", chat=False, finish="stop"))], start=1.0, end=1.6)
    assert r.ok and r.output_tokens == 2 and r.prompt_tokens == 0
    assert r.ttft == pytest.approx(0.2) and r.itl == pytest.approx([0.3]) and r.e2el == pytest.approx(0.6)
    assert not r.complete  # no [DONE]


def test_broken_streams_are_failures() -> None:
    error = json.dumps({"error": {"message": "engine died", "type": "InternalServerError"}})
    died = replay([(1.1, chunk("a")), (1.2, error)], start=1.0, end=1.3)
    assert not died.ok and died.error is not None and "engine died" in died.error
    empty = replay([(1.1, chunk(role=True)), (1.2, chunk(finish="stop")), (1.3, "[DONE]")], start=1.0, end=1.3)
    assert not empty.ok and empty.error == "the stream ended without generated text"
    garbage = replay([(1.1, "{not json")], start=1.0, end=1.2)
    assert not garbage.ok and garbage.error is not None and garbage.error.startswith("not JSON")
    one = replay([(1.1, chunk("a")), (1.2, usage(2, 1))], start=1.0, end=1.2)
    assert one.ok and one.tpot is None  # one token: no time per output token


def test_percentile_interpolates_like_numpy() -> None:
    values = [40.0, 10.0, 30.0, 20.0]
    assert percentile(values, 0) == 10.0 and percentile(values, 100) == 40.0
    assert percentile(values, 50) == 25.0
    assert percentile(values, 99) == pytest.approx(30.0 + 0.97 * 10.0)  # rank 2.97 of 0..3
    assert percentile([7.0], 99) == 7.0 and percentile([], 50) == 0.0
    with pytest.raises(InvalidInput):
        percentile(values, 101)


def test_summary_of_a_run_by_hand() -> None:
    a = replay([(0.1, chunk("x")), (0.3, chunk("y")), (0.4, usage(4, 3))], start=0.0, end=0.5)
    b = replay([(1.2, chunk("x")), (1.3, chunk("y")), (1.45, usage(6, 5))], start=1.0, end=1.6)
    c = replay([(2.3, chunk("x")), (2.35, usage(2, 1))], start=2.0, end=2.4)
    limited = RequestResult(index=3, status=429, retry_after="2", error="HTTP 429: queue full")
    bare = RequestResult(index=4, status=429, error="HTTP 429: queue full")
    broken = RequestResult(index=5, status=503, error="HTTP 503: down")
    refused = RequestResult(index=6, status=None, error="ConnectError: refused")
    bad = RequestResult(index=7, status=400, error="HTTP 400: bad")
    s = summarize([a, b, c, limited, bare, broken, refused, bad], duration=4.0, max_in_flight=3)
    assert (s.completed, s.failed) == (3, 5)
    assert s.total_output_tokens == 9 and s.total_input_tokens == 12
    assert s.request_throughput == pytest.approx(0.75)
    assert s.output_throughput == pytest.approx(9 / 4)
    assert s.total_token_throughput == pytest.approx(21 / 4)
    # TTFT 100, 200, 300 ms
    assert (s.ttft.mean, s.ttft.median) == pytest.approx((200.0, 200.0))
    assert s.ttft.percentiles[99.0] == pytest.approx(200 + 0.98 * 100)
    assert s.ttft.std == pytest.approx(statistics.pstdev([100.0, 200.0, 300.0]))
    # ITL: a has 200 ms, b 100 ms, c none
    assert (s.itl.mean, s.itl.median) == pytest.approx((150.0, 150.0))
    # TPOT: a (500-100)/2 = 200 ms, b (600-200)/4 = 100 ms; c has one token and is left out
    assert (s.tpot.mean, s.tpot.median) == pytest.approx((150.0, 150.0))
    assert s.tpot.percentiles[99.0] == pytest.approx(100 + 0.99 * 100)
    # E2EL 500, 600, 400 ms
    assert (s.e2el.mean, s.e2el.median) == pytest.approx((500.0, 500.0))
    assert s.status_counts == {"2xx": 3, "429": 2, "5xx": 1, "other": 2}
    assert s.statuses == {"200": 3, "400": 1, "429": 2, "503": 1, "none": 1}
    assert s.retry_after_missing == 1 and s.max_in_flight == 3
    assert s.errors == ["HTTP 429: queue full", "HTTP 503: down", "ConnectError: refused", "HTTP 400: bad"]
    out = s.to_json()
    for key in ("mean_ttft_ms", "median_ttft_ms", "p99_ttft_ms", "std_ttft_ms", "mean_tpot_ms", "p99_itl_ms"):
        assert key in out
    assert out["median_e2el_ms"] == pytest.approx(500.0) and out["output_throughput"] == pytest.approx(2.25)
    assert json.loads(json.dumps(out)) == out
    with pytest.raises(InvalidInput):
        summarize([a], duration=0)


def test_empty_series_report_zero() -> None:
    s = summarize([RequestResult(index=0, status=500, error="HTTP 500")], duration=1.0)
    assert s.completed == 0 and s.ttft.mean == 0.0 and s.tpot.percentiles[99.0] == 0.0 and s.output_throughput == 0


def test_status_classes() -> None:
    assert [status_class(x) for x in (200, 204, 429, 500, 503, 404, None)] == [
        "2xx",
        "2xx",
        "429",
        "5xx",
        "5xx",
        "other",
        "other",
    ]


# --- arrivals and prompts ---------------------------------------------------------------------------------------
def test_poisson_arrivals_are_seeded_with_the_right_mean() -> None:
    first = arrival_offsets(20_000, 4.0, seed=7)
    assert first == arrival_offsets(20_000, 4.0, seed=7)
    assert first != arrival_offsets(20_000, 4.0, seed=8)
    gaps = [b - a for a, b in zip([0.0, *first], first, strict=False)]
    assert all(g >= 0 for g in gaps) and first == sorted(first)
    assert statistics.fmean(gaps) == pytest.approx(0.25, rel=0.03)
    # exponential gaps: standard deviation equals the mean (coefficient of variation 1)
    assert statistics.pstdev(gaps) / statistics.fmean(gaps) == pytest.approx(1.0, rel=0.05)
    # burstiness 4: gamma with shape 4, same mean, coefficient of variation 1/2
    smooth = arrival_offsets(20_000, 4.0, seed=7, burstiness=4.0)
    sgaps = [b - a for a, b in zip([0.0, *smooth], smooth, strict=False)]
    assert statistics.fmean(sgaps) == pytest.approx(0.25, rel=0.03)
    assert statistics.pstdev(sgaps) / statistics.fmean(sgaps) == pytest.approx(0.5, rel=0.05)
    assert arrival_offsets(3, math.inf, seed=1) == [0.0, 0.0, 0.0]
    for n, rate in ((3, 0.0), (3, -1.0), (-1, 1.0)):
        with pytest.raises(InvalidInput):
            arrival_offsets(n, rate, seed=0)
    with pytest.raises(InvalidInput):
        arrival_offsets(3, 1.0, seed=0, burstiness=0)


def test_prompts_and_rates() -> None:
    prompts = synthetic_prompts(50, seed=3)
    assert prompts == synthetic_prompts(50, seed=3) and prompts != synthetic_prompts(50, seed=4)
    assert all(8 <= len(p.split()) <= 24 for p in prompts)
    assert parse_rate("inf") == math.inf and parse_rate("2.5") == 2.5
    for bad in ("0", "-1", "fast", "nan"):
        with pytest.raises(InvalidInput):
            parse_rate(bad)
    with pytest.raises(InvalidInput):
        Target("127.0.0.1:8080", "m")
    with pytest.raises(InvalidInput):
        Sampling(max_tokens=0)
    assert Target("http://h:1/v1/", "m", "chat").url == "http://h:1/v1/chat/completions"
    assert Target("http://h:1", "m").url == "http://h:1/v1/completions"


def test_rss_of_this_process() -> None:
    assert read_rss(os.getpid()) > 1024 * 1024
    with RssSampler(os.getpid(), interval=0.01) as sampler:
        while len(sampler.samples) < 6:
            time.sleep(0.01)
    summary = sampler.summary()
    assert summary["samples"] >= 6 and summary["max"] >= summary["first_third_median"] > 0
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    with pytest.raises(OSError):
        read_rss(int(done.stdout))  # exited and reaped


# --- against a server whose behaviour the prompt picks -----------------------------------------------------------
class Counters:
    def __init__(self) -> None:
        self.in_flight = 0
        self.max_in_flight = 0
        self.arrivals: dict[str, float] = {}
        self.capacity: int | None = None


def scripted_app(counters: Counters) -> FastAPI:
    """``/v1/completions`` and ``/v1/chat/completions`` streaming ``max_tokens`` chunks 10 ms apart, unless the
    prompt says ``status:N`` (that status; 429 with ``Retry-After: 1`` unless ``status:429-bare``) or
    ``error-event`` (one token, then an error event). With ``capacity`` set, requests beyond it get 429."""
    app = FastAPI()

    @app.get("/readyz")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    async def handle(request: Request, chat: bool) -> Response:
        body = await request.json()
        prompt = body["messages"][0]["content"] if chat else body["prompt"]
        counters.arrivals[prompt] = time.perf_counter()
        if prompt.startswith("status:"):
            code = prompt.removeprefix("status:")
            headers = {"Retry-After": "1"} if code == "429" else {}
            return JSONResponse({"error": {"message": code}}, status_code=int(code[:3]), headers=headers)
        if counters.capacity is not None and counters.in_flight >= counters.capacity:
            return JSONResponse({"error": {"message": "full"}}, status_code=429, headers={"Retry-After": "1"})
        counters.in_flight += 1
        counters.max_in_flight = max(counters.max_in_flight, counters.in_flight)

        def event(choice: dict[str, Any] | None = None, **extra: Any) -> str:
            return "data: " + json.dumps({"choices": [choice] if choice else [], **extra}) + "\n\n"

        def token(text: str, finish: str | None = None) -> dict[str, Any]:
            if chat:
                return {"index": 0, "delta": {"content": text}, "finish_reason": finish}
            return {"index": 0, "text": text, "finish_reason": finish}

        async def stream() -> AsyncIterator[str]:
            try:
                if chat:
                    yield event({"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None})
                n = body["max_tokens"]
                for i in range(n):
                    await asyncio.sleep(0.01)
                    yield event(token(f" t{i}"))
                    if prompt == "error-event":
                        yield "data: " + json.dumps({"error": {"message": "boom", "code": 500}}) + "\n\n"
                        return
                yield event(token("", "length"))
                if (body.get("stream_options") or {}).get("include_usage"):
                    yield event(usage={"prompt_tokens": len(prompt.split()), "completion_tokens": n})
                yield "data: [DONE]\n\n"
            finally:
                counters.in_flight -= 1

        return StreamingResponse(stream(), media_type="text/event-stream")

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await handle(request, chat=False)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await handle(request, chat=True)

    return app


@pytest.fixture(scope="module")
def scripted() -> Iterator[tuple[str, Counters]]:
    counters = Counters()
    with server_module.serve(scripted_app(counters), timeout=30) as url:
        yield url, counters


def test_concurrency_cap_is_respected_on_the_server(scripted: tuple[str, Counters]) -> None:
    url, counters = scripted
    counters.max_in_flight = 0
    generator = LoadGenerator(Target(url, "m", "chat"), Sampling(max_tokens=4))
    prompts = [f"cap prompt {i}" for i in range(12)]
    done = run(generator.run(prompts, request_rate=math.inf, max_concurrency=3))
    assert 1 <= counters.max_in_flight <= 3 and done.max_in_flight == 3
    s = done.summary()
    assert s.completed == 12 and s.failed == 0 and s.total_output_tokens == 48
    assert all(r.complete and r.role == "assistant" and len(r.itl) == 3 for r in done.results)
    assert [r.index for r in done.results] == list(range(12))
    assert done.results[5].text == " t0 t1 t2 t3"


def test_without_a_cap_everything_is_sent_at_once(scripted: tuple[str, Counters]) -> None:
    url, _ = scripted
    generator = LoadGenerator(Target(url, "m"), Sampling(max_tokens=20))
    done = run(generator.run([f"free prompt {i}" for i in range(150)]))
    assert done.summary().completed == 150
    assert done.max_in_flight == 150  # more than httpx's default pool of 100 connections


def test_poisson_arrivals_are_never_early(scripted: tuple[str, Counters]) -> None:
    url, counters = scripted
    prompts = [f"poisson prompt {i}" for i in range(8)]
    generator = LoadGenerator(Target(url, "m"), Sampling(max_tokens=1))
    began = time.perf_counter()
    done = run(generator.run(prompts, request_rate=20.0, seed=11))
    assert done.summary().completed == 8
    offsets = arrival_offsets(8, 20.0, seed=11)
    received = [counters.arrivals[p] - began for p in prompts]
    assert all(got >= want for got, want in zip(received, offsets, strict=True))


def test_statuses_and_retry_after_are_counted(scripted: tuple[str, Counters]) -> None:
    url, _ = scripted
    prompts = ["ok one", "status:429", "status:429-bare", "status:500", "status:503", "status:400", "error-event"]
    generator = LoadGenerator(Target(url, "m"), Sampling(max_tokens=3))
    done = run(generator.run(prompts, max_concurrency=2))
    s = done.summary()
    assert s.status_counts == {"2xx": 2, "429": 2, "5xx": 2, "other": 1}
    assert s.completed == 1 and s.failed == 6 and s.retry_after_missing == 1
    assert done.results[1].retry_after == "1" and done.results[2].retry_after is None
    assert done.results[6].status == 200 and not done.results[6].ok and "boom" in (done.results[6].error or "")
    assert any("HTTP 500" in e for e in s.errors)


def test_an_unreachable_server_is_counted_not_raised() -> None:
    generator = LoadGenerator(Target(f"http://127.0.0.1:{free_port()}", "m"), Sampling(max_tokens=2), timeout=5)
    s = run(generator.run(["a", "b"])).summary()
    assert s.status_counts["other"] == 2 and s.failed == 2 and s.errors and "ConnectError" in s.errors[0]


def test_closed_loop_clients_back_off_on_429(scripted: tuple[str, Counters]) -> None:
    url, counters = scripted
    counters.capacity, counters.max_in_flight = 2, 0
    try:
        generator = LoadGenerator(Target(url, "m", "chat"), Sampling(max_tokens=5))
        done = run(generator.run_clients(["loop a", "loop b"], clients=6, seconds=1.0, max_retry_wait=0.05))
    finally:
        counters.capacity = None
    s = done.summary()
    assert s.status_counts["2xx"] > 0 and s.status_counts["429"] > 0
    assert s.status_counts["5xx"] == 0 and s.status_counts["other"] == 0
    assert counters.max_in_flight <= 2 and done.max_in_flight <= 6
    assert all(r.complete for r in done.results if r.status == 200)
    assert [r.index for r in done.results] == list(range(len(done.results)))


def test_bad_arguments_are_clear_errors() -> None:
    generator = LoadGenerator(Target("http://127.0.0.1:1", "m"))
    with pytest.raises(InvalidInput):
        run(generator.run([]))
    with pytest.raises(InvalidInput):
        run(generator.run(["x"], max_concurrency=0))
    with pytest.raises(InvalidInput):
        run(generator.run_clients(["x"], clients=0, seconds=1))
    with pytest.raises(InvalidInput):
        Target("http://h", "m", "embeddings")  # type: ignore[arg-type]


# --- the command, over the stand-in server --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def standin_url() -> Iterator[str]:
    port = free_port()
    argv = [sys.executable, str(STANDIN), "serve", "m", "--served-model-name", "standin", "--host", "127.0.0.1"]
    env = {**os.environ, "STANDIN_LOAD_SECONDS": "0", "STANDIN_TOKEN_DELAY": "0.005"}
    proc = subprocess.Popen([*argv, "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "the stand-in did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(10)


def invoke(*args: str) -> Result:
    """The CLI in a worker thread: it runs its own event loop, which the main thread may not allow."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(CliRunner().invoke, cli_app, list(args)).result(timeout=120)


def test_bench_serve_command_writes_vllm_style_json(
    standin_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path / "home"))
    out = tmp_path / "results" / "run.json"
    args = ["bench", "serve", "--base-url", f"{standin_url}/v1", "--model", "standin", "--endpoint", "chat"]
    args += ["--num-prompts", "12", "--request-rate", "50", "--max-concurrency", "4", "--max-tokens", "16"]
    result = invoke(*args, "--seed", "3", "--result-file", str(out))
    assert result.exit_code == 0, result.output
    assert "Serving benchmark result" in result.output and "Median TTFT (ms)" in result.output
    data = json.loads(out.read_text())
    assert data["completed"] == 12 and data["failed"] == 0
    assert data["total_output_tokens"] == 12 * 4  # the stand-in always answers four tokens
    assert data["status_counts"] == {"2xx": 12, "429": 0, "5xx": 0, "other": 0}
    assert data["max_concurrency"] == 4 and data["request_rate"] == 50.0 and data["max_in_flight"] <= 4
    assert data["endpoint"].endswith("/v1/chat/completions") and data["seed"] == 3
    for key in ("mean_ttft_ms", "median_ttft_ms", "p99_ttft_ms", "mean_tpot_ms", "median_itl_ms", "p99_e2el_ms"):
        assert data[key] > 0
    assert data["request_throughput"] > 0 and data["output_throughput"] > 0


def test_bench_serve_command_refuses_bad_arguments(
    standin_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path / "home"))
    base = ["bench", "serve", "--base-url", standin_url, "--model", "standin"]
    for extra, message in (
        (["--request-rate", "0"], "request rate"),
        (["--endpoint", "embeddings"], "--endpoint"),
        (["--max-concurrency", "0"], "--max-concurrency"),
        (["--num-prompts", "0"], "--num-prompts"),
        (["--max-tokens", "0"], "max_tokens"),
    ):
        result = invoke(*base, *extra)
        assert result.exit_code == 1 and message in result.output, (extra, result.output)
    down = invoke("bench", "serve", "--base-url", f"http://127.0.0.1:{free_port()}", "--model", "m", "--warmup", "0")
    assert down.exit_code == 1 and "Failed requests" in down.output
