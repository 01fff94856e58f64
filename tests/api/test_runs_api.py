"""The runs REST API end to end over HTTP (in-process), on both stacks: create, params, tags, metrics,
series, artifacts (raw upload, verified download), lineage, end, list, compare."""

from __future__ import annotations

import os

import pytest
from fastapi.testclient import TestClient

from llmops.api.app import create_app
from llmops.blobs.digest import digest_bytes
from llmops.platform import Platform
from llmops.security.actor import Actor

API = "/api/v1/runs"


def bearer(platform: Platform, admin: Actor, name: str, role: str) -> dict[str, str]:
    """Authorization headers of a new principal with ``role``."""
    platform.security.create_principal(admin, name, role=role)
    return {"Authorization": f"Bearer {platform.security.create_key(admin, principal=name).key}"}


@pytest.fixture
def client(platform: Platform) -> TestClient:
    return TestClient(create_app(platform=platform))


@pytest.fixture
def dev(platform: Platform, admin: Actor) -> dict[str, str]:
    return bearer(platform, admin, "dev", "developer")


def error_code(response: object) -> str:
    return response.json()["error"]["code"]  # type: ignore[attr-defined,no-any-return]


def test_run_lifecycle(client: TestClient, dev: dict[str, str], platform: Platform) -> None:
    created = client.post(
        API,
        json={"kind": "finetune", "name": "chat-ft", "params": {"lr": 0.0001, "epochs": 2}, "tags": {"team": "a"}},
        headers=dev,
    )
    assert created.status_code == 201, created.text
    run = created.json()
    run_id = run["id"]
    assert (run["status"], run["created_by"], run["kind"]) == ("running", "dev", "finetune")

    params = client.post(f"{API}/{run_id}/params", json={"params": {"seed": 7, "lr": 0.0001}}, headers=dev)
    assert params.status_code == 204
    conflict = client.post(f"{API}/{run_id}/params", json={"params": {"seed": 8}}, headers=dev)
    assert conflict.status_code == 409 and error_code(conflict) == "conflict"
    tags = client.post(f"{API}/{run_id}/tags", json={"tags": {"team": "b", "stage": "sft"}}, headers=dev)
    assert tags.status_code == 204

    points = [{"key": "loss", "value": 3.0 - i * 0.25, "step": i} for i in range(8)]
    points += [{"key": "eval/acc", "value": 0.5, "step": 7, "ts": 1_700_000_000_000}]
    assert client.post(f"{API}/{run_id}/metrics", json={"points": points}, headers=dev).status_code == 204
    series = client.get(f"{API}/{run_id}/metrics/loss", headers=dev).json()
    assert [(p["step"], p["value"]) for p in series["points"]] == [(i, 3.0 - i * 0.25) for i in range(8)]
    acc = client.get(f"{API}/{run_id}/metrics/eval/acc", headers=dev).json()  # keys may contain '/'
    assert acc["points"] == [{"step": 7, "value": 0.5, "ts": 1_700_000_000_000}]
    assert client.get(f"{API}/{run_id}/metrics/nope", headers=dev).status_code == 404

    payload = os.urandom(300_000)
    put = client.put(
        f"{API}/{run_id}/artifacts/checkpoints/adapter.safetensors",
        content=payload,
        headers={**dev, "Content-Type": "application/octet-stream"},
    )
    assert put.status_code == 201, put.text
    assert put.json()["digest"] == digest_bytes(payload) and put.json()["size"] == len(payload)
    got = client.get(f"{API}/{run_id}/artifacts/checkpoints/adapter.safetensors", headers=dev)
    assert got.status_code == 200
    assert got.content == payload
    assert got.headers["x-blob-digest"] == digest_bytes(payload)
    assert int(got.headers["content-length"]) == len(payload)
    different = client.put(f"{API}/{run_id}/artifacts/checkpoints/adapter.safetensors", content=b"other", headers=dev)
    assert different.status_code == 409
    for bad in ("a/%2E%2E/b", "%2E%2E/escape", "a//b", "bad%00name"):
        bad_path = client.put(f"{API}/{run_id}/artifacts/{bad}", content=b"x", headers=dev)
        assert bad_path.status_code == 422 and error_code(bad_path) == "invalid_input", bad
    listed = client.get(f"{API}/{run_id}/artifacts", headers=dev).json()
    assert [a["path"] for a in listed] == ["checkpoints/adapter.safetensors"]

    lineage = client.post(
        f"{API}/{run_id}/lineage",
        json={"direction": "input", "entity_kind": "dataset_version", "entity_ref": "chats:2"},
        headers=dev,
    )
    assert lineage.status_code == 201 and lineage.json()["entity_ref"] == "chats:2"

    ended = client.post(f"{API}/{run_id}/end", json={"status": "finished"}, headers=dev)
    assert ended.status_code == 200 and ended.json()["status"] == "finished"
    again = client.post(f"{API}/{run_id}/end", json={}, headers=dev)
    assert again.status_code == 409 and error_code(again) == "conflict"
    late = client.post(f"{API}/{run_id}/metrics", json={"points": [{"key": "loss", "value": 1.0}]}, headers=dev)
    assert late.status_code == 409

    detail = client.get(f"{API}/{run_id}", headers=dev).json()
    assert detail["status"] == "finished"
    assert detail["params"] == {"lr": "0.0001", "epochs": "2", "seed": "7"}
    assert detail["tags"] == {"team": "b", "stage": "sft"}
    summary = {m["key"]: m for m in detail["metrics"]}
    assert summary["loss"]["count"] == 8 and summary["loss"]["last"] == 1.25 and summary["loss"]["min"] == 1.25
    assert [a["digest"] for a in detail["artifacts"]] == [digest_bytes(payload)]
    assert [(e["direction"], e["entity_kind"]) for e in detail["lineage"]] == [("input", "dataset_version")]

    # The same run, seen through the Python API: HTTP is a thin layer over the same service.
    assert platform.tracking.get_run(run_id).params == detail["params"]
    assert platform.store.fsck().clean


