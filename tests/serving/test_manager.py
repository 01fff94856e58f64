"""The engine manager with stand-in engines: one engine per (version, engine, options), rolling switches to a
new revision, stopping engines no route uses, failures reported and retried with backoff, engines that die,
the signature requirement passed to the model cache, and engine kinds that are not available yet."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from llmops.errors import NotFound, Unavailable
from llmops.platform import Platform
from llmops.security.actor import Actor
from llmops.serving.deployments.schemas import OptionValue
from llmops.serving.engines.base import EngineHealth, EngineStatus, GenerationChunk, GenerationRequest, Usage
from llmops.serving.manager import AnyEngine, EngineKey, EngineManager, default_factories
from tests.registry import factory
from tests.serving.conftest import run as run_in_thread


class FakeTokenizer:
    context_length = 64
    vocab_size = 10
    eos_token_ids = frozenset({0})
    has_chat_template = False
    chat_stop = ()

    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        return [1, 2]


class FakeEngine:
    """Answers every request with one token; records its lifecycle."""

    def __init__(self, model_dir: Path | None, name: str, options: Mapping[str, OptionValue]) -> None:
        self.model_dir, self.name, self.options = model_dir, name, dict(options)
        self.status: EngineStatus = "stopped"
        self.generated = 0
        self.tokenizer = FakeTokenizer()

    @property
    def model_name(self) -> str:
        return self.name

    async def start(self) -> None:
        await asyncio.sleep(0.01)
        self.status = "ready"

    async def stop(self, drain_timeout: float = 0.0) -> None:
        self.status = "stopped"

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        self.generated += 1

        async def stream() -> AsyncIterator[GenerationChunk]:
            yield GenerationChunk(
                request.request_id, "x", (3,), finish_reason="length", usage=Usage(2, 1, 0.0, 0.0, 0.0)
            )

        return stream()

    async def health(self) -> EngineHealth:
        return EngineHealth(status=self.status, model=self.name, context_length=64)


class Factories:
    def __init__(self, fail_first: int = 0) -> None:
        self.built: list[FakeEngine] = []
        self.fail_first = fail_first
        self.calls = 0
        self.gate: asyncio.Event | None = None

    def __call__(self, model_dir: Path | None, name: str, options: Mapping[str, OptionValue]) -> AnyEngine:
        self.calls += 1
        if self.calls <= self.fail_first:
            raise RuntimeError(f"boom {self.calls}")
        engine = FakeEngine(model_dir, name, options)
        if self.gate is not None:
            gate = self.gate
            start = engine.start

            async def gated() -> None:
                await gate.wait()
                await start()

            engine.start = gated  # type: ignore[method-assign]
        self.built.append(engine)
        return engine  # type: ignore[return-value]


class RecordingCache:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Sequence[str] | None]] = []

    def materialize(self, ref: str, *, trusted_keys: Sequence[str] | None = None) -> Path:
        self.calls.append((ref, trusted_keys))
        return Path(f"/models/{ref}")


@pytest.fixture
def models(embedded_platform: Platform, admin: Actor, llama_dir: Path, tmp_path: Path) -> Platform:
    other = factory.make_causal_lm(tmp_path / "other", "llama", tokenizer_dir=llama_dir, seed=7)
    embedded_platform.registry.import_model(admin, llama_dir, name="lm")
    embedded_platform.registry.import_model(admin, other, name="lm")
    return embedded_platform


def manager_for(platform: Platform, factories: Factories, cache: Any = None, **kwargs: Any) -> EngineManager:
    model_cache: Any = cache or RecordingCache()
    return EngineManager(
        platform.deployments,
        model_cache,
        factories={**default_factories(), "torch": factories},
        interval=0.05,
        **kwargs,
    )


def run(coro: Any) -> Any:
    return run_in_thread(coro, timeout=30)


def test_one_engine_per_key_shared_by_routes_and_stopped_when_unused(models: Platform, admin: Actor) -> None:
    d = models.deployments
    d.deploy(admin, "a", model="lm:1")
    d.deploy(admin, "b", model="lm:1")  # same version, engine and options: shares a's engine
    d.set_route(admin, "b", mode="canary", model="lm:2", percent=10)
    d.set_route(admin, "b", mode="shadow", model="lm:2", percent=10, engine_options={"max_batch_size": 2})
    fakes = Factories()

    async def scenario() -> None:
        manager = manager_for(models, fakes)
        await manager.start()
        assert await manager.wait_ready(10)
        keys = {e.key for e in manager.engine_entries()}
        assert keys == {
            EngineKey("lm:1", "torch"),
            EngineKey("lm:2", "torch"),
            EngineKey("lm:2", "torch", (("max_batch_size", 2),)),
        }
        assert len(fakes.built) == 3 and all(e.generated == 1 for e in fakes.built)  # each answered a probe
        shadow = next(e for e in fakes.built if e.options == {"max_batch_size": 2})
        assert shadow.model_dir == Path("/models/lm:2")
        d.remove_route(admin, "b", "shadow")
        await manager.reconcile()
        await asyncio.sleep(0.05)
        assert shadow.status == "stopped" and len(manager.engine_entries()) == 2
        d.delete(admin, "a")
        d.delete(admin, "b")
        await manager.reconcile()
        await asyncio.sleep(0.05)
        assert manager.engine_entries() == [] and all(e.status == "stopped" for e in fakes.built)
        with pytest.raises(NotFound):
            await manager.lookup("a")
        assert manager.ready  # nothing deployed: nothing to wait for
        await manager.stop()

    run(scenario())


def test_a_new_revision_serves_only_once_its_engines_are_ready(models: Platform, admin: Actor) -> None:
    d = models.deployments
    d.deploy(admin, "chat", model="lm:1")
    fakes = Factories()

    async def scenario() -> None:
        manager = manager_for(models, fakes)
        await manager.start()
        assert await manager.wait_ready(10)
        fakes.gate = asyncio.Event()  # the next engine hangs in start until the gate opens
        d.deploy(admin, "chat", model="lm:2")
        await manager.reconcile()
        await asyncio.sleep(0.1)
        assert not manager.ready
        serving = await manager.lookup("chat")
        assert serving.revision == 1 and serving.spec.primary.version == "lm:1"  # the old revision still serves
        health = await manager.health()
        assert {e["state"] for e in health["engines"]} == {"ready", "loading"}
        fakes.gate.set()
        assert await manager.wait_ready(10)
        serving = await manager.lookup("chat")
        assert serving.revision == 2 and serving.spec.primary.version == "lm:2"
        await asyncio.sleep(0.2)
        assert [e.key.version for e in manager.engine_entries()] == ["lm:2"]  # lm:1 stopped after the switch
        assert fakes.built[0].status == "stopped"
        await manager.stop()

    run(scenario())


def test_a_failing_engine_is_reported_and_retried_with_backoff(models: Platform, admin: Actor) -> None:
    models.deployments.deploy(admin, "chat", model="lm:1")
    fakes = Factories(fail_first=2)

    async def scenario() -> None:
        manager = manager_for(models, fakes, backoff_base=0.2)
        await manager.start()
        await asyncio.sleep(0.1)
        health = await manager.health()
        (engine,) = health["engines"]
        assert engine["state"] == "failed" and "boom 1" in engine["error"] and engine["attempts"] == 1
        assert not manager.ready
        with pytest.raises(Unavailable, match="loading"):
            await manager.lookup("chat")
        assert await manager.wait_ready(10)  # retried after 0.2 s, then 0.4 s, and the third start works
        assert fakes.calls == 3
        (entry,) = manager.engine_entries()
        assert entry.attempts == 0 and entry.error is None
        fakes.built[0].status = "failed"  # the engine dies
        await manager.reconcile()
        assert not manager.ready
        assert manager.engine_entries()[0].state in ("failed", "loading")
        assert await manager.wait_ready(10)  # and is started again
        assert len(fakes.built) == 2
        await manager.stop()

    run(scenario())


def test_signature_requirement_reaches_the_model_cache(models: Platform, admin: Actor, tmp_path: Path) -> None:
    from llmops.registry.signing import generate_keypair

    trusted = generate_keypair(tmp_path / "signing.key")
    models.registry.sign(admin, "lm:1", tmp_path / "signing.key")
    models.deployments.deploy(admin, "signed", model="lm:1", require_signature=True, trusted_keys=[trusted])
    cache = RecordingCache()

    async def scenario() -> None:
        manager = manager_for(models, Factories(), cache)
        await manager.start()
        assert await manager.wait_ready(10)
        await manager.stop()

    run(scenario())
    assert cache.calls == [("lm:1", [trusted])]


def test_a_vllm_engine_without_vllm_installed_fails_with_a_clear_error(models: Platform, admin: Actor) -> None:
    models.deployments.deploy(admin, "up", model="lm:1", engine="vllm", engine_options={"command": "/nonexistent/vllm"})

    async def scenario() -> None:
        manager = manager_for(models, Factories())
        await manager.start()
        await asyncio.sleep(0.3)
        (engine,) = (await manager.health())["engines"]
        assert engine["state"] == "failed" and "cannot start /nonexistent/vllm" in engine["error"]
        await manager.stop()

    run(scenario())


def test_unknown_engine_options_fail_loudly(models: Platform, admin: Actor) -> None:
    models.deployments.deploy(admin, "typo", model="lm:1", engine_options={"max_batchsize": 2})

    async def scenario() -> None:
        manager = EngineManager(models.deployments, RecordingCache(), interval=0.05)  # type: ignore[arg-type]
        await manager.start()
        await asyncio.sleep(0.1)
        (engine,) = (await manager.health())["engines"]
        assert engine["state"] == "failed" and "no option 'max_batchsize'" in engine["error"]
        await manager.stop()

    run(scenario())
