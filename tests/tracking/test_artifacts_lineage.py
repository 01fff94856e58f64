"""Run artifacts (immutable, content-addressed, referenced for gc/fsck) and lineage edges."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from llmops.blobs.digest import digest_bytes
from llmops.errors import Conflict, InvalidInput, NotFound
from llmops.platform import Platform
from llmops.security.actor import Actor


def read_artifact(platform: Platform, run_id: str, path: str) -> bytes:
    _, stream = platform.tracking.open_artifact(run_id, path)
    with stream:
        return stream.read()


def test_artifacts_round_trip(platform: Platform, tmp_path: Path) -> None:
    weights = tmp_path / "weights.bin"
    weights.write_bytes(bytes(range(256)) * 1000)
    with platform.start_run(kind="train", name="art") as run:
        text_info = run.log_text("hello\nworld\n", "logs/notes.txt")
        file_info = run.log_artifact(weights, "model/weights.bin")
        default_name = run.log_artifact(weights)
        dict_info = run.log_dict({"b": 1, "a": [1, 2]}, "config.json")
    assert text_info.digest == digest_bytes(b"hello\nworld\n") and text_info.size == 12
    assert file_info.size == 256_000 and file_info.digest == digest_bytes(weights.read_bytes())
    assert default_name.path == "weights.bin" and default_name.digest == file_info.digest
    assert read_artifact(platform, run.id, "logs/notes.txt") == b"hello\nworld\n"
    assert read_artifact(platform, run.id, "model/weights.bin") == weights.read_bytes()
    assert b'"a": [' in read_artifact(platform, run.id, "config.json")
    info, stream = platform.tracking.open_artifact(run.id, "model/weights.bin")
    stream.close()
    assert (info.digest, info.size) == (file_info.digest, file_info.size)
    listed = platform.tracking.list_artifacts(run.id)
    assert [a.path for a in listed] == ["config.json", "logs/notes.txt", "model/weights.bin", "weights.bin"]
    assert [a.path for a in platform.tracking.get_run(run.id).artifacts] == [a.path for a in listed]
    assert dict_info.path == "config.json"

    # Blob references are recorded, so fsck is clean and the blobs count as referenced (3 distinct).
    assert platform.store.fsck().clean
    stats = platform.store.stats()
    assert (stats.blobs, stats.referenced_blobs, stats.unreferenced_blobs, stats.missing) == (3, 3, 0, 0)


def test_artifacts_are_immutable(platform: Platform, admin: Actor) -> None:
    run = platform.tracking.create_run(admin, kind="train", name="immutable")
    first = platform.tracking.log_artifact(admin, run.id, "out.txt", io.BytesIO(b"v1"))
    same = platform.tracking.log_artifact(admin, run.id, "out.txt", io.BytesIO(b"v1"))
    assert same.digest == first.digest
    with pytest.raises(Conflict, match="immutable"):
        platform.tracking.log_artifact(admin, run.id, "out.txt", io.BytesIO(b"v2"))
    assert read_artifact(platform, run.id, "out.txt") == b"v1"
    assert len(platform.audit.list(action="artifact.create")) == 1
    # The rejected content was stored first (blobs first, metadata second) and is left for gc.
    stats = platform.store.stats()
    assert (stats.referenced_blobs, stats.unreferenced_blobs) == (1, 1)
    assert platform.store.fsck().clean


def test_artifacts_can_be_added_after_the_run_ended(platform: Platform, admin: Actor) -> None:
    """Evaluation reports are often attached after training ends; only metrics and params are closed."""
    run = platform.tracking.create_run(admin, kind="train", name="late")
    platform.tracking.end_run(admin, run.id)
    platform.tracking.log_artifact(admin, run.id, "report.md", io.BytesIO(b"# ok"))
    assert read_artifact(platform, run.id, "report.md") == b"# ok"


def test_artifact_path_validation(platform: Platform, admin: Actor) -> None:
    run = platform.tracking.create_run(admin, kind="train", name="paths")
    for bad in (
        "",
        "/etc/passwd",
        "../escape",
        "a/../../b",
        "a//b",
        "./a",
        "a/.",
        "dir/",
        "bad\x00name",
        "new\nline",
        "a\\b",
        "x" * 513,
        "q?x=1",
    ):
        with pytest.raises(InvalidInput) as info:
            platform.tracking.log_artifact(admin, run.id, bad, io.BytesIO(b"x"))
        assert info.value.details == {"field": "path"}, bad
    ok = platform.tracking.log_artifact(admin, run.id, "a b/c-d_e.f+g=h@i.txt", io.BytesIO(b"x"))
    assert ok.path == "a b/c-d_e.f+g=h@i.txt"
    assert [a.path for a in platform.tracking.list_artifacts(run.id)] == [ok.path]
    assert platform.store.stats().blobs == 1  # invalid paths are refused before any blob is written


def test_missing_artifacts_and_runs(platform: Platform, admin: Actor) -> None:
    run = platform.tracking.create_run(admin, kind="train", name="missing")
    with pytest.raises(NotFound, match="no artifact"):
        platform.tracking.open_artifact(run.id, "nope.txt")
    with pytest.raises(NotFound):
        platform.tracking.open_artifact("a" * 32, "nope.txt")
    with pytest.raises(NotFound):
        platform.tracking.log_artifact(admin, "a" * 32, "x.txt", io.BytesIO(b"x"))
    with pytest.raises(NotFound):
        platform.tracking.list_artifacts("a" * 32)


def test_lineage_edges(platform: Platform, admin: Actor) -> None:
    with platform.start_run(kind="finetune", name="ft") as run:
        run.add_input("dataset_version", "chat-corpus:3")
        run.add_input("model_version", "base@production")
        run.add_input("dataset_version", "chat-corpus:3")  # idempotent
        run.add_output("model_version", "chat:1")
    with platform.start_run(kind="eval", name="ev") as ev:
        ev.add_input("model_version", "chat:1")
    edges = platform.tracking.get_run(run.id).lineage
    assert [(e.direction, e.entity_kind, e.entity_ref) for e in edges] == [
        ("input", "dataset_version", "chat-corpus:3"),
        ("input", "model_version", "base@production"),
        ("output", "model_version", "chat:1"),
    ]
    assert len(platform.audit.list(action="run.lineage", target=f"run/{run.id}")) == 3
    assert sorted(platform.tracking.runs_touching("model_version", "chat:1")) == sorted(
        [(run.id, "output"), (ev.id, "input")]
    )
    assert platform.tracking.runs_touching("dataset_version", "chat-corpus:3") == [(run.id, "input")]
    assert platform.tracking.runs_touching("dataset_version", "other:1") == []

    with pytest.raises(InvalidInput) as info:
        platform.tracking.add_lineage(admin, run.id, "sideways", "run", "x")
    assert info.value.details == {"field": "direction"}
    with pytest.raises(InvalidInput) as info:
        platform.tracking.add_lineage(admin, run.id, "input", "spreadsheet", "x")
    assert info.value.details == {"field": "entity_kind"}
    with pytest.raises(NotFound):
        platform.tracking.add_lineage(admin, "b" * 32, "input", "run", "x")
