"""Permissions (resource:action) and the built-in roles that grant them.

Every route declares the permission it needs next to its path; the HTTP kernel checks it before the
handler runs. A platform operator holds every permission on every tenant; tenant roles only hold
tenant-scoped permissions and only inside their own tenant (enforced by the kernel, see shared.http).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Permissions only a platform operator holds: they act across tenants.
PLATFORM_PERMISSIONS = frozenset(
    {
        "tenants:create",
        "tenants:list",
        "tenants:suspend",
        "tenants:reactivate",
        "tenants:deactivate",
        "platform:operate",
    }
)

_VIEWER = frozenset({"tenants:read", "seats:read"})
_MEMBER = _VIEWER
_ADMIN = _MEMBER | frozenset(
    {
        "tenants:update",
        "seats:assign",
        "seats:release",
        "audit:read",
        "audit:export",
        "audit:verify",
        "audit-alerts:read",
        "audit-alerts:manage",
    }
)
_OWNER = _ADMIN

BUILTIN_ROLES: dict[str, frozenset[str]] = {
    "owner": _OWNER,
    "admin": _ADMIN,
    "member": _MEMBER,
    "viewer": _VIEWER,
}

TENANT_PERMISSIONS = frozenset().union(*BUILTIN_ROLES.values())
ALL_PERMISSIONS = TENANT_PERMISSIONS | PLATFORM_PERMISSIONS


@dataclass(frozen=True)
class Principal:
    """Who is calling: a signed-in user of one tenant, a platform operator, or a platform service."""

    uid: str
    tenant_id: str | None
    roles: frozenset[str] = field(default_factory=frozenset)
    email: str | None = None
    is_operator: bool = False
    is_service: bool = False

    def permissions(self) -> frozenset[str]:
        if self.is_operator:
            return ALL_PERMISSIONS
        granted: frozenset[str] = frozenset()
        for role in self.roles:
            granted |= BUILTIN_ROLES.get(role, frozenset())
        return granted

    def can(self, permission: str) -> bool:
        return permission in self.permissions()

    def may_access_tenant(self, tenant_id: str) -> bool:
        return self.is_operator or (self.tenant_id is not None and self.tenant_id == tenant_id)

    def as_actor(self) -> dict[str, str | None]:
        kind = "service" if self.is_service else "user"
        return {"type": kind, "id": self.uid, "email": self.email}
