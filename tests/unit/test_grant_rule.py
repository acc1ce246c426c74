"""shared.authz.may_grant: the one rule for granting roles, used by User Management and Access Control."""

from __future__ import annotations

import pytest

from functions.user_management_api.domain import Grantor
from shared.authz import BUILTIN_ROLES, Principal, may_grant


@pytest.mark.parametrize(
    ("roles", "role", "allowed"),
    [
        (("admin",), "owner", False),
        (("admin",), "admin", True),
        (("admin",), "viewer", True),
        (("member",), "admin", False),
        (("owner",), "owner", True),
        ((), "viewer", False),
    ],
)
def test_built_in_roles_up_to_ones_own(roles: tuple[str, ...], role: str, allowed: bool) -> None:
    principal = Principal(uid="u1", tenant_id="t1", roles=frozenset(roles))
    assert principal.may_grant(role) is allowed
    # User Management's grantor follows the very same rule.
    assert Grantor("u1", frozenset(roles)).may_grant(role) is allowed


def test_a_custom_role_only_with_permissions_the_grantor_holds() -> None:
    member = Principal(uid="u1", tenant_id="t1", roles=frozenset({"member"}))
    assert member.may_grant("readers", BUILTIN_ROLES["viewer"])
    assert not member.may_grant("managers", BUILTIN_ROLES["admin"])


def test_operators_and_platform_services_are_unrestricted() -> None:
    operator = Principal(uid="op", tenant_id=None, is_operator=True)
    assert operator.may_grant("owner") and may_grant("owner", frozenset(), (), unrestricted=True)
    assert Grantor("op", frozenset(), is_operator=True).may_grant("owner")
