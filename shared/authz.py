"""Permissions (resource:action) and the built-in roles that grant them.

Every route declares the permission it needs next to its path; the HTTP kernel checks it before the
handler runs. A platform operator holds every permission on every tenant; tenant roles only hold
tenant-scoped permissions and only inside their own tenant (enforced by the kernel, see shared.http).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

# Permissions only a platform operator holds: they act across tenants.
PLATFORM_PERMISSIONS = frozenset(
    {
        "tenants:create",
        "tenants:list",
        "tenants:suspend",
        "tenants:reactivate",
        "tenants:deactivate",
        "platform:operate",
        "audit:record",  # an entry in the platform's own audit trail (e.g. a tenant's proof of erasure)
        "webhooks:erase",  # a tenant's webhook signing secrets deleted, at its erasure
        "invitations:mail",  # the token of an invitation mail's accept link, minted as it is sent
    }
)

# notifications:read: a user's own inbox and preferences (those routes serve the caller's own only).
_VIEWER = frozenset(
    {"tenants:read", "seats:read", "users:read", "customers:read", "notifications:read", "health:read"}
)
_MEMBER = _VIEWER
_ADMIN = _MEMBER | frozenset(
    {
        "users:manage",
        "users:invite",
        "user-imports:manage",
        "tenants:update",
        "seats:assign",
        "seats:release",
        "audit:read",
        "audit:export",
        "audit:verify",
        "audit-alerts:read",
        "audit-alerts:manage",
        "access:read",
        "access:manage",
        "access:decide",
        "webhooks:read",
        "webhooks:manage",
        "customers:write",
        "customers:import",
        "customers:merge",
        "customers:privacy",
        "workflows:read",
        "workflows:manage",
        "notification-settings:manage",
        "health:manage",
        "onboarding:read",
        "onboarding:manage",
    }
)
_OWNER = _ADMIN

BUILTIN_ROLES: dict[str, frozenset[str]] = {
    "owner": _OWNER,
    "admin": _ADMIN,
    "member": _MEMBER,
    "viewer": _VIEWER,
}

# Built-in roles in order: a principal may grant a built-in role up to its own highest one (`may_grant`).
ROLE_RANK: dict[str, int] = {"viewer": 0, "member": 1, "admin": 2, "owner": 3}


def may_grant(
    role: str, role_permissions: frozenset[str], grantor_roles: Iterable[str], *, unrestricted: bool
) -> bool:
    """The one rule for granting a role, whatever the path (a user's role, an access policy binding it,
    a member added to a group a policy binds, a bound custom role given more permissions): an
    unrestricted grantor (a platform operator, or the platform itself) may grant any role; anyone else a
    built-in role up to their own highest one (an admin never grants owner), and a custom role only
    when their built-in roles hold every permission it carries."""
    if unrestricted:
        return True
    roles = set(grantor_roles)
    if role in ROLE_RANK:
        return ROLE_RANK[role] <= max((ROLE_RANK[r] for r in roles if r in ROLE_RANK), default=-1)
    held: frozenset[str] = frozenset().union(*(BUILTIN_ROLES.get(r, frozenset()) for r in roles))
    return role_permissions <= held


# Another function of the platform calling over HTTP (for example User Management taking a seat from
# the Tenant API): acts in any tenant, but only with these permissions.
SERVICE_ROLE = "platform-service"
SERVICE_PERMISSIONS = frozenset(
    {
        "tenants:read",
        "seats:read",
        "seats:assign",
        "seats:release",
        "workflows:read",
        "customers:read",
        "customers:write",
        "customers:privacy",
        "health:read",
        "audit:record",
        # Offboarding's erase step: the Integration API deletes the tenant's webhook signing secrets.
        "webhooks:erase",
        # The Onboarding API's steps: the identity tenant, the first admin's invitation, the roles.
        "users:manage",
        "users:invite",
        "users:read",
        "access:read",
        # The Notification API's send task: the accept link of an invitation mail.
        "invitations:mail",
    }
)

# A route anyone may call, authenticated by what it carries (an invitation token, a signature).
PUBLIC = "public"

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
    authenticated_at: datetime | None = None  # when the user signed in (the token's auth_time)

    def permissions(self) -> frozenset[str]:
        if self.is_operator:
            return ALL_PERMISSIONS
        if self.is_service:
            return SERVICE_PERMISSIONS if SERVICE_ROLE in self.roles else frozenset()
        granted: frozenset[str] = frozenset()
        for role in self.roles:
            granted |= BUILTIN_ROLES.get(role, frozenset())
        return granted

    def can(self, permission: str) -> bool:
        return permission in self.permissions()

    def may_grant(self, role: str, role_permissions: frozenset[str] = frozenset()) -> bool:
        """`may_grant` for this principal: operators and the platform's own services unrestricted."""
        return may_grant(role, role_permissions, self.roles, unrestricted=self.is_operator or self.is_service)

    def may_access_tenant(self, tenant_id: str) -> bool:
        if self.is_operator or self.is_service:
            return True
        return self.tenant_id is not None and self.tenant_id == tenant_id

    def as_actor(self) -> dict[str, str | None]:
        kind = "service" if self.is_service else "user"
        return {"type": kind, "id": self.uid, "email": self.email}


def anonymous() -> Principal:
    """The caller of a PUBLIC route: no identity, no permission."""
    return Principal(uid="anonymous", tenant_id=None)
