"""Settings: the one place that reads the environment.

Every setting is an ``LLMOPS_*`` environment variable (or a keyword argument in tests). Derived
defaults (database and blob URLs inside the home) are resolved here so that the rest of the code sees
concrete values. ``tests/test_settings.py`` fails when a field is not documented in the README or docs.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DATABASE_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg")
BLOB_SCHEMES = ("file", "s3")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class Settings(BaseSettings):
    """Effective configuration of one llmops process."""

    model_config = SettingsConfigDict(env_prefix="LLMOPS_", extra="forbid", validate_default=True)

    home: Path = Field(default=Path("~/.llmops"), description="Platform home: database, blobs, caches.")
    database_url: str = Field(
        default="", description="SQLAlchemy URL; default sqlite:///<home>/llmops.db (PostgreSQL: postgresql://...)."
    )
    blob_url: str = Field(default="", description="Blob store URL; default file://<home>/blobs, or s3://bucket/prefix.")
    store_fsync: bool = Field(
        default=True,
        description="Local blob store: fsync every blob before it is published (false: leave write-back to the "
        "OS, like cp; a power loss can then lose recent blobs, which loads detect and `store fsck` reports).",
    )
    s3_endpoint_url: str | None = Field(default=None, description="S3 endpoint for S3-compatible stores.")
    s3_region: str | None = Field(default=None, description="S3 region.")
    s3_access_key_id: SecretStr | None = Field(default=None, description="S3 access key id.")
    s3_secret_access_key: SecretStr | None = Field(default=None, description="S3 secret access key.")
    s3_multipart_threshold_mb: int = Field(default=64, ge=5, description="Objects above this size upload in parts.")
    redis_url: str | None = Field(default=None, description="Redis URL for shared counters and caches (optional).")
    host: str = Field(default="127.0.0.1", description="Address `llmops serve` binds to.")
    port: int = Field(default=8080, ge=1, le=65535, description="Port `llmops serve` binds to.")
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, description="Largest accepted HTTP request body.")
    max_upload_bytes: int = Field(
        default=8 * 1024**3,
        ge=1024,
        description="Largest accepted streamed upload (run artifacts, model and dataset uploads).",
    )
    import_roots: list[Path] = Field(
        default_factory=list,
        description="Directories the server may import models from over HTTP (JSON list); empty: CLI imports only.",
    )
    model_cache_bytes: int = Field(
        default=50 * 1024**3, ge=0, description="Size cap of the local model cache (least recently used evicted)."
    )
    blob_gc_grace_seconds: int = Field(
        default=24 * 3600, ge=0, description="`store gc` never removes an unreferenced blob younger than this."
    )
    run_heartbeat_seconds: float = Field(default=10.0, gt=0, description="How often an active run reports it is alive.")
    run_stale_seconds: float = Field(
        default=120.0, gt=0, description="A running run silent for this long (or whose process died) is marked failed."
    )
    log_level: str = Field(default="INFO", description="Python logging level.")
    drain_seconds: float = Field(
        default=30.0,
        ge=0,
        description="On shutdown, new generation requests get 503 while in-flight ones finish for up to this long.",
    )
    response_cache_seconds: float = Field(
        default=3600.0, gt=0, description="How long a cached response lives (deployments with response_cache)."
    )
    records_buffer: int = Field(
        default=10_000,
        ge=1,
        description="Request records held for the writers; beyond it they are dropped and counted.",
    )
    request_log: bool = Field(default=True, description="Log every request record as a JSON line (llmops.requests).")
    request_store: bool = Field(
        default=True, description="Store every request record in the database (monitoring, costs, feedback)."
    )
    request_writer: Literal["process", "thread"] = Field(
        default="process",
        description="Where the request log and store writers run: a separate writer process (the gateway only "
        "hands it batches; no GIL contention with serving) or a thread of the gateway process.",
    )
    alert_interval_seconds: float = Field(
        default=60.0, gt=0, description="How often the server evaluates the alert rules."
    )
    auth_cache_seconds: float = Field(
        default=30.0,
        ge=0,
        description="How long a verified API key is trusted without asking the database (0: always ask).",
    )

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @model_validator(mode="after")
    def _derive_defaults(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.home / 'llmops.db'}"
        if not self.blob_url:
            self.blob_url = f"file://{self.home / 'blobs'}"
        db_scheme = urlsplit(self.database_url).scheme
        if db_scheme not in DATABASE_SCHEMES:
            raise ValueError(f"LLMOPS_DATABASE_URL has scheme {db_scheme!r}; use one of {', '.join(DATABASE_SCHEMES)}")
        blob = urlsplit(self.blob_url)
        if blob.scheme not in BLOB_SCHEMES:
            raise ValueError(f"LLMOPS_BLOB_URL has scheme {blob.scheme!r}; use file:///path or s3://bucket/prefix")
        if blob.scheme == "s3" and not blob.netloc:
            raise ValueError("LLMOPS_BLOB_URL s3:// needs a bucket, for example s3://models/llmops")
        return self

    def masked(self) -> dict[str, Any]:
        """Effective settings for display, with secrets and URL passwords masked."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "********"
            elif isinstance(value, str) and name.endswith("_url"):
                value = mask_url_password(value)
            elif isinstance(value, Path):
                value = str(value)
            out[name] = value
        return out


def configure_logging(level: str) -> None:
    """How ``llmops serve`` and its request writer process log: one line per record on stderr at ``level``
    (``LLMOPS_LOG_LEVEL``), so both processes' lines land in the same stream."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT)


def mask_url_password(url: str) -> str:
    """Replace the password of ``scheme://user:password@host`` with ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def environment_secret(name: str) -> str | None:
    """The value of the environment variable ``name``, for secrets a spec names rather than holds (the
    ``api_key_env`` engine option of an ``openai-upstream`` route); None when it is unset or empty."""
    return os.environ.get(name) or None
