"""Concurrent writers, threads and processes, on SQLite and PostgreSQL: nothing lost, nothing doubled.

Why: the platform is one process by default but is used by many at once (the server, training jobs,
the CLI, several workers against one PostgreSQL). SQLite serializes writers on one lock
(``BEGIN IMMEDIATE``), PostgreSQL runs them truly in parallel; both must give the same exact result.
Eight threads in this process and four child processes start together on a signal and each create
runs, append metric batches, create principals (some names unique, three names contested by every
writer: exactly one must win, the rest get ``AlreadyExists``, never a raw ``IntegrityError``), and log
the same artifact bytes (into their own runs, and all at the same path of one shared run). Afterwards
every count is exact, the audit chain is intact with contiguous sequence numbers, and blob
references are consistent with the store.
"""

from __future__ import annotations

import functools
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from llmops.blobs.digest import digest_bytes
from llmops.blobs.tables import BlobRef
from llmops.errors import Conflict
from llmops.platform import Platform
from llmops.security.actor import local_admin
from llmops.security.tables import AuditEvent, Principal
from llmops.settings import Settings
from llmops.tracking.tables import Artifact, MetricPoint, Run
from tests.integration.workers import concurrent_writer as cw
from tests.integration.workers.process import Worker, run_together

THREADS = 8
PROCESSES = 4


@pytest.fixture
def shared_platform(database_url: str, tmp_path: Path) -> Iterator[Platform]:
    platform = Platform(Settings(home=tmp_path / "home", database_url=database_url))
    yield platform
    platform.close()


def run_writers(platform: Platform, common_run: str) -> list[dict[str, Any]]:
    """Start every writer together; return their results."""
    processes = [Worker("concurrent_writer.py", platform.settings, common_run, f"p{i}") for i in range(PROCESSES)]
    work = [functools.partial(cw.work, platform, f"t{i}", common_run) for i in range(THREADS)]
    return run_together(processes, work)


def test_concurrent_writers_lose_and_duplicate_nothing(shared_platform: Platform) -> None:
    platform = shared_platform
    common = platform.tracking.create_run(local_admin(), kind="train", name="common")
    events_before = len(platform.audit.list(limit=1000))

    results = run_writers(platform, common.id)

    writers = THREADS + PROCESSES
    assert len(results) == writers
    errors = [e for r in results for e in r["errors"]]
    assert not errors, "\n".join(errors[:5])

    with platform.db.read() as session:
        runs = dict(session.execute(select(Run.id, Run.name)).all())
        points = Counter(
            {
                (r, k): n
                for r, k, n in session.execute(
                    select(MetricPoint.run_id, MetricPoint.key, func.count()).group_by(
                        MetricPoint.run_id, MetricPoint.key
                    )
                )
            }
        )
        doubled = session.execute(
            select(MetricPoint.run_id, MetricPoint.key, MetricPoint.step)
            .group_by(MetricPoint.run_id, MetricPoint.key, MetricPoint.step)
            .having(func.count() > 1)
        ).all()
        principals = set(session.scalars(select(Principal.name)))
        artifacts = session.execute(select(Artifact.run_id, Artifact.path, Artifact.digest)).all()
        refs = session.execute(select(BlobRef.digest, BlobRef.owner_kind, BlobRef.owner_id)).all()
        seqs = list(session.scalars(select(AuditEvent.seq).order_by(AuditEvent.seq)))

    # Runs: every writer's runs exist once, under the id it was given.
    writer_runs = [run_id for r in results for run_id in r["runs"]]
    assert len(writer_runs) == writers * cw.RUNS == len(set(writer_runs))
    assert set(runs) == {*writer_runs, common.id}
    names = ["common", *(f"{r['writer']}-r{j}" for r in results for j in range(cw.RUNS))]
    assert sorted(runs.values()) == sorted(names)

    # Metric points: exact counts per series, no point written twice.
    assert not doubled
    for run_id in writer_runs:
        for key in cw.KEYS:
            assert points[(run_id, key)] == cw.BATCHES * cw.POINTS
    for r in results:
        assert points[(common.id, r["writer"])] == cw.POINTS
    assert sum(points.values()) == writers * (cw.RUNS * cw.BATCHES * cw.POINTS * len(cw.KEYS) + cw.POINTS)

    # Principals: unique names all created; each contested name won exactly once, lost by all others.
    won = Counter(name for r in results for name in r["won"])
    lost = Counter(name for r in results for name in r["lost"])
    for name in cw.CONTESTED:
        assert won[name] == 1 and lost[name] == writers - 1, (name, won[name], lost[name])
    unique = {f"user-{r['writer']}-{k}" for r in results for k in range(cw.UNIQUE_PRINCIPALS)}
    assert principals == unique | set(cw.CONTESTED)
    assert all(won[name] == 1 for name in unique)

    # Artifacts: the same bytes everywhere, one row per (run, path), one stored blob, one ref per row.
    digest = digest_bytes(cw.SHARED_CONTENT)
    assert {d for r in results for d in r["digests"]} == {digest}
    assert len(artifacts) == len(writer_runs) + 1
    assert sum(1 for run_id, path, _ in artifacts if run_id == common.id) == 1
    assert {d for _, _, d in artifacts} == {digest}
    assert sorted(refs) == sorted((digest, "artifact", f"{run_id}/{path}") for run_id, path, _ in artifacts)
    assert [b.digest for b in platform.blobs.iter_blobs()] == [digest]
    assert platform.store.fsck().clean

    # Audit: one event per mutation, contiguous sequence numbers, intact hash chain.
    expected_events = len(writer_runs) + len(unique) + len(cw.CONTESTED) + len(artifacts)
    assert len(seqs) == events_before + expected_events
    assert seqs == list(range(1, len(seqs) + 1))
    verification = platform.audit.verify()
    assert verification.ok, verification.problems
    assert verification.checked == len(seqs)


