"""The OpenAI-compatible API end to end: the official ``openai`` client against a real uvicorn server.

One server per module (engines take a second each to start): a platform with two tiny Llamas (``lm:1``,
``lm:2``) and the shipped MiniLM (``emb:1``) imported and deployed, the engine manager polling every 0.2 s.
Deployments: ``chat`` (lm:1, canary lm:2 at 50 %), ``shadowed`` (lm:1, shadow lm:2 on its own engine),
``emb`` (embeddings), ``scoped`` (needs key scope ``team-a``), ``roll`` (changed and rolled back while the
server runs), ``slow`` (an engine whose decode steps take 20 ms, to disconnect mid-stream) and ``tight``
(one slot, one waiting place: a full queue).
"""

from __future__ import annotations

import base64
import json
import math
import struct
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llmops.api.app import create_app
from llmops.platform import Platform
from llmops.security.actor import Actor
from llmops.serving.deployments.routing import choose_route
from llmops.serving.deployments.schemas import OptionValue
from llmops.serving.engines import GenerationRequest
from llmops.serving.engines.torch_engine import TorchEngine
from llmops.serving.manager import AnyEngine, EngineManager, default_factories, torch_factory
from tests.registry import factory
from tests.serving import server as server_module
from tests.serving.conftest import collect, run, text_of

SLOW_STEP = 0.02


class SlowTorchEngine(TorchEngine):
    """A torch engine whose decode steps take ``SLOW_STEP`` seconds longer (so a stream outlives a disconnect)."""

    async def start(self) -> None:
        await super().start()
        runner = self.runner
        decode = runner.decode

        def slow(*args: Any, **kwargs: Any) -> Any:
            time.sleep(SLOW_STEP)
            return decode(*args, **kwargs)

        runner.decode = slow  # type: ignore[method-assign]


def gateway_factory(model_dir: Path | None, name: str, options: Mapping[str, OptionValue]) -> AnyEngine:
    if options.get("max_batch_size") == 3:  # the ``slow`` deployment
        assert model_dir is not None
        return SlowTorchEngine(model_dir, model_name=name, max_batch_size=3)
    return torch_factory(model_dir, name, options)


@dataclass
class Server:
    url: str
    platform: Platform
    manager: EngineManager
    app: Any
    keys: dict[str, str]
    admin: Actor

    def client(self, who: str = "alice") -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=self.keys[who], max_retries=0, timeout=60)

    def post(self, path: str, body: dict[str, Any], who: str = "alice") -> httpx.Response:
        return httpx.post(
            f"{self.url}{path}", json=body, headers={"Authorization": f"Bearer {self.keys[who]}"}, timeout=60
        )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, llama_dir: Path) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("gateway")
    platform, admin = server_module.platform_with_models(home, llama_dir)
    d = platform.deployments
    d.deploy(admin, "chat", model="lm:1")
    d.set_route(admin, "chat", mode="canary", model="lm:2", percent=50)
    d.deploy(admin, "shadowed", model="lm:1")
    d.set_route(admin, "shadowed", mode="shadow", model="lm:2", percent=100, engine_options={"max_batch_size": 4})
    d.deploy(admin, "emb", model="emb:1", engine="embeddings")
    d.deploy(admin, "scoped", model="lm:1", scopes=["team-a"])
    d.deploy(admin, "roll", model="lm:1")
    d.deploy(admin, "slow", model="lm:1", engine_options={"max_batch_size": 3})
    d.deploy(admin, "tight", model="lm:1", engine_options={"max_batch_size": 1, "max_waiting": 1})
    security = platform.security
    security.create_principal(admin, "alice")
    security.create_principal(admin, "bob")
    keys = {
        "alice": security.create_key(admin, principal="alice").key,
        "bob": security.create_key(admin, principal="bob", name="scoped", scopes=["team-a"]).key,
    }
    manager = EngineManager(
        platform.deployments,
        platform.model_cache,
        factories={**default_factories(), "torch": gateway_factory},
        interval=0.2,
        drain_timeout=0.0,
    )
    app = create_app(platform=platform, engines=manager)
    url, uv = server_module.start(app)
    yield Server(url, platform, manager, app, keys, admin)
    server_module.stop(uv)
    platform.close()


