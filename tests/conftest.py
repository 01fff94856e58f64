"""Shared fixtures: real backends for contract tests.

- ``database_url``: SQLite file and PostgreSQL (127.0.0.1:5432, a fresh schema per test).
- ``s3_endpoint``: a local S3-compatible server (moto in server mode) started once per test session as
  a separate process, spoken to over HTTP by boto3 exactly as a real S3.
- ``blob_store``: the local store and the S3 store.
- ``platform``: the two stacks the platform ships: embedded (SQLite + local) and scale-out
  (PostgreSQL + S3). Every test that takes ``platform`` runs on both.

No fixture skips when a server is missing: a contract test that cannot reach PostgreSQL fails.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from sqlalchemy import create_engine, text

from llmops.blobs.base import BlobStore
from llmops.blobs.local import LocalBlobStore
from llmops.blobs.s3 import S3BlobStore
from llmops.platform import Platform
from llmops.security.actor import Actor, local_admin
from llmops.settings import Settings

PG_ADMIN_URL = os.environ.get("LLMOPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
S3_KEY, S3_SECRET, S3_REGION = "testing", "testing", "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- PostgreSQL --------------------------------------------------------------------------------------
@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is required for the contract tests: {exc}")
    yield f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
    with admin.connect() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'llmops.db'}"
    return str(request.getfixturevalue("pg_url"))


# --- S3 ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"moto server exited: {log.read_text()[-2000:]}")
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("moto server did not start within 30 s")
    yield endpoint
    proc.terminate()
    proc.wait(timeout=10)


def s3_client(endpoint: str):  # type: ignore[no-untyped-def]
    return boto3.client(
        "s3", endpoint_url=endpoint, region_name=S3_REGION, aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET
    )


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    bucket = f"llmops-{uuid.uuid4().hex[:12]}"
    s3_client(s3_endpoint).create_bucket(Bucket=bucket)
    return bucket


# --- blob stores -------------------------------------------------------------------------------------
@pytest.fixture(params=["local", "s3"])
def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    # A small multipart threshold so that the contract tests exercise multipart uploads.
    return S3BlobStore(s3_client(endpoint), bucket, "pre/fix", multipart_threshold=5 << 20)


# --- whole platform ----------------------------------------------------------------------------------
def stack_settings(request: pytest.FixtureRequest, tmp_path: Path, stack: str, **overrides: object) -> Settings:
    if stack == "embedded":
        return Settings(home=tmp_path / "home", **overrides)  # type: ignore[arg-type]
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    return Settings(
        home=tmp_path / "home",
        database_url=request.getfixturevalue("pg_url"),
        blob_url=f"s3://{bucket}/llmops",
        s3_endpoint_url=endpoint,
        s3_region=S3_REGION,
        s3_access_key_id=S3_KEY,
        s3_secret_access_key=S3_SECRET,
        s3_multipart_threshold_mb=5,
        **overrides,  # type: ignore[arg-type]
    )


@pytest.fixture(params=["embedded", "scaleout"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings of the embedded stack (SQLite + local) and the scale-out stack (PostgreSQL + S3)."""
    return stack_settings(request, tmp_path, request.param)


@pytest.fixture
def platform(settings: Settings) -> Iterator[Platform]:
    p = Platform(settings)
    yield p
    p.close()


@pytest.fixture
def embedded_platform(tmp_path: Path) -> Iterator[Platform]:
    """Only the embedded stack, for tests about the default install (CLI, UI)."""
    p = Platform(Settings(home=tmp_path / "home"))
    yield p
    p.close()


@pytest.fixture
def admin() -> Actor:
    return local_admin(via="cli")