def test_concurrent_reapers_and_enders_end_each_run_once(shared_platform: Platform) -> None:
    """Several reapers (server instances, run listings) and the runs' own ``end`` race to end the same
    crashed runs: each run ends exactly once, with one audit event, and every caller reports only what
    it really did."""
    platform = shared_platform
    admin = local_admin()
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that no longer exists: every run below looks crashed
    run_ids = [
        platform.tracking.create_run(admin, kind="train", name=f"crashed-{i}", pid=gone.pid).id for i in range(30)
    ]
    reaped: list[list[str]] = []
    ended: list[str] = []
    failures: list[str] = []
    barrier = threading.Barrier(8, timeout=60)

    def reaper() -> None:
        barrier.wait()
        try:
            reaped.append(platform.tracking.reap_stale())
        except Exception as exc:
            failures.append(repr(exc))

    def ender(ids: list[str]) -> None:
        barrier.wait()
        for run_id in ids:
            try:
                platform.tracking.end_run(admin, run_id, "finished")
                ended.append(run_id)
            except Conflict:
                pass  # the reaper was first
            except Exception as exc:
                failures.append(repr(exc))

    threads = [threading.Thread(target=reaper) for _ in range(6)]
    threads += [threading.Thread(target=ender, args=(run_ids[i::2],)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures

    by_reaper = [run_id for batch in reaped for run_id in batch]
    assert len(by_reaper) == len(set(by_reaper)), "two reapers both claim to have ended the same run"
    assert set(by_reaper).isdisjoint(ended)
    assert set(by_reaper) | set(ended) == set(run_ids)
    for run_id in run_ids:
        events = [e for e in platform.audit.list(target=f"run/{run_id}", limit=100) if e.action == "run.end"]
        assert len(events) == 1, (run_id, [(e.actor, e.details) for e in events])
        status = platform.tracking.get_run(run_id).status
        assert status == ("finished" if run_id in ended else "failed")
    assert platform.audit.verify().ok


def test_concurrent_writes_of_the_same_keys_keep_one_row_each(shared_platform: Platform) -> None:
    """Writers setting the same tag, logging the same param and recording the same lineage edge of one
    run at once: every call succeeds (or, for a param given a different value, gets ``Conflict``), one
    row each remains, and the edge is audited once."""
    platform = shared_platform
    admin = local_admin()
    tracking = platform.tracking
    run = tracking.create_run(admin, kind="train", name="shared")
    failures: list[str] = []
    conflicts: list[int] = []
    writers = 8
    barrier = threading.Barrier(writers, timeout=60)

    def writer(i: int) -> None:
        barrier.wait()
        try:
            tracking.set_tags(admin, run.id, {"stage": "eval", f"writer-{i}": "yes"})
            tracking.log_params(run.id, {"lr": 0.001, "batch": 32})
            tracking.add_lineage(admin, run.id, "input", "dataset_version", "corpus:3")
            try:
                tracking.log_params(run.id, {"seed": i})  # all but the first get a Conflict
            except Conflict:
                conflicts.append(i)
        except Exception as exc:
            failures.append(f"{type(exc).__module__}.{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures[:3]

    detail = tracking.get_run(run.id)
    assert detail.tags == {"stage": "eval", **{f"writer-{i}": "yes" for i in range(writers)}}
    assert {k: v for k, v in detail.params.items() if k != "seed"} == {"lr": "0.001", "batch": "32"}
    assert len(conflicts) == writers - 1
    assert detail.params["seed"] == str(({*range(writers)} - set(conflicts)).pop())
    assert [(e.direction, e.entity_kind, e.entity_ref) for e in detail.lineage] == [
        ("input", "dataset_version", "corpus:3")
    ]
    actions = Counter(e.action for e in platform.audit.list(target=f"run/{run.id}", limit=1000))
    assert actions == {"run.create": 1, "run.tag": writers, "run.lineage": 1}
    assert platform.audit.verify().ok


def test_concurrent_batches_without_steps_get_distinct_steps(shared_platform: Platform) -> None:
    """Batches that leave the step out get "the next step of the key": writers racing on one series
    must not be handed the same steps."""
    platform = shared_platform
    run = platform.tracking.create_run(local_admin(), kind="train", name="unstepped")
    writers, batches, size = 6, 5, 20
    failures: list[str] = []
    barrier = threading.Barrier(writers, timeout=60)

    def writer(i: int) -> None:
        barrier.wait()
        try:
            for _ in range(batches):
                platform.tracking.log_metrics(run.id, [("loss", float(i), None, 0)] * size)
        except Exception as exc:
            failures.append(repr(exc))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures[:3]
    steps = [p.step for p in platform.tracking.metric_series(run.id, "loss").points]
    assert sorted(steps) == list(range(writers * batches * size))