def entry_of(server: Server, version: str, **options: OptionValue) -> Any:
    for entry in server.manager.engine_entries():
        if entry.key.version == version and dict(entry.key.options) == options:
            return entry
    raise AssertionError(f"no engine for {version} {options}")


def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


# --- models ---------------------------------------------------------------------------------------------------
def test_models_list_and_retrieve(server: Server) -> None:
    client = server.client()
    ids = {m.id for m in client.models.list().data}
    assert {"chat", "emb", "roll", "shadowed"} <= ids and "scoped" not in ids  # alice has no team-a scope
    card = client.models.retrieve("chat")
    assert card.id == "chat" and card.object == "model" and card.owned_by == "llmops"
    assert card.model_extra is not None and card.model_extra["max_model_len"] == 128
    assert card.model_extra["root"] == "lm:1"
    assert "scoped" in {m.id for m in server.client("bob").models.list().data}
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("ghost")


# --- completions ----------------------------------------------------------------------------------------------
def test_completions_prompt_forms_n_and_usage(server: Server) -> None:
    client = server.client()
    one = client.completions.create(model="chat", prompt="hello there", max_tokens=5, temperature=0, user="u1")
    assert one.object == "text_completion" and len(one.choices) == 1 and one.id.startswith("cmpl-")
    assert one.choices[0].finish_reason in ("stop", "length")
    assert one.usage is not None and one.usage.completion_tokens <= 5 and one.usage.prompt_tokens > 0
    assert one.usage.total_tokens == one.usage.prompt_tokens + one.usage.completion_tokens

    many = client.completions.create(model="chat", prompt=["a b", "c d e"], max_tokens=3, temperature=0, n=2)
    assert [c.index for c in many.choices] == [0, 1, 2, 3]
    assert many.choices[0].text == many.choices[1].text  # greedy: both choices of a prompt agree
    ids = client.completions.create(model="chat", prompt=[5, 6, 7], max_tokens=3, temperature=0)
    lists = client.completions.create(model="chat", prompt=[[5, 6, 7], [8, 9]], max_tokens=3, temperature=0)
    assert ids.choices[0].text == lists.choices[0].text and ids.usage and ids.usage.prompt_tokens == 3
    assert lists.usage is not None and lists.usage.prompt_tokens == 5

    seeded = client.completions.create(model="chat", prompt="x", max_tokens=6, temperature=1.0, seed=3, n=2)
    again = client.completions.create(model="chat", prompt="x", max_tokens=6, temperature=1.0, seed=3, n=2)
    assert [c.text for c in seeded.choices] == [c.text for c in again.choices]  # seeds seed+i are reproducible


def test_completions_echo_logprobs_and_stop(server: Server) -> None:
    client = server.client()
    out = client.completions.create(model="chat", prompt="abc", max_tokens=4, temperature=0, echo=True, logprobs=2)
    choice = out.choices[0]
    assert choice.text.startswith("abc")
    lp = choice.logprobs
    assert lp is not None and lp.tokens and lp.token_logprobs and lp.top_logprobs and lp.text_offset
    assert out.usage is not None
    assert len(lp.tokens) == out.usage.prompt_tokens + out.usage.completion_tokens
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None  # the first prompt token has none
    assert all(isinstance(x, float) and x <= 0 for x in lp.token_logprobs[1:])
    assert all(t is not None and 1 <= len(t) <= 3 for t in lp.top_logprobs[1:])
    assert lp.text_offset == sorted(lp.text_offset)

    free = client.completions.create(model="chat", prompt="abc", max_tokens=12, temperature=0)
    text = free.choices[0].text
    if len(text) >= 3:  # stop on a piece of what greedy decoding produces: the text is cut before it
        stop = text[2:4] if len(text) >= 4 else text[2:]
        cut = client.completions.create(model="chat", prompt="abc", max_tokens=12, temperature=0, stop=[stop])
        assert cut.choices[0].text == text[: text.index(stop)] and cut.choices[0].finish_reason == "stop"

    scored = client.completions.create(model="chat", prompt="abc", max_tokens=0, echo=True, logprobs=1)
    assert scored.choices[0].text == "abc" and scored.usage and scored.usage.completion_tokens == 0
    assert scored.choices[0].logprobs and scored.choices[0].logprobs.token_logprobs
    assert scored.choices[0].logprobs.token_logprobs[1:] == pytest.approx(
        lp.token_logprobs[1 : len(scored.choices[0].logprobs.token_logprobs)], abs=1e-4
    )


