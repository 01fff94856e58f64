"""Principals, keys, sign-in and audit over HTTP, with the role checks each route declares."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from llmops.api.app import create_app
from llmops.api.deps import SESSION_COOKIE
from llmops.platform import Platform
from llmops.security.actor import Actor


@pytest.fixture
def client(platform: Platform) -> TestClient:
    return TestClient(create_app(platform=platform))


@pytest.fixture
def tokens(platform: Platform, admin: Actor) -> dict[str, str]:
    """One principal (and key) per role, named after the role."""
    out = {}
    for role in ("viewer", "developer", "maintainer", "admin"):
        platform.security.create_principal(admin, role, role=role)
        out[role] = platform.security.create_key(admin, principal=role).key
    return out


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_denied(response: Response, role: str) -> None:
    """403 with the platform error shape, naming the role that would be needed."""
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "permission_denied"
    assert f"needs the {role} role" in error["message"]
    assert error["details"]["required_role"] == role


def test_viewer_reads_runs_but_cannot_write(client: TestClient, tokens: dict[str, str]) -> None:
    assert client.get("/api/v1/runs", headers=auth(tokens["viewer"])).status_code == 200
    denied = client.post("/api/v1/runs", json={"kind": "train", "name": "x"}, headers=auth(tokens["viewer"]))
    assert_denied(denied, "developer")
    assert "viewer" in denied.json()["error"]["message"]
    created = client.post("/api/v1/runs", json={"kind": "train", "name": "x"}, headers=auth(tokens["developer"]))
    assert created.status_code == 201
    run_id = created.json()["id"]
    viewer = auth(tokens["viewer"])
    for path, body in [("end", {}), ("params", {"params": {"a": 1}}), ("tags", {"tags": {"a": "b"}})]:
        assert_denied(client.post(f"/api/v1/runs/{run_id}/{path}", json=body, headers=viewer), "developer")
    assert_denied(client.put(f"/api/v1/runs/{run_id}/artifacts/x.txt", content=b"x", headers=viewer), "developer")
    assert client.get(f"/api/v1/runs/{run_id}", headers=auth(tokens["viewer"])).json()["status"] == "running"


def test_audit_needs_maintainer(client: TestClient, tokens: dict[str, str]) -> None:
    for role in ("viewer", "developer"):
        assert_denied(client.get("/api/v1/audit", headers=auth(tokens[role])), "maintainer")
        assert_denied(client.get("/api/v1/audit/verify", headers=auth(tokens[role])), "maintainer")
    events = client.get("/api/v1/audit", headers=auth(tokens["maintainer"]))
    assert events.status_code == 200
    assert [e["action"] for e in events.json()][:2] == ["key.create", "principal.create"]
    assert (
        client.get("/api/v1/audit", params={"action": "principal."}, headers=auth(tokens["admin"])).json()[0]["target"]
        == "principal/admin"
    )
    verified = client.get("/api/v1/audit/verify", headers=auth(tokens["maintainer"])).json()
    assert verified["ok"] is True and verified["checked"] == 8 and verified["problems"] == []


def test_principals_admin_needs_admin(client: TestClient, tokens: dict[str, str], platform: Platform) -> None:
    assert_denied(client.get("/api/v1/principals", headers=auth(tokens["developer"])), "maintainer")
    listed = client.get("/api/v1/principals", headers=auth(tokens["maintainer"]))
    assert [p["name"] for p in listed.json()] == ["admin", "developer", "maintainer", "viewer"]
    assert client.get("/api/v1/principals/viewer", headers=auth(tokens["maintainer"])).json()["role"] == "viewer"
    assert client.get("/api/v1/principals/ghost", headers=auth(tokens["maintainer"])).status_code == 404

    body = {"name": "newbie", "role": "developer", "email": "n@example.com"}
    assert_denied(client.post("/api/v1/principals", json=body, headers=auth(tokens["maintainer"])), "admin")
    promote = client.patch("/api/v1/principals/viewer", json={"role": "admin"}, headers=auth(tokens["maintainer"]))
    assert_denied(promote, "admin")
    assert platform.security.get_principal("viewer").role == "viewer"

    created = client.post("/api/v1/principals", json=body, headers=auth(tokens["admin"]))
    assert created.status_code == 201 and created.json()["created_by"] == "admin"
    duplicate = client.post("/api/v1/principals", json=body, headers=auth(tokens["admin"]))
    assert duplicate.status_code == 409 and duplicate.json()["error"]["code"] == "already_exists"
    bad = client.post("/api/v1/principals", json={"name": "bad name"}, headers=auth(tokens["admin"]))
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "name"
    bad_role = client.post("/api/v1/principals", json={"name": "ok", "role": "root"}, headers=auth(tokens["admin"]))
    assert bad_role.status_code == 422 and bad_role.json()["error"]["details"][0]["field"] == "role"

    promoted = client.patch("/api/v1/principals/viewer", json={"role": "developer"}, headers=auth(tokens["admin"]))
    assert promoted.status_code == 200 and promoted.json()["role"] == "developer"
    # The role change applies at once to the principal's existing key.
    now_dev = client.post("/api/v1/runs", json={"kind": "eval", "name": "e"}, headers=auth(tokens["viewer"]))
    assert now_dev.status_code == 201

    disabled = client.patch("/api/v1/principals/viewer", json={"disabled": True}, headers=auth(tokens["admin"]))
    assert disabled.json()["disabled"] is True
    refused = client.get("/api/v1/runs", headers=auth(tokens["viewer"]))
    assert refused.status_code == 401 and "disabled" in refused.json()["error"]["message"]


def test_keys_self_service(client: TestClient, tokens: dict[str, str], platform: Platform, admin: Actor) -> None:
    viewer = auth(tokens["viewer"])
    created = client.post("/api/v1/keys", json={"name": "laptop", "expires_in_days": 30}, headers=viewer)
    assert created.status_code == 201
    key = created.json()
    assert key["principal"] == "viewer" and key["key"].startswith(f"llmops_{key['prefix']}_")
    assert key["expires_at"] is not None
    assert client.get("/api/v1/auth/whoami", headers=auth(key["key"])).json()["name"] == "viewer"

    mine = client.get("/api/v1/keys", headers=viewer).json()
    assert {k["name"] for k in mine} == {"default", "laptop"}
    assert all("key" not in k for k in mine)  # the secret is shown once, at creation only

    other_prefix = platform.security.list_keys(admin, "developer")[0].prefix
    assert client.post("/api/v1/keys", json={"principal": "developer"}, headers=viewer).status_code == 403
    assert client.get("/api/v1/keys", params={"principal": "developer"}, headers=viewer).status_code == 403
    assert client.delete(f"/api/v1/keys/{other_prefix}", headers=viewer).status_code == 403
    assert client.get("/api/v1/runs", headers=auth(tokens["developer"])).status_code == 200

    revoked = client.delete(f"/api/v1/keys/{key['prefix']}", headers=viewer)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    gone = client.get("/api/v1/auth/whoami", headers=auth(key["key"]))
    assert gone.status_code == 401 and "revoked" in gone.json()["error"]["message"]
    assert client.delete("/api/v1/keys/ffffffff", headers=viewer).status_code == 404

    # An admin manages anyone's keys.
    for_dev = client.post("/api/v1/keys", json={"principal": "developer", "name": "ci"}, headers=auth(tokens["admin"]))
    assert for_dev.status_code == 201 and for_dev.json()["principal"] == "developer"
    everyone = client.get("/api/v1/keys", headers=auth(tokens["admin"])).json()
    assert {k["principal"] for k in everyone} == {"viewer", "developer", "maintainer", "admin"}
    assert client.delete(f"/api/v1/keys/{other_prefix}", headers=auth(tokens["admin"])).status_code == 200
    assert client.get("/api/v1/runs", headers=auth(tokens["developer"])).status_code == 401


def test_key_transports(client: TestClient, tokens: dict[str, str]) -> None:
    token = tokens["developer"]
    assert client.get("/api/v1/auth/whoami", headers={"X-API-Key": token}).json()["role"] == "developer"
    assert client.get("/api/v1/auth/whoami", headers=auth(token)).json()["name"] == "developer"
    missing = client.get("/api/v1/auth/whoami")
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthenticated"
    malformed = client.get("/api/v1/auth/whoami", headers=auth("not-a-key"))
    assert malformed.status_code == 401 and "malformed" in malformed.json()["error"]["message"]


def test_login_cookie_and_logout(platform: Platform, tokens: dict[str, str]) -> None:
    client = TestClient(create_app(platform=platform))
    assert client.get("/api/v1/auth/whoami").status_code == 401

    bad = client.post("/api/v1/auth/login", json={"key": "llmops_00000000_nope"})
    assert bad.status_code == 401 and SESSION_COOKIE not in bad.cookies
    assert client.cookies.get(SESSION_COOKIE) is None

    login = client.post("/api/v1/auth/login", json={"key": tokens["maintainer"]})
    assert login.status_code == 200 and login.json()["name"] == "maintainer"
    set_cookie = login.headers["set-cookie"].lower()
    assert set_cookie.startswith(f"{SESSION_COOKIE}=") and "httponly" in set_cookie and "samesite=strict" in set_cookie

    # Later requests carry only the cookie, and it authenticates them with the principal's role.
    assert client.get("/api/v1/auth/whoami").json() == {
        "name": "maintainer",
        "role": "maintainer",
        "principal_id": platform.security.get_principal("maintainer").id,
    }
    assert client.get("/api/v1/audit").status_code == 200
    assert client.post("/api/v1/principals", json={"name": "x"}).status_code == 403

    logout = client.post("/api/v1/auth/logout")
    assert logout.status_code == 204
    assert client.cookies.get(SESSION_COOKIE) is None
    assert client.get("/api/v1/auth/whoami").status_code == 401
