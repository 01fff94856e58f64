"""Stats against hand-computed values, head/export round trips, diff, derived versions, lineage, deletion."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llmops.datasets.stats import LengthSketch
from llmops.errors import InvalidInput, NotFound
from llmops.platform import Platform
from llmops.security.actor import Actor
from tests.datasets.conftest import CHAT_ROWS, TEXT_ROWS, write_jsonl


def test_text_stats_match_hand_computed_values(embedded_platform: Platform, admin: Actor, tmp_path: Path) -> None:
    texts = ["", "abc", "hello", "0123456789", "The quick brown fox jumps over the lazy dog. " * 2 + "x" * 10]
    assert [len(t) for t in texts] == [0, 3, 5, 10, 100]
    v = embedded_platform.datasets.import_path(
        admin, write_jsonl(tmp_path / "s.jsonl", [{"text": t} for t in texts]), name="s"
    )
    s = v.stats
    lengths = s["lengths"]["text"]
    # Nearest-rank percentiles of [0, 3, 5, 10, 100]: p50 → rank 3 → 5; p90 → rank 5 → 100.
    assert {k: lengths[k] for k in ("count", "min", "mean", "p50", "p90", "p99", "max", "total", "empty")} == {
        "count": 5, "min": 0, "mean": 23.6, "p50": 5, "p90": 100, "p99": 100, "max": 100, "total": 118, "empty": 1,
    }  # fmt: skip
    assert sum(lengths["histogram"]["counts"]) == 5
    assert s["rows"] == 5 and s["bytes"] == v.bytes and s["text_chars"] == 118 and s["text_bytes"] == 118
    assert s["language_sample_rows"] == 5
    assert s["scripts"]["Latin"] == pytest.approx(3 / 5)  # "" and "0123456789" have no letters


def test_chat_stats_count_turns_roles_and_content(embedded_platform: Platform, admin: Actor, chat_jsonl: Path) -> None:
    s = embedded_platform.datasets.import_path(admin, chat_jsonl, name="c").stats
    # Row 1: "hi" + "hello!" = 8 characters; row 2: "be brief" + "why?" + "because" = 19.
    m = s["lengths"]["messages"]
    assert (m["min"], m["max"], m["mean"], m["total"]) == (8, 19, 13.5, 27)
    t = s["turns"]
    assert (t["min"], t["max"], t["mean"], t["p50"]) == (2, 3, 2.5, 2)
    assert s["roles"] == {"user": 2, "assistant": 2, "system": 1}
    assert s["text_bytes"] == 27


def test_mixed_language_shares(embedded_platform: Platform, admin: Actor, text_jsonl: Path) -> None:
    s = embedded_platform.datasets.import_path(admin, text_jsonl, name="t").stats
    assert s["scripts"] == {"Latin": pytest.approx(2 / 3, abs=1e-5), "Han": pytest.approx(1 / 3, abs=1e-5)}
    assert s["languages"]["zh"] == pytest.approx(1 / 3, abs=1e-5)
    assert s["languages"]["fr"] == pytest.approx(1 / 3, abs=1e-5)


def test_length_sketch_is_exact_below_4096_and_within_one_percent_above() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.integers(0, 4000, 5000), rng.integers(5000, 2_000_000, 5000)])
    sketch = LengthSketch()
    for chunk in np.array_split(values, 7):
        sketch.update(chunk)
    ordered = np.sort(values)
    for p in (10, 40, 50, 90, 99):
        exact = int(ordered[int(np.ceil(p / 100 * len(values))) - 1])
        got = sketch.percentile(p)
        assert got is not None
        if exact <= 4096:
            assert got == exact
        else:
            assert abs(got - exact) <= 0.01 * exact + 1
    assert (sketch.min, sketch.max, sketch.count) == (int(values.min()), int(values.max()), 10_000)
    assert sum(sketch.histogram()["counts"]) == 10_000


def test_head_and_export_round_trip(platform: Platform, admin: Actor, chat_jsonl: Path, tmp_path: Path) -> None:
    v = platform.datasets.import_path(admin, chat_jsonl, name="chat")
    assert platform.datasets.head("chat", 1) == [{**CHAT_ROWS[0], "source": None}]
    assert platform.datasets.head("chat", 5, offset=1) == [CHAT_ROWS[1]]
    out = platform.datasets.export("chat", tmp_path / "out.jsonl", "jsonl")
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert lines == [{**CHAT_ROWS[0], "source": None}, CHAT_ROWS[1]]
    # Re-importing the export gives the same content: the same version.
    assert platform.datasets.import_path(admin, out, name="chat").ref == v.ref
    parquet = platform.datasets.export("chat:1", tmp_path / "out.parquet", "parquet")
    assert pq.read_table(parquet).to_pylist() == lines
    with open(platform.datasets.export("chat", tmp_path / "out.csv", "csv"), encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [json.loads(r["messages"]) for r in rows] == [r["messages"] for r in CHAT_ROWS]
    with pytest.raises(InvalidInput, match="format: 'xml'"):
        platform.datasets.export("chat", tmp_path / "out.xml", "xml")
    assert not (tmp_path / "out.xml").exists() and not list(tmp_path.glob(".*partial"))
    batches = list(platform.datasets.iter_batches("chat", columns=["messages"], batch_size=1))
    assert [b.num_rows for b in batches] == [1, 1] and batches[0].schema.names == ["messages"]
    assert list(platform.datasets.texts("chat")) == [
        "user: hi\nassistant: hello!",
        "system: be brief\nuser: why?\nassistant: because",
    ]


def test_diff_counts_rows_as_multisets(platform: Platform, admin: Actor, tmp_path: Path) -> None:
    a = [{"text": t} for t in ("a", "b", "c", "c")]
    b = [{"text": t} for t in ("b", "c", "d", "d", "e")]
    platform.datasets.import_path(admin, write_jsonl(tmp_path / "a.jsonl", a), name="d")
    platform.datasets.import_path(admin, write_jsonl(tmp_path / "b.jsonl", b), name="d")
    d = platform.datasets.diff("d:1", "d:2")
    # Common: one "b" and one "c"; removed: "a" and the second "c"; added: "d", "d", "e".
    assert (d.rows_common, d.rows_removed, d.rows_added, d.same_content) == (2, 2, 3, False)
    assert d.added_examples == [{"text": "d"}, {"text": "d"}, {"text": "e"}]
    assert d.removed_examples == [{"text": "a"}]
    assert d.columns == []
    assert d.stats_delta["rows"] == 1
    assert platform.datasets.diff("d:2", "d:2").same_content
    platform.datasets.import_path(admin, write_jsonl(tmp_path / "c.jsonl", [{"text": "b", "n": 1}]), name="d")
    changes = platform.datasets.diff("d:2", "d:3").columns
    assert [(c.name, c.change, c.type_b) for c in changes] == [("n", "added", "int64")]


def test_derived_versions_lineage_and_deletion(
    platform: Platform, admin: Actor, text_jsonl: Path, tmp_path: Path
) -> None:
    base = platform.datasets.import_path(admin, text_jsonl, name="raw")
    table = pa.Table.from_pylist([{"text": r["text"].lower(), "id": r["id"]} for r in TEXT_ROWS])
    pq.write_table(table, tmp_path / "clean.parquet")
    run = platform.start_run(kind="data", name="clean-raw")
    recipe = {"steps": [{"normalize": {"lowercase": True}}]}
    report = {"steps": [{"name": "normalize", "changed": 2}]}
    child = platform.datasets.create_version_from_parquet(
        admin, "clean", tmp_path / "clean.parquet", parents=["raw"], recipe=recipe, report=report, run_id=run.id
    )
    run.end()
    assert (child.ref, child.parents, child.recipe, child.report, child.run_id) == (
        "clean:1", ["raw:1"], recipe, report, run.id
    )  # fmt: skip
    edges = {(e.direction, e.entity_ref) for e in platform.tracking.get_run(run.id).lineage}
    assert edges == {("output", "clean:1"), ("input", "raw:1")}
    pq.write_table(table.slice(0, 2), tmp_path / "small.parquet")
    grandchild = platform.datasets.create_version_from_parquet(
        admin, "clean", tmp_path / "small.parquet", parents=["clean:1"]
    )
    lineage = platform.datasets.lineage(grandchild.ref)
    assert [p.ref for p in lineage.parents] == ["clean:1"] and lineage.ancestors == ["clean:1", "raw:1"]
    assert platform.datasets.lineage("raw:1").children == ["clean:1"]

    with pytest.raises(NotFound, match="dataset 'nope' does not exist"):
        platform.datasets.create_version_from_parquet(admin, "x", tmp_path / "small.parquet", parents=["nope"])
    # Deleting a parent keeps the child's edge, marked as gone; numbers are never reused.
    platform.datasets.delete_version(admin, base.ref)
    assert [(p.ref, p.exists) for p in platform.datasets.lineage("clean:1").parents] == [("raw:1", False)]
    with pytest.raises(NotFound, match="dataset 'raw' has no version 1"):
        platform.datasets.get("raw:1")
    assert platform.datasets.import_path(admin, text_jsonl, name="raw").ref == "raw:2"
    actions = [e.action for e in platform.audit.list(limit=100)]
    assert actions.count("dataset_version.create") == 4 and actions.count("dataset_version.delete") == 1
    # The deleted version's file is still held by raw:2 (same rows); after deleting that too, gc frees it.
    platform.datasets.delete_version(admin, "raw:2")
    assert platform.store.fsck().clean
    assert base.blob_digest in platform.store.gc(grace_seconds=0, dry_run=True).removed


def test_references_are_checked(embedded_platform: Platform) -> None:
    for ref, message in [("bad/name", "not a valid name"), ("x:0", "positive number"), ("x:abc", "positive number")]:
        with pytest.raises(InvalidInput, match=message):
            embedded_platform.datasets.get(ref)
    with pytest.raises(NotFound, match="llmops data import PATH --name ghost"):
        embedded_platform.datasets.get("ghost")