def test_list_and_compare(client: TestClient, dev: dict[str, str]) -> None:
    ids = []
    for name, lr, kind in [("a", 0.1, "train"), ("b", 0.2, "train"), ("c", 0.1, "eval")]:
        response = client.post(API, json={"kind": kind, "name": name, "params": {"lr": lr, "bs": 4}}, headers=dev)
        ids.append(response.json()["id"])
    client.post(f"{API}/{ids[0]}/end", json={"status": "failed", "reason": "oom"}, headers=dev)

    everything = client.get(API, headers=dev).json()
    assert everything["total"] == 3 and [r["name"] for r in everything["runs"]] == ["c", "b", "a"]
    trains = client.get(API, params={"kind": "train"}, headers=dev).json()
    assert trains["total"] == 2 and {r["name"] for r in trains["runs"]} == {"a", "b"}
    failed = client.get(API, params={"status": "failed"}, headers=dev).json()
    assert [(r["name"], r["end_reason"]) for r in failed["runs"]] == [("a", "oom")]
    page = client.get(API, params={"limit": 1, "offset": 1}, headers=dev).json()
    assert page["total"] == 3 and [r["name"] for r in page["runs"]] == ["b"]
    assert client.get(API, params={"kind": "bogus"}, headers=dev).status_code == 422
    assert client.get(API, params={"limit": 0}, headers=dev).status_code == 422

    compared = client.get(f"{API}/compare", params={"ids": f"{ids[0]},{ids[1]}"}, headers=dev)
    assert compared.status_code == 200
    body = compared.json()
    assert body["differing_params"] == ["lr"] and body["param_keys"] == ["bs", "lr"]
    one = client.get(f"{API}/compare", params={"ids": ids[0]}, headers=dev)
    assert one.status_code == 422 and error_code(one) == "invalid_input"
    missing = client.get(f"{API}/compare", params={"ids": f"{ids[0]},{'0' * 32}"}, headers=dev)
    assert missing.status_code == 404


def test_run_errors(client: TestClient, dev: dict[str, str]) -> None:
    unknown = client.get(f"{API}/{'0' * 32}", headers=dev)
    assert unknown.status_code == 404 and error_code(unknown) == "not_found"
    assert client.get(f"{API}/not-a-run-id", headers=dev).status_code == 422
    bad_kind = client.post(API, json={"kind": "party", "name": "x"}, headers=dev)
    assert bad_kind.status_code == 422 and error_code(bad_kind) == "invalid_input"
    assert "kind" in bad_kind.json()["error"]["message"]
    run_id = client.post(API, json={"kind": "train", "name": "x"}, headers=dev).json()["id"]
    nan = client.post(f"{API}/{run_id}/metrics", content=b'{"points": [{"key": "l", "value": NaN}]}', headers=dev)
    assert nan.status_code in (400, 422)
    orphan = client.post(API, json={"kind": "train", "name": "y", "parent_id": "f" * 32}, headers=dev)
    assert orphan.status_code == 404


def test_unauthenticated_requests_are_refused(client: TestClient) -> None:
    response = client.get(API)
    assert response.status_code == 401 and error_code(response) == "unauthenticated"
    assert client.post(API, json={"kind": "train", "name": "x"}).status_code == 401
    assert client.get(API, headers={"Authorization": "Bearer llmops_00000000_nope"}).status_code == 401


def test_metric_points_without_step_get_the_next_step_per_key(embedded_platform: Platform) -> None:
    """REST clients that do not count steps still get an ordered series, continuing after stored points."""
    from llmops.security.actor import local_admin

    admin = local_admin()
    embedded_platform.security.create_principal(admin, "stepper", role="developer")
    key = embedded_platform.security.create_key(admin, principal="stepper").key
    client = TestClient(create_app(platform=embedded_platform))
    headers = {"Authorization": f"Bearer {key}"}
    run_id = client.post("/api/v1/runs", json={"kind": "train", "name": "steps"}, headers=headers).json()["id"]
    first = {"points": [{"key": "a", "value": 1.0}, {"key": "a", "value": 2.0}, {"key": "b", "value": 5.0, "step": 7}]}
    assert client.post(f"/api/v1/runs/{run_id}/metrics", json=first, headers=headers).status_code == 204
    second = {"points": [{"key": "a", "value": 3.0}, {"key": "b", "value": 6.0}]}
    assert client.post(f"/api/v1/runs/{run_id}/metrics", json=second, headers=headers).status_code == 204
    a = client.get(f"/api/v1/runs/{run_id}/metrics/a", headers=headers).json()["points"]
    b = client.get(f"/api/v1/runs/{run_id}/metrics/b", headers=headers).json()["points"]
    assert [(p["step"], p["value"]) for p in a] == [(0, 1.0), (1, 2.0), (2, 3.0)]
    assert [(p["step"], p["value"]) for p in b] == [(7, 5.0), (8, 6.0)]
