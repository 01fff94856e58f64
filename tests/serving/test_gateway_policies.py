"""Gateway policies end to end: rate limits, budgets, cost, the response cache, request records, /metrics and the
graceful drain, through a real uvicorn server and the official ``openai`` client; and two ``llmops serve``
processes sharing one rate limit on the local Redis.

One server per module (an engine takes a second to start): the tiny Llama ``lm:1`` deployed several times, one
deployment per policy so their counters never meet: ``rpm`` (3 requests per minute), ``tpm`` (20 tokens per
minute), ``budget`` (0.005 USD a day per key at 1000 USD per million tokens), ``priced`` (2 and 6 USD per
million prompt and completion tokens), ``cached`` (response cache, on an engine of its own so that its step
count shows engine work), ``shadowed`` (a shadow route taking every request) and ``slow`` (20 ms decode steps,
to disconnect mid-stream).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from llmops.api.app import create_app
from llmops.api.server import DrainingServer
from llmops.platform import Platform
from llmops.security.actor import Actor, local_admin
from llmops.serving.manager import EngineManager, default_factories
from llmops.serving.records import BufferedSink, MemoryWriter, RequestRecord
from llmops.settings import Settings
from tests.conftest import free_port
from tests.serving import server as server_module
from tests.serving.conftest import run
from tests.serving.test_openai_api import gateway_factory

REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass
class Server:
    url: str
    platform: Platform
    manager: EngineManager
    app: Any
    keys: dict[str, str]
    admin: Actor
    records: MemoryWriter
    uv: uvicorn.Server
    thread: threading.Thread

    def client(self, who: str = "alice") -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=self.keys[who], max_retries=0, timeout=60)

    def headers(self, who: str = "alice") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    def post(self, path: str, body: dict[str, Any], who: str = "alice", **headers: str) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body, headers={**self.headers(who), **headers}, timeout=60)

    def record(self, request_id: str, mode: str = "primary", timeout: float = 10.0) -> RequestRecord:
        found: list[RequestRecord] = []

        def seen() -> bool:
            found[:] = [r for r in list(self.records.records) if r.request_id == request_id and r.mode == mode]
            return bool(found)

        wait_for(seen, timeout)
        return found[0]

    def stop(self) -> None:
        self.uv.should_exit = True
        self.thread.join(60)


def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def start(platform: Platform, manager: EngineManager, keys: dict[str, str], admin: Actor) -> Server:
    app = create_app(platform=platform, engines=manager)
    records = MemoryWriter()
    sink: BufferedSink = app.state.records
    sink.writers.append(records)
    sink.flush_interval = 0.02
    drain_seconds = platform.settings.drain_seconds

    def draining(config: uvicorn.Config) -> uvicorn.Server:
        return DrainingServer(config, lambda: app.state.openai.drain(drain_seconds))

    url, uv = server_module.start(app, draining)
    thread = uv.llmops_thread  # type: ignore[attr-defined]
    return Server(url, platform, manager, app, keys, admin, records, uv, thread)


def new_platform(home: Path, llama_dir: Path, **settings: Any) -> tuple[Platform, Actor, dict[str, str]]:
    platform = Platform(Settings(home=home, **settings))
    admin = local_admin()
    platform.registry.import_model(admin, llama_dir, name="lm")
    security = platform.security
    security.create_principal(admin, "alice")
    security.create_principal(admin, "bob")
    keys = {
        "alice": security.create_key(admin, principal="alice").key,
        "bob": security.create_key(admin, principal="bob").key,
    }
    return platform, admin, keys


def manager_for(platform: Platform) -> EngineManager:
    return EngineManager(
        platform.deployments,
        platform.model_cache,
        factories={**default_factories(), "torch": gateway_factory},
        interval=0.2,
        drain_timeout=0.0,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, llama_dir: Path) -> Iterator[Server]:
    platform, admin, keys = new_platform(tmp_path_factory.mktemp("policies"), llama_dir)
    d = platform.deployments
    d.deploy(admin, "rpm", model="lm:1", rate_limit={"requests_per_minute": 3})
    d.deploy(admin, "tpm", model="lm:1", rate_limit={"tokens_per_minute": 20})
    d.deploy(
        admin,
        "budget",
        model="lm:1",
        pricing={"input_per_million": 1000.0, "output_per_million": 1000.0},
        budget={"amount": 0.005, "period": "day", "per": "key"},
    )
    d.deploy(
        admin, "priced", model="lm:1", pricing={"input_per_million": 2.0, "output_per_million": 6.0, "currency": "EUR"}
    )
    d.deploy(admin, "cached", model="lm:1", engine_options={"max_batch_size": 5}, response_cache=True)
    d.deploy(admin, "shadowed", model="lm:1")
    d.set_route(admin, "shadowed", mode="shadow", model="lm:1", percent=100)
    d.deploy(admin, "slow", model="lm:1", engine_options={"max_batch_size": 3})
    srv = start(platform, manager_for(platform), keys, admin)
    yield srv
    srv.stop()
    platform.close()


def engine_steps(server: Server, **options: Any) -> int:
    for entry in server.manager.engine_entries():
        if entry.key.version == "lm:1" and dict(entry.key.options) == options:
            return int(run(entry.engine.health()).steps)
    raise AssertionError(f"no engine with options {options}")


# --- rate limits and budgets -----------------------------------------------------------------------------------
def test_requests_per_minute_refused_with_retry_after(server: Server) -> None:
    client = server.client()
    for i in range(3):  # the request's ``user`` field does not change who is limited: the key and its principal
        client.completions.create(model="rpm", prompt="x", max_tokens=1, user=f"someone-{i}")
    with pytest.raises(openai.RateLimitError) as refused:
        client.completions.create(model="rpm", prompt="x", max_tokens=1, user="someone-else")
    assert refused.value.code == "rate_limit_exceeded" and refused.value.type == "rate_limit_error"
    assert 1 <= int(refused.value.response.headers["retry-after"]) <= 60
    assert "3 requests per minute" in refused.value.message
    server.client("bob").completions.create(model="rpm", prompt="x", max_tokens=1)  # another key and user


def test_tokens_per_minute_count_streamed_tokens(server: Server) -> None:
    client = server.client()
    stream = client.completions.create(
        model="tpm",
        prompt="count my tokens",
        max_tokens=16,
        temperature=0,
        stream=True,
        extra_body={"ignore_eos": True},
    )
    text = "".join(c.choices[0].text for c in stream if c.choices)
    assert text  # 16 tokens and the prompt's: over the 20-token limit once the stream has ended
    with pytest.raises(openai.RateLimitError) as refused:
        client.completions.create(model="tpm", prompt="x", max_tokens=1)
    assert refused.value.code == "rate_limit_exceeded" and "tokens per minute" in refused.value.message


def test_budget_exhausted_is_429_budget_exceeded(server: Server) -> None:
    client = server.client()
    first = client.completions.with_raw_response.create(model="budget", prompt="spend it", max_tokens=4, temperature=0)
    assert float(first.headers["x-llmops-cost"]) >= 0.005  # at least 5 tokens at 0.001 USD each
    with pytest.raises(openai.RateLimitError) as refused:
        client.completions.create(model="budget", prompt="x", max_tokens=1)
    assert refused.value.code == "budget_exceeded" and "daily budget" in refused.value.message
    assert int(refused.value.response.headers["retry-after"]) >= 1
    server.client("bob").completions.create(model="budget", prompt="x", max_tokens=1)  # per key: bob has his own


def test_cost_header_is_tokens_times_prices(server: Server) -> None:
    client = server.client()
    raw = client.completions.with_raw_response.create(model="priced", prompt="what does it cost", max_tokens=6)
    usage = raw.parse().usage
    assert usage is not None
    expected = (usage.prompt_tokens * 2.0 + usage.completion_tokens * 6.0) / 1e6
    assert float(raw.headers["x-llmops-cost"]) == pytest.approx(expected, abs=1e-9)
    assert raw.headers["x-llmops-cost-currency"] == "EUR"
    chat = client.chat.completions.with_raw_response.create(
        model="priced", messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
    cu = chat.parse().usage
    assert cu is not None
    assert float(chat.headers["x-llmops-cost"]) == pytest.approx(
        (cu.prompt_tokens * 2 + cu.completion_tokens * 6) / 1e6
    )

    chunks = list(
        client.chat.completions.create(
            model="priced",
            messages=[{"role": "user", "content": "stream the cost"}],
            max_tokens=5,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    su = chunks[-1].usage
    assert su is not None and su.model_extra is not None
    assert su.model_extra["cost"] == pytest.approx((su.prompt_tokens * 2 + su.completion_tokens * 6) / 1e6)
    assert su.model_extra["cost_currency"] == "EUR"


# --- response cache ---------------------------------------------------------------------------------------------
def test_cache_hit_on_a_repeated_greedy_request(server: Server) -> None:
    client = server.client()
    body: dict[str, Any] = {"model": "cached", "prompt": "cache me", "max_tokens": 6, "temperature": 0}
    first = client.completions.with_raw_response.create(**body)
    assert first.headers["x-llmops-cache"] == "miss" and float(first.headers["x-llmops-cost"]) == 0.0
    steps = engine_steps(server, max_batch_size=5)
    # The same request, fields reordered and a default spelled out: a hit, with no engine work.
    second = server.post(
        "/v1/completions", {"temperature": 0.0, "max_tokens": 6, "prompt": "cache me", "model": "cached", "n": 1}
    )
    assert second.status_code == 200 and second.headers["x-llmops-cache"] == "hit"
    assert engine_steps(server, max_batch_size=5) == steps
    a, b = first.http_response.json(), second.json()
    assert {k: v for k, v in a.items() if k not in ("id", "created")} == {
        k: v for k, v in b.items() if k not in ("id", "created")
    }
    assert b["id"] == f"cmpl-{second.headers['x-request-id']}"  # the hit answers under its own request id
    hit = server.record(second.headers["x-request-id"])
    assert hit.cache_hit and hit.cost == 0 and hit.completion_tokens == a["usage"]["completion_tokens"]

    chat = {"model": "cached", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "seed": 7}
    assert server.post("/v1/chat/completions", chat).headers["x-llmops-cache"] == "miss"
    assert server.post("/v1/chat/completions", chat).headers["x-llmops-cache"] == "hit"  # a fixed seed is deterministic


def test_no_cache_for_sampled_requests_or_streams(server: Server) -> None:
    body = {"model": "cached", "prompt": "sample me", "max_tokens": 4, "temperature": 0.8}
    assert server.post("/v1/completions", body).headers["x-llmops-cache"] == "bypass"
    steps = engine_steps(server, max_batch_size=5)
    again = server.post("/v1/completions", body)
    assert again.headers["x-llmops-cache"] == "bypass" and engine_steps(server, max_batch_size=5) > steps
    greedy = {"model": "cached", "prompt": "cache me", "max_tokens": 6, "temperature": 0}
    streamed = server.post("/v1/completions", {**greedy, "stream": True})
    assert streamed.headers["x-llmops-cache"] == "bypass" and streamed.text.endswith("data: [DONE]\n\n")


# --- request records --------------------------------------------------------------------------------------------
def test_records_for_success_errors_and_streams(server: Server) -> None:
    ok = server.post(
        "/v1/completions", {"model": "priced", "prompt": "record me", "max_tokens": 4, "user": "end-user-7"}
    )
    rec = server.record(ok.headers["x-request-id"])
    usage = ok.json()["usage"]
    assert (rec.deployment, rec.endpoint, rec.route, rec.version, rec.mode) == (
        "priced",
        "completions",
        "primary",
        "lm:1",
        "primary",
    )
    assert rec.status == 200 and rec.error is None and not rec.stream and not rec.cache_hit
    assert (rec.prompt_tokens, rec.completion_tokens) == (usage["prompt_tokens"], usage["completion_tokens"])
    assert rec.user == "alice" and rec.request_user == "end-user-7" and rec.key_prefix
    assert server.keys["alice"].startswith(f"llmops_{rec.key_prefix}_")
    assert rec.cost == pytest.approx(float(ok.headers["x-llmops-cost"]), abs=1e-9) and rec.currency == "EUR"
    assert rec.finish_reason in ("stop", "length") and rec.revision >= 1
    assert rec.queue_time is not None and rec.time_to_first_token is not None and rec.latency >= rec.time_to_first_token
    assert rec.finished_at >= rec.started_at
    if rec.completion_tokens > 1:
        assert rec.time_per_output_token is not None

    too_long = server.post("/v1/completions", {"model": "priced", "prompt": list(range(3, 150)), "max_tokens": 2})
    assert too_long.status_code == 400
    err = server.record(too_long.headers["x-request-id"])
    assert err.status == 400 and err.error == "context_length_exceeded" and err.cost == 0

    stream = server.post(
        "/v1/chat/completions",
        {"model": "priced", "messages": [{"role": "user", "content": "x"}], "max_tokens": 3, "stream": True},
    )
    srec = server.record(stream.headers["x-request-id"])
    assert srec.stream and srec.status == 200 and srec.endpoint == "chat" and srec.completion_tokens >= 1
    assert srec.time_to_first_token is not None and srec.cost > 0

    refused = server.post("/v1/completions", {"model": "rpm", "prompt": "x", "max_tokens": 1})
    if refused.status_code == 429:  # the rpm test ran first in this window
        assert server.record(refused.headers["x-request-id"]).error == "rate_limit_exceeded"


def test_record_for_a_client_that_disconnects(server: Server) -> None:
    steps_before = engine_steps(server, max_batch_size=3)
    rid = f"gone-{uuid.uuid4().hex[:8]}"
    body = {"model": "slow", "prompt": "go", "max_tokens": 100, "stream": True, "ignore_eos": True}
    with (
        httpx.Client(timeout=30) as http,
        http.stream(
            "POST", f"{server.url}/v1/completions", json=body, headers={**server.headers(), "x-request-id": rid}
        ) as r,
    ):
        lines = r.iter_lines()
        next(line for line in lines if line.startswith("data: "))
    rec = server.record(rid)
    assert rec.status == 499 and rec.error == "client_closed" and rec.stream
    assert 1 <= rec.completion_tokens < 100  # what it generated before the client went away is still counted
    assert engine_steps(server, max_batch_size=3) - steps_before < 90


def test_shadow_copies_produce_records(server: Server) -> None:
    rid = f"mirrored-{uuid.uuid4().hex[:8]}"
    out = server.post(
        "/v1/completions", {"model": "shadowed", "prompt": "mirror", "max_tokens": 3}, **{"x-request-id": rid}
    )
    assert out.status_code == 200
    primary, shadow = server.record(rid), server.record(rid, mode="shadow")
    assert primary.mode == "primary" and shadow.mode == "shadow" and shadow.shadow
    assert shadow.route == "shadow" and shadow.status == 200 and shadow.completion_tokens >= 1


# --- metrics ----------------------------------------------------------------------------------------------------
def samples(server: Server) -> dict[str, list[Any]]:
    response = httpx.get(f"{server.url}/metrics")  # public, as vLLM's
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    out: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def test_metrics_after_traffic(server: Server) -> None:
    client = server.client()
    client.completions.create(model="priced", prompt="measure me", max_tokens=5, temperature=0)
    list(client.completions.create(model="priced", prompt="and me", max_tokens=5, stream=True))
    wait_for(
        lambda: any(s.labels.get("deployment") == "priced" for s in samples(server).get("llmops_requests_total", []))
    )
    found = samples(server)
    for histogram in (
        "llmops_request_queue_seconds",
        "llmops_time_to_first_token_seconds",
        "llmops_time_per_output_token_seconds",
        "llmops_e2e_request_latency_seconds",
    ):
        counts = [s for s in found[f"{histogram}_count"] if s.labels == {"deployment": "priced", "version": "lm:1"}]
        assert counts and counts[0].value >= 2, histogram
        assert any(s.labels.get("le") == "+Inf" for s in found[f"{histogram}_bucket"])
    ok = [
        s
        for s in found["llmops_requests_total"]
        if s.labels["deployment"] == "priced" and s.labels["status"] == "200" and s.labels["version"] == "lm:1"
    ]
    assert ok and sum(s.value for s in ok) >= 2 and {s.labels["mode"] for s in ok} == {"primary"}
    for tokens in ("llmops_prompt_tokens_total", "llmops_completion_tokens_total"):
        assert any(
            s.labels == {"deployment": "priced", "version": "lm:1", "mode": "primary"} and s.value > 0
            for s in found[tokens]
        )
    assert any(s.labels["currency"] == "EUR" and s.value > 0 for s in found["llmops_cost_total"])
    assert {s.labels["version"] for s in found["llmops_engine_running"]} == {"lm:1"}
    assert all(s.labels["engine"].startswith("lm:1/torch") for s in found["llmops_engine_max_batch_size"])
    assert found["llmops_records_dropped_total"][0].value == 0
    assert found["llmops_draining"][0].value == 0
    labels = {k for s in found["llmops_requests_total"] for k in s.labels}
    assert labels == {"deployment", "version", "mode", "endpoint", "status"}  # no users, keys or request ids


# --- the sink ---------------------------------------------------------------------------------------------------
def _record(i: int) -> RequestRecord:
    return RequestRecord(
        request_id=f"r{i}", deployment="d", endpoint="completions", route="primary", version="m:1", revision=1,
        mode="primary", key_prefix="k", user="u", request_user=None, stream=False, status=200, error=None,
        finish_reason="stop", prompt_tokens=1, completion_tokens=1, queue_time=0.0, time_to_first_token=0.0,
        time_per_output_token=None, latency=0.0, cost=0.0, currency="USD", cache_hit=False, started_at=0.0,
        finished_at=0.0,
    )  # fmt: skip


def test_a_full_sink_drops_and_counts_without_blocking() -> None:
    class Stuck:
        def __init__(self) -> None:
            self.release = asyncio.Event()
            self.written: list[RequestRecord] = []

        async def write(self, records: Any) -> None:
            await self.release.wait()
            self.written.extend(records)

    async def scenario() -> tuple[BufferedSink, Stuck, float]:
        writer = Stuck()
        sink = BufferedSink([writer], capacity=10, batch_size=4, flush_interval=0.01)
        await sink.start()
        sink.emit(_record(-1))
        await asyncio.sleep(0.05)  # the writer holds the first batch and never returns
        began = time.perf_counter()
        for i in range(10_000):
            sink.emit(_record(i))
        elapsed = time.perf_counter() - began
        writer.release.set()
        await sink.stop(timeout=5)
        return sink, writer, elapsed

    sink, writer, elapsed = run(scenario())
    assert elapsed < 0.5  # 10,000 emits while the writer is stuck: no waiting
    assert sink.dropped == 10_000 - 10 and sink.emitted == 11
    assert len(writer.written) == 11 and sink.pending == 0


# --- graceful drain ---------------------------------------------------------------------------------------------
def test_graceful_drain(tmp_path: Path, llama_dir: Path) -> None:
    platform, admin, keys = new_platform(tmp_path, llama_dir, drain_seconds=20)
    platform.deployments.deploy(admin, "slow", model="lm:1", engine_options={"max_batch_size": 3})
    srv = start(platform, manager_for(platform), keys, admin)
    try:
        body = {"model": "slow", "prompt": "go", "max_tokens": 40, "stream": True, "ignore_eos": True}
        with (
            httpx.Client(timeout=60) as http,
            http.stream("POST", f"{srv.url}/v1/completions", json=body, headers=srv.headers()) as stream,
        ):
            lines = stream.iter_lines()
            next(line for line in lines if line.startswith("data: "))
            srv.uv.should_exit = True  # what SIGTERM does
            wait_for(lambda: srv.app.state.gateway.draining, timeout=5)
            refused = httpx.post(
                f"{srv.url}/v1/completions",
                json={"model": "slow", "prompt": "x", "max_tokens": 1},
                headers=srv.headers(),
            )
            assert refused.status_code == 503 and refused.json()["error"]["code"] == "server_shutting_down"
            assert refused.headers["retry-after"] == "1"
            assert httpx.get(f"{srv.url}/readyz").status_code == 503
            rest = [line for line in lines if line.startswith("data: ")]
        assert rest[-1] == "data: [DONE]"
        finish = [json.loads(x.removeprefix("data: "))["choices"][0]["finish_reason"] for x in rest[:-1]]
        assert finish[-1] == "length"  # the in-flight stream ran to its 40 tokens
        srv.thread.join(30)
        assert not srv.thread.is_alive()
    finally:
        srv.stop()
        platform.close()


# --- two gateway processes, one limit on Redis ----------------------------------------------------------------
def test_two_gateways_share_one_limit_on_redis(tmp_path: Path, llama_dir: Path) -> None:
    name = f"shared-{uuid.uuid4().hex[:8]}"  # counters of earlier runs live on in Redis
    platform, admin, keys = new_platform(tmp_path, llama_dir)
    platform.deployments.deploy(admin, name, model="lm:1", rate_limit={"requests_per_minute": 4})
    platform.close()
    env = {
        **os.environ,
        "LLMOPS_HOME": str(tmp_path),
        "LLMOPS_REDIS_URL": REDIS_URL,
        "LLMOPS_LOG_LEVEL": "WARNING",
        "LLMOPS_REQUEST_LOG": "false",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    ports = [free_port(), free_port()]
    llmops = str(Path(sys.executable).parent / "llmops")
    procs = [
        subprocess.Popen(
            [llmops, "serve", "--port", str(p)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        for p in ports
    ]
    try:
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        deadline = time.monotonic() + 180
        for url, proc in zip(urls, procs, strict=True):
            while True:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "exited"
                try:
                    if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "a gateway did not become ready"
                time.sleep(0.2)
        left = 60 - time.time() % 60
        if left < 3:  # stay inside one fixed minute window
            time.sleep(left + 0.2)
        statuses: dict[str, list[int]] = {url: [] for url in urls}
        for i in range(10):
            url = urls[i % 2]
            r = httpx.post(
                f"{url}/v1/completions",
                json={"model": name, "prompt": "x", "max_tokens": 1},
                headers={"Authorization": f"Bearer {keys['alice']}"},
                timeout=60,
            )
            statuses[url].append(r.status_code)
        admitted = sum(s.count(200) for s in statuses.values())
        assert admitted == 4, statuses  # not 4 per process
        assert all(s.count(200) == 2 for s in statuses.values()) and sum(s.count(429) for s in statuses.values()) == 6
        metrics = httpx.get(f"{urls[0]}/metrics").text
        assert "llmops_counters_degraded 0.0" in metrics
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


# --- units ------------------------------------------------------------------------------------------------------
def test_hourly_cost_shares_engine_time_and_cost_format() -> None:
    import datetime as dt

    from llmops.security.roles import Role
    from llmops.serving.deployments.schemas import DeploymentOut, DeploymentSpec, Pricing, RouteSpec
    from llmops.serving.gateway import Gateway, format_cost

    route = RouteSpec(name="primary", mode="primary", model="m:1", version="m:1")
    now = dt.datetime.now(dt.UTC)
    deployment = DeploymentOut(
        name="d",
        description=None,
        revision=1,
        spec=DeploymentSpec(routes=[route], pricing=Pricing(input_per_million=1.0, hourly=3600.0)),
        created_at=now,
        created_by="x",
        updated_at=now,
    )
    writer = MemoryWriter()

    class Sink:
        def emit(self, record: RequestRecord) -> None:
            writer.records.append(record)

    gateway = Gateway(sink=Sink())
    ticket = gateway.open(
        "completions", Actor("ann", Role.viewer, key_prefix="abc"), "r1", request_user=None, stream=False
    )
    assert gateway.in_flight == 1
    ticket.bind(deployment, route)
    tally = ticket.tally
    tally.prompt, tally.completion, tally.queue_time = {0: 10}, {0: 5}, 0.5
    tally.first_token_at, tally.last_token_at = ticket.arrival + 0.7, ticket.arrival + 1.5
    ticket.sequences, ticket.occupancy = 1, 2  # two sequences shared the batch: half of its 1 s in the engine
    cost = ticket.finish()
    assert cost == pytest.approx(10 / 1e6 + 0.5)
    assert ticket.finish() == cost and gateway.in_flight == 0  # idempotent
    rec = writer.records[0]
    assert rec.key_prefix == "abc" and rec.user == "ann" and rec.time_per_output_token == pytest.approx(0.8 / 4)
    assert format_cost(0.000042) == "0.000042" and format_cost(0.0) == "0" and format_cost(1.5) == "1.5"
