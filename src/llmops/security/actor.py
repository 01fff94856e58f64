"""Who is acting: the principal behind a request, a CLI call or a Python API call."""

from __future__ import annotations

import getpass
from dataclasses import dataclass

from llmops.security.roles import Permission, Role, allows


@dataclass(frozen=True)
class Actor:
    name: str
    role: Role
    principal_id: int | None = None
    key_id: int | None = None
    via: str = "api"  # api | cli | python
    scopes: tuple[str, ...] = ()  # the key's scopes (deployments with scopes need one of them)
    key_prefix: str | None = None  # the key's public prefix (limits, budgets and request records name it)

    @property
    def label(self) -> str:
        """How the audit log names this actor."""
        return self.name if self.via == "api" else f"{self.via}:{self.name}"

    def can(self, permission: Permission) -> bool:
        return allows(self.role, permission)


def local_admin(via: str = "cli") -> Actor:
    """The bootstrap administrator: whoever can reach the database directly (CLI, Python API)."""
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = "local"
    return Actor(name=user, role=Role.admin, via=via)
