"""Roles, permissions and the table that joins them.

Roles are ordered (``viewer < developer < maintainer < admin``); each permission names the least role
that holds it. Every HTTP route declares one permission (``llmops.api.deps.require``); a test walks
the app and fails on a route without one.
"""

from __future__ import annotations

import enum

from llmops.errors import InvalidInput


class Role(enum.IntEnum):
    viewer = 10
    developer = 20
    maintainer = 30
    admin = 40

    @classmethod
    def parse(cls, value: str) -> Role:
        try:
            return cls[value]
        except KeyError:
            raise InvalidInput(
                f"unknown role {value!r}; use one of {', '.join(r.name for r in cls)}", details={"field": "role"}
            ) from None


class Permission(enum.StrEnum):
    runs_read = "runs:read"
    runs_write = "runs:write"
    store_read = "store:read"
    store_admin = "store:admin"
    audit_read = "audit:read"
    principals_read = "principals:read"
    principals_admin = "principals:admin"
    keys_self = "keys:self"  # manage one's own API keys
    config_read = "config:read"
    models_read = "models:read"
    models_write = "models:write"
    models_promote = "models:promote"
    models_admin = "models:admin"


PERMISSION_ROLE: dict[Permission, Role] = {
    Permission.runs_read: Role.viewer,
    Permission.runs_write: Role.developer,
    Permission.store_read: Role.viewer,
    Permission.store_admin: Role.admin,
    Permission.audit_read: Role.maintainer,
    Permission.principals_read: Role.maintainer,
    Permission.principals_admin: Role.admin,
    Permission.keys_self: Role.viewer,
    Permission.config_read: Role.admin,
    Permission.models_read: Role.viewer,
    Permission.models_write: Role.developer,
    Permission.models_promote: Role.maintainer,
    Permission.models_admin: Role.admin,
}


def allows(role: Role, permission: Permission) -> bool:
    return role >= PERMISSION_ROLE[permission]
