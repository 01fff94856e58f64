"""SIGKILL in the middle of writing: no half-written object is visible, nothing acknowledged is lost,
``store fsck`` is clean and ``store gc`` removes exactly the orphans.

Why: "blobs first, then metadata in one transaction" is the rule every writer follows so that a crash
at any instant leaves only two kinds of debris: unreferenced blobs (a put whose metadata never
committed, or a blob nobody referenced) and leftovers of interrupted writes (a local temporary file,
an S3 multipart upload never completed). This test produces both for real: two writer processes share
one installation, one is killed at a random moment while writing as fast as it can, the other is
killed at a known point half-way through a blob. Then, as after a restart: every acknowledged artifact
is there and verifies, the interrupted blob is not visible, fsck is clean, gc with the default grace
period removes nothing (the debris is young), gc with no grace removes exactly the debris, and the two
killed runs, left ``running``, are marked failed by the reaper because their processes are gone.

Runs on both stacks: SQLite + local directory, and PostgreSQL + S3 (moto server).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import select

from llmops.blobs.io import read_bytes
from llmops.blobs.local import LocalBlobStore
from llmops.blobs.refs import referenced
from llmops.blobs.s3 import S3BlobStore
from llmops.errors import NotFound
from llmops.platform import Platform
from llmops.settings import Settings
from llmops.tracking.tables import Artifact
from tests.conftest import stack_settings
from tests.integration.workers.process import Worker

MIB = 1 << 20


@pytest.fixture(params=["embedded", "scaleout"])
def crash_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return stack_settings(request, tmp_path, request.param)


@dataclass
class Acknowledged:
    """What the killed writers had reported as done before they died."""

    runs: dict[str, int] = field(default_factory=dict)  # run id -> pid
    artifacts: dict[tuple[str, str], str] = field(default_factory=dict)  # (run id, path) -> digest
    orphans: set[str] = field(default_factory=set)
    stalled: set[str] = field(default_factory=set)  # digests of writes killed half-way

    def add(self, lines: list[str]) -> None:
        run_id = None
        for line in lines:
            kind, *rest = line.split()
            if kind == "run":
                run_id = rest[0]
                self.runs[run_id] = int(rest[1])
            elif kind == "artifact":
                assert run_id is not None
                self.artifacts[(run_id, rest[0])] = rest[1]
            elif kind == "orphan":
                self.orphans.add(rest[0])
            elif kind == "stalling":
                self.stalled.add(rest[0])


def partial_writes(platform: Platform) -> list[str]:
    """Leftovers of interrupted writes: temporary files, or S3 multipart uploads not completed."""
    store = platform.blobs
    if isinstance(store, LocalBlobStore):
        return sorted(p.name for p in (store.root / "tmp").iterdir())
    assert isinstance(store, S3BlobStore)
    uploads = store._client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])
    return sorted(u["Key"] for u in uploads)


def partial_ages_are_real(platform: Platform) -> bool:
    """Whether the store dates partial writes truly. moto (the test S3 server) reports every multipart
    upload as initiated on 2010-11-10, so gc sees them as old whatever the grace period; real S3 does not.
    """
    store = platform.blobs
    if isinstance(store, LocalBlobStore):
        return True
    assert isinstance(store, S3BlobStore)
    uploads = store._client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])
    return all(time.time() - u["Initiated"].timestamp() < 3600 for u in uploads)


def stored_digests(platform: Platform) -> set[str]:
    return {b.digest for b in platform.blobs.iter_blobs()}


def referenced_digests(platform: Platform) -> set[str]:
    with platform.db.read() as session:
        return set(referenced(session))


def artifact_rows(platform: Platform) -> dict[tuple[str, str], tuple[str, int]]:
    with platform.db.read() as session:
        rows = session.execute(select(Artifact.run_id, Artifact.path, Artifact.digest, Artifact.size)).all()
    return {(r, p): (d, s) for r, p, d, s in rows}


def assert_every_artifact_reads_back(platform: Platform) -> None:
    for (run_id, path), (digest, size) in artifact_rows(platform).items():
        info, stream = platform.tracking.open_artifact(run_id, path)
        with stream:
            data = stream.read()  # the verifying reader raises DataCorrupted on a mismatch
        assert (info.digest, len(data)) == (digest, size)


@pytest.fixture
def killed(crash_settings: Settings) -> Iterator[tuple[Platform, Acknowledged]]:
    """An installation after two writer processes were SIGKILLed mid-write, reopened as after a restart."""
    Platform(crash_settings).close()  # create the schema once, before the writers start
    rng = random.Random()
    max_size = str(2 * MIB)
    racer = Worker(
        "crash_writer.py",
        crash_settings,
        "--name",
        "racer",
        "--seed",
        str(rng.randrange(1 << 30)),
        "--max-size",
        max_size,
    )
    staller = Worker(
        "crash_writer.py",
        crash_settings,
        "--name",
        "staller",
        "--seed",
        str(rng.randrange(1 << 30)),
        "--stall-after",
        "7",
        "--max-size",
        max_size,
    )
    acknowledged = Acknowledged()
    try:
        staller.wait_for("mid-write", timeout=120)
        staller.kill()
        racer.wait_for("artifact", count=12, timeout=120)
        # A random instant: mid-put, between put and commit, mid-transaction or between writes.
        racer.wait_for("", count=len(racer.lines) + rng.randint(1, 6), timeout=60)
        time.sleep(rng.uniform(0, 0.05))
        racer.kill()
    finally:
        racer.stop()
        staller.stop()
    acknowledged.add(racer.lines)
    acknowledged.add(staller.lines)
    platform = Platform(crash_settings)
    yield platform, acknowledged
    platform.close()


def test_sigkill_mid_write_then_fsck_gc_and_reaper(killed: tuple[Platform, Acknowledged]) -> None:
    platform, acknowledged = killed
    assert len(acknowledged.runs) == 2 and len(acknowledged.stalled) == 1
    assert len(acknowledged.artifacts) >= 12 and acknowledged.orphans

    # 1. Nothing acknowledged is lost: every reported artifact is there with the reported content.
    rows = artifact_rows(platform)
    for key, digest in acknowledged.artifacts.items():
        assert rows[key][0] == digest, key
    # At most one artifact committed without being reported: the one the kill interrupted.
    assert len(set(rows) - set(acknowledged.artifacts)) <= 1
    assert_every_artifact_reads_back(platform)

    # 2. The write killed half-way is not visible in any form; its leftover is out of sight.
    (stalled,) = acknowledged.stalled
    assert platform.blobs.stat(stalled) is None
    with pytest.raises(NotFound):
        read_bytes(platform.blobs, stalled)
    stored = stored_digests(platform)
    assert stalled not in stored
    partial = partial_writes(platform)
    assert partial, "the write killed half-way should have left a temporary file / an open multipart upload"

    # 3. fsck: every referenced blob exists, every stored blob matches its name (no torn object).
    report = platform.store.fsck()
    assert report.clean, (report.missing, report.corrupted)
    assert report.checked == len(stored)

    # 4. The orphans are the reported bare blobs, plus at most the one whose metadata the kill cut off.
    refs = referenced_digests(platform)
    orphans = stored - refs
    assert acknowledged.orphans <= orphans
    assert len(orphans - acknowledged.orphans) <= 1

    # 5. gc with the default grace period keeps young debris: a live writer may be about to reference it.
    ages_are_real = partial_ages_are_real(platform)
    young = platform.store.gc(grace_seconds=platform.settings.blob_gc_grace_seconds)
    assert young.removed == []
    assert young.kept_young == len(orphans)
    assert stored_digests(platform) == stored
    if ages_are_real:
        assert young.partial_removed == 0 and partial_writes(platform) == partial
    else:  # moto's fixed 2010 date makes the upload look old: it is (correctly, by that date) aborted
        assert young.partial_removed == len(partial)
    partial = partial_writes(platform)

    # 6. A dry run reports what it would remove and changes nothing.
    dry = platform.store.gc(grace_seconds=0, dry_run=True)
    assert set(dry.removed) == orphans
    assert stored_digests(platform) == stored and partial_writes(platform) == partial

    # 7. gc without grace removes exactly the orphans and the partial writes, nothing referenced.
    collected = platform.store.gc(grace_seconds=0)
    assert set(collected.removed) == orphans
    assert collected.bytes_freed > 0
    assert collected.partial_removed == len(partial)
    assert stored_digests(platform) == refs
    assert partial_writes(platform) == []
    after = platform.store.fsck()
    assert after.clean and after.checked == len(refs)
    assert platform.store.stats().unreferenced_blobs == 0
    assert_every_artifact_reads_back(platform)
    again = platform.store.gc(grace_seconds=0)
    assert again.removed == [] and again.partial_removed == 0

    # 8. The killed runs were left "running"; the reaper marks them failed because their processes died.
    for run_id in acknowledged.runs:
        assert platform.tracking.get_run(run_id).status == "running"
    assert set(platform.tracking.reap_stale()) == set(acknowledged.runs)
    for run_id, pid in acknowledged.runs.items():
        run = platform.tracking.get_run(run_id)
        assert run.status == "failed" and run.ended_at is not None
        assert run.end_reason is not None and f"process {pid}" in run.end_reason
    assert platform.tracking.reap_stale() == []
    assert platform.audit.verify().ok
