"""Deployments: revisions for every change, sticky canaries, shadows, promotion, rollback, policies, and the
checks that keep a revision that could not serve from being recorded; over Python, CLI and REST."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from llmops.api.app import create_app
from llmops.cli.main import app as cli_app
from llmops.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from llmops.platform import Platform
from llmops.registry.signing import generate_keypair
from llmops.security.actor import Actor
from llmops.serving.deployments.routing import BUCKETS, bucket, choose_route, shadows_for
from llmops.serving.deployments.schemas import DeploymentSpec, RouteSpec
from tests.registry import factory


@pytest.fixture
def models(platform: Platform, admin: Actor, llama_dir: Path, tmp_path: Path) -> Platform:
    """lm:1 and lm:2 (two tiny Llamas), emb:1 (the shipped MiniLM sentence-transformers model)."""
    other = factory.make_causal_lm(tmp_path / "other", "llama", tokenizer_dir=llama_dir, seed=7)
    platform.registry.import_model(admin, llama_dir, name="lm")
    platform.registry.import_model(admin, other, name="lm")
    platform.registry.import_model(admin, factory.minilm_dir(), name="emb")
    return platform


def test_revisions_canary_promote_and_rollback(models: Platform, admin: Actor) -> None:
    d = models.deployments
    created = d.deploy(admin, "chat", model="lm:1", engine_options={"max_batch_size": 8}, reason="first")
    assert created.revision == 1 and created.spec.primary.version == "lm:1"
    assert created.spec.primary.engine_options == {"max_batch_size": 8}
    models.registry.set_alias(admin, "lm:2", "staging")
    canary = d.set_route(admin, "chat", mode="canary", model="lm@staging", percent=20)
    assert canary.revision == 2
    route = next(r for r in canary.spec.routes if r.mode == "canary")
    assert (route.model, route.version, route.percent) == ("lm@staging", "lm:2", 20)  # the alias is pinned
    promoted = d.promote(admin, "chat")
    assert promoted.revision == 3 and [(r.name, r.version) for r in promoted.spec.routes] == [("primary", "lm:2")]
    back = d.rollback(admin, "chat")
    assert back.revision == 4 and {r.version for r in back.spec.routes} == {"lm:1", "lm:2"}  # revision 2 again
    again = d.rollback(admin, "chat")  # undoing the rollback returns to revision 3's spec
    assert [r.version for r in again.spec.routes] == ["lm:2"]
    first = d.rollback(admin, "chat", to=1, reason="incident 42")
    assert [r.version for r in first.spec.routes] == ["lm:1"]
    history = d.revisions("chat")
    assert [(h.revision, h.change) for h in history] == [
        (6, "rollback"), (5, "rollback"), (4, "rollback"), (3, "promote"), (2, "canary"), (1, "deploy"),
    ]  # fmt: skip
    assert history[0].current and history[0].reason == "incident 42" and not history[1].current
    events = models.audit.list(target="deployment/chat")
    assert [e.action for e in events][:2] == ["deployment.rollback", "deployment.rollback"] and len(events) == 6
    assert models.audit.verify().ok
    d.delete(admin, "chat")
    with pytest.raises(NotFound, match="llmops deploy chat"):
        d.get("chat")


def test_revisions_that_could_not_serve_are_refused(models: Platform, admin: Actor, tmp_path: Path) -> None:
    d = models.deployments
    with pytest.raises(InvalidInput, match="sentence-transformers model; the torch engine"):
        d.deploy(admin, "x", model="emb:1")
    with pytest.raises(InvalidInput, match="the embeddings engine serves sentence-transformers"):
        d.deploy(admin, "x", model="lm:1", engine="embeddings")
    with pytest.raises(NotFound):
        d.deploy(admin, "x", model="ghost:1")
    with pytest.raises(InvalidInput, match="needs engine option base_url"):
        d.deploy(admin, "x", model=None, engine="openai-upstream")
    d.deploy(admin, "x", model="lm:1")
    d.set_route(admin, "x", mode="canary", model="lm:2", percent=60, route="a")
    with pytest.raises(InvalidInput, match="at most 100 %"):
        d.set_route(admin, "x", mode="canary", model="lm:2", percent=50, route="b")
    assert d.get("x").revision == 2  # the refused change wrote nothing
    d.deploy(admin, "fresh", model="lm:1")
    with pytest.raises(Conflict, match="nothing to roll back to"):
        d.rollback(admin, "fresh")
    with pytest.raises(Conflict, match="no canary route 'canary' to promote; add one"):
        d.promote(admin, "fresh")
    # A signature requirement applies to the routes already there and to every later change.
    key = tmp_path / "k.pem"
    public = generate_keypair(key)
    with pytest.raises(PermissionDenied, match="lm:1 needs a valid signature.*it is not signed"):
        d.set_policies(admin, "fresh", require_signature=True, trusted_keys=[public])
    with pytest.raises(InvalidInput, match="require_signature needs trusted_keys"):
        d.set_policies(admin, "fresh", require_signature=True)
    models.registry.sign(admin, "lm:1", key)
    signed = d.set_policies(admin, "fresh", require_signature=True, trusted_keys=[public])
    assert signed.spec.require_signature and signed.spec.trusted_keys == [public]
    with pytest.raises(PermissionDenied, match="lm:2 needs a valid signature"):
        d.set_route(admin, "fresh", mode="canary", model="lm:2", percent=10)
    upstream = d.deploy(admin, "up", model=None, engine="openai-upstream", engine_options={"base_url": "http://h/v1"})
    assert upstream.spec.primary.version is None


def test_sticky_canary_assignment_and_shadow_sampling() -> None:
    spec = DeploymentSpec(
        routes=[
            RouteSpec(name="primary", mode="primary", model="m:1", version="m:1"),
            RouteSpec(name="canary", mode="canary", model="m:2", version="m:2", percent=10),
            RouteSpec(name="shadow", mode="shadow", model="m:3", version="m:3", percent=50),
        ]
    )
    users = [f"user-{i}" for i in range(4000)]
    chosen = {u: choose_route("dep", spec, u).name for u in users}
    share = sum(1 for name in chosen.values() if name == "canary") / len(users)
    assert 0.08 < share < 0.12  # 10 % of users, within sampling noise for 4,000 users
    assert all(choose_route("dep", spec, u).name == chosen[u] for u in users[:500])  # sticky
    wider = spec.model_copy(deep=True)
    wider.routes[1].percent = 30
    assert all(choose_route("dep", wider, u).name == "canary" for u in users if chosen[u] == "canary")  # only grows
    elsewhere = {u for u in users if choose_route("other", spec, u).name == "canary"}
    assert elsewhere != {u for u in users if chosen[u] == "canary"}  # each deployment draws its own canary users
    mirrored = sum(1 for i in range(4000) if shadows_for("dep", spec, f"req-{i}"))
    assert 0.45 < mirrored / 4000 < 0.55
    assert 0 <= bucket("a", "b") < BUCKETS


def test_cli_and_rest(models: Platform, admin: Actor, monkeypatch: pytest.MonkeyPatch) -> None:
    models.security.create_principal(admin, "dev", role="developer")
    models.security.create_principal(admin, "ops", role="maintainer")
    dev = {"Authorization": f"Bearer {models.security.create_key(admin, principal='dev').key}"}
    ops = {"Authorization": f"Bearer {models.security.create_key(admin, principal='ops').key}"}
    client = TestClient(create_app(platform=models))
    limit = {"requests_per_minute": 60}
    body = {"name": "api", "model": "lm:1", "engine_options": {"max_batch_size": 4}, "rate_limit": limit}
    assert client.post("/api/v1/deployments", json=body, headers=dev).status_code == 403  # maintainers only
    created = client.post("/api/v1/deployments", json=body, headers=ops)
    assert created.status_code == 201, created.text
    assert created.json()["spec"]["rate_limit"]["requests_per_minute"] == 60
    canary = client.put(
        "/api/v1/deployments/api/routes/canary", json={"mode": "canary", "model": "lm:2", "percent": 5}, headers=ops
    )
    assert canary.status_code == 200 and canary.json()["revision"] == 2
    assert client.get("/api/v1/deployments/api", headers=dev).json()["revision"] == 2
    bad = client.put(
        "/api/v1/deployments/api/routes/c2", json={"mode": "canary", "model": "emb:1", "percent": 5}, headers=ops
    )
    assert bad.status_code == 422 and "sentence-transformers" in bad.json()["error"]["message"]
    policy = client.patch("/api/v1/deployments/api/policies", json={"response_cache": True}, headers=ops)
    assert policy.json()["spec"]["response_cache"] and policy.json()["spec"]["rate_limit"]["requests_per_minute"] == 60
    assert client.post("/api/v1/deployments/api/promote", headers=ops).json()["spec"]["routes"][0]["version"] == "lm:2"
    rolled = client.post("/api/v1/deployments/api/rollback", json={"reason": "worse"}, headers=ops)
    assert rolled.status_code == 200 and len(rolled.json()["spec"]["routes"]) == 2
    revisions = client.get("/api/v1/deployments/api/revisions", headers=dev).json()
    assert [r["change"] for r in revisions] == ["rollback", "promote", "policy", "canary", "deploy"]
    assert client.get("/api/v1/deployments/nope", headers=dev).status_code == 404
    assert client.delete("/api/v1/deployments/api", headers=ops).status_code == 204
    assert client.get("/api/v1/deployments", headers=dev).json() == []

    monkeypatch.setenv("LLMOPS_HOME", str(models.settings.home))
    if models.settings.database_url.startswith("sqlite"):  # the CLI opens the environment's (embedded) platform
        cli = CliRunner()
        out = cli.invoke(cli_app, ["deploy", "cli", "--model", "lm:1", "--option", "max_batch_size=2", "--json"])
        assert out.exit_code == 0, out.output
        assert json.loads(out.output)["spec"]["routes"][0]["engine_options"] == {"max_batch_size": 2}
        canary_out = cli.invoke(cli_app, ["deploy", "cli", "--canary", "lm:2", "--percent", "25"])
        assert canary_out.exit_code == 0 and "canary" in canary_out.output
        shown = cli.invoke(cli_app, ["deployments", "show", "cli"])
        assert "revision 2" in shown.output and "deploy" in shown.output
        assert cli.invoke(cli_app, ["deployments", "rollback", "cli"]).exit_code == 0
        refused = cli.invoke(cli_app, ["deploy", "cli", "--model", "emb:1"])
        assert refused.exit_code == 1 and "embeddings" in refused.output and "Traceback" not in refused.output
        listed = cli.invoke(cli_app, ["deployments", "list"])
        assert "cli" in listed.output and "lm:1" in listed.output
