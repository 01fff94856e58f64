"""Principals: create, list, get, update (role change, disable), and the errors callers rely on."""

from __future__ import annotations

import pytest

from llmops.errors import AlreadyExists, InvalidInput, NotFound
from llmops.platform import Platform
from llmops.security.actor import Actor


def test_create_list_get(platform: Platform, admin: Actor) -> None:
    alice = platform.security.create_principal(admin, "alice", role="developer", email="alice@example.com")
    bot = platform.security.create_principal(admin, "ci-bot", kind="service")
    assert (alice.name, alice.kind, alice.role, alice.email, alice.disabled) == (
        "alice",
        "user",
        "developer",
        "alice@example.com",
        False,
    )
    assert alice.created_by == admin.label == f"cli:{admin.name}"
    assert alice.created_at.tzinfo is not None
    assert (bot.kind, bot.role) == ("service", "viewer")
    assert [p.name for p in platform.security.list_principals()] == ["alice", "ci-bot"]
    assert platform.security.get_principal("alice") == alice


def test_duplicate_name_is_already_exists(platform: Platform, admin: Actor) -> None:
    platform.security.create_principal(admin, "bob")
    with pytest.raises(AlreadyExists, match="bob"):
        platform.security.create_principal(admin, "bob", role="admin")
    assert platform.security.get_principal("bob").role == "viewer"


INVALID: list[tuple[str, dict[str, str], str]] = [
    ("has space", {}, "name"),
    ("../etc", {}, "name"),
    ("", {}, "name"),
    ("a" * 129, {}, "name"),
    ("-leading", {}, "name"),
    ("ok", {"role": "root"}, "role"),
    ("ok", {"kind": "robot"}, "kind"),
]


def test_invalid_input_names_the_field(platform: Platform, admin: Actor) -> None:
    for name, kwargs, field in INVALID:
        with pytest.raises(InvalidInput) as info:
            platform.security.create_principal(admin, name, **kwargs)
        assert info.value.details == {"field": field}, (name, kwargs)
        assert field in info.value.message
    assert platform.security.list_principals() == []
    assert platform.audit.list() == []


def test_update_role_and_disable(platform: Platform, admin: Actor) -> None:
    platform.security.create_principal(admin, "carol")
    promoted = platform.security.update_principal(admin, "carol", role="maintainer")
    assert promoted.role == "maintainer"
    disabled = platform.security.update_principal(admin, "carol", disabled=True)
    assert disabled.disabled is True and disabled.role == "maintainer"
    stored = platform.security.get_principal("carol")
    assert (stored.role, stored.disabled) == ("maintainer", True)
    enabled = platform.security.update_principal(admin, "carol", disabled=False)
    assert enabled.disabled is False


def test_update_errors(platform: Platform, admin: Actor) -> None:
    platform.security.create_principal(admin, "dave")
    with pytest.raises(InvalidInput) as info:
        platform.security.update_principal(admin, "dave", role="superuser")
    assert info.value.details == {"field": "role"}
    assert platform.security.get_principal("dave").role == "viewer"
    with pytest.raises(NotFound, match="nobody"):
        platform.security.update_principal(admin, "nobody", role="admin")
    with pytest.raises(NotFound, match="nobody"):
        platform.security.get_principal("nobody")


def test_update_without_change_is_not_audited(platform: Platform, admin: Actor) -> None:
    platform.security.create_principal(admin, "erin", role="developer")
    before = len(platform.audit.list(limit=1000))
    platform.security.update_principal(admin, "erin", role="developer", disabled=False)
    assert len(platform.audit.list(limit=1000)) == before
