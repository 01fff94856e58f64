"""``llmops data …`` through Typer's runner and ``/api/v1/datasets`` through the in-process HTTP client."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from llmops.api.app import create_app
from llmops.blobs.digest import digest_bytes
from llmops.cli.main import app
from llmops.platform import Platform
from llmops.security.actor import Actor
from llmops.settings import Settings
from tests.datasets.conftest import TEXT_ROWS, write_jsonl

API = "/api/v1/datasets"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path / "home"))
    return CliRunner()


def run(cli: CliRunner, *args: str, code: int = 0) -> str:
    result = cli.invoke(app, list(args))
    assert result.exit_code == code, f"{args}: exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    return " ".join(result.output.split())


def test_cli_flow(cli: CliRunner, text_jsonl: Path, tmp_path: Path) -> None:
    assert "imported text:1 (text, 3 rows" in run(cli, "data", "import", str(text_jsonl), "--name", "text")
    assert "identical to text:1" in run(cli, "data", "import", str(text_jsonl), "--name", "text")
    more = write_jsonl(tmp_path / "more.jsonl", [*TEXT_ROWS, {"text": "added row", "id": 4}])
    assert "imported text:2" in run(cli, "data", "import", str(more), "--name", "text", "--tag", "split=train")
    assert "│ text │ 2 │ 2 │ text │ 4 │" in run(cli, "data", "list")
    assert [v["ref"] for v in json.loads(run(cli, "data", "list", "text", "--json"))] == ["text:2", "text:1"]
    shown = run(cli, "data", "show", "text:1")
    assert (
        "text:1 text, 3 rows" in shown and "columns: text (string), id (int64)" in shown and "scripts: Latin" in shown
    )
    head = cli.invoke(app, ["data", "head", "text", "-n", "2"]).output.splitlines()
    assert [json.loads(line) for line in head] == [TEXT_ROWS[0], TEXT_ROWS[1]]
    assert "1 rows added, 0 removed, 3 in common" in run(cli, "data", "diff", "text:1", "text:2")
    out = tmp_path / "export.parquet"
    assert "wrote" in run(cli, "data", "export", "text:2", str(out), "--format", "parquet")
    assert pq.read_table(out).num_rows == 4
    assert json.loads(run(cli, "data", "stats", "text", "--json"))["rows"] == 4
    assert "text:1" in run(cli, "data", "lineage", "text:1")
    assert "deleted text:1" in run(cli, "data", "delete", "text:1", "--yes")
    err = run(cli, "data", "show", "text:1", code=1)
    assert err.startswith("error: dataset 'text' has no version 1")
    err = run(cli, "data", "import", str(tmp_path / "missing.jsonl"), "--name", "x", code=1)
    assert "missing.jsonl does not exist" in err
    assert "name the version to delete" in run(cli, "data", "delete", "text", "--yes", code=1)


def bearer(platform: Platform, admin: Actor, name: str, role: str) -> dict[str, str]:
    platform.security.create_principal(admin, name, role=role)
    return {"Authorization": f"Bearer {platform.security.create_key(admin, principal=name).key}"}


def test_rest_flow(platform: Platform, admin: Actor, text_jsonl: Path) -> None:
    client = TestClient(create_app(platform=platform))
    dev = bearer(platform, admin, "dev", "developer")
    viewer = bearer(platform, admin, "viewer", "viewer")
    root = bearer(platform, admin, "root2", "admin")
    data = text_jsonl.read_bytes()

    denied = client.post(f"{API}/import", files={"file": ("t.jsonl", data)}, data={"name": "t"}, headers=viewer)
    assert denied.status_code == 403
    created = client.post(f"{API}/import", files={"file": ("t.jsonl", data)}, data={"name": "t"}, headers=dev)
    assert created.status_code == 201, created.text
    v = created.json()
    assert (v["ref"], v["kind"], v["rows"], v["source"]["files"]) == ("t:1", "text", 3, ["t.jsonl"])
    bad = client.post(
        f"{API}/import", files={"file": ("bad.jsonl", b'{"text": "a"}\n{oops\n')}, data={"name": "t"}, headers=dev
    )
    assert bad.status_code == 422 and "bad.jsonl line 2 is not valid JSON" in bad.json()["error"]["message"]

    assert [d["name"] for d in client.get(API, headers=viewer).json()] == ["t"]
    assert client.get(f"{API}/t", headers=viewer).json()["latest"] == 1
    assert [x["ref"] for x in client.get(f"{API}/t/versions", headers=viewer).json()] == ["t:1"]
    assert client.get(f"{API}/t/versions/1", headers=viewer).json()["content_digest"] == v["content_digest"]
    rows = client.get(f"{API}/t/versions/1/rows", params={"limit": 2, "offset": 1}, headers=viewer).json()
    assert rows == TEXT_ROWS[1:3]
    parquet = client.get(f"{API}/t/versions/1/download", headers=viewer)
    assert parquet.status_code == 200 and digest_bytes(parquet.content) == v["blob_digest"]
    jsonl = client.get(f"{API}/t/versions/1/download", params={"format": "jsonl"}, headers=viewer)
    assert [json.loads(line) for line in jsonl.text.splitlines()] == TEXT_ROWS
    assert client.get(f"{API}/t/versions/1/stats", headers=viewer).json()["rows"] == 3
    assert client.get(f"{API}/t/versions/1/lineage", headers=viewer).json()["parents"] == []
    diff = client.get(f"{API}/diff", params={"a": "t:1", "b": "t"}, headers=viewer).json()
    assert diff["same_content"] is True
    assert client.get(f"{API}/t/versions/9", headers=viewer).status_code == 404

    assert client.delete(f"{API}/t/versions/1", headers=dev).status_code == 403
    assert client.delete(f"{API}/t/versions/1", headers=root).json()["ref"] == "t:1"
    assert client.get(f"{API}/t/versions", headers=viewer).json() == []


def test_rest_upload_is_bounded(tmp_path: Path, admin: Actor) -> None:
    platform = Platform(Settings(home=tmp_path / "home", max_upload_bytes=2048, max_body_bytes=1024))
    try:
        client = TestClient(create_app(platform=platform))
        dev = bearer(platform, admin, "dev", "developer")
        big = io.BytesIO(b'{"text": "' + b"x" * 4096 + b'"}\n')
        response = client.post(f"{API}/import", files={"file": ("big.jsonl", big)}, data={"name": "big"}, headers=dev)
        assert response.status_code == 413
        assert platform.datasets.list_datasets() == []
        small = client.post(
            f"{API}/import",
            files={"file": ("s.jsonl", b'{"text": "' + b"x" * 1500 + b'"}\n')},
            data={"name": "s"},
            headers=dev,
        )
        assert small.status_code == 201, small.text  # above the body limit, within the upload limit
    finally:
        platform.close()
