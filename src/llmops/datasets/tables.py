"""Datasets, their immutable versions, and the lineage edges between versions."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from llmops.db.base import Base, JSONType, UTCDateTime, utcnow

BigId = BigInteger().with_variant(Integer, "sqlite")


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    # Highest version number ever given out: numbers are never reused after a deletion, so "name:3" always
    # meant one content.
    last_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(160))


class DatasetVersion(Base):
    __tablename__ = "dataset_versions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    content_digest: Mapped[str] = mapped_column(String(64))  # BLAKE3 over the canonical rows
    blob_digest: Mapped[str] = mapped_column(String(64), index=True)  # the Parquet file
    rows: Mapped[int] = mapped_column(BigInteger)
    bytes: Mapped[int] = mapped_column(BigInteger)  # size of the Parquet file
    columns: Mapped[list[dict[str, str]]] = mapped_column(JSONType, default=list)  # [{name, type}] in order
    stats: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    recipe: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    source: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)  # what an import read
    run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"), default=None)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    tags: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(160))

    __table_args__ = (
        UniqueConstraint("dataset_id", "version", name="uq_dataset_versions_number"),
        # Content addressing enforced by the database: concurrent imports of the same rows end as one version.
        UniqueConstraint("dataset_id", "content_digest", name="uq_dataset_versions_content"),
    )


class DatasetLineage(Base):
    """A version was made from a parent version. ``parent_ref`` keeps the edge readable after the parent
    is deleted (``parent_version_id`` becomes NULL then)."""

    __tablename__ = "dataset_lineage"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    child_version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id", ondelete="CASCADE"))
    parent_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("dataset_versions.id", ondelete="SET NULL"), default=None, index=True
    )
    parent_ref: Mapped[str] = mapped_column(String(160))

    __table_args__ = (
        UniqueConstraint("child_version_id", "parent_ref", name="uq_dataset_lineage_edge"),
        Index("ix_dataset_lineage_child", "child_version_id"),
    )
