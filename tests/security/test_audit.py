"""The hash-chained audit log: every mutation appends an event; editing, deleting in the middle,
deleting the newest events and a forged head are all reported by ``verify``; concurrent appends keep
``seq`` contiguous."""

from __future__ import annotations

import io
import threading

import pytest
from sqlalchemy import delete, select, text, update

from llmops.platform import Platform
from llmops.security.actor import Actor
from llmops.security.audit import GENESIS, event_hash
from llmops.security.tables import AuditEvent, AuditHead


def make_history(platform: Platform, admin: Actor) -> str:
    """One of each audited mutation; returns the run id."""
    platform.security.create_principal(admin, "alice", role="developer")
    platform.security.update_principal(admin, "alice", role="maintainer")
    key = platform.security.create_key(admin, principal="alice")
    platform.security.revoke_key(admin, key.prefix)
    run = platform.tracking.create_run(admin, kind="train", name="r1")
    platform.tracking.set_tags(admin, run.id, {"team": "nlp"})
    platform.tracking.add_lineage(admin, run.id, "input", "dataset_version", "corpus:1")
    platform.tracking.log_artifact(admin, run.id, "notes.txt", io.BytesIO(b"hello"))
    platform.tracking.end_run(admin, run.id)
    return run.id


def test_every_mutation_appends_an_event(platform: Platform, admin: Actor) -> None:
    run_id = make_history(platform, admin)
    events = list(reversed(platform.audit.list(limit=1000)))
    assert [e.action for e in events] == [
        "principal.create",
        "principal.update",
        "key.create",
        "key.revoke",
        "run.create",
        "run.tag",
        "run.lineage",
        "artifact.create",
        "run.end",
    ]
    assert [e.seq for e in events] == list(range(1, 10))
    assert {e.actor for e in events} == {admin.label}
    assert events[0].target == "principal/alice"
    assert events[1].details == {"role": {"from": "developer", "to": "maintainer"}}
    assert events[4].target == f"run/{run_id}" and events[4].details == {"kind": "train", "name": "r1"}
    assert events[-1].details == {"status": "finished"}


def test_metric_points_and_params_are_not_audited_one_by_one(platform: Platform, admin: Actor) -> None:
    run = platform.tracking.create_run(admin, kind="train", name="quiet")
    platform.tracking.log_params(run.id, {"lr": 0.1})
    platform.tracking.log_metrics(run.id, [("loss", 1.0, i, 0) for i in range(100)])
    assert [e.action for e in platform.audit.list()] == ["run.create"]


def test_verify_clean_log(platform: Platform, admin: Actor) -> None:
    assert platform.audit.verify().ok and platform.audit.verify().head_hash == GENESIS
    make_history(platform, admin)
    result = platform.audit.verify()
    assert result.ok, result.problems
    assert result.checked == 9
    newest = platform.audit.list(limit=1)[0]
    assert result.head_hash == newest.hash
    assert platform.audit.verify(expect_head=newest.hash).ok


def test_list_filters(platform: Platform, admin: Actor) -> None:
    make_history(platform, admin)
    assert [e.action for e in platform.audit.list(action="key.")] == ["key.revoke", "key.create"]
    assert len(platform.audit.list(target="principal/alice")) == 4
    assert [e.seq for e in platform.audit.list(limit=2, before=5)] == [4, 3]
    assert platform.audit.list(actor="somebody-else") == []


def test_edited_details_are_reported(platform: Platform, admin: Actor) -> None:
    make_history(platform, admin)
    with platform.db.write() as session:
        session.execute(update(AuditEvent).where(AuditEvent.seq == 2).values(details={"role": "admin"}))
    result = platform.audit.verify()
    assert not result.ok
    assert any("event 2" in p and "edited" in p for p in result.problems), result.problems


def test_edited_actor_is_reported(platform: Platform, admin: Actor) -> None:
    make_history(platform, admin)
    with platform.db.write() as session:
        session.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 5"))
    result = platform.audit.verify()
    assert any("event 5" in p and "edited" in p for p in result.problems), result.problems


def test_edit_with_recomputed_hash_breaks_the_next_link(platform: Platform, admin: Actor) -> None:
    make_history(platform, admin)
    with platform.db.write() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.seq == 3)).one()
        event.actor = "mallory"
        event.hash = event_hash(
            event.seq, event.ts, event.actor, event.action, event.target, event.details, event.prev_hash
        )
    result = platform.audit.verify()
    assert any("event 4" in p and "link broken" in p for p in result.problems), result.problems


def test_deleted_middle_event_is_reported(platform: Platform, admin: Actor) -> None:
    make_history(platform, admin)
    with platform.db.write() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.seq == 4))
    result = platform.audit.verify()
    assert any("4..4" in p and "missing" in p for p in result.problems), result.problems
    assert any("event 5" in p and "link broken" in p for p in result.problems), result.problems


def test_deleted_newest_event_is_reported(platform: Platform, admin: Actor) -> None:
    """The chain alone looks fine without its tail; the stored head catches it."""
    make_history(platform, admin)
    with platform.db.write() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.seq == 9))
    result = platform.audit.verify()
    assert result.checked == 8
    assert len(result.problems) == 1
    assert "newest events were deleted" in result.problems[0] and "9" in result.problems[0]


def test_deleted_head_is_reported(platform: Platform, admin: Actor) -> None:
    make_history(platform, admin)
    with platform.db.write() as session:
        session.execute(delete(AuditHead))
    assert any("head is missing" in p for p in platform.audit.verify().problems)


def test_expect_head_mismatch_is_reported(platform: Platform, admin: Actor) -> None:
    make_history(platform, admin)
    kept = platform.audit.verify().head_hash
    # Rewriting tail and head consistently defeats the stored head, but not a head kept elsewhere.
    with platform.db.write() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.seq == 9))
        last = session.scalars(select(AuditEvent).where(AuditEvent.seq == 8)).one()
        session.execute(update(AuditHead).values(seq=8, hash=last.hash))
    assert platform.audit.verify().ok
    result = platform.audit.verify(expect_head=kept)
    assert len(result.problems) == 1 and "differs from the expected" in result.problems[0]
    assert not platform.audit.verify(expect_head="f" * 64).ok


def test_concurrent_appends_keep_seq_contiguous(platform: Platform, admin: Actor) -> None:
    threads_n, per_thread = 4, 10
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads_n)

    def work(t: int) -> None:
        try:
            barrier.wait(timeout=10)
            for i in range(per_thread):
                with platform.db.write() as session:
                    platform.audit.append(session, admin, "test.append", f"thread/{t}/{i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    total = threads_n * per_thread
    events = platform.audit.list(limit=1000)
    assert sorted(e.seq for e in events) == list(range(1, total + 1))
    assert len({e.target for e in events}) == total
    result = platform.audit.verify()
    assert result.ok, result.problems
    assert result.checked == total


def test_failed_mutation_leaves_no_event(platform: Platform, admin: Actor) -> None:
    """The event commits with its mutation: a rolled-back transaction leaves no event behind."""
    with pytest.raises(RuntimeError), platform.db.write() as session:
        platform.audit.append(session, admin, "test.rollback", "x")
        raise RuntimeError("abort")
    assert platform.audit.list() == []
    assert platform.audit.verify().ok
