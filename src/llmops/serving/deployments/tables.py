"""Deployments and their revisions: declarative state the gateway reconciles its engines against."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from llmops.db.base import Base, JSONType, UTCDateTime, utcnow

BigId = BigInteger().with_variant(Integer, "sqlite")


class Deployment(Base):
    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    revision: Mapped[int] = mapped_column(Integer)  # the revision in force
    last_revision: Mapped[int] = mapped_column(Integer)  # numbering never reuses a number
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(160))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeploymentRevision(Base):
    """One immutable spec of a deployment (routes, policies); ``Deployment.revision`` points at one."""

    __tablename__ = "deployment_revisions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"), index=True)
    revision: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    change: Mapped[str] = mapped_column(String(32))  # deploy | canary | shadow | promote | rollback | update
    previous: Mapped[int | None] = mapped_column(Integer, default=None)  # the revision in force before it
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(160))

    __table_args__ = (UniqueConstraint("deployment_id", "revision", name="uq_deployment_revisions_number"),)