def test_greedy_output_through_the_api_equals_the_engine(server: Server, engine: TorchEngine) -> None:
    sticky = next(
        u for u in (f"user{i}" for i in range(100)) if choose_route("chat", spec(server, "chat"), u).mode == "primary"
    )
    out = server.client().completions.create(
        model="chat", prompt="the quick brown", max_tokens=10, temperature=0, user=sticky
    )
    direct = run(collect(engine, GenerationRequest(prompt="the quick brown", max_tokens=10, temperature=0.0)))
    assert out.choices[0].text == text_of(direct)


def spec(server: Server, name: str) -> Any:
    return server.platform.deployments.get(name).spec


# --- chat -----------------------------------------------------------------------------------------------------
def test_chat_non_stream(server: Server) -> None:
    client = server.client()
    messages: Any = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    out = client.chat.completions.create(
        model="chat", messages=messages, max_tokens=6, temperature=0, logprobs=True, top_logprobs=2
    )
    assert out.object == "chat.completion" and out.id.startswith("chatcmpl-")
    choice = out.choices[0]
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.logprobs is not None and choice.logprobs.content is not None
    assert out.usage is not None and len(choice.logprobs.content) == out.usage.completion_tokens
    assert all(len(t.top_logprobs) == 2 and t.logprob <= 0 for t in choice.logprobs.content)


def test_chat_stream_with_usage_chunk_sequence(server: Server) -> None:
    client = server.client()
    stream = client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "tell me"}],
        max_tokens=8,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].choices[0].delta.content == ""
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    finish = [i for i, c in enumerate(chunks) if c.choices and c.choices[0].finish_reason is not None]
    assert len(finish) == 1 and finish[0] == len(chunks) - 2
    usage = chunks[-1]
    assert usage.choices == [] and usage.usage is not None
    deltas = [c.choices[0].delta.content or "" for c in chunks[1:-1]]
    assert usage.usage.completion_tokens <= 8 and usage.usage.prompt_tokens > 0
    plain = client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "tell me"}], max_tokens=8, temperature=0
    )
    assert "".join(deltas) == plain.choices[0].message.content  # the stream adds up to the whole answer

    raw = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "chat", "messages": [{"role": "user", "content": "x"}], "max_tokens": 3, "stream": True},
        headers={"Authorization": f"Bearer {server.keys['alice']}"},
    )
    assert raw.headers["content-type"].startswith("text/event-stream") and raw.headers["x-request-id"]
    events = [line for line in raw.text.split("\n\n") if line]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    first = json.loads(events[0].removeprefix("data: "))
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}


def test_completion_stream(server: Server) -> None:
    stream = server.client().completions.create(
        model="chat", prompt="one two", max_tokens=5, temperature=0, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-2].choices[0].finish_reason in ("stop", "length")
    whole = server.client().completions.create(model="chat", prompt="one two", max_tokens=5, temperature=0)
    assert "".join(c.choices[0].text for c in chunks[:-1]) == whole.choices[0].text


# --- embeddings -----------------------------------------------------------------------------------------------
def test_embeddings_float_and_base64(server: Server) -> None:
    client = server.client()
    texts = ["a cat sat", "on the mat"]
    floats = client.embeddings.create(model="emb", input=texts, encoding_format="float")
    assert [d.index for d in floats.data] == [0, 1] and len(floats.data[0].embedding) == 384
    assert math.isclose(sum(x * x for x in floats.data[0].embedding), 1.0, rel_tol=1e-4)  # normalized
    assert floats.usage.prompt_tokens == floats.usage.total_tokens > 0
    raw = client.embeddings.create(model="emb", input=texts, encoding_format="base64")
    encoded: Any = raw.data[1].embedding
    assert isinstance(encoded, str)
    decoded = struct.unpack(f"<{len(base64.b64decode(encoded)) // 4}f", base64.b64decode(encoded))
    assert decoded == pytest.approx(floats.data[1].embedding, abs=1e-6)
    default = client.embeddings.create(model="emb", input="a cat sat")  # the client asks for base64 and decodes
    assert default.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-6)
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(factory.minilm_dir()), device="cpu").encode(texts, normalize_embeddings=True)
    assert floats.data[0].embedding == pytest.approx(reference[0].tolist(), abs=1e-5)
    with pytest.raises(openai.BadRequestError, match="text generation"):
        client.embeddings.create(model="chat", input="x")


