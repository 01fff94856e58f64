"""``clean_dataset`` end to end on both platform stacks: lineage, recipe, report and the tracked run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmops.datasets.clean import clean_dataset
from llmops.datasets.kinds import DatasetKind
from llmops.datasets.recipe import Recipe, load_recipe, parse_recipe
from llmops.errors import InvalidInput, NotFound
from llmops.platform import Platform
from llmops.security.actor import Actor

from .planted import RECIPE, planted_texts


def import_planted(platform: Platform, admin: Actor, tmp_path: Path, name: str = "raw") -> str:
    path = tmp_path / "raw.jsonl"
    texts = planted_texts(40)
    path.write_text("".join(json.dumps({"text": t, "n": i}, ensure_ascii=False) + "\n" for i, t in enumerate(texts)))
    return platform.datasets.import_path(admin, path, name=name).ref


def test_clean_dataset_records_lineage_recipe_report_and_run(platform: Platform, admin: Actor, tmp_path: Path) -> None:
    parent = import_planted(platform, admin, tmp_path)
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(RECIPE)
    result = clean_dataset(platform, admin, parent, recipe_path, name="clean")

    version = result.version
    assert version.dataset == "clean" and version.kind is DatasetKind.text
    assert version.parents == [parent]
    assert version.recipe == load_recipe(recipe_path).model_dump(mode="json")
    assert version.report == result.report
    assert version.run_id == result.run_id
    assert version.rows == result.report["rows_out"] < result.report["rows_in"] == platform.datasets.get(parent).rows
    rows = platform.datasets.head(version.ref, 1000)
    assert {"text", "n", "split"} <= set(rows[0])
    assert not any("@example.com" in r["text"] for r in rows)

    run = platform.tracking.get_run(result.run_id)
    assert run.kind == "data" and run.status == "finished"
    assert run.params["parent"] == parent and run.params["executor"] == "inprocess"
    assert run.tags["transform"] == "clean"
    edges = {(e.direction, e.entity_kind, e.entity_ref) for e in run.lineage}
    assert ("input", "dataset_version", parent) in edges and ("output", "dataset_version", version.ref) in edges
    metrics = {m.key: m.last for m in run.metrics}
    assert metrics["rows_out"] == version.rows and metrics["step1.filter.removed"] > 0
    assert {a.path for a in run.artifacts} >= {"recipe.json", "report.json"}


def test_same_recipe_again_returns_the_existing_version(
    embedded_platform: Platform, admin: Actor, tmp_path: Path
) -> None:
    parent = import_planted(embedded_platform, admin, tmp_path)
    recipe = parse_recipe("steps:\n  - normalize: {}\n  - dedup: {kind: exact}\n")
    first = clean_dataset(embedded_platform, admin, parent, recipe)
    again = clean_dataset(embedded_platform, admin, parent, recipe)
    assert first.version.dataset == "raw" and first.version.version == 2
    assert again.version.ref == first.version.ref and again.version.reused_existing_version


def test_bad_input_creates_nothing(embedded_platform: Platform, admin: Actor, tmp_path: Path) -> None:
    parent = import_planted(embedded_platform, admin, tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps:\n  - filter: {lenght: {min: 3}}\n")
    with pytest.raises(InvalidInput, match="unknown key 'lenght'"):
        clean_dataset(embedded_platform, admin, parent, bad)
    with pytest.raises(NotFound):
        clean_dataset(embedded_platform, admin, "missing", parse_recipe("steps:\n  - normalize: {}\n"))
    assert [v.ref for v in embedded_platform.datasets.list_versions("raw")] == [parent]


class KilledHalfWay:
    """An executor that writes part of its output and dies, as a killed worker would."""

    name = "killed"

    def run(self, recipe: Recipe, source: Path, target: Path, *, kind: DatasetKind) -> dict[str, Any]:
        target.write_bytes(source.read_bytes()[:100])
        raise RuntimeError("worker killed")


def test_transform_killed_half_way_leaves_no_version(embedded_platform: Platform, admin: Actor, tmp_path: Path) -> None:
    parent = import_planted(embedded_platform, admin, tmp_path)
    with pytest.raises(RuntimeError, match="worker killed"):
        clean_dataset(embedded_platform, admin, parent, parse_recipe("steps:\n  - pii: {}\n"), executor=KilledHalfWay())
    assert [v.ref for v in embedded_platform.datasets.list_versions("raw")] == [parent]
    failed = embedded_platform.tracking.list_runs(kind="data", status="failed").runs
    assert len(failed) == 1 and "worker killed" in (failed[0].end_reason or "")
