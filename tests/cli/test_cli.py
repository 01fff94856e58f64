"""The CLI end to end on the embedded defaults (typer's runner, a fresh LLMOPS_HOME per test)."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmops.cli.main import app


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path / "home"))
    return CliRunner()


def run(cli: CliRunner, *args: str, code: int = 0) -> str:
    result = cli.invoke(app, list(args))
    assert result.exit_code == code, f"{args}: exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    return result.output


def test_config_show_masks_secrets(cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_S3_SECRET_ACCESS_KEY", "very-secret-value")
    monkeypatch.setenv("LLMOPS_DATABASE_URL", "postgresql://u:pw123@db/x")
    out = run(cli, "config", "show", "--json")
    values = json.loads(out)
    assert values["s3_secret_access_key"] == "********"
    assert values["database_url"] == "postgresql://u:***@db/x"
    assert "very-secret-value" not in out and "pw123" not in out
    table = run(cli, "config", "show")
    assert "LLMOPS_BLOB_GC_GRACE_SECONDS" in table


def test_invalid_settings_are_a_clear_error(cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_BLOB_URL", "ftp://host/x")
    result = cli.invoke(app, ["runs", "list"])
    assert result.exit_code == 1
    assert "LLMOPS_BLOB_URL" in result.output


def test_db_upgrade_and_current(cli: CliRunner) -> None:
    assert "revision" in run(cli, "db", "upgrade")
    from llmops.db.migrate import head_revision

    out = run(cli, "db", "current")
    head = head_revision()
    assert f"database: {head}" in out and f"code head: {head}" in out


def test_users_keys_audit_flow(cli: CliRunner) -> None:
    run(cli, "users", "create", "alice", "--role", "developer", "--email", "a@example.org")
    assert "already exists" in run(cli, "users", "create", "alice", code=1)
    assert "not a valid name" in run(cli, "users", "create", "bad/name", code=1)
    assert "unknown role" in run(cli, "users", "create", "bob", "--role", "root", code=1)
    users = json.loads(run(cli, "users", "list", "--json"))
    assert [(u["name"], u["role"]) for u in users] == [("alice", "developer")]
    run(cli, "users", "set-role", "alice", "maintainer")
    out = run(cli, "keys", "create", "--user", "alice", "--name", "laptop", "--expires-days", "30")
    token = out.strip().splitlines()[-1]
    assert token.startswith("llmops_")
    keys = json.loads(run(cli, "keys", "list", "--json"))
    assert len(keys) == 1 and keys[0]["name"] == "laptop" and keys[0]["expires_at"]
    assert token not in json.dumps(keys)
    run(cli, "keys", "revoke", keys[0]["prefix"])
    assert json.loads(run(cli, "keys", "list", "--json"))[0]["revoked_at"]
    run(cli, "users", "disable", "alice")
    run(cli, "users", "enable", "alice")
    events = json.loads(run(cli, "audit", "list", "--json"))
    actions = [e["action"] for e in events]
    assert actions[:3] == ["principal.update", "principal.update", "key.revoke"]
    assert all(e["actor"].startswith("cli:") for e in events)
    assert "intact" in run(cli, "audit", "verify")


def test_audit_verify_detects_tampering(cli: CliRunner, tmp_path: Path) -> None:
    run(cli, "users", "create", "carol")
    run(cli, "users", "set-role", "carol", "admin")
    db = sqlite3.connect(tmp_path / "home" / "llmops.db")
    db.execute("UPDATE audit_events SET actor = 'someone-else' WHERE seq = 1")
    db.commit()
    db.close()
    out = run(cli, "audit", "verify", code=1)
    assert "event 1" in out and "edited" in out


def test_runs_list_show_compare(cli: CliRunner) -> None:
    out = run(cli, "demo", "--no-serve", "--no-traffic", "--steps", "20")
    assert "finished" in out
    runs = json.loads(run(cli, "runs", "list", "--json", "--kind", "train"))
    assert runs["total"] == 2
    ids = [r["id"] for r in runs["runs"]]
    detail = json.loads(run(cli, "runs", "show", ids[0][:8], "--json"))
    assert detail["id"] == ids[0]
    assert {m["key"] for m in detail["metrics"]} >= {"train/loss", "val/accuracy", "lr"}
    assert next(m for m in detail["metrics"] if m["key"] == "train/loss")["count"] == 20
    assert {a["path"] for a in detail["artifacts"]} == {"checkpoint/config.json", "checkpoint/model.safetensors"}
    human = run(cli, "runs", "show", ids[0])
    assert "train/loss" in human
    comparison = json.loads(run(cli, "runs", "compare", ids[0][:8], ids[1][:8], "--json"))
    assert comparison["differing_params"] == ["lr"]
    assert "* lr" in run(cli, "runs", "compare", *ids)
    assert "no run id starts with" in run(cli, "runs", "show", "ffffffff", code=1)
    assert "unique prefix" in run(cli, "runs", "show", "xy", code=1)
    filtered = json.loads(run(cli, "runs", "list", "--json", "--name", "lr0.03"))
    assert [r["name"] for r in filtered["runs"]] == ["spirals-lr0.03"]


def test_store_stats_fsck_gc(cli: CliRunner, tmp_path: Path) -> None:
    out = run(cli, "demo", "--no-serve", "--no-traffic", "--steps", "10")
    assert "deployed reference" in out and "deployed minilm" in out
    deployments = {d["name"]: d for d in json.loads(run(cli, "deployments", "list", "--json"))}
    assert deployments["reference"]["spec"]["routes"][0]["version"] == "reference-lm:1"
    assert deployments["minilm"]["spec"]["routes"][0]["engine"] == "embeddings"
    run(cli, "demo", "--no-serve", "--no-traffic", "--steps", "10")  # a second demo leaves the deployments as they are
    again = {d["name"]: d["revision"] for d in json.loads(run(cli, "deployments", "list", "--json"))}
    assert again == {"minilm": 1, "reference": 1}
    stats = json.loads(run(cli, "store", "stats", "--json"))
    assert stats["blobs"] == stats["referenced_blobs"] >= 2 and stats["unreferenced_blobs"] == 0
    assert "clean" in run(cli, "store", "fsck")
    # An orphan (a blob whose metadata never committed): gc keeps it while young, removes it after.
    from llmops.blobs.io import put_bytes
    from llmops.blobs.local import LocalBlobStore

    store = LocalBlobStore(tmp_path / "home" / "blobs")
    orphan = put_bytes(store, b"orphan bytes")
    assert json.loads(run(cli, "store", "gc", "--json"))["removed"] == []
    old = 1_000_000_000
    os.utime(store.path(orphan.digest), (old, old))
    dry = json.loads(run(cli, "store", "gc", "--dry-run", "--json"))
    assert dry["removed"] == [orphan.digest] and store.stat(orphan.digest) is not None
    assert "removed 1 unreferenced blobs" in run(cli, "store", "gc")
    assert store.stat(orphan.digest) is None
    # Corruption is found by fsck.
    victim = next(iter(store.iter_blobs()))
    path = store.path(victim.digest)
    os.chmod(path, 0o644)
    path.write_bytes(b"garbage")
    out = run(cli, "store", "fsck", code=1)
    assert "corrupted" in out and victim.digest in out


def test_version_and_help(cli: CliRunner) -> None:
    assert run(cli, "--version").startswith("llmops ")
    assert "runs" in run(cli, "--help")
