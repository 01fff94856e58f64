"""Recording and dropping blob references inside a caller's transaction."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from llmops.blobs.base import BlobInfo
from llmops.blobs.tables import BlobRef


def add_ref(session: Session, blob: BlobInfo, owner_kind: str, owner_id: str) -> None:
    exists = session.get(BlobRef, (blob.digest, owner_kind, owner_id))
    if exists is None:
        session.add(BlobRef(digest=blob.digest, owner_kind=owner_kind, owner_id=owner_id, size=blob.size))


def drop_refs(session: Session, owner_kind: str, owner_id: str) -> None:
    session.execute(delete(BlobRef).where(BlobRef.owner_kind == owner_kind, BlobRef.owner_id == owner_id))


def referenced(session: Session) -> dict[str, list[str]]:
    """digest -> owners (``kind/id``) of every referenced blob."""
    out: dict[str, list[str]] = {}
    for digest, kind, owner in session.execute(select(BlobRef.digest, BlobRef.owner_kind, BlobRef.owner_id)):
        out.setdefault(digest, []).append(f"{kind}/{owner}")
    return out
