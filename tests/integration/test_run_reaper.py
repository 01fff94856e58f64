"""Runs that crash are marked failed, not left ``running`` forever.

Why: a training job killed by the OOM killer, a node reboot or ``kill -9`` cannot end its own run.
``TrackingService.reap_stale`` finds such runs two ways: the run's process on this host is gone, or
its heartbeat is older than ``run_stale_seconds`` (a hung process, or one on another machine). These
tests kill a real job process, age heartbeats, and check that exactly the dead runs are marked failed,
with a reason, an end time and an audit event, while live runs are left alone.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from llmops.api.app import create_app
from llmops.platform import Platform
from llmops.security.actor import local_admin
from llmops.settings import Settings
from llmops.tracking.tables import Run
from tests.integration.workers.process import Worker


@pytest.fixture
def reaper_platform(database_url: str, tmp_path: Path) -> Iterator[Platform]:
    platform = Platform(Settings(home=tmp_path / "home", database_url=database_url, run_stale_seconds=60))
    yield platform
    platform.close()


def age_heartbeat(platform: Platform, run_id: str, seconds: float, **values: object) -> None:
    with platform.db.write() as session:
        beat = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)
        session.execute(update(Run).where(Run.id == run_id).values(heartbeat_at=beat, **values))


def reaper_events(platform: Platform, run_id: str) -> list[dict[str, object]]:
    events = platform.audit.list(actor="system:reaper", target=f"run/{run_id}")
    return [{"action": e.action, **e.details} for e in events]


def test_run_of_a_sigkilled_job_is_marked_failed(reaper_platform: Platform) -> None:
    platform = reaper_platform
    job = Worker("run_holder.py", platform.settings, "doomed")
    try:
        (line,) = job.wait_for("run", timeout=120)
        _, run_id, pid_text = line.split()
        pid = int(pid_text)
        # While the job lives (process up, heartbeat fresh), the reaper leaves its run alone.
        assert platform.tracking.reap_stale() == []
        assert platform.tracking.get_run(run_id).status == "running"
        with platform.db.read() as session:
            row = session.get(Run, run_id)
            assert row is not None and row.pid == pid and row.host
        job.kill()
    finally:
        job.stop()
    # The heartbeat is still fresh (seconds old, 60 s allowed): only the dead process gives it away.
    assert platform.tracking.get_run(run_id).status == "running"
    assert platform.tracking.reap_stale() == [run_id]
    run = platform.tracking.get_run(run_id)
    assert run.status == "failed"
    assert run.ended_at is not None
    assert run.end_reason is not None and f"process {pid}" in run.end_reason and "gone" in run.end_reason
    assert reaper_events(platform, run_id) == [
        {"action": "run.end", "status": "failed", "reason": run.end_reason.removeprefix("crashed: ")}
    ]
    assert platform.tracking.reap_stale() == []  # reaped once
    assert platform.audit.verify().ok


def test_a_killed_process_not_yet_waited_for_counts_as_dead(reaper_platform: Platform) -> None:
    """A SIGKILLed child its parent has not reaped is a zombie: it still answers ``kill(pid, 0)``."""
    platform = reaper_platform
    child = subprocess.Popen(["sleep", "600"])
    try:
        run = platform.tracking.create_run(local_admin(), kind="eval", name="zombie", pid=child.pid)
        assert platform.tracking.reap_stale() == []
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child.pid}/stat").read_text().split(") ", 1)[1][0] != "Z":
            assert time.monotonic() < deadline, "the killed child never became a zombie"
            time.sleep(0.02)
        os.kill(child.pid, 0)  # still "exists"
        assert platform.tracking.reap_stale() == [run.id]
        assert platform.tracking.get_run(run.id).status == "failed"
    finally:
        child.kill()
        child.wait()


def test_stale_heartbeats_are_failed_and_live_runs_left_alone(reaper_platform: Platform) -> None:
    platform = reaper_platform
    tracking, admin = platform.tracking, local_admin()
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that no longer exists

    silent = tracking.create_run(admin, kind="train", name="silent")  # e.g. created over HTTP, no pid
    hung = tracking.create_run(admin, kind="train", name="hung", pid=os.getpid())  # alive but not beating
    fresh = tracking.create_run(admin, kind="train", name="fresh")
    remote = tracking.create_run(admin, kind="train", name="remote", pid=gone.pid)
    finished = tracking.create_run(admin, kind="train", name="finished")
    tracking.end_run(admin, finished.id, "finished")
    with platform.start_run(kind="train", name="active") as active:
        age_heartbeat(platform, silent.id, 61)
        age_heartbeat(platform, hung.id, 3600)
        age_heartbeat(platform, finished.id, 3600)
        # Another machine's pid says nothing about this machine's process table: only its heartbeat counts.
        age_heartbeat(platform, remote.id, 5, host="another-host")

        assert sorted(tracking.reap_stale()) == sorted([silent.id, hung.id])
        for run_id in (silent.id, hung.id):
            run = tracking.get_run(run_id)
            assert run.status == "failed"
            assert run.end_reason is not None and "no heartbeat since" in run.end_reason
        for run_id in (fresh.id, remote.id, active.id):
            assert tracking.get_run(run_id).status == "running"
        assert tracking.get_run(finished.id).status == "finished"
        assert tracking.get_run(finished.id).end_reason is None
    assert tracking.get_run(active.id).status == "finished"
    assert platform.audit.verify().ok


def test_heartbeat_thread_keeps_an_active_run_alive(tmp_path: Path) -> None:
    """With a short stale limit, the run that beats survives and the silent one does not."""
    platform = Platform(Settings(home=tmp_path / "home", run_heartbeat_seconds=0.2, run_stale_seconds=3.0))
    try:
        silent = platform.tracking.create_run(local_admin(), kind="train", name="silent")
        with platform.start_run(kind="train", name="beating") as active:
            time.sleep(4.0)
            assert platform.tracking.reap_stale() == [silent.id]
            assert platform.tracking.get_run(active.id).status == "running"
        assert platform.tracking.get_run(active.id).status == "finished"
    finally:
        platform.close()


def test_server_and_run_listing_reap_crashed_runs(tmp_path: Path) -> None:
    """The API server's background reaper marks a crashed run failed without being asked, and a run
    listing reaps before it answers, so neither ever shows a dead run as running."""
    platform = Platform(Settings(home=tmp_path / "home"))
    boot = local_admin()
    gone = subprocess.Popen(["true"])
    gone.wait()
    crashed = platform.tracking.create_run(boot, kind="train", name="crashed", pid=gone.pid)
    platform.security.create_principal(boot, "ops", role="viewer")
    headers = {"Authorization": f"Bearer {platform.security.create_key(boot, principal='ops').key}"}
    try:
        with TestClient(create_app(platform=platform)) as client:  # runs the lifespan: the reaper starts
            deadline = time.monotonic() + 30
            while client.get(f"/api/v1/runs/{crashed.id}", headers=headers).json()["status"] == "running":
                assert time.monotonic() < deadline, "the server's reaper did not mark the crashed run failed"
                time.sleep(0.1)
            body = client.get(f"/api/v1/runs/{crashed.id}", headers=headers).json()
            assert body["status"] == "failed" and f"process {gone.pid}" in body["end_reason"]
        # With no server running, a run that crashes is reaped by the next listing.
        listed = platform.tracking.create_run(boot, kind="train", name="listed", pid=gone.pid)
        assert platform.tracking.get_run(listed.id).status == "running"
        statuses = {r.id: r.status for r in platform.tracking.list_runs().runs}
        assert statuses == {crashed.id: "failed", listed.id: "failed"}
    finally:
        platform.close()
