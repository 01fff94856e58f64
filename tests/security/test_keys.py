"""API keys: shown once, stored only as a SHA-256 hash, found by prefix; expiry, revocation, disabled
principals and malformed keys all fail authentication; only admins manage other principals' keys."""

from __future__ import annotations

import datetime as dt
import hashlib
import time

import pytest
from sqlalchemy import text, update

from llmops.db.base import utcnow
from llmops.errors import InvalidInput, NotFound, PermissionDenied, Unauthenticated
from llmops.platform import Platform
from llmops.security.actor import Actor
from llmops.security.keys import parse_prefix
from llmops.security.roles import Role
from llmops.security.tables import ApiKey


def login_as(platform: Platform, admin: Actor, name: str, role: str = "viewer") -> tuple[Actor, str]:
    """Create a principal with a key; return the authenticated actor and the key."""
    platform.security.create_principal(admin, name, role=role)
    token = platform.security.create_key(admin, principal=name).key
    return platform.security.authenticate(token), token


def test_key_is_shown_once_and_stored_only_as_its_hash(platform: Platform, admin: Actor) -> None:
    platform.security.create_principal(admin, "alice", role="developer")
    created = platform.security.create_key(admin, principal="alice", name="laptop")
    token = created.key
    assert token.startswith(f"llmops_{created.prefix}_") and len(token) > 40
    assert parse_prefix(token) == created.prefix
    with platform.db.read() as session:
        rows = [dict(r._mapping) for r in session.execute(text("SELECT * FROM api_keys"))]
    assert len(rows) == 1
    row = rows[0]
    assert row["hashed"] == hashlib.sha256(token.encode()).hexdigest()
    assert row["prefix"] == created.prefix
    secret = token.removeprefix(f"llmops_{created.prefix}_")  # the secret itself may contain "_"
    for value in row.values():
        assert token not in str(value) and secret not in str(value)
    listed = platform.security.list_keys(admin, "alice")
    assert [k.prefix for k in listed] == [created.prefix]
    assert not hasattr(listed[0], "key")


def test_authenticate_returns_the_principal(platform: Platform, admin: Actor) -> None:
    actor, _ = login_as(platform, admin, "alice", "maintainer")
    principal = platform.security.get_principal("alice")
    assert (actor.name, actor.role, actor.principal_id, actor.via) == ("alice", Role.maintainer, principal.id, "api")
    assert actor.key_id is not None
    [key] = platform.security.list_keys(admin, "alice")
    assert key.last_used_at is not None


def test_two_keys_have_distinct_prefixes_and_secrets(platform: Platform, admin: Actor) -> None:
    platform.security.create_principal(admin, "alice")
    a = platform.security.create_key(admin, principal="alice", name="a")
    b = platform.security.create_key(admin, principal="alice", name="b")
    assert a.prefix != b.prefix and a.key != b.key
    assert platform.security.authenticate(a.key).name == platform.security.authenticate(b.key).name == "alice"


MALFORMED = [
    "",
    "garbage",
    "Bearer x",
    "llmops_",
    "llmops_short_secret",
    "llmops_abcdefgh_",
    "llmops_abcdefgh",
    "sk-abc",
]


def test_malformed_key_is_unauthenticated(platform: Platform) -> None:
    for token in MALFORMED:
        with pytest.raises(Unauthenticated, match="malformed"):
            platform.security.authenticate(token)


def test_wrong_secret_or_unknown_prefix_is_unauthenticated(platform: Platform, admin: Actor) -> None:
    _, token = login_as(platform, admin, "alice")
    prefix = parse_prefix(token)
    with pytest.raises(Unauthenticated, match="invalid"):
        platform.security.authenticate(f"llmops_{prefix}_{'x' * 43}")
    with pytest.raises(Unauthenticated, match="invalid"):
        platform.security.authenticate(token[:-1] + ("A" if token[-1] != "A" else "B"))
    with pytest.raises(Unauthenticated, match="invalid"):
        platform.security.authenticate("llmops_00000000_" + token.rsplit("_", 1)[1])


def test_expired_key_is_unauthenticated(platform: Platform, admin: Actor) -> None:
    platform.security.create_principal(admin, "alice")
    past = platform.security.create_key(admin, principal="alice", name="old", expires_in=dt.timedelta(seconds=-1))
    future = platform.security.create_key(admin, principal="alice", name="new", expires_in=dt.timedelta(days=1))
    assert past.expires_at is not None and past.expires_at < utcnow()
    with pytest.raises(Unauthenticated, match="expired"):
        platform.security.authenticate(past.key)
    assert platform.security.authenticate(future.key).name == "alice"
    # A key that was valid stops working once its expiry passes.
    with platform.db.write() as session:
        session.execute(
            update(ApiKey).where(ApiKey.prefix == future.prefix).values(expires_at=utcnow() - dt.timedelta(seconds=1))
        )
    platform.security.forget_keys()  # an edit behind the service's back is seen once the cache lets go
    with pytest.raises(Unauthenticated, match="expired"):
        platform.security.authenticate(future.key)


