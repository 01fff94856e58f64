"""Registered models, versions, stored tensors, aliases and their history."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from llmops.db.base import Base, JSONType, UTCDateTime, utcnow

BigId = BigInteger().with_variant(Integer, "sqlite")


class RegisteredModel(Base):
    __tablename__ = "models"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    policy: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)  # promotion policy
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(160))


class ModelVersion(Base):
    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(32))
    architecture: Mapped[str | None] = mapped_column(String(128), default=None)
    manifest_digest: Mapped[str] = mapped_column(String(64), index=True)
    logical_bytes: Mapped[int] = mapped_column(BigInteger)
    physical_bytes: Mapped[int] = mapped_column(BigInteger)  # bytes this version added to the store
    parameters: Mapped[int] = mapped_column(BigInteger, default=0)
    dtype: Mapped[str | None] = mapped_column(String(16), default=None)
    context_length: Mapped[int | None] = mapped_column(Integer, default=None)
    base_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="RESTRICT"), default=None, index=True
    )
    derivation: Mapped[str] = mapped_column(String(16), default="import")
    run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"), default=None)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    tags: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    conversion: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    signature: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)  # {signature, public_key, by, at}
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(160))

    __table_args__ = (UniqueConstraint("model_id", "version", name="uq_model_versions_number"),)


class TensorObject(Base):
    """One distinct tensor content in the whole registry, and how its bytes are stored.

    ``encoding``: ``raw`` (the blob is the tensor bytes), ``zstd``, or ``xor-zstd`` (zstd of the XOR with
    the tensor ``base_digest``, the BitX idea from ZipLLM).
    """

    __tablename__ = "tensor_objects"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)  # BLAKE3 of the raw tensor bytes
    size: Mapped[int] = mapped_column(BigInteger)
    encoding: Mapped[str] = mapped_column(String(16))
    blob_digest: Mapped[str] = mapped_column(String(64))
    stored_size: Mapped[int] = mapped_column(BigInteger)
    base_digest: Mapped[str | None] = mapped_column(
        ForeignKey("tensor_objects.digest", ondelete="RESTRICT"), default=None, index=True
    )
    depth: Mapped[int] = mapped_column(Integer, default=0)  # length of the delta chain below it
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class VersionTensor(Base):
    """Which versions need which tensor contents (deletion and dedup accounting)."""

    __tablename__ = "version_tensors"

    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True)
    tensor_digest: Mapped[str] = mapped_column(ForeignKey("tensor_objects.digest"), primary_key=True)

    __table_args__ = (Index("ix_version_tensors_tensor", "tensor_digest"),)


class ModelAlias(Base):
    __tablename__ = "model_aliases"

    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="RESTRICT"))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(160))


class AliasEvent(Base):
    __tablename__ = "alias_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    alias: Mapped[str] = mapped_column(String(64))
    from_version: Mapped[int | None] = mapped_column(Integer, default=None)
    to_version: Mapped[int | None] = mapped_column(Integer, default=None)
    actor: Mapped[str] = mapped_column(String(160))
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    ts: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_alias_events_model_alias", "model_id", "alias"),)
