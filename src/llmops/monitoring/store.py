"""The request store: request records in the metadata database, their kept texts, and the cost rollups.

Writes come in batches from the gateway's record sink (:class:`llmops.monitoring.writer.DatabaseWriter`) and
go in one transaction: the request rows (one multi-row insert that returns their ids), their texts, and an
upsert of the day's cost rollups (``INSERT … ON CONFLICT DO UPDATE`` adding to the totals — SQLite and
PostgreSQL both have it), so a batch is either stored with its rollups or not at all. Reads serve the CLI,
REST, the report, drift windows and the budgets.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from sqlalchemy import Select, Table, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from llmops.db.base import utcnow
from llmops.db.database import Database
from llmops.errors import InvalidInput, NotFound
from llmops.monitoring.schemas import CostRow, FeedbackOut, RequestFilter, RequestOut, RequestQuery
from llmops.monitoring.tables import CostRollup, Feedback, RequestText, StoredRequest

CostDimension = Literal["user", "key", "deployment", "version", "day", "currency"]
DIMENSIONS: dict[str, str] = {
    "user": "user",
    "key": "key_prefix",
    "deployment": "deployment",
    "version": "version",
    "day": "day",
    "currency": "currency",
}
ROLLUP_KEY = ("day", "deployment", "version", "user", "key_prefix", "currency")
MAX_PAGE = 1000


@dataclass
class PreparedRequest:
    """One request row ready to insert (``row``: column values) and its text row, if kept."""

    row: dict[str, Any]
    text: dict[str, Any] | None = None


@dataclass
class _Rollup:
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_micros: int = 0
    key: tuple[str, ...] = field(default_factory=tuple)


def day_of(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%d")


class RequestStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- writes ---------------------------------------------------------------------------------------------
    def write(self, batch: Sequence[PreparedRequest]) -> int:
        """Store a batch of requests, their texts and their rollups in one transaction; returns the count."""
        if not batch:
            return 0
        # Core inserts on the tables (the rows are plain column values): the ORM's bulk path would only add
        # per-row bookkeeping (about 15 % of the time of storing a batch).
        requests, texts_table = cast(Table, StoredRequest.__table__), cast(Table, RequestText.__table__)
        with self.db.write() as session:
            ids = list(
                session.scalars(
                    insert(requests).returning(requests.c.id, sort_by_parameter_order=True),
                    [p.row for p in batch],
                )
            )
            texts = [{**p.text, "request_row": i} for p, i in zip(batch, ids, strict=True) if p.text is not None]
            if texts:
                session.execute(insert(texts_table), texts)
            self._roll_up(session, [p.row for p in batch])
        return len(batch)

    def _roll_up(self, session: Session, rows: Sequence[dict[str, Any]]) -> None:
        totals: dict[tuple[str, ...], _Rollup] = {}
        for row in rows:
            if row["mode"] == "shadow":
                continue  # never charged to anyone
            key = (
                day_of(row["started_at"]),
                row["deployment"],
                row["version"] or "",
                row["user"] or "",
                row["key_prefix"] or "",
                row["currency"],
            )
            t = totals.setdefault(key, _Rollup(key=key))
            t.requests += 1
            t.errors += 1 if row["status"] >= 400 else 0
            t.prompt_tokens += row["prompt_tokens"]
            t.completion_tokens += row["completion_tokens"]
            t.cost_micros += row["cost_micros"]
        if not totals:
            return
        values = [
            {
                **dict(zip(ROLLUP_KEY, t.key, strict=True)),
                "requests": t.requests,
                "errors": t.errors,
                "prompt_tokens": t.prompt_tokens,
                "completion_tokens": t.completion_tokens,
                "cost_micros": t.cost_micros,
            }
            for t in totals.values()
        ]
        dialect = session.get_bind().dialect.name
        stmt: Any = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(CostRollup)
        sums = ("requests", "errors", "prompt_tokens", "completion_tokens", "cost_micros")
        stmt = stmt.on_conflict_do_update(
            index_elements=list(ROLLUP_KEY),
            set_={c: getattr(CostRollup, c) + getattr(stmt.excluded, c) for c in sums},
        )
        # One statement per row keeps the upsert portable (executemany of ON CONFLICT works on both, but the
        # rows of one batch are few: one per day × deployment × version × user × key).
        for value in values:
            session.execute(stmt, value)

    def purge_texts(self, now: dt.datetime | None = None) -> int:
        """Delete kept texts past their retention; returns how many."""
        with self.db.write() as session:
            result = session.execute(delete(RequestText).where(RequestText.expires_at <= (now or utcnow())))
            return int(getattr(result, "rowcount", 0) or 0)

    # --- reads ----------------------------------------------------------------------------------------------
    def list_requests(self, query: RequestQuery) -> list[RequestOut]:
        stmt = self._filtered(select(StoredRequest), query).order_by(StoredRequest.id.desc())
        if query.before is not None:
            stmt = stmt.where(StoredRequest.id < query.before)
        stmt = stmt.limit(min(query.limit, MAX_PAGE))
        with self.db.read() as session:
            return [RequestOut.from_row(r) for r in session.scalars(stmt)]

    def count(self, query: RequestQuery) -> int:
        stmt = self._filtered(select(func.count()).select_from(StoredRequest), query)
        with self.db.read() as session:
            return int(session.scalar(stmt) or 0)

    def get(self, request_id: str) -> list[RequestOut]:
        """Every stored row of a request id (the served one first, then shadow copies), texts and feedback."""
        with self.db.read() as session:
            rows = list(
                session.scalars(
                    select(StoredRequest).where(StoredRequest.request_id == request_id).order_by(StoredRequest.id)
                )
            )
            if not rows:
                raise NotFound(
                    f"no stored request {request_id!r}; requests are stored a second or so after they finish "
                    "(see `llmops requests list`)"
                )
            texts = {
                t.request_row: t
                for t in session.scalars(select(RequestText).where(RequestText.request_row.in_([r.id for r in rows])))
            }
            feedback = list(
                session.scalars(select(Feedback).where(Feedback.request_id == request_id).order_by(Feedback.id))
            )
            out = [RequestOut.from_row(r, texts.get(r.id)) for r in rows]
        out.sort(key=lambda r: r.mode == "shadow")
        if out:
            out[0].feedback = [
                FeedbackOut.model_validate(f, from_attributes=True).model_dump(mode="json") for f in feedback
            ]
        return out

    def iter_texts(self, query: RequestQuery, *, limit: int) -> Iterator[tuple[RequestOut, RequestText]]:
        """Stored requests that kept their texts (newest first), for drift windows and feedback export."""
        stmt = (
            self._filtered(select(StoredRequest, RequestText), query)
            .join(RequestText, RequestText.request_row == StoredRequest.id)
            .order_by(StoredRequest.id.desc())
            .limit(limit)
        )
        with self.db.read() as session:
            for row, text in session.execute(stmt):
                session.expunge(text)
                yield RequestOut.from_row(row), text

    def series(self, query: RequestQuery, columns: Sequence[str], *, limit: int = 200_000) -> list[tuple[Any, ...]]:
        """Raw column values of the matching requests (oldest first), for percentiles and charts."""
        cols = [getattr(StoredRequest, c) for c in columns]
        stmt = self._filtered(select(*cols), query).order_by(StoredRequest.started_at).limit(limit)
        with self.db.read() as session:
            return [tuple(r) for r in session.execute(stmt)]

    def costs(
        self,
        by: Sequence[str],
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        deployment: str | None = None,
    ) -> list[CostRow]:
        """Totals grouped by ``by`` (user, key, deployment, version, day, currency) from the rollups."""
        unknown = [b for b in by if b not in DIMENSIONS]
        if unknown:
            raise InvalidInput(f"cannot group costs by {', '.join(unknown)}; choose from {', '.join(DIMENSIONS)}")
        groups = [getattr(CostRollup, DIMENSIONS[b]) for b in by]
        # Currency is always a group: amounts in different currencies never add up.
        if "currency" not in by:
            groups.append(CostRollup.currency)
        stmt: Select[Any] = select(
            *groups,
            func.sum(CostRollup.requests),
            func.sum(CostRollup.errors),
            func.sum(CostRollup.prompt_tokens),
            func.sum(CostRollup.completion_tokens),
            func.sum(CostRollup.cost_micros),
        ).group_by(*groups)
        if since is not None:
            stmt = stmt.where(CostRollup.day >= day_of(since))
        if until is not None:
            stmt = stmt.where(CostRollup.day <= day_of(until))
        if deployment is not None:
            stmt = stmt.where(CostRollup.deployment == deployment)
        with self.db.read() as session:
            rows = session.execute(stmt).all()
        names = [*by, *([] if "currency" in by else ["currency"])]
        out = []
        for r in rows:
            values = dict(zip(names, r[: len(names)], strict=True))
            requests, errors, p, c, micros = (int(v or 0) for v in r[len(names) :])
            out.append(
                CostRow(
                    group={k: v for k, v in values.items() if k != "currency"},
                    currency=str(values["currency"]),
                    requests=requests,
                    errors=errors,
                    prompt_tokens=p,
                    completion_tokens=c,
                    cost=micros / 1_000_000,
                )
            )
        out.sort(key=lambda row: (-row.cost, -row.requests, sorted(row.group.items())))
        return out

    def spent(self, deployment: str, per: str, subject: str | None, since_day: str, currency: str) -> float:
        """Cost charged since ``since_day`` (inclusive) to a key, a user or the whole deployment (budgets)."""
        stmt = select(func.sum(CostRollup.cost_micros)).where(
            CostRollup.deployment == deployment, CostRollup.day >= since_day, CostRollup.currency == currency
        )
        if per == "key":
            stmt = stmt.where(CostRollup.key_prefix == (subject or ""))
        elif per == "user":
            stmt = stmt.where(CostRollup.user == (subject or ""))
        with self.db.read() as session:
            return int(session.scalar(stmt) or 0) / 1_000_000

    @staticmethod
    def _filtered(stmt: Any, q: RequestFilter) -> Any:
        if q.deployment is not None:
            stmt = stmt.where(StoredRequest.deployment == q.deployment)
        if q.version is not None:
            stmt = stmt.where(StoredRequest.version == q.version)
        if q.user is not None:
            stmt = stmt.where(StoredRequest.user == q.user)
        if q.key is not None:
            stmt = stmt.where(StoredRequest.key_prefix == q.key)
        if q.status is not None:
            stmt = stmt.where(StoredRequest.status == q.status)
        if q.errors_only:
            stmt = stmt.where(StoredRequest.status >= 400)
        if q.mode is not None:
            stmt = stmt.where(StoredRequest.mode == q.mode)
        elif not q.include_shadow:
            stmt = stmt.where(StoredRequest.mode != "shadow")
        if q.endpoint is not None:
            stmt = stmt.where(StoredRequest.endpoint == q.endpoint)
        if q.since is not None:
            stmt = stmt.where(StoredRequest.started_at >= q.since)
        if q.until is not None:
            stmt = stmt.where(StoredRequest.started_at < q.until)
        if q.signal is not None:
            stmt = stmt.where(getattr(StoredRequest, q.signal).is_(True))
        return stmt
