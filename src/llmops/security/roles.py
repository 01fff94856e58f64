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
    deployments_read = "deployments:read"
    deployments_write = "deployments:write"  # create, change, promote, roll back, delete
    datasets_read = "datasets:read"
    datasets_write = "datasets:write"
    datasets_admin = "datasets:admin"
    inference = "inference"  # call served models (OpenAI-compatible API); keys may be scoped per deployment
    feedback_write = "feedback:write"  # attach feedback to a served request
    requests_read = "requests:read"  # stored requests, with their kept texts
    costs_read = "costs:read"
    monitoring_read = "monitoring:read"  # drift and monitoring reports
    alerts_read = "alerts:read"
    alerts_write = "alerts:write"  # rules, acknowledgements


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
    Permission.deployments_read: Role.viewer,
    Permission.deployments_write: Role.maintainer,
    Permission.datasets_read: Role.viewer,
    Permission.datasets_write: Role.developer,
    Permission.datasets_admin: Role.admin,
    Permission.inference: Role.viewer,
    Permission.feedback_write: Role.viewer,
    Permission.requests_read: Role.developer,
    Permission.costs_read: Role.developer,
    Permission.monitoring_read: Role.developer,
    Permission.alerts_read: Role.viewer,
    Permission.alerts_write: Role.maintainer,
}


def allows(role: Role, permission: Permission) -> bool:
    return role >= PERMISSION_ROLE[permission]
