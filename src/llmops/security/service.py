"""Principals and API keys: create, list, change, revoke, authenticate. Every mutation is audited."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import re
import threading
import time
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeout
from sqlalchemy.orm import Session

from llmops.db.base import utcnow
from llmops.db.database import Database
from llmops.errors import AlreadyExists, InvalidInput, NotFound, PermissionDenied, Unauthenticated
from llmops.naming import check_name
from llmops.security import keys
from llmops.security.actor import Actor
from llmops.security.audit import AuditLog
from llmops.security.roles import Role
from llmops.security.schemas import KeyCreated, KeyOut, PrincipalOut
from llmops.security.tables import ApiKey, Principal

SCOPE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)  # avoid a write on every request
AUTH_STALE_SECONDS = 600.0  # how old a verification may be when the database is unreachable
AUTH_CACHE_SIZE = 10_000
log = logging.getLogger("llmops.security")


class SecurityService:
    """Principals, API keys and authentication.

    ``authenticate`` keeps verified keys for ``auth_cache_seconds`` (by the token's SHA-256, never the token),
    so the gateway does not ask the database on every request; revoking a key or changing a principal here
    clears the cache at once, other replicas see it within the cache time. When the database cannot be
    reached, a key verified within ``AUTH_STALE_SECONDS`` is still accepted (logged), so a short database
    outage does not stop serving.
    """

    def __init__(self, db: Database, audit: AuditLog, *, auth_cache_seconds: float = 0.0) -> None:
        self.db = db
        self.audit = audit
        self.auth_cache_seconds = auth_cache_seconds
        # sha256 of the token -> (verified at, trusted until, key expiry; monotonic seconds) and the actor
        self._verified: dict[str, tuple[float, float, float, Actor]] = {}
        self._lock = threading.Lock()

    # principals -----------------------------------------------------------------------------------
    def create_principal(
        self, actor: Actor, name: str, *, kind: str = "user", role: str = "viewer", email: str | None = None
    ) -> PrincipalOut:
        check_name(name)
        Role.parse(role)
        if kind not in ("user", "service"):
            raise InvalidInput(f"kind: {kind!r} is not 'user' or 'service'", details={"field": "kind"})
        try:
            with self.db.write() as session:
                if session.scalar(select(Principal.id).where(Principal.name == name)) is not None:
                    raise AlreadyExists(f"principal {name!r} already exists")
                principal = Principal(name=name, kind=kind, role=role, email=email, created_by=actor.label)
                session.add(principal)
                session.flush()
                self.audit.append(session, actor, "principal.create", f"principal/{name}", {"role": role, "kind": kind})
                return PrincipalOut.model_validate(principal)
        except IntegrityError:
            raise AlreadyExists(f"principal {name!r} already exists") from None

    def list_principals(self) -> list[PrincipalOut]:
        with self.db.read() as session:
            rows = session.scalars(select(Principal).order_by(Principal.name))
            return [PrincipalOut.model_validate(p) for p in rows]

    def get_principal(self, name: str) -> PrincipalOut:
        with self.db.read() as session:
            return PrincipalOut.model_validate(self._principal(session, name))

    def update_principal(
        self, actor: Actor, name: str, *, role: str | None = None, disabled: bool | None = None
    ) -> PrincipalOut:
        changes: dict[str, object] = {}
        with self.db.write() as session:
            principal = self._principal(session, name)
            if role is not None and role != principal.role:
                Role.parse(role)
                changes["role"] = {"from": principal.role, "to": role}
                principal.role = role
            if disabled is not None and disabled != principal.disabled:
                changes["disabled"] = disabled
                principal.disabled = disabled
            if changes:
                self.audit.append(session, actor, "principal.update", f"principal/{name}", changes)
            out = PrincipalOut.model_validate(principal)
        self.forget_keys()
        return out

    # keys -----------------------------------------------------------------------------------------
    def create_key(
        self,
        actor: Actor,
        *,
        principal: str | None = None,
        name: str = "default",
        expires_in: dt.timedelta | None = None,
        scopes: Sequence[str] = (),
    ) -> KeyCreated:
        """Create a key; ``scopes`` restrict it to deployments that list one of them (see DeploymentSpec.scopes)."""
        check_name(name, "key name")
        scope_list = sorted(set(scopes))
        bad = [s for s in scope_list if not SCOPE_PATTERN.fullmatch(s)]
        if bad:
            raise InvalidInput(
                f"scopes: {bad[0]!r} is not a scope (letters, digits, . _ : -; at most 64 characters)",
                details={"field": "scopes"},
            )
        with self.db.write() as session:
            owner = self._key_owner(session, actor, principal)
            material = keys.generate()
            expires_at = utcnow() + expires_in if expires_in else None
            row = ApiKey(
                principal_id=owner.id,
                prefix=material.prefix,
                hashed=material.hashed,
                name=name,
                expires_at=expires_at,
                scopes=scope_list,
            )
            session.add(row)
            session.flush()
            self.audit.append(
                session,
                actor,
                "key.create",
                f"principal/{owner.name}/key/{material.prefix}",
                {"name": name, "expires_at": expires_at.isoformat() if expires_at else None, "scopes": scope_list},
            )
            return KeyCreated(**_key_out(row, owner.name).model_dump(), key=material.token)

    def list_keys(self, actor: Actor, principal: str | None = None) -> list[KeyOut]:
        with self.db.read() as session:
            query = select(ApiKey, Principal.name).join(Principal).order_by(ApiKey.id)
            if principal is not None or actor.role < Role.admin:
                owner = self._key_owner(session, actor, principal)
                query = query.where(ApiKey.principal_id == owner.id)
            return [_key_out(k, owner_name) for k, owner_name in session.execute(query)]

    def revoke_key(self, actor: Actor, prefix: str) -> KeyOut:
        with self.db.write() as session:
            row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
            if row is None:
                raise NotFound(f"no API key with prefix {prefix!r}")
            owner = session.get(Principal, row.principal_id)
            assert owner is not None
            if actor.principal_id != owner.id and actor.role < Role.admin:
                raise PermissionDenied("only an admin may revoke another principal's key")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                self.audit.append(session, actor, "key.revoke", f"principal/{owner.name}/key/{prefix}")
            out = _key_out(row, owner.name)
        self.forget_keys()
        return out

    def authenticate(self, token: str) -> Actor:
        if self.auth_cache_seconds <= 0:
            return self._authenticate(token)[0]
        digest = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            hit = self._verified.get(digest)
        if hit is not None and now < hit[1]:
            return hit[3]
        try:
            actor, expires_at = self._authenticate(token)
        except (DBAPIError, SQLAlchemyTimeout) as exc:
            if hit is not None and now - hit[0] < AUTH_STALE_SECONDS and now < hit[2]:
                log.warning(
                    "database unavailable (%s); accepting key %s verified %.0f s ago",
                    type(exc).__name__,
                    hit[3].key_prefix,
                    now - hit[0],
                )
                return hit[3]
            raise
        expiry = math.inf if expires_at is None else now + (expires_at - utcnow()).total_seconds()
        with self._lock:
            if len(self._verified) >= AUTH_CACHE_SIZE:
                self._verified.clear()
            self._verified[digest] = (now, min(now + self.auth_cache_seconds, expiry), expiry, actor)
        return actor

    def forget_keys(self) -> None:
        """Drop every cached verification (after a revocation or a principal change)."""
        with self._lock:
            self._verified.clear()

    def _authenticate(self, token: str) -> tuple[Actor, dt.datetime | None]:
        prefix = keys.parse_prefix(token)
        if prefix is None:
            raise Unauthenticated("malformed API key: expected llmops_<prefix>_<secret>")
        now = utcnow()
        with self.db.read() as session:
            found = session.execute(
                select(ApiKey, Principal).join(Principal).where(ApiKey.prefix == prefix)
            ).one_or_none()
        if found is None or not keys.matches(token, found[0].hashed):
            raise Unauthenticated("invalid API key")
        key, principal = found
        if key.revoked_at is not None:
            raise Unauthenticated(f"API key {prefix} was revoked")
        if key.expires_at is not None and key.expires_at <= now:
            raise Unauthenticated(f"API key {prefix} expired at {key.expires_at.isoformat()}")
        if principal.disabled:
            raise Unauthenticated(f"principal {principal.name!r} is disabled")
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
            with self.db.write() as session:
                row = session.get(ApiKey, key.id)
                if row is not None:
                    row.last_used_at = now
        actor = Actor(
            name=principal.name,
            role=Role[principal.role],
            principal_id=principal.id,
            key_id=key.id,
            scopes=tuple(key.scopes or ()),
            key_prefix=key.prefix,
        )
        return actor, key.expires_at

    # helpers --------------------------------------------------------------------------------------
    def _principal(self, session: Session, name: str) -> Principal:
        principal = session.scalar(select(Principal).where(Principal.name == name))
        if principal is None:
            raise NotFound(f"principal {name!r} does not exist; create it with `llmops users create {name}`")
        return principal

    def _key_owner(self, session: Session, actor: Actor, principal: str | None) -> Principal:
        if principal is None:
            if actor.principal_id is None:
                raise InvalidInput("principal: required when acting as the local administrator")
            owner = session.get(Principal, actor.principal_id)
            if owner is None:
                raise NotFound("the calling principal no longer exists")
            return owner
        owner = self._principal(session, principal)
        if owner.id != actor.principal_id and actor.role < Role.admin:
            raise PermissionDenied("only an admin may manage another principal's keys")
        return owner


def _key_out(row: ApiKey, principal: str) -> KeyOut:
    return KeyOut(
        id=row.id,
        principal=principal,
        prefix=row.prefix,
        name=row.name,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
        scopes=list(row.scopes or []),
    )
