"""Recording and dropping blob references inside a caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from llmops.blobs.base import BlobInfo
from llmops.blobs.tables import BlobRef


def add_ref(session: Session, blob: BlobInfo, owner_kind: str, owner_id: str) -> None:
    """Record that ``owner_kind/owner_id`` references ``blob`` (once; an existing reference is kept)."""
    add_refs(session, [blob], owner_kind, [owner_id])


def add_refs(session: Session, blobs: Sequence[BlobInfo], owner_kind: str, owner_ids: Sequence[str]) -> None:
    """``add_ref`` for many (blob, owner id) pairs of one owner kind: one query for those already there."""
    wanted = {(b.digest, owner): b for b, owner in zip(blobs, owner_ids, strict=True)}
    existing: set[tuple[str, str]] = set()
    digests = sorted({digest for digest, _ in wanted})
    for i in range(0, len(digests), 500):
        rows = session.execute(
            select(BlobRef.digest, BlobRef.owner_id).where(
                BlobRef.owner_kind == owner_kind, BlobRef.digest.in_(digests[i : i + 500])
            )
        )
        existing.update((d, o) for d, o in rows)
    session.add_all(
        BlobRef(digest=digest, owner_kind=owner_kind, owner_id=owner, size=blob.size)
        for (digest, owner), blob in wanted.items()
        if (digest, owner) not in existing
    )


def drop_refs(session: Session, owner_kind: str, owner_id: str) -> None:
    session.execute(delete(BlobRef).where(BlobRef.owner_kind == owner_kind, BlobRef.owner_id == owner_id))


def referenced(session: Session) -> dict[str, list[str]]:
    """digest -> owners (``kind/id``) of every referenced blob."""
    out: dict[str, list[str]] = {}
    for digest, kind, owner in session.execute(select(BlobRef.digest, BlobRef.owner_kind, BlobRef.owner_id)):
        out.setdefault(digest, []).append(f"{kind}/{owner}")
    return out
