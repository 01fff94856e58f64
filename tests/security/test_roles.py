"""Roles are ordered and each permission names the least role that holds it."""

from __future__ import annotations

import pytest

from llmops.errors import InvalidInput
from llmops.security.actor import Actor, local_admin
from llmops.security.roles import PERMISSION_ROLE, Permission, Role, allows

# The intended table, written out: a change to roles.py must be a deliberate change here too.
EXPECTED: dict[Permission, Role] = {
    Permission.runs_read: Role.viewer,
    Permission.store_read: Role.viewer,
    Permission.keys_self: Role.viewer,
    Permission.runs_write: Role.developer,
    Permission.audit_read: Role.maintainer,
    Permission.principals_read: Role.maintainer,
    Permission.store_admin: Role.admin,
    Permission.principals_admin: Role.admin,
    Permission.config_read: Role.admin,
    Permission.models_read: Role.viewer,
    Permission.models_write: Role.developer,
    Permission.models_promote: Role.maintainer,
    Permission.models_admin: Role.admin,
    Permission.deployments_read: Role.viewer,
    Permission.deployments_write: Role.maintainer,
    Permission.datasets_read: Role.viewer,
    Permission.datasets_write: Role.developer,
    Permission.datasets_admin: Role.admin,
    Permission.inference: Role.viewer,
    Permission.feedback_write: Role.viewer,
    Permission.alerts_read: Role.viewer,
    Permission.requests_read: Role.developer,
    Permission.costs_read: Role.developer,
    Permission.monitoring_read: Role.developer,
    Permission.alerts_write: Role.maintainer,
}


def test_roles_are_ordered() -> None:
    assert Role.viewer < Role.developer < Role.maintainer < Role.admin
    assert sorted(Role, key=int) == [Role.viewer, Role.developer, Role.maintainer, Role.admin]


def test_parse() -> None:
    assert Role.parse("maintainer") is Role.maintainer
    with pytest.raises(InvalidInput) as info:
        Role.parse("owner")
    assert info.value.details == {"field": "role"}
    assert "viewer" in info.value.message and "admin" in info.value.message


def test_every_permission_has_a_role() -> None:
    assert set(PERMISSION_ROLE) == set(Permission)
    assert PERMISSION_ROLE == EXPECTED


@pytest.mark.parametrize("permission", list(Permission))
@pytest.mark.parametrize("role", list(Role))
def test_allows_matrix(role: Role, permission: Permission) -> None:
    assert allows(role, permission) is (role >= EXPECTED[permission])
    assert Actor(name="x", role=role).can(permission) is allows(role, permission)


def test_admin_holds_everything_and_viewer_only_reads() -> None:
    assert all(allows(Role.admin, p) for p in Permission)
    assert {p for p in Permission if allows(Role.viewer, p)} == {
        Permission.runs_read,
        Permission.store_read,
        Permission.keys_self,
        Permission.models_read,
        Permission.deployments_read,
        Permission.datasets_read,
        Permission.inference,  # calling served models is a viewer's right; deployment scopes narrow it per key
        Permission.feedback_write,  # the client that called a model may rate its answer
        Permission.alerts_read,
    }


def test_local_admin() -> None:
    actor = local_admin(via="python")
    assert actor.role is Role.admin and actor.principal_id is None
    assert actor.label == f"python:{actor.name}"
    assert Actor(name="alice", role=Role.viewer).label == "alice"
