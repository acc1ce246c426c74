"""TEMPORARY: the permissions of the Access Control API, to be merged into shared.authz by the lead.

Once merged (ALL_PERMISSIONS includes them; the built-in roles admin and owner hold all three; member
and viewer hold none), delete this file: no module imports it.

- access:read    GET roles, groups, policies and principal states of the tenant
- access:manage  PUT/DELETE roles, groups and policies; restore a locked or revoked principal
- access:decide  POST .../access/decisions: ask the decision engine about any principal of the tenant
"""

from __future__ import annotations

ACCESS_PERMISSIONS = frozenset({"access:read", "access:manage", "access:decide"})