# --- errors ---------------------------------------------------------------------------------------------------
def test_errors_are_openai_shaped(server: Server) -> None:
    client = server.client()
    with pytest.raises(openai.NotFoundError) as nf:
        client.completions.create(model="ghost", prompt="x", max_tokens=2)
    assert nf.value.code == "model_not_found" and nf.value.type == "invalid_request_error"
    bad = openai.OpenAI(base_url=f"{server.url}/v1", api_key="llmops_deadbeef_nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as auth:
        bad.models.list()
    assert auth.value.type == "authentication_error"
    with pytest.raises(openai.BadRequestError) as mt:
        client.completions.create(model="chat", prompt="x", max_tokens=-1)
    assert mt.value.param == "max_tokens"
    with pytest.raises(openai.BadRequestError) as n:
        client.completions.create(model="chat", prompt="x", max_tokens=2, n=1000)
    assert n.value.param == "n"
    with pytest.raises(openai.BadRequestError) as long:
        client.completions.create(model="chat", prompt=list(range(3, 150)), max_tokens=2)
    assert long.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as over:
        client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}], max_tokens=500)
    assert over.value.code == "context_length_exceeded"
    with pytest.raises(openai.PermissionDeniedError) as scope:
        client.completions.create(model="scoped", prompt="x", max_tokens=2)
    assert scope.value.code == "insufficient_scope"
    ok = server.client("bob").completions.create(model="scoped", prompt="x", max_tokens=2)
    assert ok.choices

    missing = httpx.post(f"{server.url}/v1/completions", json={"model": "chat", "prompt": "x"})
    assert missing.status_code == 401 and set(missing.json()["error"]) == {"message", "type", "param", "code"}
    assert missing.headers["x-request-id"]
    wrong = server.post("/v1/completions", {"model": "chat", "prompt": 3})
    assert wrong.status_code == 400 and wrong.json()["error"]["type"] == "invalid_request_error"
    junk = httpx.post(
        f"{server.url}/v1/chat/completions",
        content=b"{nope",
        headers={"Authorization": f"Bearer {server.keys['alice']}", "content-type": "application/json"},
    )
    assert junk.status_code == 400 and junk.json()["error"]["code"] == "invalid_json"


def test_full_queue_is_429_with_retry_after(server: Server) -> None:
    response = server.post("/v1/completions", {"model": "tight", "prompt": "x", "max_tokens": 20, "n": 3})
    assert response.status_code == 429, response.text
    assert int(response.headers["retry-after"]) >= 1 and response.json()["error"]["type"] == "rate_limit_error"
    with pytest.raises(openai.RateLimitError):
        server.client().completions.create(model="tight", prompt="x", max_tokens=20, n=3)
    wait_for(lambda: run(entry_of(server, "lm:1", max_batch_size=1, max_waiting=1).engine.health()).running == 0)


# --- routing --------------------------------------------------------------------------------------------------
def test_canary_is_sticky_per_user_and_per_key(server: Server) -> None:
    chat = spec(server, "chat")
    users = [f"user-{i}" for i in range(40)]
    expected = {u: choose_route("chat", chat, u).version for u in users}
    assert set(expected.values()) == {"lm:1", "lm:2"}
    client = server.client()
    for u in users[:12]:
        raw = client.completions.with_raw_response.create(model="chat", prompt="x", max_tokens=1, user=u)
        assert raw.headers["x-llmops-version"] == expected[u]
        assert raw.headers["x-llmops-route"] == ("canary" if expected[u] == "lm:2" else "primary")
    key_id = server.platform.security.list_keys(server.admin, "alice")[0].id
    by_key = choose_route("chat", chat, f"key:{key_id}").version
    seen = {
        client.completions.with_raw_response.create(model="chat", prompt="x", max_tokens=1).headers["x-llmops-version"]
        for _ in range(3)
    }
    assert seen == {by_key}


