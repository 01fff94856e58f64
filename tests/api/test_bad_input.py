"""Bad input over HTTP: every refusal is a 4xx that names the field and the rule, and loses nothing.

Why: the REST API is the platform's widest attack and mistake surface. Malformed JSON, unknown
fields, oversized bodies, names that would escape a directory or break a reference (``/``, ``..``,
control characters, over-long values), non-finite metrics and bad credentials must each be refused
with a precise, machine-readable error in the one platform shape ``{"error": {"code", "message",
"details"}}`` - never a 5xx, never a half-applied change. Every test runs on both shipped stacks
(SQLite + local blobs, PostgreSQL + S3): some inputs (a NUL character) are harmless to SQLite and
fatal to PostgreSQL, and the API must behave the same on both.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from llmops.api.app import create_app
from llmops.errors import InvalidInput
from llmops.naming import NAME_RULE
from llmops.platform import Platform
from llmops.security.actor import local_admin
from llmops.security.tables import ApiKey, AuditEvent, Principal
from llmops.tracking.tables import Artifact, MetricPoint, Run, RunParam, RunTag
from tests.conftest import stack_settings

MAX_BODY = 8192
MAX_UPLOAD = 16384
UNKNOWN_RUN = "0" * 32


@dataclass
class Api:
    """A platform, a client on its app, and keys for three roles."""

    platform: Platform
    client: TestClient
    admin: dict[str, str]
    developer: dict[str, str]
    viewer: dict[str, str]
    run_id: str  # a running run, for the routes under /runs/{id}


@pytest.fixture(params=["embedded", "scaleout"])
def api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Api]:
    settings = stack_settings(request, tmp_path, request.param, max_body_bytes=MAX_BODY, max_upload_bytes=MAX_UPLOAD)
    platform = Platform(settings)
    boot = local_admin()
    keys: dict[str, dict[str, str]] = {}
    for role in ("admin", "developer", "viewer"):
        platform.security.create_principal(boot, f"{role}-user", role=role)
        token = platform.security.create_key(boot, principal=f"{role}-user").key
        keys[role] = {"Authorization": f"Bearer {token}"}
    run = platform.tracking.create_run(boot, kind="train", name="target")
    client = TestClient(create_app(platform=platform), raise_server_exceptions=False)
    yield Api(platform, client, keys["admin"], keys["developer"], keys["viewer"], run.id)
    client.close()
    platform.close()


# --- helpers -----------------------------------------------------------------------------------------
def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is ``status`` with exactly the platform error shape and the given ``code``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"].strip(), error
    return dict(error)


def assert_invalid_field(response: httpx.Response, field: str, rule_words: str) -> dict[str, Any]:
    """A 422 whose message names ``field`` and states the rule (``rule_words`` appear in it)."""
    error = assert_error(response, 422, "invalid_input")
    assert field in error["message"], error
    assert rule_words in error["message"], error
    details = error["details"]
    fields = [d["field"] for d in details] if isinstance(details, list) else [details["field"]]
    # A dict key is located as ``<dict>.<key>.[key]``; the field named is a prefix of that location.
    assert any(f == field or f.startswith(f"{field}.") for f in fields), error
    return error


def snapshot(platform: Platform) -> dict[str, int]:
    """Row counts of everything a request could have written, and the number of stored blobs."""
    with platform.db.read() as session:
        counts = {
            table.__name__: int(session.scalar(select(func.count()).select_from(table)) or 0)
            for table in (Run, RunParam, RunTag, MetricPoint, Artifact, Principal, ApiKey, AuditEvent)
        }
    counts["blobs"] = sum(1 for _ in platform.blobs.iter_blobs())
    return counts


def post_raw(api: Api, url: str, body: bytes) -> httpx.Response:
    response: httpx.Response = api.client.post(
        url, content=body, headers={**api.admin, "Content-Type": "application/json"}
    )
    return response


# --- malformed JSON and unknown fields ------------------------------------------------------------
MALFORMED_JSON = {
    "garbage": b"{bad",
    "truncated": b'{"kind": "train", "name": "x"',
    "not-utf8": b"\xff\xfe{}",
    "trailing-comma": b'{"kind": "train",}',
    "open-array": b"[1, 2",
    "raw-control-char": b'{"kind": "train", "name": "a\x01b"}',
}


def test_malformed_json_is_400_and_creates_nothing(api: Api, subtests: pytest.Subtests) -> None:
    before = snapshot(api.platform)
    for label, body in MALFORMED_JSON.items():
        for url in ("/api/v1/runs", "/api/v1/principals", f"/api/v1/runs/{api.run_id}/metrics"):
            with subtests.test(label, url=url):
                error = assert_error(post_raw(api, url, body), 400, "malformed_json")
                assert "not valid JSON" in error["message"]
    # An empty body is a missing body: a validation error rather than bad JSON.
    assert_invalid_field(post_raw(api, "/api/v1/runs", b""), "body", "Field required")
    assert snapshot(api.platform) == before


def test_unknown_fields_are_named(api: Api) -> None:
    before = snapshot(api.platform)
    response = api.client.post("/api/v1/runs", json={"kind": "train", "name": "x", "colour": "red"}, headers=api.admin)
    error = assert_invalid_field(response, "colour", "Extra inputs are not permitted")
    assert error["details"][0]["rule"] == "extra_forbidden"
    nested = api.client.post(
        f"/api/v1/runs/{api.run_id}/metrics",
        json={"points": [{"key": "loss", "value": 1.0, "stpe": 3}]},
        headers=api.admin,
    )
    assert_invalid_field(nested, "points.0.stpe", "Extra inputs are not permitted")
    principal = api.client.post("/api/v1/principals", json={"name": "eve", "is_admin": True}, headers=api.admin)
    assert_invalid_field(principal, "is_admin", "Extra inputs are not permitted")
    assert snapshot(api.platform) == before


def test_wrong_types_and_missing_fields_are_named(api: Api) -> None:
    response = api.client.post("/api/v1/runs", json={"kind": "train"}, headers=api.admin)
    error = assert_invalid_field(response, "name", "Field required")
    assert error["details"][0]["rule"] == "missing"
    response = api.client.post("/api/v1/runs", json={"kind": "sleep", "name": "x"}, headers=api.admin)
    assert_invalid_field(response, "kind", "Input should be")
    response = api.client.post("/api/v1/runs", json=["kind", "train"], headers=api.admin)
    assert_error(response, 422, "invalid_input")
    response = api.client.get("/api/v1/runs", params={"limit": 0}, headers=api.admin)
    assert_invalid_field(response, "query.limit", "greater than or equal to 1")
    response = api.client.get("/api/v1/runs", params={"limit": "many"}, headers=api.admin)
    assert_invalid_field(response, "query.limit", "valid integer")


# --- names ----------------------------------------------------------------------------------------
BAD_NAMES = {
    "slash": "team/model",
    "backslash": "team\\model",
    "dotdot": "..",
    "dotdot-inside": "a..b",
    "traversal": "../etc/passwd",
    "nul": "a\x00b",
    "newline": "a\nb",
    "escape": "a\x1b[31m",
    "del": "a\x7fb",
    "too-long": "n" * 200,
    "empty": "",
    "leading-dot": ".hidden",
    "leading-dash": "-rf",
    "space": "my model",
    "unicode-slash": "a\u2215b",
}


def test_bad_names_are_refused_with_field_and_rule(api: Api, subtests: pytest.Subtests) -> None:
    before = snapshot(api.platform)
    for label, name in BAD_NAMES.items():
        with subtests.test(label):
            response = api.client.post("/api/v1/runs", json={"kind": "train", "name": name}, headers=api.admin)
            assert_invalid_field(response, "name", NAME_RULE)
            response = api.client.post("/api/v1/principals", json={"name": name}, headers=api.admin)
            assert_invalid_field(response, "name", NAME_RULE)
            body = {"principal": "viewer-user", "name": name}
            assert_invalid_field(api.client.post("/api/v1/keys", json=body, headers=api.admin), "name", NAME_RULE)
            with pytest.raises(InvalidInput) as exc:  # the Python API applies the same rule
                api.platform.tracking.create_run(local_admin(), kind="train", name=name)
            assert NAME_RULE in exc.value.message
    assert snapshot(api.platform) == before


def test_a_name_at_the_limit_is_accepted(api: Api) -> None:
    """The rule is a bound, not a blanket refusal: 128 characters pass, 129 do not."""
    ok = api.client.post("/api/v1/runs", json={"kind": "train", "name": "n" * 128}, headers=api.admin)
    assert ok.status_code == 201, ok.text
    too_long = api.client.post("/api/v1/runs", json={"kind": "train", "name": "n" * 129}, headers=api.admin)
    assert_invalid_field(too_long, "name", NAME_RULE)


def test_bad_keys_and_over_long_values_are_refused(api: Api) -> None:
    before = snapshot(api.platform)
    run = f"/api/v1/runs/{api.run_id}"
    cases: list[tuple[str, dict[str, Any], str, str]] = [
        (f"{run}/params", {"params": {"../lr": 1}}, "params.../lr", "is not a valid key"),
        (f"{run}/params", {"params": {"/abs": 1}}, "params./abs", "is not a valid key"),
        (f"{run}/params", {"params": {"k" * 251: 1}}, "params", "is not a valid key"),
        (f"{run}/tags", {"tags": {"a\x00b": "v"}}, "tags.a\x00b", "is not a valid key"),
        (f"{run}/tags", {"tags": {"note": "v" * 5001}}, "tags.note", "at most 5000 characters"),
        (f"{run}/metrics", {"points": [{"key": "a/../b", "value": 1}]}, "points.0.key", "is not a valid key"),
        (
            f"{run}/metrics",
            {"points": [{"key": "loss", "value": 1, "step": -1}]},
            "points.0.step",
            "greater than or equal to 0",
        ),
        ("/api/v1/runs", {"kind": "train", "name": "x", "description": "d" * 4001}, "description", "at most 4000"),
        ("/api/v1/principals", {"name": "eve", "email": "not-an-email"}, "email", "should match pattern"),
    ]
    for url, body, field, rule in cases:
        assert_invalid_field(api.client.post(url, json=body, headers=api.admin), field, rule)
    too_many = {"points": [{"key": "loss", "value": 0.0, "step": i} for i in range(10_001)]}
    # 10 001 points do not fit in MAX_BODY; the size limit answers first, also a refusal.
    assert api.client.post(f"{run}/metrics", json=too_many, headers=api.admin).status_code == 413
    long_param = api.client.post(f"{run}/params", json={"params": {"prompt": "p" * 3000}}, headers=api.admin)
    assert long_param.status_code == 204
    assert snapshot(api.platform)["RunParam"] == before["RunParam"] + 1


def test_param_value_over_the_limit_names_the_param(api: Api) -> None:
    """The Python API takes the same path as HTTP and refuses a value over ``MAX_PARAM_VALUE``."""
    with pytest.raises(InvalidInput) as exc:
        api.platform.tracking.log_params(api.run_id, {"prompt": "p" * 6001})
    assert "prompt" in exc.value.message and "longer than 6000" in exc.value.message


# --- NUL characters in free text (PostgreSQL cannot store them) -----------------------------------
def test_nul_characters_in_free_text_are_refused_on_every_stack(api: Api) -> None:
    before = snapshot(api.platform)
    run = f"/api/v1/runs/{api.run_id}"
    writes: list[tuple[str, dict[str, Any], str]] = [
        ("/api/v1/runs", {"kind": "train", "name": "x", "description": "a\x00b"}, "description"),
        (f"{run}/tags", {"tags": {"note": "a\x00b"}}, "value"),
        (f"{run}/params", {"params": {"prompt": "a\x00b"}}, "value"),
        (f"{run}/end", {"status": "failed", "reason": "a\x00b"}, "end_reason"),
        ("/api/v1/principals", {"name": "eve", "email": "e\x00@x.org"}, "email"),
    ]
    for url, body, field in writes:
        response = api.client.post(url, json=body, headers=api.admin)
        error = assert_error(response, 422, "invalid_input")
        assert field in error["message"] and "NUL" in error["message"], error
    assert snapshot(api.platform) == before
    assert api.platform.tracking.get_run(api.run_id).status == "running"
    lookups = [
        "/api/v1/principals/a%00b",
        f"{run}/artifacts/a%00b",
        f"{run}/metrics/a%00b",
        "/api/v1/runs?name=a%00b",
        "/api/v1/audit?actor=a%00b",
        "/api/v1/keys?principal=a%00b",
    ]
    for url in lookups:
        response = api.client.get(url, headers=api.admin)
        assert 400 <= response.status_code < 500, (url, response.text)
        assert set(response.json()) == {"error"}
    revoke = api.client.delete("/api/v1/keys/a%00b", headers=api.admin)
    assert 400 <= revoke.status_code < 500, revoke.text
    with pytest.raises(InvalidInput):
        api.platform.tracking.set_tags(local_admin(), api.run_id, {"note": "a\x00b"})


# --- body size ------------------------------------------------------------------------------------
def test_declared_oversized_body_is_413_before_reading(api: Api) -> None:
    before = snapshot(api.platform)
    body = json.dumps({"kind": "train", "name": "big", "description": "d" * MAX_BODY}).encode()
    response = post_raw(api, "/api/v1/runs", body)
    error = assert_error(response, 413, "payload_too_large")
    assert str(MAX_BODY) in error["message"]
    assert snapshot(api.platform) == before


def test_body_size_limit_is_exact(api: Api) -> None:
    """A body of exactly the limit is accepted; one byte more is refused."""

    def metrics(n: int) -> bytes:
        return json.dumps({"points": [{"key": "loss", "value": 0.5, "step": i} for i in range(n)]}).encode()

    n = 1
    while len(metrics(n + 1)) <= MAX_BODY:
        n += 1
    body = metrics(n)
    body += b" " * (MAX_BODY - len(body))  # pad with JSON whitespace to exactly the limit
    assert len(body) == MAX_BODY
    url = f"/api/v1/runs/{api.run_id}/metrics"
    assert post_raw(api, url, body).status_code == 204
    assert_error(post_raw(api, url, body + b" "), 413, "payload_too_large")
    assert snapshot(api.platform)["MetricPoint"] == n


def test_chunked_body_without_length_is_cut_off_at_the_limit(api: Api) -> None:
    """A streamed body with no Content-Length is counted as it arrives and refused once past the limit,
    without the server reading the rest of it."""
    before = snapshot(api.platform)
    chunk = b" " * 512
    total_chunks = 1000  # 512 KB, far past the 4 KB limit
    pulled = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal pulled
        yield b'{"kind": "train", "name": "stream", "description": "'
        for _ in range(total_chunks):
            pulled += 1
            yield chunk
        yield b'"}'

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=api.client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            request = client.build_request(
                "POST", "/api/v1/runs", content=body(), headers={**api.admin, "Content-Type": "application/json"}
            )
            assert "content-length" not in request.headers
            return await client.send(request)

    response = asyncio.run(send())
    assert_error(response, 413, "payload_too_large")
    assert pulled <= MAX_BODY // len(chunk) + 2, f"server read {pulled} chunks of a body it had already refused"
    assert snapshot(api.platform) == before


def test_oversized_upload_is_413_and_stores_no_blob(api: Api) -> None:
    before = snapshot(api.platform)
    url = f"/api/v1/runs/{api.run_id}/artifacts/model.bin"
    response = api.client.put(url, content=b"x" * (MAX_UPLOAD + 1), headers=api.admin)
    assert_error(response, 413, "payload_too_large")

    def chunks() -> Iterator[bytes]:
        for _ in range(64):
            yield b"y" * 1024

    response = api.client.put(url, content=chunks(), headers=api.admin)
    assert_error(response, 413, "payload_too_large")
    assert snapshot(api.platform) == before
    assert api.client.put(url, content=b"z" * MAX_UPLOAD, headers=api.admin).status_code == 201


def test_bad_content_length_is_400(api: Api) -> None:
    response = api.client.post(
        "/api/v1/runs", content=b"{}", headers={**api.admin, "Content-Type": "application/json", "Content-Length": "x"}
    )
    assert_error(response, 400, "bad_request")


# --- artifact paths -------------------------------------------------------------------------------
BAD_ARTIFACT_PATHS = {
    "dotdot-segment": "a/%2E%2E/b",
    "dotdot-first": "%2E%2E/b",
    "leading-slash": "%2Fetc/passwd",
    "empty-segment": "a//b",
    "dot-segment": "a/%2E/b",
    "nul": "a%00b",
    "newline": "a%0Ab",
    "control": "a%01b",
    "escape": "a%1B%5B31m",
    "backslash": "a%5C..%5Cb",
    "too-long": "p" * 600,
}


def test_bad_artifact_paths_are_refused_and_store_nothing(api: Api, subtests: pytest.Subtests) -> None:
    before = snapshot(api.platform)
    for label, path in BAD_ARTIFACT_PATHS.items():
        with subtests.test(label):
            url = f"/api/v1/runs/{api.run_id}/artifacts/{path}"
            response = api.client.put(url, content=b"payload", headers=api.admin)
            if label == "newline":
                # Starlette's ``{path:path}`` pattern stops at a newline, so no route matches: refused as 404.
                assert_error(response, 404, "not_found")
                continue
            error = assert_error(response, 422, "invalid_input")
            assert error["message"].startswith("path:"), error
            assert error["details"] == {"field": "path"}
    for path in ("../escape", "/etc/passwd", "a/./b", "a\x00b"):
        with pytest.raises(InvalidInput):
            api.platform.tracking.log_artifact(local_admin(), api.run_id, path, io.BytesIO(b"x"))
    assert snapshot(api.platform) == before
    ok = api.client.put(f"/api/v1/runs/{api.run_id}/artifacts/dir/model%20v1.bin", content=b"w", headers=api.admin)
    assert ok.status_code == 201 and ok.json()["path"] == "dir/model v1.bin"


# --- run ids --------------------------------------------------------------------------------------
def test_malformed_run_ids_are_422_naming_the_path_parameter(api: Api, subtests: pytest.Subtests) -> None:
    for run_id in ("zzz", "0" * 31, "0" * 33, "A" * 32, "g" * 32, "%00" * 3, "%2E%2E", "0" * 31 + "%0A"):
        for method, suffix in (("GET", ""), ("POST", "/heartbeat"), ("GET", "/artifacts"), ("PUT", "/artifacts/a")):
            with subtests.test(run_id, method=method, suffix=suffix):
                response = api.client.request(method, f"/api/v1/runs/{run_id}{suffix}", headers=api.admin)
                assert_invalid_field(response, "path.run_id", "should match pattern")


def test_unknown_run_id_is_404(api: Api) -> None:
    for method, suffix in (("GET", ""), ("POST", "/heartbeat"), ("GET", "/artifacts"), ("GET", "/artifacts/a.txt")):
        response = api.client.request(method, f"/api/v1/runs/{UNKNOWN_RUN}{suffix}", headers=api.admin)
        error = assert_error(response, 404, "not_found")
        assert UNKNOWN_RUN in error["message"]
    response = api.client.post(
        "/api/v1/runs", json={"kind": "eval", "name": "child", "parent_id": UNKNOWN_RUN}, headers=api.admin
    )
    assert_error(response, 404, "not_found")
    response = api.client.get(f"/api/v1/runs/compare?ids={UNKNOWN_RUN},{api.run_id}", headers=api.admin)
    assert_error(response, 404, "not_found")
    response = api.client.get(f"/api/v1/runs/compare?ids={api.run_id}", headers=api.admin)
    assert_invalid_field(response, "ids", "2 to 20")


# --- metric values --------------------------------------------------------------------------------
def test_non_finite_metric_values_are_refused(api: Api, subtests: pytest.Subtests) -> None:
    before = snapshot(api.platform)
    for literal in ("NaN", "Infinity", "-Infinity", "1e400", "-1e999", '"NaN"', '"inf"', '"-Infinity"'):
        with subtests.test(literal):
            body = (
                f'{{"points": [{{"key": "loss", "value": 0.5, "step": 0}}, '
                f'{{"key": "loss", "value": {literal}, "step": 1}}]}}'
            )
            response = post_raw(api, f"/api/v1/runs/{api.run_id}/metrics", body.encode())
            error = assert_invalid_field(response, "points.1.value", "finite number")
            assert error["details"][0]["rule"] == "finite_number"
    assert snapshot(api.platform) == before  # the valid first point of each batch was not written either


def test_non_finite_metric_values_are_refused_by_the_python_api(api: Api) -> None:
    with pytest.raises(InvalidInput) as exc:
        api.platform.tracking.log_metrics(api.run_id, [("loss", 0.5, 0, 0), ("loss", float("nan"), 1, 0)])
    assert "not a finite number" in exc.value.message
    assert snapshot(api.platform)["MetricPoint"] == 0


# --- authentication and authorization -------------------------------------------------------------
def test_missing_malformed_and_wrong_keys_are_401(api: Api) -> None:
    token = api.admin["Authorization"].removeprefix("Bearer ")
    prefix = token.split("_")[1]
    attempts: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Bearer llmops_short_x"},
        {"Authorization": f"Bearer llmops_{prefix}_wrongsecret"},
        {"Authorization": f"Bearer {token}x"},
        {"X-API-Key": "llmops_deadbeef_x"},
        {"Cookie": "llmops_key=llmops_deadbeef_x"},
    ]
    before = snapshot(api.platform)
    for headers in attempts:
        response = api.client.post("/api/v1/runs", json={"kind": "train", "name": "x"}, headers=headers)
        assert_error(response, 401, "unauthenticated")
        assert_error(api.client.get("/api/v1/runs", headers=headers), 401, "unauthenticated")
    assert snapshot(api.platform) == before


def test_revoked_expired_and_disabled_keys_are_401(api: Api) -> None:
    boot = local_admin()
    security = api.platform.security
    security.create_principal(boot, "temp", role="admin")
    revoked = security.create_key(boot, principal="temp", name="revoked")
    expired = security.create_key(boot, principal="temp", name="expired", expires_in=dt.timedelta(days=1))
    security.revoke_key(boot, revoked.prefix)
    with api.platform.db.write() as session:
        past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        session.execute(update(ApiKey).where(ApiKey.prefix == expired.prefix).values(expires_at=past))
    response = api.client.get("/api/v1/runs", headers={"Authorization": f"Bearer {revoked.key}"})
    assert "revoked" in assert_error(response, 401, "unauthenticated")["message"]
    response = api.client.get("/api/v1/runs", headers={"Authorization": f"Bearer {expired.key}"})
    assert "expired" in assert_error(response, 401, "unauthenticated")["message"]
    live = security.create_key(boot, principal="temp", name="live")
    assert api.client.get("/api/v1/runs", headers={"Authorization": f"Bearer {live.key}"}).status_code == 200
    security.update_principal(boot, "temp", disabled=True)
    response = api.client.get("/api/v1/runs", headers={"Authorization": f"Bearer {live.key}"})
    assert "disabled" in assert_error(response, 401, "unauthenticated")["message"]


def test_insufficient_role_is_403_and_names_the_permission(api: Api) -> None:
    before = snapshot(api.platform)
    response = api.client.post("/api/v1/runs", json={"kind": "train", "name": "x"}, headers=api.viewer)
    error = assert_error(response, 403, "permission_denied")
    assert error["details"] == {"permission": "runs:write", "required_role": "developer"}
    assert api.client.get("/api/v1/runs", headers=api.viewer).status_code == 200
    denied = [
        ("POST", "/api/v1/principals", {"name": "eve"}, api.developer),
        ("PATCH", "/api/v1/principals/viewer-user", {"role": "admin"}, api.developer),
        ("GET", "/api/v1/audit", None, api.developer),
        ("POST", "/api/v1/store/fsck", None, api.developer),
        ("GET", "/api/v1/config", None, api.viewer),
        ("POST", f"/api/v1/runs/{api.run_id}/end", {"status": "finished"}, api.viewer),
        ("POST", "/api/v1/keys", {"principal": "admin-user", "name": "stolen"}, api.viewer),
    ]
    for method, url, body, headers in denied:
        response = api.client.request(method, url, json=body, headers=headers)
        assert_error(response, 403, "permission_denied")
    assert snapshot(api.platform) == before
    assert api.platform.security.get_principal("viewer-user").role == "viewer"


# --- nothing is lost ------------------------------------------------------------------------------
def test_a_rejected_request_leaves_earlier_and_later_writes_intact(api: Api) -> None:
    """Refusals are all-or-nothing and do not disturb the requests around them."""
    run = f"/api/v1/runs/{api.run_id}"
    good = {"points": [{"key": "loss", "value": 1.0 / (i + 1), "step": i} for i in range(50)]}
    assert api.client.post(f"{run}/metrics", json=good, headers=api.admin).status_code == 204
    bad = {"points": [*good["points"], {"key": "loss", "value": 1.0, "step": 50, "extra": 1}]}
    assert api.client.post(f"{run}/metrics", json=bad, headers=api.admin).status_code == 422
    conflict = api.client.post(f"{run}/params", json={"params": {"lr": 0.1}}, headers=api.admin)
    assert conflict.status_code == 204
    clash = api.client.post(f"{run}/params", json={"params": {"seed": 1, "lr": 0.2}}, headers=api.admin)
    assert_error(clash, 409, "conflict")
    assert api.client.post(f"{run}/metrics", json=good, headers=api.admin).status_code == 204
    detail = api.client.get(run, headers=api.admin).json()
    assert detail["params"] == {"lr": "0.1"}  # "seed" from the refused request was not written
    (loss,) = detail["metrics"]
    assert loss["count"] == 100
    assert api.platform.audit.verify().ok
