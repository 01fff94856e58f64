"""Feedback on served requests, and its export as the next dataset version.

Clients attach feedback with the request id the gateway returned (``x-request-id``). Scores are stored on
one scale: thumbs up is 1 and down 0; a numeric score is mapped from its ``[score_min, score_max]`` to
``[0, 1]`` (so "4 of 5" and "0.75" compare), and the kind says where it came from.

``export_dataset`` is the first half of the closed loop: it selects stored requests that kept their texts
(filters on deployment, version, time, score, label), takes each one's corrected answer when feedback gave
one and the served answer otherwise, and writes a ``chat`` or ``prompt_completion`` dataset version inside a
tracked run whose parameters record the filters and whose artifact lists every request id, so the version's
lineage leads back to the requests it came from.
"""

from __future__ import annotations

import io
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import func, select

from llmops.datasets.kinds import MESSAGE_TYPE
from llmops.datasets.schemas import DatasetVersionOut
from llmops.datasets.service import DatasetService
from llmops.db.database import Database
from llmops.errors import InvalidInput, NotFound
from llmops.monitoring.schemas import FeedbackIn, FeedbackOut, RequestFilter
from llmops.monitoring.store import RequestStore
from llmops.monitoring.tables import Feedback, RequestText, StoredRequest
from llmops.security.actor import Actor
from llmops.security.audit import AuditLog
from llmops.tracking.service import TrackingService

EXPORT_LIMIT = 100_000


