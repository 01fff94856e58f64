"""Key scopes for per-deployment access: created over Python, REST and the CLI, shown in listings, carried
by the authenticated actor; and the ``inference`` permission every OpenAI-compatible route declares."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from llmops.api.app import create_app
from llmops.cli.main import app as cli_app
from llmops.errors import InvalidInput
from llmops.platform import Platform
from llmops.security.actor import Actor
from llmops.security.roles import PERMISSION_ROLE, Permission, Role
from tests.api.test_route_permissions import endpoints


def test_keys_carry_scopes_over_python_rest_and_cli(
    embedded_platform: Platform, admin: Actor, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    security = embedded_platform.security
    security.create_principal(admin, "svc", kind="service")
    created = security.create_key(admin, principal="svc", name="batch", scopes=["team-b", "team-a", "team-a"])
    assert created.scopes == ["team-a", "team-b"]
    actor = security.authenticate(created.key)
    assert actor.scopes == ("team-a", "team-b") and actor.can(Permission.inference)
    plain = security.create_key(admin, principal="svc", name="plain")
    assert plain.scopes == [] and security.authenticate(plain.key).scopes == ()
    with pytest.raises(InvalidInput, match="scopes"):
        security.create_key(admin, principal="svc", name="bad", scopes=["no spaces"])
    audit = embedded_platform.audit.list(action="key.create")[0]
    assert audit.details["scopes"] == []

    headers = {"Authorization": f"Bearer {created.key}"}
    client = TestClient(create_app(platform=embedded_platform))
    own = client.post("/api/v1/keys", json={"name": "rest", "scopes": ["team-c"]}, headers=headers)
    assert own.status_code == 201 and own.json()["scopes"] == ["team-c"]
    listed = client.get("/api/v1/keys", headers=headers).json()
    assert {k["name"]: k["scopes"] for k in listed} == {"batch": ["team-a", "team-b"], "plain": [], "rest": ["team-c"]}
    bad = client.post("/api/v1/keys", json={"name": "x", "scopes": ["bad scope"]}, headers=headers)
    assert bad.status_code == 422

    monkeypatch.setenv("LLMOPS_HOME", str(embedded_platform.settings.home))
    cli = CliRunner()
    out = cli.invoke(cli_app, ["keys", "create", "--user", "svc", "--name", "cli", "--scope", "s1", "--scope", "s2"])
    assert out.exit_code == 0, out.output
    shown = cli.invoke(cli_app, ["keys", "list", "--user", "svc", "--json"])
    assert {k["name"]: k["scopes"] for k in json.loads(shown.output)}["cli"] == ["s1", "s2"]
    table = cli.invoke(cli_app, ["keys", "list", "--user", "svc"])
    assert "scopes" in table.output and "s1,s2" in table.output


def test_openai_routes_declare_the_inference_permission(embedded_platform: Platform) -> None:
    assert PERMISSION_ROLE[Permission.inference] == Role.viewer
    routes = {(m, p): d for m, p, d in endpoints(create_app(platform=embedded_platform))}
    for route in [
        ("GET", "/v1/models"),
        ("GET", "/v1/models/{model:path}"),
        ("POST", "/v1/completions"),
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/embeddings"),
        ("POST", "/tokenize"),
        ("POST", "/detokenize"),
        ("GET", "/tokenizer_info"),
    ]:
        assert routes[route] == {Permission.inference}, route
    assert routes[("GET", "/api/v1/serving/engines")] == {Permission.deployments_read}
