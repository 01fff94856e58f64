"""SIGKILL during an import leaves no version and a clean store; concurrent imports of the same rows end
as one version. Both run on both stacks, with real child processes (``tests/integration/workers``)."""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from llmops.blobs.refs import referenced
from llmops.datasets.service import DatasetService
from llmops.platform import Platform
from llmops.security.actor import Actor
from llmops.security.roles import Role
from llmops.settings import Settings
from tests.integration.workers.process import Worker, run_together


def emit(*parts: object) -> None:
    sys.stdout.write(" ".join(str(p) for p in parts) + "\n")
    sys.stdout.flush()


def big_jsonl(path: Path, rows: int) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(rows):
            fh.write(json.dumps({"text": f"row {i}: " + "lorem ipsum dolor sit amet " * 4}) + "\n")
    return path


def import_one(platform: Platform, writer: str, path: str) -> dict[str, Any]:
    actor = Actor(name=writer, role=Role.admin, via="python")
    try:
        v = platform.datasets.import_path(actor, Path(path), name="shared")
        return {"writer": writer, "ref": v.ref, "reused": v.reused_existing_version, "error": None}
    except Exception as exc:  # reported, so that the parent sees every writer's outcome
        return {"writer": writer, "ref": None, "reused": None, "error": f"{type(exc).__name__}: {exc}"}


def worker_main(argv: list[str]) -> None:
    platform = Platform(Settings(), migrate=False)
    if argv[0] == "stall":  # stall PATH MODE: import, and block forever at MODE ("writing" or "commit")
        path, mode = Path(argv[1]), argv[2]
        if mode == "commit":

            def blocked(*args: Any, **kwargs: Any) -> Any:
                emit("before-commit")
                while True:
                    time.sleep(3600)

            DatasetService._commit = blocked  # type: ignore[method-assign]

        def progress(stage: str, done: int, total: int) -> None:
            if mode == "writing":
                emit("mid-write", done)
                while True:
                    time.sleep(3600)

        platform.datasets.import_path(
            Actor(name="killed", role=Role.admin, via="python"), path, name="victim", progress=progress
        )
        raise AssertionError("a stalled import returned")
    if argv[0] == "import":  # import WRITER PATH: "ready", wait for "go", then the result as JSON
        platform.db.ping()
        emit("ready")
        assert sys.stdin.readline().strip() == "go"
        emit(json.dumps(import_one(platform, argv[1], argv[2])))
    platform.close()


@pytest.mark.parametrize("mode", ["writing", "commit"])
def test_sigkill_during_import_leaves_no_version(platform: Platform, tmp_path: Path, mode: str) -> None:
    source = big_jsonl(tmp_path / "big.jsonl", 120_000)  # more than one batch: the kill lands mid-file
    worker = Worker(__file__, platform.settings, "stall", str(source), mode)
    try:
        worker.wait_for("mid-write" if mode == "writing" else "before-commit", timeout=180)
        worker.kill()
    finally:
        worker.stop()
    assert platform.datasets.list_datasets() == []
    report = platform.store.fsck()
    assert report.clean, (report.missing, report.corrupted)
    with platform.db.read() as session:
        assert referenced(session) == {}
    stored = {b.digest for b in platform.blobs.iter_blobs()}
    if mode == "commit":  # the Parquet blob was stored: an orphan that gc removes once past the grace period
        assert len(stored) == 1
        assert platform.store.gc(grace_seconds=platform.settings.blob_gc_grace_seconds).removed == []
        assert platform.store.gc(grace_seconds=0).removed == sorted(stored)
    else:
        assert stored == set()
    # The interrupted import can simply be run again.
    assert platform.datasets.import_path(
        Actor(name="again", role=Role.admin, via="python"), source, name="victim"
    ).ref == ("victim:1")


def test_concurrent_imports_of_the_same_rows_make_one_version(platform: Platform, tmp_path: Path) -> None:
    source = str(big_jsonl(tmp_path / "same.jsonl", 2000))
    Platform(platform.settings).close()
    procs = [Worker(__file__, platform.settings, "import", f"p{i}", source) for i in range(2)]
    work = [functools.partial(import_one, platform, f"t{i}", source) for i in range(2)]
    results = run_together(procs, work, ready_timeout=120)
    assert [r["error"] for r in results] == [None] * 4, results
    assert {r["ref"] for r in results} == {"shared:1"}
    assert sorted(r["reused"] for r in results) == [False, True, True, True]
    assert [v.ref for v in platform.datasets.list_versions("shared")] == ["shared:1"]
    with platform.db.read() as session:
        owners = [o for owners in referenced(session).values() for o in owners]
    assert owners == ["dataset_version/shared:1"]
    creates = [e for e in platform.audit.list(limit=50) if e.action == "dataset_version.create"]
    assert len(creates) == 1


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    worker_main(sys.argv[1:])