class FeedbackService:
    def __init__(
        self,
        db: Database,
        store: RequestStore,
        audit: AuditLog,
        tracking: TrackingService,
        datasets: DatasetService,
    ) -> None:
        self.db = db
        self.store = store
        self.audit = audit
        self.tracking = tracking
        self.datasets = datasets

    def add(self, actor: Actor, item: FeedbackIn) -> FeedbackOut:
        """Store feedback for a served request (404 when the id is not a stored request)."""
        with self.db.write() as session:
            known = session.scalar(
                select(func.count()).select_from(StoredRequest).where(StoredRequest.request_id == item.request_id)
            )
            if not known:
                raise NotFound(
                    f"no stored request {item.request_id!r}: feedback needs the id from the response's "
                    "x-request-id header (requests are stored a second or so after they finish)"
                )
            if item.thumbs is not None:
                kind, score = "thumbs", 1.0 if item.thumbs == "up" else 0.0
            elif item.score is not None:
                kind, score = "numeric", (item.score - item.score_min) / (item.score_max - item.score_min)
            else:
                kind, score = "none", None
            row = Feedback(
                request_id=item.request_id,
                kind=kind,
                score=score,
                label=item.label,
                comment=item.comment,
                correction=item.correction.replace("\x00", "\ufffd") if item.correction else None,
                created_by=actor.name,
            )
            session.add(row)
            session.flush()
            out = FeedbackOut.model_validate(row, from_attributes=True)
        return out

    def list_feedback(self, request_id: str | None = None, *, limit: int = 100) -> list[FeedbackOut]:
        stmt = select(Feedback).order_by(Feedback.id.desc()).limit(min(limit, 1000))
        if request_id is not None:
            stmt = stmt.where(Feedback.request_id == request_id)
        with self.db.read() as session:
            return [FeedbackOut.model_validate(r, from_attributes=True) for r in session.scalars(stmt)]

    def export_dataset(
        self,
        actor: Actor,
        name: str,
        query: RequestFilter,
        *,
        kind: Literal["chat", "prompt_completion"] = "chat",
        min_score: float | None = None,
        max_score: float | None = None,
        label: str | None = None,
        with_feedback_only: bool = True,
        description: str | None = None,
    ) -> DatasetVersionOut:
        """Selected requests (and their corrections) as a new version of dataset ``name`` (module docstring)."""
        rows = self._select(query, min_score, max_score, label, with_feedback_only)
        if not rows:
            raise InvalidInput(
                "no stored request matches: exporting needs requests whose deployment keeps texts "
                "(--capture-text) and, unless --all, feedback that passes the score and label filters"
            )
        filters = {
            **query.model_dump(mode="json", exclude_none=True, exclude={"limit", "before"}),
            "min_score": min_score,
            "max_score": max_score,
            "label": label,
            "with_feedback_only": with_feedback_only,
            "kind": kind,
        }
        run = self.tracking.create_run(actor, kind="data", name=f"feedback-export-{name}", params=filters)
        with tempfile.TemporaryDirectory(prefix="llmops-feedback-") as tmp:
            table = _table(rows, kind)
            path = Path(tmp) / "feedback.parquet"
            pq.write_table(table, path)
            try:
                listing = json.dumps([r["request_id"] for r in rows]).encode()
                self.tracking.log_artifact(actor, run.id, "requests.json", io.BytesIO(listing))
                version = self.datasets.create_version_from_parquet(
                    actor,
                    name,
                    path,
                    run_id=run.id,
                    kind=kind,
                    description=description or f"{len(rows)} served requests with feedback",
                    tags={"source": "feedback"},
                    report={
                        "source": "requests",
                        "requests": len(rows),
                        "corrected": sum(1 for r in rows if r["corrected"]),
                        "filters": filters,
                    },
                )
                now_ms = int(time.time() * 1000)
                self.tracking.log_metrics(run.id, [("requests", float(len(rows)), 0, now_ms)])
                self.tracking.end_run(actor, run.id, "finished")
            except BaseException as exc:
                self.tracking.end_run(actor, run.id, "failed", reason=f"{type(exc).__name__}: {exc}")
                raise
        return version

    def _select(
        self,
        query: RequestFilter,
        min_score: float | None,
        max_score: float | None,
        label: str | None,
        with_feedback_only: bool,
    ) -> list[dict[str, Any]]:
        with self.db.read() as session:
            stmt = (
                RequestStore._filtered(select(StoredRequest, RequestText), query)
                .join(RequestText, RequestText.request_row == StoredRequest.id)
                .where(StoredRequest.status < 400, StoredRequest.mode != "shadow")
                .order_by(StoredRequest.id)
                .limit(EXPORT_LIMIT)
            )
            found = [(r[0], r[1]) for r in session.execute(stmt)]
            ids = [r.request_id for r, _ in found]
            feedback: dict[str, list[Feedback]] = {}
            for i in range(0, len(ids), 500):
                for f in session.scalars(
                    select(Feedback).where(Feedback.request_id.in_(ids[i : i + 500])).order_by(Feedback.id)
                ):
                    feedback.setdefault(f.request_id, []).append(f)
            out = []
            for row, text in found:
                items = feedback.get(row.request_id, [])
                if with_feedback_only and not items:
                    continue
                scores = [f.score for f in items if f.score is not None]
                score = sum(scores) / len(scores) if scores else None
                if min_score is not None and (score is None or score < min_score):
                    continue
                if max_score is not None and (score is None or score > max_score):
                    continue
                labels = sorted({f.label for f in items if f.label})
                if label is not None and label not in labels:
                    continue
                corrections = [f.correction for f in items if f.correction]
                answer = corrections[-1] if corrections else text.completion
                if answer is None or (text.prompt is None and not text.messages):
                    continue
                out.append(
                    {
                        "request_id": row.request_id,
                        "deployment": row.deployment,
                        "version": row.version,
                        "prompt": text.prompt or "",
                        "messages": text.messages,
                        "completion": answer,
                        "corrected": bool(corrections),
                        "score": score,
                        "labels": ",".join(labels) or None,
                        "served_at": row.started_at.isoformat(),
                    }
                )
        return out


def _table(rows: Sequence[dict[str, Any]], kind: str) -> pa.Table:
    extra = {
        "request_id": pa.array([r["request_id"] for r in rows], pa.string()),
        "deployment": pa.array([r["deployment"] for r in rows], pa.string()),
        "version": pa.array([r["version"] for r in rows], pa.string()),
        "corrected": pa.array([r["corrected"] for r in rows], pa.bool_()),
        "score": pa.array([r["score"] for r in rows], pa.float64()),
        "labels": pa.array([r["labels"] for r in rows], pa.string()),
        "served_at": pa.array([r["served_at"] for r in rows], pa.string()),
    }
    if kind == "chat":
        conversations = []
        for r in rows:
            asked = r["messages"] or [{"role": "user", "content": r["prompt"]}]
            history = [{"role": str(m.get("role") or "user"), "content": str(m.get("content") or "")} for m in asked]
            conversations.append([*history, {"role": "assistant", "content": r["completion"]}])
        return pa.table({"messages": pa.array(conversations, pa.list_(MESSAGE_TYPE)), **extra})
    return pa.table(
        {
            "prompt": pa.array([r["prompt"] for r in rows], pa.string()),
            "completion": pa.array([r["completion"] for r in rows], pa.string()),
            **extra,
        }
    )
