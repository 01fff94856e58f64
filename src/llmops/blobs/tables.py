"""Blob references: which metadata rows point at which blobs.

Every domain that stores a blob records a reference in the same transaction as its own rows. ``gc``
removes what no reference names (after a grace period); ``fsck`` checks that every named blob exists
and matches its digest. One table keeps this a single query, whatever domains are added later.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from llmops.db.base import Base, UTCDateTime, utcnow


class BlobRef(Base):
    __tablename__ = "blob_refs"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(512), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_blob_refs_owner", "owner_kind", "owner_id"),)
