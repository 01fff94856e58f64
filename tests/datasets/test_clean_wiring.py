"""``llmops data clean`` and ``POST /api/v1/datasets/{name}/clean`` run ``clean_dataset`` and store a child
version with lineage, the recipe and the report; a bad recipe is an error that names the problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from llmops.api.app import create_app
from llmops.cli.main import app
from llmops.platform import Platform
from llmops.security.actor import Actor
from tests.datasets.conftest import write_jsonl
from tests.datasets.test_cli_api import bearer

ROWS = [
    {"text": "Hello   world, this is a line."},
    {"text": "Hello world, this is a line."},
    {"text": "Another one here."},
]
RECIPE = "steps:\n  - normalize: {}\n  - dedup: {kind: exact}\n"


def test_cli_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path / "home"))
    cli = CliRunner()
    assert (
        cli.invoke(app, ["data", "import", str(write_jsonl(tmp_path / "r.jsonl", ROWS)), "--name", "raw"]).exit_code
        == 0
    )
    (tmp_path / "recipe.yaml").write_text(RECIPE, encoding="utf-8")
    result = cli.invoke(
        app, ["data", "clean", "raw", "--recipe", str(tmp_path / "recipe.yaml"), "--output-name", "clean", "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["version"]["ref"] == "clean:1" and out["version"]["parents"] == ["raw:1"]
    assert out["version"]["rows"] == 2 and out["report"]["rows_in"] == 3
    lineage = cli.invoke(app, ["data", "lineage", "clean:1"])
    assert "parent: raw:1" in lineage.output
    (tmp_path / "bad.yaml").write_text("steps:\n  - normalise: {}\n", encoding="utf-8")
    bad = cli.invoke(app, ["data", "clean", "raw", "--recipe", str(tmp_path / "bad.yaml")])
    assert bad.exit_code == 1 and "normalise" in bad.output and "Traceback" not in bad.output
    bad_executor = cli.invoke(
        app, ["data", "clean", "raw", "--recipe", str(tmp_path / "recipe.yaml"), "--executor", "spark"]
    )
    assert bad_executor.exit_code == 1 and "--executor 'spark'" in bad_executor.output


def test_rest_clean(embedded_platform: Platform, admin: Actor, tmp_path: Path) -> None:
    embedded_platform.datasets.import_path(admin, write_jsonl(tmp_path / "r.jsonl", ROWS), name="raw")
    client = TestClient(create_app(platform=embedded_platform))
    dev = bearer(embedded_platform, admin, "dev", "developer")
    viewer = bearer(embedded_platform, admin, "viewer", "viewer")
    body = {"recipe": {"steps": [{"normalize": {}}, {"dedup": {"kind": "exact"}}]}, "output_name": "clean"}
    assert client.post("/api/v1/datasets/raw/clean", json=body, headers=viewer).status_code == 403
    response = client.post("/api/v1/datasets/raw/clean", json=body, headers=dev)
    assert response.status_code == 201, response.text
    assert response.json()["version"]["parents"] == ["raw:1"]
    bad = client.post("/api/v1/datasets/raw/clean", json={"recipe": {"steps": [{"nope": {}}]}}, headers=dev)
    assert bad.status_code == 422 and "nope" in bad.json()["error"]["message"]
    missing = client.post("/api/v1/datasets/ghost/clean", json=body, headers=dev)
    assert missing.status_code == 404
