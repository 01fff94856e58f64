"""Liveness, readiness (database and blob store checks), the OpenAPI document and the masked config."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from llmops import __version__
from llmops.api.app import create_app
from llmops.blobs.s3 import S3BlobStore
from llmops.platform import Platform
from llmops.security.actor import Actor
from llmops.settings import Settings
from tests.conftest import s3_client


def admin_headers(platform: Platform, admin: Actor, role: str = "admin") -> dict[str, str]:
    platform.security.create_principal(admin, f"p-{role}", role=role)
    return {"Authorization": f"Bearer {platform.security.create_key(admin, principal=f'p-{role}').key}"}


def test_healthz(platform: Platform) -> None:
    response = TestClient(create_app(platform=platform)).get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": __version__}


def test_readyz_ok(platform: Platform) -> None:
    response = TestClient(create_app(platform=platform)).get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "blobs": "ok"}}


def test_readyz_503_when_the_blob_store_is_unreachable(platform: Platform) -> None:
    client = TestClient(create_app(platform=platform))
    assert client.get("/readyz").status_code == 200
    if isinstance(platform.blobs, S3BlobStore):  # scale-out: the bucket disappears
        s3_client(str(platform.settings.s3_endpoint_url)).delete_bucket(Bucket=platform.blobs.bucket)
    else:  # embedded: the blob directory disappears
        shutil.rmtree(Path(platform.settings.blob_url.removeprefix("file://")))
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["blobs"] != "ok" and platform.blobs.url in body["checks"]["blobs"]


def test_readyz_503_for_a_missing_bucket(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """A platform configured with a bucket that was never created starts, and says it is not ready."""
    endpoint = request.getfixturevalue("s3_endpoint")
    settings = Settings(
        home=tmp_path / "home",
        blob_url="s3://no-such-bucket-llmops/prefix",
        s3_endpoint_url=endpoint,
        s3_region="us-east-1",
        s3_access_key_id=SecretStr("testing"),
        s3_secret_access_key=SecretStr("testing"),
    )
    platform = Platform(settings)
    try:
        response = TestClient(create_app(platform=platform)).get("/readyz")
        assert response.status_code == 503
        message = response.json()["checks"]["blobs"]
        assert "s3://no-such-bucket-llmops/prefix" in message and "bucket" in message
    finally:
        platform.close()


def test_openapi_is_served(platform: Platform) -> None:
    response = TestClient(create_app(platform=platform)).get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["info"]["version"] == __version__
    for path in ("/api/v1/runs", "/api/v1/runs/{run_id}/artifacts/{path}", "/api/v1/keys", "/api/v1/audit", "/readyz"):
        assert path in document["paths"], path


def test_config_requires_admin_and_masks_secrets(settings: Settings, admin: Actor) -> None:
    """Secrets given to the scale-out stack never leave the server; URL passwords are masked too."""
    secret, key_id, db_password = "s3-secret-Zq81", "s3-key-id-Pw02", "db-pass-Xy77"
    update: dict[str, object] = {}
    if settings.database_url.startswith("postgresql"):
        update = {
            "database_url": settings.database_url.replace("postgres@", f"postgres:{db_password}@", 1),
            "s3_secret_access_key": SecretStr(secret),
            "s3_access_key_id": SecretStr(key_id),
        }
    platform = Platform(settings.model_copy(update=update))
    try:
        client = TestClient(create_app(platform=platform))
        maintainer = admin_headers(platform, admin, "maintainer")
        denied = client.get("/api/v1/config", headers=maintainer)
        assert denied.status_code == 403 and "admin" in denied.json()["error"]["message"]
        response = client.get("/api/v1/config", headers=admin_headers(platform, admin))
        assert response.status_code == 200
        config = response.json()
        assert config["home"] == str(settings.home)
        assert set(config) == set(Settings.model_fields)
        if update:
            assert config["s3_secret_access_key"] == "********"
            assert config["s3_access_key_id"] == "********"
            assert "postgres:***@127.0.0.1" in config["database_url"]
            for value in (secret, key_id, db_password):
                assert value not in response.text
            assert config["blob_url"] == settings.blob_url
        else:
            assert config["s3_secret_access_key"] is None
            assert config["database_url"] == settings.database_url
    finally:
        platform.close()
