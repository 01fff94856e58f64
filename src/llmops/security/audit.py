"""The append-only, hash-chained audit log.

Each event's hash covers its own fields and the previous event's hash, so editing or deleting an event
breaks the chain; the chain's head is stored alongside, so deleting the newest events is caught too.
Appends happen inside the caller's write transaction (the mutation and its audit event commit
together) and are serialized by a lock. Someone who can rewrite the whole table and the head can forge
a consistent log: ``verify`` prints the head hash so it can be kept elsewhere and compared later
(``--expect-head``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from llmops.db.base import utcnow
from llmops.db.database import Database
from llmops.security.actor import Actor
from llmops.security.schemas import AuditEventOut
from llmops.security.tables import AuditEvent, AuditHead

GENESIS = "0" * 64


def event_hash(
    seq: int, ts: dt.datetime, actor: str, action: str, target: str, details: dict[str, Any], prev_hash: str
) -> str:
    body = json.dumps(
        [seq, ts.astimezone(dt.UTC).isoformat(timespec="microseconds"), actor, action, target, details, prev_hash],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass
class AuditVerification:
    checked: int = 0
    head_hash: str = GENESIS
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class AuditLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    def append(
        self, session: Session, actor: Actor | str, action: str, target: str, details: dict[str, Any] | None = None
    ) -> AuditEvent:
        label = actor.label if isinstance(actor, Actor) else actor
        details = json.loads(json.dumps(details or {}, default=str))  # what the database will hand back
        self.db.lock(session, "audit")
        head = session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one_or_none()
        seq = head.seq + 1 if head else 1
        prev = head.hash if head else GENESIS
        ts = utcnow()
        digest = event_hash(seq, ts, label, action, target, details, prev)
        event = AuditEvent(
            seq=seq, ts=ts, actor=label, action=action, target=target, details=details, prev_hash=prev, hash=digest
        )
        session.add(event)
        if head is None:
            session.add(AuditHead(id=1, seq=seq, hash=digest))
        else:
            head.seq, head.hash = seq, digest
        session.flush()
        return event

    def list(
        self,
        *,
        limit: int = 100,
        before: int | None = None,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
    ) -> list[AuditEventOut]:
        query = select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(limit)
        if before is not None:
            query = query.where(AuditEvent.seq < before)
        if actor:
            query = query.where(AuditEvent.actor == actor)
        if action:
            query = query.where(AuditEvent.action.startswith(action))
        if target:
            query = query.where(AuditEvent.target.startswith(target))
        with self.db.read() as session:
            return [AuditEventOut.model_validate(e) for e in session.scalars(query)]

    def verify(self, *, expect_head: str | None = None) -> AuditVerification:
        result = AuditVerification()
        prev = GENESIS
        expected_seq = 1
        with self.db.read() as session:
            head_row = session.get(AuditHead, 1)
            head = (head_row.seq, head_row.hash) if head_row else None
            events = session.scalars(select(AuditEvent).order_by(AuditEvent.seq).execution_options(yield_per=1000))
            for event in events:
                if event.seq != expected_seq:
                    result.problems.append(f"events {expected_seq}..{event.seq - 1} are missing (deleted)")
                if event.prev_hash != prev:
                    result.problems.append(f"event {event.seq}: previous-hash link broken")
                recomputed = event_hash(
                    event.seq, event.ts, event.actor, event.action, event.target, event.details, event.prev_hash
                )
                if recomputed != event.hash:
                    result.problems.append(f"event {event.seq} ({event.action} {event.target}) was edited")
                prev = event.hash
                expected_seq = event.seq + 1
                result.checked += 1
        result.head_hash = prev
        if head is None and result.checked:
            result.problems.append("audit head is missing")
        elif head is not None and head != (expected_seq - 1, prev):
            result.problems.append(f"newest events were deleted: head says {head[0]}, table ends at {expected_seq - 1}")
        if expect_head and expect_head != prev:
            result.problems.append(f"head hash {prev} differs from the expected {expect_head}")
        return result
