"""The engine manager: one running engine per (version, engine kind, engine options) that any route uses.

Deployments are declarative state in the database; :class:`EngineManager` makes the running engines match
it. ``reconcile()`` is one pass:

1. read the revision in force of every deployment (one cheap query) and, for those that changed, their
   specs;
2. start an engine for every route that needs one and has none (materializing the version through the
   model cache, honouring the deployment's signature requirement), then probe it (one generated token, or
   one embedding); a failed start is reported and retried with exponential backoff;
3. mark engines that died as failed (and retry them the same way);
4. switch a deployment to its newest revision once every engine that revision needs is ready, so a
   ``llmops deploy`` or a rollback never serves 503s while the new engine loads: the old routes keep serving
   until the new ones answer (a rolling update);
5. stop (draining) every engine no route of any deployment uses any more.

It runs at app start and then in the background every ``interval`` seconds, and at once whenever a load
finishes or a request names a deployment it has not seen (``poke``). Engines are built by factories keyed by
engine name (``torch``, ``embeddings``, ``openai-upstream``, ``vllm``), so an engine kind is added without
touching the manager.

Upstream engines (``openai-upstream``, ``vllm``: :class:`~llmops.serving.engines.upstream.UpstreamEngine`) are
probed with their health (``GET /models``) instead of a generated token, and an ``openai-upstream`` route's
version (optional) is never materialized: the files are the upstream's business. An engine whose health says
``unavailable`` (an upstream that stopped answering, a ``vllm`` server its supervisor is restarting) is kept
and marked ``unavailable``: its routes answer 503 and ``ready`` is false until a later pass finds it healthy
again; only ``failed`` engines are stopped and rebuilt with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from llmops.errors import InvalidInput, NotFound, Unavailable
from llmops.registry.cache import ModelCache
from llmops.serving.deployments.schemas import DeploymentOut, OptionValue, RouteSpec
from llmops.serving.deployments.service import DeploymentService
from llmops.serving.engines.base import Engine, EngineHealth, GenerationRequest
from llmops.serving.engines.embeddings import EmbeddingEngine
from llmops.serving.engines.upstream import UpstreamEngine
from llmops.settings import environment_secret

log = logging.getLogger("llmops.serving")

AnyEngine = Engine | EmbeddingEngine | UpstreamEngine
EngineFactory = Callable[[Path | None, str, Mapping[str, OptionValue]], AnyEngine]
EngineState = Literal["loading", "ready", "unavailable", "failed"]

EMBEDDING_ENGINES = frozenset({"embeddings"})
#: Engines that are OpenAI-compatible servers: requests pass through (``serving/openai/passthrough.py``).
UPSTREAM_ENGINES = frozenset({"openai-upstream", "vllm"})
#: Engines that need no files: the route's version (if any) only names the model.
REMOTE_ENGINES = frozenset({"openai-upstream"})


# --- factories ----------------------------------------------------------------------------------------------
def _options(engine: str, options: Mapping[str, OptionValue], allowed: Mapping[str, type]) -> dict[str, Any]:
    """Engine options checked against what the engine accepts (a typo fails loudly, not silently)."""
    out: dict[str, Any] = {}
    for name, value in options.items():
        kind = allowed.get(name)
        if kind is None:
            raise InvalidInput(
                f"the {engine} engine has no option {name!r}; it accepts {', '.join(sorted(allowed))}",
                details={"field": "engine_options", "option": name},
            )
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidInput(f"engine option {name} must be an integer, got {value!r}")
        if kind is bool and not isinstance(value, bool):
            raise InvalidInput(f"engine option {name} must be true or false, got {value!r}")
        if kind is str and not isinstance(value, str):
            raise InvalidInput(f"engine option {name} must be a string, got {value!r}")
        if kind is float and (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0):
            raise InvalidInput(f"engine option {name} must be a positive number, got {value!r}")
        out[name] = value
    return out


TORCH_OPTIONS: dict[str, type] = {
    "max_batch_size": int,
    "max_waiting": int,
    "max_model_len": int,
    "prefill_chunk_tokens": int,
    "dtype": str,
    "attn_implementation": str,
}
EMBEDDING_OPTIONS: dict[str, type] = {"max_batch_size": int, "max_waiting": int, "normalize": bool}


def torch_factory(model_dir: Path | None, name: str, options: Mapping[str, OptionValue]) -> AnyEngine:
    from llmops.serving.engines.torch_engine import TorchEngine

    kwargs = _options("torch", options, TORCH_OPTIONS)
    dtype = kwargs.pop("dtype", "auto")
    if dtype != "auto":
        import torch

        resolved = getattr(torch, str(dtype), None)
        if not isinstance(resolved, torch.dtype):
            raise InvalidInput(f"engine option dtype: {dtype!r} is not a torch dtype (float32, bfloat16, auto)")
        dtype = resolved
    assert model_dir is not None
    return TorchEngine(model_dir, model_name=name, dtype=dtype, **kwargs)


def embeddings_factory(model_dir: Path | None, name: str, options: Mapping[str, OptionValue]) -> AnyEngine:
    from llmops.serving.engines.embeddings import SentenceTransformerEngine

    assert model_dir is not None
    return SentenceTransformerEngine(model_dir, model_name=name, **_options("embeddings", options, EMBEDDING_OPTIONS))


UPSTREAM_OPTIONS: dict[str, type] = {"base_url": str, "model": str, "api_key_env": str, "timeout": float}
VLLM_OWN_OPTIONS: dict[str, type] = {"command": str, "ready_timeout": float}


def openai_upstream_factory(model_dir: Path | None, name: str, options: Mapping[str, OptionValue]) -> AnyEngine:
    """Any OpenAI-compatible server. Options: ``base_url`` (required, the API root, e.g.
    ``http://host:8000/v1``), ``model`` (the upstream's model name; default: the route's version reference, or
    the client's ``model`` — the deployment name — when the route names no version), ``api_key_env`` (the
    *name* of an environment variable holding the upstream's key; the key itself never enters a spec),
    ``timeout`` (seconds per read, default 600)."""
    kwargs = _options("openai-upstream", options, UPSTREAM_OPTIONS)
    base_url = str(kwargs.get("base_url", ""))
    if not base_url.startswith(("http://", "https://")):
        raise InvalidInput(f"engine option base_url must be an http(s) URL, got {base_url!r}")
    api_key = None
    if "api_key_env" in kwargs:
        api_key = environment_secret(str(kwargs["api_key_env"]))
        if api_key is None:
            raise InvalidInput(
                f"engine option api_key_env names the environment variable {kwargs['api_key_env']}, "
                "which is not set in the gateway's environment"
            )
    model = kwargs.get("model") or (None if name == "openai-upstream" else name)
    return UpstreamEngine(
        base_url, model, api_key=api_key, timeout=float(kwargs.get("timeout", 600.0)), name=model or base_url
    )


def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def vllm_factory(log_dir: Path | None = None) -> EngineFactory:
    """``vllm serve`` on the materialized version, supervised on a free loopback port, driven as an upstream.

    Every engine option except ``command`` (default ``vllm``) and ``ready_timeout`` (seconds, default 600)
    becomes a ``vllm serve`` flag (:func:`~llmops.serving.engines.vllm.vllm_argv`), so a flag vLLM does not know
    fails the start loudly with vLLM's own message (quoted from the log). The server's output goes to
    ``<log_dir>/vllm-<version>-<port>.log``.
    """

    def factory(model_dir: Path | None, name: str, options: Mapping[str, OptionValue]) -> AnyEngine:
        from llmops.serving.engines.vllm import vllm_argv
        from llmops.serving.supervisor import ProcessSpec, ProcessSupervisor

        own = _options("vllm", {k: v for k, v in options.items() if k in VLLM_OWN_OPTIONS}, VLLM_OWN_OPTIONS)
        assert model_dir is not None
        port = free_loopback_port()
        argv = vllm_argv(model_dir, served_name=name, port=port, options=options)
        log_path = None
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            log_path = log_dir / f"vllm-{re.sub(r'[^A-Za-z0-9._-]+', '-', name)}-{port}.log"
        spec = ProcessSpec(
            argv=argv,
            base_url=f"http://127.0.0.1:{port}",
            log_path=log_path,
            ready_timeout=float(own.get("ready_timeout", 600.0)),
        )
        return UpstreamEngine(f"http://127.0.0.1:{port}/v1", name, name=name, supervisor=ProcessSupervisor(spec))

    return factory


def default_factories(log_dir: Path | None = None) -> dict[str, EngineFactory]:
    """The engine table; ``log_dir`` receives the output of supervised engine servers (``vllm``)."""
    return {
        "torch": torch_factory,
        "embeddings": embeddings_factory,
        "openai-upstream": openai_upstream_factory,
        "vllm": vllm_factory(log_dir),
    }


# --- state --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EngineKey:
    """What makes two routes share an engine: the pinned version, the engine kind and its options."""

    version: str | None
    engine: str
    options: tuple[tuple[str, OptionValue], ...] = ()

    @classmethod
    def of(cls, route: RouteSpec) -> EngineKey:
        return cls(route.version, route.engine, tuple(sorted(route.engine_options.items())))

    @property
    def label(self) -> str:
        opts = ",".join(f"{k}={v}" for k, v in self.options)
        return f"{self.version or '-'}/{self.engine}" + (f"{{{opts}}}" if opts else "")

    @property
    def embedding(self) -> bool:
        return self.engine in EMBEDDING_ENGINES

    @property
    def upstream(self) -> bool:
        return self.engine in UPSTREAM_ENGINES


@dataclass
class ManagedEngine:
    """One engine and what the manager knows about it."""

    key: EngineKey
    state: EngineState = "loading"
    engine: AnyEngine | None = None
    error: str | None = None
    attempts: int = 0
    retry_at: float = 0.0
    since: float = field(default_factory=time.time)
    requests: int = 0
    shadow_requests: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def describe(self, health: EngineHealth | None) -> dict[str, Any]:
        return {
            "engine": self.key.label,
            "version": self.key.version,
            "kind": self.key.engine,
            "options": dict(self.key.options),
            "state": self.state,
            "error": self.error,
            "attempts": self.attempts,
            "retry_in": max(0.0, round(self.retry_at - time.monotonic(), 1)) if self.state == "failed" else None,
            "since": self.since,
            "requests": self.requests,
            "shadow_requests": self.shadow_requests,
            "health": None
            if health is None
            else {
                "status": health.status,
                "context_length": health.context_length,
                "running": health.running,
                "waiting": health.waiting,
                "max_batch_size": health.max_batch_size,
                "max_waiting": health.max_waiting,
                "steps": health.steps,
                "last_error": health.last_error,
            },
        }


def _keys(deployment: DeploymentOut | None) -> set[EngineKey]:
    return {EngineKey.of(r) for r in deployment.spec.routes} if deployment else set()


class EngineManager:
    """Runs the engines the deployments need (see the module docstring).

    ``factories`` maps engine names to builders ``(model_dir, name, options) -> engine``; ``interval`` is the
    background poll period in seconds; a failed engine is retried after ``backoff_base * 2**(attempts-1)``
    seconds, at most ``backoff_max``; stopping engines drain for up to ``drain_timeout`` seconds.
    """

    def __init__(
        self,
        deployments: DeploymentService,
        model_cache: ModelCache,
        *,
        factories: Mapping[str, EngineFactory] | None = None,
        interval: float = 5.0,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        drain_timeout: float = 10.0,
    ) -> None:
        self.deployments = deployments
        self.model_cache = model_cache
        self.factories = dict(factories or default_factories())
        self.interval = interval
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.drain_timeout = drain_timeout
        self._revisions: dict[str, int] = {}
        self._desired: dict[str, DeploymentOut] = {}
        self._serving: dict[str, DeploymentOut] = {}
        self._engines: dict[EngineKey, ManagedEngine] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self._wake: asyncio.Event | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None
        self.last_error: str | None = None

    # --- lifecycle ------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Reconcile once, then keep reconciling in the background."""
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        try:
            await self.reconcile()
        except Exception as exc:  # serve the platform API anyway; the background loop retries
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("engine manager: first reconcile failed; retrying in the background")
        self._loop_task = asyncio.create_task(self._run(), name="engine-manager")

    async def stop(self) -> None:
        """Stop reconciling and stop every engine (draining for up to ``drain_timeout`` seconds)."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        entries = list(self._engines.values())
        self._engines.clear()
        self._desired.clear()
        self._serving.clear()
        self._revisions.clear()
        for entry in entries:
            if entry.task is not None:
                entry.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await entry.task
        await asyncio.gather(*(self._stop_engine(e) for e in entries), return_exceptions=True)
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)

    def poke(self) -> None:
        """Reconcile now instead of at the next tick."""
        if self._wake is not None:
            self._wake.set()

    async def wait_ready(self, timeout: float) -> bool:
        """Wait until :attr:`ready` (True) or ``timeout`` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while not self.ready:
            if time.monotonic() >= deadline:
                return False
            self.poke()
            await asyncio.sleep(0.05)
        return True

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            try:
                await self.reconcile()
                self.last_error = None
            except Exception as exc:  # the database may be briefly unreachable: keep serving, retry
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("engine manager: reconcile failed; retrying")

    # --- reconciliation -------------------------------------------------------------------------------------
    async def reconcile(self) -> None:
        """One reconciliation pass (see the module docstring)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            await self._refresh()
            now = time.monotonic()
            for key in set().union(*(_keys(d) for d in (*self._desired.values(), *self._serving.values()))):
                entry = self._engines.get(key)
                if entry is None:
                    entry = self._engines[key] = ManagedEngine(key)
                    self._spawn_load(entry)
                elif entry.state == "failed" and entry.task is None and entry.retry_at <= now:
                    self._spawn_load(entry)
            for entry in list(self._engines.values()):
                if entry.state in ("ready", "unavailable") and entry.engine is not None:
                    health = await entry.engine.health()
                    if health.ready or health.status == "unavailable":
                        self._availability(entry, health.ready, health.last_error)
                    else:
                        self._fail(entry, f"engine is {health.status}: {health.last_error or 'no detail'}")
                        self._stopping_task(entry.engine)
                        entry.engine = None
            for name, desired in self._desired.items():
                if all(self._ready(k) for k in _keys(desired)) and self._serving.get(name) is not desired:
                    previous = self._serving.get(name)
                    self._serving[name] = desired
                    if previous is None or previous.revision != desired.revision:
                        log.info("deployment %s: serving revision %d", name, desired.revision)
            needed = set().union(*(_keys(d) for d in (*self._desired.values(), *self._serving.values())))
            for key in [k for k in self._engines if k not in needed]:
                entry = self._engines.pop(key)
                if entry.task is not None:
                    entry.task.cancel()
                if entry.engine is not None:
                    log.info("engine %s: no route uses it any more; stopping", key.label)
                    self._stopping_task(entry.engine)

    async def _refresh(self) -> None:
        revisions = await asyncio.to_thread(self.deployments.revisions_in_force)
        if revisions == self._revisions:
            return
        changed = [n for n, r in revisions.items() if self._revisions.get(n) != r]
        for name in set(self._desired) - set(revisions):
            self._desired.pop(name, None)
            self._serving.pop(name, None)
            log.info("deployment %s: deleted; its routes stop serving", name)
        for name in changed:
            try:
                self._desired[name] = await asyncio.to_thread(self.deployments.get, name)
            except NotFound:  # deleted between the two reads
                revisions.pop(name, None)
        self._revisions = revisions

    def _ready(self, key: EngineKey) -> bool:
        entry = self._engines.get(key)
        return entry is not None and entry.state == "ready" and entry.engine is not None

    @staticmethod
    def _availability(entry: ManagedEngine, ready: bool, error: str | None) -> None:
        """An engine that recovers on its own went away (``unavailable``) or came back (``ready``)."""
        state: EngineState = "ready" if ready else "unavailable"
        if entry.state == state:
            return
        entry.state, entry.error, entry.since = state, (None if ready else error), time.time()
        if ready:
            log.info("engine %s: available again", entry.key.label)
        else:
            log.warning("engine %s: unavailable (%s); its routes answer 503 until it recovers", entry.key.label, error)

    def _fail(self, entry: ManagedEngine, error: str) -> None:
        entry.state = "failed"
        entry.error = error
        entry.attempts += 1
        delay = min(self.backoff_max, self.backoff_base * 2 ** (entry.attempts - 1))
        entry.retry_at = time.monotonic() + delay
        entry.since = time.time()
        log.warning("engine %s failed (attempt %d, retry in %.0f s): %s", entry.key.label, entry.attempts, delay, error)

    def _spawn_load(self, entry: ManagedEngine) -> None:
        entry.state = "loading"
        entry.since = time.time()
        entry.task = asyncio.create_task(self._load(entry), name=f"load-{entry.key.label}")

    def _trusted_keys(self, key: EngineKey) -> list[Sequence[str]]:
        """The trusted-key sets of every deployment whose routes use ``key`` and that require signatures."""
        found: list[Sequence[str]] = []
        for d in (*self._desired.values(), *self._serving.values()):
            if d.spec.require_signature and key in _keys(d) and d.spec.trusted_keys not in found:
                found.append(d.spec.trusted_keys)
        return found

    async def _load(self, entry: ManagedEngine) -> None:
        key = entry.key
        engine: AnyEngine | None = None
        try:
            factory = self.factories.get(key.engine)
            if factory is None:
                raise Unavailable(f"no engine named {key.engine!r}; known: {', '.join(sorted(self.factories))}")
            path: Path | None = None
            if key.version is not None and key.engine not in REMOTE_ENGINES:
                requirements: list[Sequence[str] | None] = [*self._trusted_keys(key)] or [None]
                for trusted in requirements:  # each requiring deployment's keys are checked
                    path = await asyncio.to_thread(self.model_cache.materialize, key.version, trusted_keys=trusted)
            engine = factory(path, key.version or key.engine, dict(key.options))
            await engine.start()
            await self._probe(engine, embedding=key.embedding)
        except asyncio.CancelledError:
            if engine is not None:
                self._stopping_task(engine)
            raise
        except Exception as exc:
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            self._fail(entry, f"{type(exc).__name__}: {message}")
            if engine is not None:
                self._stopping_task(engine)
        else:
            entry.engine, entry.state, entry.error, entry.attempts = engine, "ready", None, 0
            entry.since = time.time()
            log.info("engine %s: ready", key.label)
        finally:
            entry.task = None
            self.poke()

    @staticmethod
    async def _probe(engine: AnyEngine, *, embedding: bool) -> None:
        """The engine answers: one greedy token, one embedding, or (an upstream) its health."""
        if isinstance(engine, UpstreamEngine):
            health = await engine.health()
            if not health.ready:
                raise Unavailable(f"the upstream does not answer: {health.last_error or health.status}")
            return
        if embedding:
            embedder: EmbeddingEngine = engine  # type: ignore[assignment]
            await embedder.embed(["ping"])
            return
        generator: Engine = engine  # type: ignore[assignment]
        prompt: str | list[int] = "ping" if generator.tokenizer.encode("ping") else [0]
        stream = await generator.generate(GenerationRequest(prompt=prompt, max_tokens=1, temperature=0.0))
        try:
            async for _ in stream:
                pass
        finally:
            await stream.aclose()

    def _stopping_task(self, engine: AnyEngine) -> None:
        task = asyncio.create_task(self._stop_engine_obj(engine))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _stop_engine_obj(self, engine: AnyEngine) -> None:
        try:
            await engine.stop(self.drain_timeout)
        except Exception:
            log.exception("engine %s: stop failed", engine.model_name)

    async def _stop_engine(self, entry: ManagedEngine) -> None:
        if entry.engine is not None:
            await self._stop_engine_obj(entry.engine)
            entry.engine = None

    # --- what requests need ---------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """Every deployment serves its newest revision and every engine its routes use is loaded and probed."""
        for name, desired in self._desired.items():
            serving = self._serving.get(name)
            if serving is None or serving.revision != desired.revision:
                return False
            if not all(self._ready(k) for k in _keys(desired)):
                return False
        return True

    def serving(self, name: str) -> DeploymentOut | None:
        """The deployment as it serves now (the newest revision whose engines are all ready), or None."""
        return self._serving.get(name)

    def deployments_known(self) -> list[DeploymentOut]:
        """Every deployment the manager knows (its newest revision), by name."""
        return [self._desired[n] for n in sorted(self._desired)]

    async def lookup(self, name: str) -> DeploymentOut:
        """The deployment ``name`` as it serves now; ``NotFound`` if there is none, ``Unavailable`` while it loads."""
        serving = self._serving.get(name)
        if serving is not None:
            return serving
        if name not in self._desired:
            revisions = await asyncio.to_thread(self.deployments.revisions_in_force)
            if name not in revisions:
                raise NotFound(f"The model `{name}` does not exist.", details={"code": "model_not_found"})
            self.poke()
        raise Unavailable(
            f"deployment {name} is starting: its engines are loading",
            details={"code": "engine_not_ready", "retry_after": 2},
        )

    def entry(self, route: RouteSpec) -> ManagedEngine:
        entry = self._engines.get(EngineKey.of(route))
        if entry is None or entry.state != "ready" or entry.engine is None:
            state = entry.state if entry else "not started"
            detail = f": {entry.error}" if entry and entry.error else ""
            raise Unavailable(
                f"the engine of route {route.name} ({route.version}) is {state}{detail}",
                details={"code": "engine_not_ready", "retry_after": 2},
            )
        return entry

    def upstream_engine(self, route: RouteSpec) -> UpstreamEngine | None:
        """The route's engine when it is an OpenAI-compatible upstream (requests pass through), else None;
        ``Unavailable`` (503) when it is not ready."""
        engine = self.entry(route).engine
        return engine if isinstance(engine, UpstreamEngine) else None

    def generation_engine(self, route: RouteSpec) -> Engine:
        entry = self.entry(route)
        if entry.key.upstream:
            raise InvalidInput(
                f"route {route.name} is served by an upstream server; its requests pass through",
                details={"code": "wrong_engine"},
            )
        if entry.key.embedding:
            raise InvalidInput(
                f"route {route.name} serves embeddings; use /v1/embeddings",
                details={"code": "wrong_endpoint", "param": "model"},
            )
        engine: Engine = entry.engine  # type: ignore[assignment]
        return engine

    def embedding_engine(self, route: RouteSpec) -> EmbeddingEngine:
        entry = self.entry(route)
        if not entry.key.embedding:
            raise InvalidInput(
                f"route {route.name} serves text generation; /v1/embeddings needs an embeddings deployment",
                details={"code": "wrong_endpoint", "param": "model"},
            )
        engine: EmbeddingEngine = entry.engine  # type: ignore[assignment]
        return engine

    def record(self, route: RouteSpec, *, shadow: bool = False) -> None:
        """Count a request served by (or mirrored to) the engine of ``route``."""
        entry = self._engines.get(EngineKey.of(route))
        if entry is not None:
            if shadow:
                entry.shadow_requests += 1
            else:
                entry.requests += 1

    def engine_entries(self) -> list[ManagedEngine]:
        return list(self._engines.values())

    async def health(self) -> dict[str, Any]:
        """Readiness, every deployment's desired and serving revision, and every engine's state."""
        engines = []
        for entry in list(self._engines.values()):
            health = await entry.engine.health() if entry.engine is not None else None
            engines.append(entry.describe(health))
        deployments = [
            {
                "name": name,
                "revision": d.revision,
                "serving_revision": self._serving[name].revision if name in self._serving else None,
                "routes": [{"name": r.name, "mode": r.mode, "engine": EngineKey.of(r).label} for r in d.spec.routes],
            }
            for name, d in sorted(self._desired.items())
        ]
        return {"ready": self.ready, "error": self.last_error, "deployments": deployments, "engines": engines}


__all__ = [
    "EngineFactory",
    "EngineKey",
    "EngineManager",
    "ManagedEngine",
    "default_factories",
    "embeddings_factory",
    "free_loopback_port",
    "openai_upstream_factory",
    "torch_factory",
    "vllm_factory",
]
