"""Upstream engines end to end: ``openai-upstream`` and ``vllm`` routes behind a real gateway, driven with the
official ``openai`` client.

The upstream is the stand-in OpenAI-compatible server (``standin_server.py``), started as a subprocess on a
free port; the ``vllm`` engine runs it as its ``command`` under the process supervisor. No torch engine is
started here. Deployments: ``up`` (priced per token), ``up-limited`` (two requests per minute), ``up-shadowed``
(a shadow route on the same upstream); tests add and delete ``down`` and ``vl`` (vllm) while the server runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llmops.errors import InvalidInput
from llmops.serving.engines.upstream import UpstreamEngine
from llmops.serving.manager import EngineManager, default_factories, openai_upstream_factory
from tests.conftest import free_port
from tests.serving.test_gateway_policies import Server, new_platform, start, wait_for
from tests.serving.test_vllm_supervision import _alive

STANDIN = Path(__file__).with_name("standin_server.py")
PRICING = {"input_per_million": 1000.0, "output_per_million": 2000.0}


def standin(port: int, name: str = "upstream-lm", **env: str) -> subprocess.Popen[bytes]:
    """The stand-in as an OpenAI-compatible upstream on 127.0.0.1:``port``, once it answers."""
    argv = [sys.executable, str(STANDIN), "serve", "m", "--served-model-name", name, "--host", "127.0.0.1"]
    proc = subprocess.Popen(
        [*argv, "--port", str(port)],
        env={**os.environ, "STANDIN_LOAD_SECONDS": "0", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail("the stand-in upstream did not start")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


@pytest.fixture(scope="module")
def upstream_port() -> Iterator[int]:
    port = free_port()
    proc = standin(port)
    yield port
    stop(proc)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, llama_dir: Path, upstream_port: int) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("upstream-gateway")
    platform, admin, keys = new_platform(home, llama_dir)
    base = f"http://127.0.0.1:{upstream_port}/v1"
    d = platform.deployments
    options: dict[str, Any] = {"base_url": base, "model": "upstream-lm"}
    d.deploy(admin, "up", model=None, engine="openai-upstream", engine_options=options, pricing=PRICING)
    d.deploy(
        admin, "up-limited", model=None, engine="openai-upstream", engine_options=options,
        rate_limit={"requests_per_minute": 2},
    )  # fmt: skip
    d.deploy(admin, "up-shadowed", model=None, engine="openai-upstream", engine_options=options)
    d.set_route(
        admin, "up-shadowed", mode="shadow", model=None, percent=100, engine="openai-upstream",
        engine_options={**options, "timeout": 30},
    )  # fmt: skip
    manager = EngineManager(
        platform.deployments,
        platform.model_cache,
        factories=default_factories(log_dir=home / "logs"),
        interval=0.2,
        backoff_base=0.2,
        backoff_max=1.0,
        drain_timeout=0.0,
    )
    srv = start(platform, manager, keys, admin)
    yield srv
    srv.stop()
    platform.close()


def ready(server: Server, serving: str | None = None) -> bool:
    """``/readyz`` is 200 (and, when named, the manager serves that deployment: a new one is not known at once)."""
    if serving is not None and server.manager.serving(serving) is None:
        return False
    return httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200


# --- openai-upstream ----------------------------------------------------------------------------------------
def test_completion_passes_through_with_cost_and_record(server: Server) -> None:
    client = server.client()
    raw = client.completions.with_raw_response.create(model="up", prompt="hello there world", max_tokens=8)
    completion = raw.parse()
    assert completion.choices[0].text == " from the stand-in" and completion.model == "up"
    assert completion.usage is not None and (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (
        3,
        4,
    )
    assert raw.headers["x-llmops-cost"] == "0.011"  # 3 x 1000 + 4 x 2000 per million
    assert raw.headers["x-llmops-route"] == "primary"
    record = server.record(raw.headers["x-request-id"])
    assert (record.prompt_tokens, record.completion_tokens, record.status) == (3, 4, 200)
    assert record.cost == pytest.approx(0.011) and record.finish_reason == "stop" and record.endpoint == "completions"
    # the client's own body goes upstream, fields the gateway does not know included, model renamed
    sent = server.post("/v1/completions", {"model": "up", "prompt": "x", "repetition_penalty": 1.1, "min_p": 0.1})
    assert sent.status_code == 200
    received = sent.json()["standin_request"]
    assert received["model"] == "upstream-lm" and received["repetition_penalty"] == 1.1 and received["min_p"] == 0.1


def test_chat_non_stream_and_stream_with_and_without_usage(server: Server) -> None:
    client = server.client()
    messages: Any = [{"role": "user", "content": "say something"}]
    chat = client.chat.completions.create(model="up", messages=messages)
    assert chat.choices[0].message.content == " from the stand-in" and chat.model == "up"
    assert chat.usage is not None and chat.usage.total_tokens == 6

    plain = client.chat.completions.with_raw_response.create(model="up", messages=messages, stream=True)
    chunks = list(plain.parse())
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == " from the stand-in"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.choices and c.usage is None and c.model == "up" for c in chunks)  # no usage chunk: not asked
    record = server.record(plain.headers["x-request-id"])  # still counted from the upstream's usage
    assert (record.prompt_tokens, record.completion_tokens, record.stream) == (2, 4, True)
    assert record.cost == pytest.approx(0.01) and record.time_to_first_token is not None

    asked = client.chat.completions.create(
        model="up", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(asked)
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == [] and usage_chunk.usage is not None
    assert usage_chunk.usage.completion_tokens == 4 and usage_chunk.usage.prompt_tokens == 2
    assert (usage_chunk.usage.model_extra or {}).get("cost") == pytest.approx(0.01)
    assert all(c.choices for c in chunks[:-1])


def test_completion_stream_and_embeddings(server: Server) -> None:
    client = server.client()
    stream = client.completions.create(model="up", prompt="a b", max_tokens=4, stream=True)
    assert "".join(c.choices[0].text for c in stream) == " from the stand-in"
    vectors = client.embeddings.with_raw_response.create(model="up", input=["a cat", "a dog sleeps"])
    body = vectors.parse()
    assert len(body.data) == 2 and len(body.data[0].embedding) == 4 and body.model == "up"
    assert body.usage.prompt_tokens == 5
    record = server.record(vectors.headers["x-request-id"])
    assert record.endpoint == "embeddings" and record.prompt_tokens == 5


def test_upstream_errors_keep_their_status_and_shape(server: Server) -> None:
    client = server.client()
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model="up", prompt="x", max_tokens=5000)
    assert caught.value.status_code == 400
    error = caught.value.body
    assert isinstance(error, dict) and "more than the model's context" in error["message"]
    assert error["param"] == "max_tokens" and error["type"] == "invalid_request_error"
    messages: Any = [{"role": "user", "content": "x"}]
    with pytest.raises(openai.BadRequestError):  # a stream's error comes before its first byte
        list(client.chat.completions.create(model="up", messages=messages, max_tokens=5000, stream=True))
    record = server.record(caught.value.response.headers["x-request-id"])
    assert record.status == 400


def test_rate_limit_applies_to_upstream_routes(server: Server) -> None:
    client = server.client("bob")
    for _ in range(2):
        client.completions.create(model="up-limited", prompt="x")
    with pytest.raises(openai.RateLimitError) as caught:
        client.completions.create(model="up-limited", prompt="x")
    assert caught.value.status_code == 429 and caught.value.code == "rate_limit_exceeded"


def test_shadow_routes_of_upstream_deployments_are_forwarded_and_discarded(server: Server) -> None:
    raw = server.client().completions.with_raw_response.create(model="up-shadowed", prompt="x")
    assert raw.parse().choices[0].text == " from the stand-in"
    shadow = server.record(raw.headers["x-request-id"], mode="shadow")
    assert shadow.status == 200 and shadow.completion_tokens == 4 and shadow.route == "shadow"


def test_tokenizer_endpoints_are_forwarded_when_the_upstream_has_them(server: Server) -> None:
    tokens = server.post("/tokenize", {"model": "up", "prompt": "one two three"})
    assert tokens.status_code == 200 and tokens.json()["count"] == 3
    missing = server.post("/detokenize", {"model": "up", "tokens": [1, 2]})
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "tokenizer_not_available"


def test_an_upstream_that_goes_down_gives_503_and_not_ready(server: Server) -> None:
    port = free_port()
    proc = standin(port)
    d, admin = server.platform.deployments, server.admin
    try:
        options: dict[str, Any] = {"base_url": f"http://127.0.0.1:{port}/v1"}
        d.deploy(admin, "down", model=None, engine="openai-upstream", engine_options=options)
        wait_for(lambda: ready(server, "down"), 30)
        body = {"model": "down", "prompt": "x"}
        answered = server.post("/v1/completions", body)
        assert answered.status_code == 200 and answered.json()["standin_request"]["model"] == "down"
        stop(proc)
        failed = server.post("/v1/completions", body)
        assert failed.status_code == 503, failed.text
        error = failed.json()["error"]
        assert error["type"] == "server_error" and error["code"] in ("upstream_unavailable", "engine_not_ready")
        assert "Retry-After" in failed.headers
        wait_for(lambda: not ready(server), 10)
        assert server.post("/v1/completions", body).json()["error"]["code"] == "engine_not_ready"
    finally:
        stop(proc)
        d.delete(admin, "down")
    wait_for(lambda: ready(server), 30)


def test_upstream_options_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidInput, match="has no option 'api_key'"):
        openai_upstream_factory(None, "openai-upstream", {"base_url": "http://x/v1", "api_key": "sk-secret"})
    keyed: dict[str, Any] = {"base_url": "http://x/v1", "api_key_env": "UPSTREAM_KEY_FOR_TEST"}
    with pytest.raises(InvalidInput, match="UPSTREAM_KEY_FOR_TEST, which is not set"):
        openai_upstream_factory(None, "openai-upstream", keyed)
    with pytest.raises(InvalidInput, match="base_url must be an http"):
        openai_upstream_factory(None, "openai-upstream", {"base_url": "ftp://x"})
    monkeypatch.setenv("UPSTREAM_KEY_FOR_TEST", "sk-from-env")
    engine = openai_upstream_factory(None, "lm:1", {**keyed, "timeout": 5})
    assert isinstance(engine, UpstreamEngine) and engine.api_key == "sk-from-env" and engine.upstream_model == "lm:1"
    assert engine.timeout == 5.0
    unnamed = openai_upstream_factory(None, "openai-upstream", {"base_url": "http://x/v1"})
    assert isinstance(unnamed, UpstreamEngine) and unnamed.upstream_model is None  # the deployment name passes


# --- vllm ---------------------------------------------------------------------------------------------------
def _vllm_engine(server: Server) -> UpstreamEngine:
    for entry in server.manager.engine_entries():
        if entry.key.engine == "vllm" and isinstance(entry.engine, UpstreamEngine):
            return entry.engine
    raise AssertionError("no vllm engine")


def test_vllm_engine_serves_restarts_after_sigkill_and_stops(server: Server) -> None:
    d, admin = server.platform.deployments, server.admin
    options: dict[str, Any] = {"command": f"{sys.executable} {STANDIN}", "tensor_parallel_size": 2, "ready_timeout": 60}
    d.deploy(admin, "vl", model="lm:1", engine="vllm", engine_options=options)
    try:
        wait_for(lambda: ready(server, "vl"), 60)
        client = server.client()
        messages: Any = [{"role": "user", "content": "hi"}]
        raw = client.chat.completions.with_raw_response.create(model="vl", messages=messages)
        assert raw.parse().choices[0].message.content == " from the stand-in"
        assert raw.headers["x-llmops-version"] == "lm:1"
        engine = _vllm_engine(server)
        supervisor = engine.supervisor
        assert supervisor is not None and supervisor.pid is not None
        argv = list(supervisor.spec.argv)
        assert argv[argv.index("--served-model-name") + 1] == "lm:1" and argv[-2:] == ["--tensor-parallel-size", "2"]
        log_path = supervisor.spec.log_path
        assert log_path is not None and log_path.parent == server.platform.settings.home / "logs"
        assert log_path.name.startswith("vllm-lm-1-") and "stand-in serving" in log_path.read_text()
        first = supervisor.pid

        os.kill(first, signal.SIGKILL)  # the engine server crashes
        wait_for(lambda: not ready(server), 10)
        refused = server.post("/v1/chat/completions", {"model": "vl", "messages": messages})
        assert refused.status_code == 503 and refused.json()["error"]["code"] in (
            "engine_not_ready",
            "upstream_unavailable",
        )
        wait_for(lambda: ready(server), 60)  # the supervisor restarted it; the same engine serves again
        assert _vllm_engine(server) is engine and supervisor.restarts == 1 and supervisor.pid != first
        again = client.chat.completions.create(model="vl", messages=messages)
        assert again.choices[0].message.content == " from the stand-in"
        stream = client.chat.completions.create(model="vl", messages=messages, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream) == " from the stand-in"
        pid = supervisor.pid
    finally:
        d.delete(admin, "vl")
    wait_for(lambda: not _alive(pid), 30)  # no route uses the engine: the process is stopped
    assert all(e.key.engine != "vllm" for e in server.manager.engine_entries())
    health = httpx.get(f"{server.url}/api/v1/serving/engines", headers=server.headers(), timeout=5)
    assert health.status_code == 200 and json.dumps(health.json()).count('"vllm"') == 0
