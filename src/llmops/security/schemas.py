"""Request and response models for principals, keys, sign-in and the audit log."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmops.naming import Name

RoleName = Literal["viewer", "developer", "maintainer", "admin"]
Scope = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]


class Strict(BaseModel):
    """Request bodies: unknown fields are errors, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class PrincipalCreate(Strict):
    name: Name
    kind: Literal["user", "service"] = "user"
    role: RoleName = "viewer"
    email: str | None = Field(default=None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")


class PrincipalUpdate(Strict):
    role: RoleName | None = None
    disabled: bool | None = None


class PrincipalOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    kind: str
    role: str
    email: str | None
    disabled: bool
    created_at: dt.datetime
    created_by: str


class KeyCreate(Strict):
    principal: Name | None = Field(default=None, description="Owner; default: the caller.")
    name: Name = "default"
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)
    scopes: list[Scope] = Field(default_factory=list, max_length=32, description="Deployment scopes the key carries.")


class KeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    principal: str
    prefix: str
    name: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None
    scopes: list[str] = Field(default_factory=list)


class KeyCreated(KeyOut):
    key: str = Field(description="The secret; shown once, never stored.")


class LoginRequest(Strict):
    key: str = Field(min_length=1, max_length=256)


class WhoAmI(BaseModel):
    name: str
    role: str
    principal_id: int | None


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    ts: dt.datetime
    actor: str
    action: str
    target: str
    details: dict[str, Any]
    hash: str


class AuditVerifyOut(BaseModel):
    ok: bool
    checked: int
    head_hash: str
    problems: list[str]