def test_verified_keys_are_cached_until_revoked_or_expired(platform: Platform, admin: Actor) -> None:
    security = platform.security
    assert security.auth_cache_seconds == 30.0  # LLMOPS_AUTH_CACHE_SECONDS
    security.create_principal(admin, "alice")
    key = security.create_key(admin, principal="alice", name="k")
    short = security.create_key(admin, principal="alice", name="short", expires_in=dt.timedelta(seconds=1))
    assert security.authenticate(key.key).name == "alice"
    assert security.authenticate(short.key).name == "alice"
    # a change made outside the service is not seen while the verification is cached ...
    with platform.db.write() as session:
        session.execute(update(ApiKey).where(ApiKey.prefix == key.prefix).values(revoked_at=utcnow()))
    assert security.authenticate(key.key).name == "alice"
    # ... but a revocation through the service is, at once, and the cache never outlives the key's expiry
    security.revoke_key(admin, key.prefix)
    with pytest.raises(Unauthenticated, match="revoked"):
        security.authenticate(key.key)
    time.sleep(1.1)
    with pytest.raises(Unauthenticated, match="expired"):
        security.authenticate(short.key)
    with pytest.raises(Unauthenticated, match="invalid"):
        security.authenticate(key.key[:-1] + ("A" if key.key[-1] != "A" else "B"))


def test_revoked_key_is_unauthenticated(platform: Platform, admin: Actor) -> None:
    _, token = login_as(platform, admin, "alice")
    prefix = parse_prefix(token)
    assert prefix is not None
    revoked = platform.security.revoke_key(admin, prefix)
    assert revoked.revoked_at is not None
    with pytest.raises(Unauthenticated, match="revoked"):
        platform.security.authenticate(token)
    again = platform.security.revoke_key(admin, prefix)  # idempotent, keeps the first time
    assert again.revoked_at == revoked.revoked_at
    assert len(platform.audit.list(action="key.revoke")) == 1
    with pytest.raises(NotFound):
        platform.security.revoke_key(admin, "ffffffff")


def test_disabled_principal_is_unauthenticated(platform: Platform, admin: Actor) -> None:
    _, token = login_as(platform, admin, "alice")
    platform.security.update_principal(admin, "alice", disabled=True)
    with pytest.raises(Unauthenticated, match="disabled"):
        platform.security.authenticate(token)
    platform.security.update_principal(admin, "alice", disabled=False)
    assert platform.security.authenticate(token).name == "alice"


def test_role_change_applies_to_existing_keys(platform: Platform, admin: Actor) -> None:
    _, token = login_as(platform, admin, "alice", "viewer")
    platform.security.update_principal(admin, "alice", role="admin")
    assert platform.security.authenticate(token).role == Role.admin


def test_non_admin_manages_only_own_keys(platform: Platform, admin: Actor) -> None:
    _, other_token = login_as(platform, admin, "other", "viewer")
    other_prefix = parse_prefix(other_token)
    assert other_prefix is not None
    for role in ("viewer", "developer", "maintainer"):
        me, _ = login_as(platform, admin, f"me-{role}", role)
        with pytest.raises(PermissionDenied):
            platform.security.create_key(me, principal="other")
        with pytest.raises(PermissionDenied):
            platform.security.revoke_key(me, other_prefix)
        with pytest.raises(PermissionDenied):
            platform.security.list_keys(me, "other")
        assert platform.security.authenticate(other_token).name == "other"

        own = platform.security.create_key(me, name="second")  # default owner: the caller
        assert own.principal == me.name
        explicit = platform.security.create_key(me, principal=me.name, name="third")
        mine = platform.security.list_keys(me)
        assert len(mine) == 3 and all(k.principal == me.name for k in mine)
        assert {k.prefix for k in mine} == {k.prefix for k in platform.security.list_keys(admin, me.name)}
        platform.security.revoke_key(me, explicit.prefix)
        with pytest.raises(Unauthenticated):
            platform.security.authenticate(explicit.key)
        assert platform.security.authenticate(own.key).name == me.name


def test_admin_manages_everyones_keys(platform: Platform, admin: Actor) -> None:
    boss, _ = login_as(platform, admin, "boss", "admin")
    _, token = login_as(platform, admin, "worker", "viewer")
    created = platform.security.create_key(boss, principal="worker", name="extra")
    assert created.principal == "worker"
    assert {k.principal for k in platform.security.list_keys(boss)} == {"boss", "worker"}
    prefix = parse_prefix(token)
    assert prefix is not None
    platform.security.revoke_key(boss, prefix)
    with pytest.raises(Unauthenticated):
        platform.security.authenticate(token)


def test_local_admin_must_name_the_owner(platform: Platform, admin: Actor) -> None:
    with pytest.raises(InvalidInput, match="principal"):
        platform.security.create_key(admin)
    with pytest.raises(NotFound):
        platform.security.create_key(admin, principal="ghost")
    platform.security.create_principal(admin, "alice")
    with pytest.raises(InvalidInput) as info:
        platform.security.create_key(admin, principal="alice", name="bad name")
    assert info.value.details == {"field": "key name"}