def test_shadow_gets_a_mirrored_copy(server: Server) -> None:
    shadow = entry_of(server, "lm:2", max_batch_size=4)
    before, primary_before = shadow.shadow_requests, entry_of(server, "lm:1").requests
    raw = server.client().completions.with_raw_response.create(model="shadowed", prompt="mirror me", max_tokens=3)
    assert raw.headers["x-llmops-version"] == "lm:1" and raw.parse().choices
    wait_for(lambda: shadow.shadow_requests == before + 1)
    assert shadow.requests == 0 and entry_of(server, "lm:1").requests > primary_before
    health = httpx.get(
        f"{server.url}/api/v1/serving/engines", headers={"Authorization": f"Bearer {server.keys['alice']}"}
    ).json()
    assert health["ready"] is True
    assert any(e["version"] == "lm:2" and e["shadow_requests"] >= 1 for e in health["engines"])


# --- disconnects and rollbacks --------------------------------------------------------------------------------
def test_disconnect_mid_stream_aborts_the_sequence(server: Server) -> None:
    slow = entry_of(server, "lm:1", max_batch_size=3)
    steps_before = run(slow.engine.health()).steps
    body = {"model": "slow", "prompt": "go", "max_tokens": 100, "stream": True, "ignore_eos": True}
    headers = {"Authorization": f"Bearer {server.keys['alice']}"}
    with (
        httpx.Client(timeout=30) as http,
        http.stream("POST", f"{server.url}/v1/completions", json=body, headers=headers) as r,
    ):
        assert r.status_code == 200
        lines = r.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        assert json.loads(first.removeprefix("data: "))["choices"]
        assert run(slow.engine.health()).running == 1
    # the connection is closed: the sequence is dropped long before its 100 tokens (2 s of decode steps)
    wait_for(lambda: run(slow.engine.health()).running == 0, timeout=1.5)
    assert run(slow.engine.health()).steps - steps_before < 60


def test_rollback_reconciles_without_restart(server: Server) -> None:
    client = server.client()

    def version() -> str:
        raw = client.completions.with_raw_response.create(model="roll", prompt="x", max_tokens=1)
        return str(raw.headers["x-llmops-version"])

    assert version() == "lm:1"
    server.platform.deployments.deploy(server.admin, "roll", model="lm:2")
    wait_for(lambda: version() == "lm:2")
    server.platform.deployments.rollback(server.admin, "roll")
    wait_for(lambda: version() == "lm:1")
    server.platform.deployments.delete(server.admin, "roll")
    wait_for(lambda: "roll" not in {m.id for m in client.models.list().data})
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="roll", prompt="x", max_tokens=1)
    assert httpx.get(f"{server.url}/readyz").status_code == 200


# --- tokenizer endpoints --------------------------------------------------------------------------------------
def test_tokenizer_endpoints_as_lm_eval_uses_them(server: Server) -> None:
    tokens = server.post("/tokenize", {"model": "chat", "prompt": "hello world", "add_special_tokens": False}).json()
    assert tokens["count"] == len(tokens["tokens"]) > 0 and tokens["max_model_len"] == 128
    text = server.post("/detokenize", {"model": "chat", "tokens": tokens["tokens"]}).json()
    assert text == {"prompt": "hello world"}
    chat = server.post("/tokenize", {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}).json()
    assert chat["count"] > tokens["count"] - 5
    info = httpx.get(
        f"{server.url}/tokenizer_info?model=chat", headers={"Authorization": f"Bearer {server.keys['alice']}"}
    ).json()
    assert "eos_token" in info and info["chat_template"] and info["model_max_length"] == 128
    unnamed = server.post("/tokenize", {"prompt": "x"})  # several deployments: the model must be named
    assert unnamed.status_code == 400 and unnamed.json()["error"]["param"] == "model"


def test_engine_manager_is_ready_and_health_lists_engines(server: Server) -> None:
    assert server.manager.ready
    health = run(_health(server))
    assert {e["state"] for e in health["engines"]} == {"ready"}
    assert {d["name"] for d in health["deployments"]} >= {"chat", "emb"}


async def _health(server: Server) -> dict[str, Any]:
    return await server.manager.health()
