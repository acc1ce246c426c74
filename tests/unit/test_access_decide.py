"""shared.access.decide: the pure access decision, every branch, and the snapshot it reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.access import (
    Binding,
    CustomRole,
    PrincipalState,
    TenantAccess,
    TenantBlock,
    decide,
)
from shared.authz import BUILTIN_ROLES, SERVICE_ROLE, Principal

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TENANT = "t_acme"


def user(uid: str = "u1", *roles: str, tenant: str | None = TENANT) -> Principal:
    return Principal(uid=uid, tenant_id=tenant, roles=frozenset(roles))


def access(**fields: object) -> TenantAccess:
    return TenantAccess(tenant_id=TENANT, version=3, **fields)  # type: ignore[arg-type]


EDITOR = CustomRole("editor", "Editor", frozenset({"seats:assign", "tenants:update"}))
CONFIG = access(
    roles={"editor": EDITOR},
    groups={"ops": frozenset({"u2", "u3"})},
    policies={
        "p1": Binding("p1", "editor", frozenset({"user:u1"})),
        "p2": Binding("p2", "admin", frozenset({"group:ops"})),
        "p3": Binding("p3", "ghost", frozenset({"user:u4"})),  # a role that no longer exists
    },
)


# --- operators and services ------------------------------------------------------------------------


def test_an_operator_is_allowed_everything() -> None:
    operator = Principal(uid="op", tenant_id=None, is_operator=True)
    decision = decide(access(), operator, "tenants:suspend", now=NOW)
    assert decision.allowed and decision.reason == "platform operator"


def test_an_operator_is_allowed_in_a_blocked_tenant_and_sees_the_block() -> None:
    operator = Principal(uid="op", tenant_id=None, is_operator=True)
    blocked = access(block=TenantBlock("suspended", "unpaid invoice", NOW))
    decision = decide(blocked, operator, "tenants:read", now=NOW)
    assert decision.allowed
    assert decision.reason == "platform operator (tenant suspended: unpaid invoice)"


def test_a_platform_service_holds_its_service_permissions_in_any_tenant_even_blocked() -> None:
    service = Principal(uid="svc@p.iam", tenant_id=None, roles=frozenset({SERVICE_ROLE}), is_service=True)
    blocked = access(block=TenantBlock("deactivated", "churned"))
    allowed = decide(blocked, service, "seats:release", now=NOW)
    assert allowed.allowed and allowed.reason == "platform service (tenant deactivated: churned)"
    assert decide(access(), service, "seats:read", now=NOW).reason == "platform service"
    denied = decide(access(), service, "access:manage", now=NOW)
    assert not denied.allowed and denied.reason == "platform service lacks access:manage"


def test_a_service_without_the_service_role_holds_nothing() -> None:
    service = Principal(uid="svc@p.iam", tenant_id=None, is_service=True)
    assert not decide(access(), service, "seats:read", now=NOW).allowed


# --- tenant, block and principal state --------------------------------------------------------------


def test_a_principal_of_another_tenant_or_of_none_is_denied() -> None:
    other = decide(CONFIG, user("u1", "admin", tenant="t_other"), "tenants:read", now=NOW)
    assert not other.allowed and other.reason == "principal belongs to another tenant"
    none = decide(CONFIG, user("u1", "admin", tenant=None), "tenants:read", now=NOW)
    assert not none.allowed and none.reason == "principal has no tenant"


@pytest.mark.parametrize("status", ["suspended", "deactivated"])
def test_a_blocked_tenant_denies_every_principal_even_its_owner(status: str) -> None:
    blocked = access(block=TenantBlock(status, "policy", NOW))
    decision = decide(blocked, user("u1", "owner"), "tenants:read", now=NOW)
    assert not decision.allowed and decision.reason == f"tenant {status}: policy"


def test_a_block_without_a_reason_says_only_the_status() -> None:
    decision = decide(access(block=TenantBlock("suspended", "")), user("u1", "admin"), "tenants:read")
    assert decision.reason == "tenant suspended"


def test_a_deactivated_principal_is_denied() -> None:
    config = access(principals={"u1": PrincipalState("u1", deactivated=True)})
    decision = decide(config, user("u1", "admin"), "tenants:read", now=NOW)
    assert not decision.allowed and decision.reason == "principal deactivated"


def test_a_deactivated_principal_is_let_back_in_only_by_a_sign_in_after_the_deactivation() -> None:
    from dataclasses import replace
    from datetime import timedelta

    deactivated_at = NOW - timedelta(hours=1)
    config = access(principals={"u1": PrincipalState("u1", deactivated=True, deactivated_at=deactivated_at)})
    before = replace(user("u1", "admin"), authenticated_at=deactivated_at - timedelta(seconds=1))
    same_second = replace(user("u1", "admin"), authenticated_at=deactivated_at)
    after = replace(user("u1", "admin"), authenticated_at=deactivated_at + timedelta(seconds=1))
    assert not decide(config, before, "tenants:read", now=NOW).allowed
    assert not decide(config, same_second, "tenants:read", now=NOW).allowed
    assert not decide(config, user("u1", "admin"), "tenants:read", now=NOW).allowed  # no sign-in time
    assert decide(config, after, "tenants:read", now=NOW).allowed


def test_a_revoked_principal_is_denied() -> None:
    config = access(principals={"u1": PrincipalState("u1", revoked=True)})
    decision = decide(config, user("u1", "admin"), "tenants:read", now=NOW)
    assert not decision.allowed and decision.reason == "principal access revoked"


def test_a_locked_principal_is_denied_until_the_lock_ends() -> None:
    until = NOW + timedelta(minutes=30)
    config = access(principals={"u1": PrincipalState("u1", locked_until=until, lock_reason="5 failed MFA")})
    locked = decide(config, user("u1", "admin"), "tenants:read", now=NOW)
    assert not locked.allowed
    assert locked.reason == f"principal locked until {until.isoformat()}: 5 failed MFA"
    assert decide(config, user("u1", "admin"), "tenants:read", now=until).allowed


def test_a_lock_without_a_reason() -> None:
    until = NOW + timedelta(minutes=1)
    config = access(principals={"u1": PrincipalState("u1", locked_until=until)})
    assert decide(config, user("u1", "admin"), "tenants:read", now=NOW).reason.endswith(until.isoformat())


def test_the_lock_is_checked_against_the_clock_by_default() -> None:
    future = datetime.now(UTC) + timedelta(hours=1)
    config = access(principals={"u1": PrincipalState("u1", locked_until=future)})
    assert not decide(config, user("u1", "admin"), "tenants:read").allowed


def test_the_state_of_another_principal_does_not_matter() -> None:
    config = access(principals={"u9": PrincipalState("u9", revoked=True, deactivated=True)})
    assert decide(config, user("u1", "admin"), "tenants:read", now=NOW).allowed


# --- grants -------------------------------------------------------------------------------------------


def test_a_builtin_role_in_the_token_grants_its_permissions() -> None:
    decision = decide(access(), user("u9", "admin"), "seats:assign", now=NOW)
    assert decision.allowed and decision.reason == "granted by role admin via token claims"


def test_a_custom_role_in_the_token_grants_its_permissions() -> None:
    decision = decide(CONFIG, user("u9", "editor"), "tenants:update", now=NOW)
    assert decision.allowed and decision.reason == "granted by role editor via token claims"


def test_an_unknown_role_in_the_token_grants_nothing() -> None:
    decision = decide(CONFIG, user("u9", "superuser"), "tenants:read", now=NOW)
    assert not decision.allowed and decision.reason == "no policy grants tenants:read"


def test_a_policy_naming_the_user_grants_its_roles_permissions() -> None:
    decision = decide(CONFIG, user("u1"), "seats:assign", now=NOW)
    assert decision.allowed and decision.reason == "granted by role editor via policy p1"


def test_a_policy_naming_a_group_of_the_user_grants_its_roles_permissions() -> None:
    decision = decide(CONFIG, user("u3"), "audit:read", now=NOW)
    assert decision.allowed and decision.reason == "granted by role admin via policy p2 (group ops)"


def test_a_policy_grants_nothing_beyond_its_role() -> None:
    decision = decide(CONFIG, user("u1"), "audit:read", now=NOW)
    assert not decision.allowed and decision.reason == "no policy grants audit:read"


def test_a_policy_binding_a_deleted_role_grants_nothing() -> None:
    assert not decide(CONFIG, user("u4"), "tenants:read", now=NOW).allowed


def test_the_union_of_token_roles_and_policies_decides() -> None:
    viewer_in_ops = user("u2", "viewer")
    assert decide(CONFIG, viewer_in_ops, "tenants:read", now=NOW).reason.endswith("via token claims")
    assert decide(CONFIG, viewer_in_ops, "seats:release", now=NOW).reason.endswith(
        "via policy p2 (group ops)"
    )
    assert not decide(CONFIG, viewer_in_ops, "tenants:create", now=NOW).allowed  # platform permission


def test_a_principal_with_nothing_is_denied() -> None:
    decision = decide(access(), user("u1"), "tenants:read", now=NOW)
    assert not decision.allowed and decision.reason == "no policy grants tenants:read"


def test_a_deny_outranks_every_grant() -> None:
    config = access(
        policies={"p1": Binding("p1", "owner", frozenset({"user:u1"}))},
        principals={"u1": PrincipalState("u1", revoked=True)},
    )
    assert not decide(config, user("u1", "owner"), "tenants:read", now=NOW).allowed


# --- the snapshot -------------------------------------------------------------------------------------


def test_the_snapshot_is_immutable() -> None:
    with pytest.raises(TypeError):
        CONFIG.roles["x"] = EDITOR  # type: ignore[index]
    with pytest.raises(AttributeError):
        CONFIG.version = 9  # type: ignore[misc]


def test_role_permissions_prefers_builtins_and_knows_custom_roles() -> None:
    assert CONFIG.role_permissions("admin") == BUILTIN_ROLES["admin"]
    assert CONFIG.role_permissions("editor") == EDITOR.permissions
    assert CONFIG.role_permissions("nope") == frozenset()


def test_users_of_expands_groups_and_reaches_says_how() -> None:
    binding = Binding("p", "admin", frozenset({"user:u1", "group:ops", "group:missing"}))
    assert CONFIG.users_of(binding) == {"u1", "u2", "u3"}
    assert binding.reaches("u1", CONFIG.groups) == ""
    assert binding.reaches("u2", CONFIG.groups) == "ops"
    assert binding.reaches("u9", CONFIG.groups) is None


def test_from_documents_parses_stored_documents_and_tolerates_odd_values() -> None:
    naive = datetime(2026, 3, 1, 12, 30)  # a value stored without a zone
    snapshot = TenantAccess.from_documents(
        TENANT,
        {"version": 7},
        {"blocked": True, "status": "suspended", "reason": "unpaid", "since": NOW},
        [("editor", {"name": "Editor", "permissions": ["seats:assign", 3]}), ("bare", {})],
        [("ops", {"members": ["u2", None]}), ("odd", {"members": "u5"})],
        [("p1", {"role": "editor", "members": ["user:u1"], "description": "d"}), ("p2", {"role": 5})],
        [("u1", {"locked_until": naive, "lock_reason": 4, "revoked": "yes", "deactivated": True})],
    )
    assert snapshot.version == 7
    assert snapshot.block == TenantBlock("suspended", "unpaid", NOW)
    assert snapshot.roles["editor"].permissions == {"seats:assign"}
    assert snapshot.roles["bare"] == CustomRole("bare", "bare", frozenset())
    assert snapshot.groups == {"ops": frozenset({"u2"}), "odd": frozenset()}
    assert snapshot.policies["p1"] == Binding("p1", "editor", frozenset({"user:u1"}), "d")
    assert snapshot.policies["p2"] == Binding("p2", "", frozenset())
    state = snapshot.principals["u1"]
    assert state.locked_until == naive.replace(tzinfo=UTC) and state.lock_reason is None
    assert state.revoked is False and state.deactivated is True  # only a real `true` counts


@pytest.mark.parametrize(
    ("document", "version"),
    [(None, 0), ({}, 0), ({"version": -1}, 0), ({"version": True}, 0), ({"version": "2"}, 0)],
)
def test_an_absent_or_odd_version_is_zero(document: dict[str, object] | None, version: int) -> None:
    assert TenantAccess.from_documents(TENANT, document, None, [], [], []).version == version


def test_a_block_document_blocks_only_when_blocked_is_true() -> None:
    unblocked = TenantAccess.from_documents(TENANT, None, {"blocked": False, "status": "active"}, [], [], [])
    assert unblocked.block is None
    odd = TenantAccess.from_documents(TENANT, None, {"blocked": True}, [], [], [])
    assert odd.block == TenantBlock("blocked", "", None)
