"""The composition root: turns ``Settings`` into backends and services.

Only this module chooses implementations (by URL scheme); services receive what they need as
constructor arguments, so tests and other deployments can compose them differently.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from llmops.blobs.base import BlobStore
from llmops.blobs.local import LocalBlobStore
from llmops.blobs.maintenance import BlobMaintenance
from llmops.counters.base import Counters
from llmops.counters.memory import MemoryCounters
from llmops.datasets.service import DatasetService
from llmops.db.database import Database
from llmops.db.migrate import upgrade
from llmops.monitoring.alerts import AlertService
from llmops.monitoring.feedback import FeedbackService
from llmops.monitoring.monitor import MonitorService
from llmops.monitoring.store import RequestStore
from llmops.registry.cache import ModelCache
from llmops.registry.service import RegistryService
from llmops.security.actor import Actor, local_admin
from llmops.security.audit import AuditLog
from llmops.security.service import SecurityService
from llmops.serving.deployments.service import DeploymentService
from llmops.settings import Settings
from llmops.tracking.active import ActiveRun
from llmops.tracking.service import TrackingService


def build_blob_store(settings: Settings) -> BlobStore:
    parts = urlsplit(settings.blob_url)
    if parts.scheme == "file":
        return LocalBlobStore(Path(parts.path), fsync=settings.store_fsync)
    if parts.scheme == "s3":
        try:
            import boto3
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError("s3:// blob store needs boto3: pip install 'llmops[s3]'") from exc
        from llmops.blobs.s3 import S3BlobStore

        client = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id.get_secret_value() if settings.s3_access_key_id else None,
            aws_secret_access_key=(
                settings.s3_secret_access_key.get_secret_value() if settings.s3_secret_access_key else None
            ),
        )
        return S3BlobStore(
            client, parts.netloc, parts.path, multipart_threshold=settings.s3_multipart_threshold_mb << 20
        )
    raise ValueError(f"unsupported blob URL {settings.blob_url!r}")


def build_counters(settings: Settings) -> Counters:
    if not settings.redis_url:
        return MemoryCounters()
    try:
        from llmops.counters.redis import RedisCounters
        from llmops.counters.resilient import ResilientCounters

        # Redis going away must not refuse traffic: limits fall back to per-process counters, loudly.
        return ResilientCounters(RedisCounters.from_url(settings.redis_url))
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError("LLMOPS_REDIS_URL needs the redis package: pip install 'llmops[redis]'") from exc


class Platform:
    """Every service of one llmops installation, built from one ``Settings``."""

    def __init__(self, settings: Settings, *, migrate: bool = True) -> None:
        self.settings = settings
        settings.home.mkdir(parents=True, exist_ok=True)
        self.db = Database(settings.database_url)
        if migrate:
            upgrade(self.db)
        self.blobs = build_blob_store(settings)
        self.counters = build_counters(settings)
        self.audit = AuditLog(self.db)
        self.security = SecurityService(self.db, self.audit, auth_cache_seconds=settings.auth_cache_seconds)
        self.tracking = TrackingService(self.db, self.blobs, self.audit, stale_after=settings.run_stale_seconds)
        self.store = BlobMaintenance(self.db, self.blobs)
        self.registry = RegistryService(self.db, self.blobs, self.audit, self.tracking)
        self.model_cache = ModelCache(
            settings.home / "cache" / "models", self.registry, cap_bytes=settings.model_cache_bytes
        )
        self.deployments = DeploymentService(self.db, self.audit, self.registry)
        self.datasets = DatasetService(
            self.db,
            self.blobs,
            self.audit,
            self.tracking,
            scratch=settings.home / "tmp" / "datasets",
            model_cache=self.model_cache,
            read_cache=settings.home / "cache" / "datasets",
        )
        self.requests = RequestStore(self.db)
        self.feedback = FeedbackService(self.db, self.requests, self.audit, self.tracking, self.datasets)
        self.monitor = MonitorService(self.requests, self.datasets)
        self.alerts = AlertService(self.db, self.requests, self.audit, drift=self.monitor.drift)

    def start_run(
        self,
        *,
        kind: str,
        name: str,
        params: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        parent: str | ActiveRun | None = None,
        description: str | None = None,
        actor: Actor | None = None,
    ) -> ActiveRun:
        """Start a tracked run in this process; use it as a context manager."""
        actor = actor or local_admin(via="python")
        parent_id = parent.id if isinstance(parent, ActiveRun) else parent
        run = self.tracking.create_run(
            actor,
            kind=kind,
            name=name,
            params=params,
            tags=tags,
            parent_id=parent_id,
            description=description,
            pid=os.getpid(),
        )
        return ActiveRun(self.tracking, actor, run, heartbeat_seconds=self.settings.run_heartbeat_seconds)

    def close(self) -> None:
        self.db.dispose()


_default: Platform | None = None
_default_lock = threading.Lock()


def default_platform() -> Platform:
    """The platform configured by the environment (``LLMOPS_*``), opened once per process."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Platform(Settings())
        return _default


def start_run(**kwargs: Any) -> ActiveRun:
    """``with llmops.start_run(kind="train", name="…") as run: …`` on the default platform."""
    return default_platform().start_run(**kwargs)
