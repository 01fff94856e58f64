"""``create_app(settings)``: the one FastAPI application of a platform process.

The platform (database, blobs, services) is built when the app is created, so the app also works
under an in-process transport without a lifespan; the lifespan runs background upkeep (marking
crashed runs) and closes what it opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from llmops import __version__
from llmops.api import errors
from llmops.api.limits import BodySizeLimit
from llmops.api.system import router as system_router
from llmops.blobs.routes import router as store_router
from llmops.datasets.routes import router as datasets_router
from llmops.monitoring.routes import router as monitoring_router
from llmops.monitoring.writer import DatabaseWriter
from llmops.monitoring.writer_process import WriterConfig, WriterProcess
from llmops.platform import Platform
from llmops.registry.routes import router as models_router
from llmops.security.routes import router as security_router
from llmops.serving.deployments.routes import router as deployments_router
from llmops.serving.gateway import Gateway
from llmops.serving.kserve.routes import router as kserve_router
from llmops.serving.kserve.serving import KServeServing
from llmops.serving.manager import EngineManager, default_factories
from llmops.serving.metrics import ServingMetrics
from llmops.serving.openai.routes import router as openai_router
from llmops.serving.openai.serving import OpenAIServing
from llmops.serving.records import AnyWriter, BufferedSink, LogWriter
from llmops.serving.routes import metrics_router
from llmops.serving.routes import router as serving_router
from llmops.settings import Settings
from llmops.tracking.routes import router as runs_router
from llmops.ui.routes import STATIC_DIR
from llmops.ui.routes import router as ui_router

log = logging.getLogger("llmops.api")
REAP_INTERVAL_SECONDS = 30.0
UPLOAD_PATHS = r"^/api/v1/(runs/[0-9a-f]{32}/artifacts/|models/[^/]+/upload$|datasets/import$)"


def create_app(
    settings: Settings | None = None, *, platform: Platform | None = None, engines: EngineManager | None = None
) -> FastAPI:
    """The app; ``engines`` replaces the default engine manager (tests pass one with a short poll interval)."""
    owns_platform = platform is None
    platform = platform or Platform(settings or Settings())
    settings = platform.settings
    manager = engines or EngineManager(
        platform.deployments, platform.model_cache, factories=default_factories(log_dir=settings.home / "logs")
    )
    records = BufferedSink(_request_writers(settings, platform), capacity=settings.records_buffer)
    gateway = Gateway(
        platform.counters,
        sink=records,
        metrics=ServingMetrics(),
        cache_ttl=settings.response_cache_seconds,
        ledger=platform.requests.spent if settings.request_store else None,
    )
    openai = OpenAIServing(manager, gateway)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_reap_forever(platform))
        alerts = asyncio.create_task(_alert_forever(platform, settings.alert_interval_seconds))
        await records.start()
        await manager.start()  # engines load in the background; /readyz turns ready when they answer
        try:
            yield
        finally:
            # New generation requests get 503 while in-flight ones finish (``llmops serve`` starts this drain
            # before it closes its sockets; here it covers other servers), then the engines stop.
            await openai.drain(settings.drain_seconds)
            await manager.stop()
            await records.stop()
            for background in (task, alerts):
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await background
            if owns_platform:
                platform.close()

    app = FastAPI(
        title="llmops",
        version=__version__,
        description="Self-hosted LLMOps platform: platform REST API.",
        lifespan=lifespan,
    )
    app.state.platform = platform
    app.state.engines = manager
    app.state.openai = openai
    app.state.gateway = gateway
    app.state.records = records
    app.state.kserve = KServeServing(app.state.openai)
    errors.install(app)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
        upload_paths=UPLOAD_PATHS,
    )
    for router in (
        system_router,
        security_router,
        runs_router,
        store_router,
        models_router,
        datasets_router,
        deployments_router,
        monitoring_router,
        serving_router,
        openai_router,
        metrics_router,
        kserve_router,
        ui_router,
    ):
        app.include_router(router, responses=errors.ERROR_RESPONSES)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _request_writers(settings: Settings, platform: Platform) -> list[AnyWriter]:
    """The request log and store writers: in a writer process of their own (``LLMOPS_REQUEST_WRITER=process``,
    the default: their CPU work in the gateway's process contends with the event loop for the GIL), or here,
    the database writer in a worker thread and the log on the event loop (``thread``)."""
    config = WriterConfig.from_settings(settings)
    if not config.names:
        return []
    if settings.request_writer == "process":
        return [WriterProcess(config)]
    writers: list[AnyWriter] = [LogWriter()] if config.log else []
    if config.database_url is not None:
        writers.append(DatabaseWriter(platform.requests))
    return writers


async def _alert_forever(platform: Platform, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await run_in_threadpool(platform.alerts.evaluate)
        except Exception:
            log.exception("alert evaluation failed; retrying in %.0f s", interval)


async def _reap_forever(platform: Platform) -> None:
    while True:
        try:
            reaped = await run_in_threadpool(platform.tracking.reap_stale)
            if reaped:
                log.warning("marked %d crashed run(s) as failed: %s", len(reaped), ", ".join(reaped))
            purged = await run_in_threadpool(platform.requests.purge_texts)
            if purged:
                log.info("deleted the kept texts of %d request(s) past their retention", purged)
        except Exception:
            log.exception("run reaper failed; retrying")
        await asyncio.sleep(REAP_INTERVAL_SECONDS)
