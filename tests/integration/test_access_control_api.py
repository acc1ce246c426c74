"""The Access Control API over HTTP and Pub/Sub push, through functions-framework, on the real emulators."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from google.cloud import pubsub_v1

from emulators.suite import Suite
from shared.auth import sign_local_service_token
from shared.authz import BUILTIN_ROLES
from shared.catalog import load_catalog
from shared.contracts import Actor, EventPayload
from shared.contracts.payloads import (
    AuditAlertTriggered,
    FieldChange,
    MfaChallengeFailed,
    SecurityPolicyUpdated,
    TenantReactivated,
    TenantSuspended,
    UserAccessRevoked,
    UserDeactivated,
    UserInvited,
    UserRoleChanged,
)
from shared.events import CloudEvent, new_event
from tests.conftest import (
    Api,
    BadRequest,
    bad_requests_change_nothing,
    dump_firestore,
    eventually,
    push_body,
    quiescent,
    send,
    store_tenant,
)

PROBLEM = "application/problem+json"
CATALOG = load_catalog()
SECURITY_ACTOR = Actor(type="user", id="usr_sec", email="security@example.test")


@pytest.fixture
def tenant(clean: Suite) -> dict[str, Any]:
    # Stored without Tenant Created: access decisions do not wait on the new tenant's onboarding.
    return store_tenant("acme")


@pytest.fixture
def admin(clean: Suite, tokens: Callable[..., str], tenant: dict[str, Any]) -> Api:
    return Api(
        clean.function_url("access_control_api"), tokens("admin@acme.example", tenant["id"], ("admin",))
    )


@pytest.fixture
def as_operator(clean: Suite, operator: str) -> Api:
    """Decisions asked by a platform operator: allowed even while the tenant is blocked."""
    return Api(clean.function_url("access_control_api"), operator)


def base(tenant: dict[str, Any]) -> str:
    return f"/tenants/{tenant['id']}/access"


def ok(response: requests.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def decision(api: Api, tenant: dict[str, Any], uid: str, permission: str, roles: Any = ()) -> dict[str, Any]:
    principal: dict[str, Any] = {"uid": uid}
    if roles is not None:
        principal["roles"] = list(roles)
    body: dict[str, Any] = ok(
        api.post(f"{base(tenant)}/decisions", json={"principal": principal, "permission": permission})
    )
    return body


def push(suite: Suite, event: CloudEvent) -> str:
    """Deliver an event to the Access Control events function exactly as a push subscription does."""
    token = sign_local_service_token(
        suite.signing_key, f"pubsub-push@{suite.project}.iam.gserviceaccount.com"
    )
    topic = CATALOG.event_by_type(event.type).topic  # type: ignore[union-attr]
    body = push_body(event.model_dump_json(), str(uuid.uuid4()), f"projects/p/subscriptions/{topic}")
    response = requests.post(
        f"{suite.function_url('access_control_api_events')}?token={token}", json=body, timeout=30
    )
    assert response.status_code == 200, response.text
    result: str = response.json()["result"]
    return result


def event(
    payload: EventPayload,
    tenant: dict[str, Any],
    subject: str,
    *,
    source: str = "user-management-api",
    version: int | None = None,
    at: datetime | None = None,
) -> CloudEvent:
    entry = CATALOG.event(payload.EVENT_NAME)
    return new_event(
        payload,
        tenant_id=tenant["id"],
        subject=subject,
        source_api_slug=source,
        source="//identity.example/users" if entry.is_external else None,
        aggregate_version=version,
        time=at,
    )


@pytest.fixture
def policy_changes(clean: Suite) -> Iterator[Callable[[int], list[dict[str, Any]]]]:
    """A pull subscription of our own on Permission Policy Changed; call it with how many to wait for."""
    subscriber = pubsub_v1.SubscriberClient()
    topic = subscriber.topic_path(clean.project, CATALOG.event("Permission Policy Changed").topic)
    path = subscriber.subscription_path(clean.project, f"test-ppc-{uuid.uuid4().hex[:8]}")
    subscriber.create_subscription(request={"name": path, "topic": topic})
    seen: list[dict[str, Any]] = []

    def wait_for(count: int) -> list[dict[str, Any]]:
        def pulled() -> list[dict[str, Any]] | None:
            response = subscriber.pull(request={"subscription": path, "max_messages": 50}, timeout=5)
            if response.received_messages:
                seen.extend(json.loads(m.message.data) for m in response.received_messages)
                subscriber.acknowledge(
                    request={"subscription": path, "ack_ids": [m.ack_id for m in response.received_messages]}
                )
            ordered = sorted(seen, key=lambda e: (e["data"]["version"], e["data"]["policy_id"]))
            return ordered if len(seen) >= count else None

        result: list[dict[str, Any]] = eventually(pulled, what=f"{count} Permission Policy Changed")
        return result

    yield wait_for
    subscriber.delete_subscription(request={"subscription": path})


# --------------------------------------------------------------------------------------------------------
# Roles, groups, policies
# --------------------------------------------------------------------------------------------------------


def test_roles_list_the_builtins_and_custom_roles_are_managed(admin: Api, tenant: dict[str, Any]) -> None:
    roles = f"{base(tenant)}/roles"
    listed = ok(admin.get(roles))["items"]
    assert [r["id"] for r in listed] == sorted(BUILTIN_ROLES)
    assert all(r["builtin"] for r in listed)
    assert ok(admin.get(f"{roles}/admin"))["permissions"] == sorted(BUILTIN_ROLES["admin"])

    created = admin.put(
        f"{roles}/editor", json={"name": "Editor", "permissions": ["seats:assign", "tenants:read"]}
    )
    assert created.status_code == 201, created.text
    assert created.headers["Location"] == f"{roles}/editor"
    assert created.json()["permissions"] == ["seats:assign", "tenants:read"]
    assert created.json()["builtin"] is False
    again = admin.put(
        f"{roles}/editor", json={"name": "Editor", "permissions": ["tenants:read", "seats:assign"]}
    )
    assert again.status_code == 200 and again.json()["updated_at"] == created.json()["updated_at"]
    assert ok(admin.get(f"{roles}/editor"))["name"] == "Editor"
    assert [r["id"] for r in ok(admin.get(roles))["items"]][-1] == "editor"

    builtin = admin.put(f"{roles}/admin", json={"name": "Mine", "permissions": []})
    assert builtin.status_code == 409 and builtin.json()["type"].endswith("/builtin-role")
    assert admin.delete(f"{roles}/viewer").status_code == 409

    ok(admin.put(f"{base(tenant)}/policies/p1", json={"role": "editor", "members": ["user:u1"]}), 201)
    in_use = admin.delete(f"{roles}/editor")
    assert in_use.status_code == 409 and in_use.json()["policies"] == ["p1"]
    assert admin.delete(f"{base(tenant)}/policies/p1").status_code == 204
    assert admin.delete(f"{roles}/editor").status_code == 204
    assert admin.get(f"{roles}/editor").status_code == 404
    assert admin.delete(f"{roles}/editor").status_code == 404


def test_groups_and_policies_grant_through_the_decision_endpoint(admin: Api, tenant: dict[str, Any]) -> None:
    path = base(tenant)
    group = ok(
        admin.put(f"{path}/groups/ops", json={"description": "Ops", "members": ["u3", "u2", "u2"]}), 201
    )
    assert group["members"] == ["u2", "u3"]
    ok(
        admin.put(
            f"{path}/policies/p2", json={"role": "admin", "members": ["group:ops"], "description": "d"}
        ),
        201,
    )
    assert ok(admin.get(f"{path}/policies/p2"))["description"] == "d"

    granted = decision(admin, tenant, "u2", "audit:read")
    assert granted["allowed"] and granted["reason"] == "granted by role admin via policy p2 (group ops)"
    denied = decision(admin, tenant, "u9", "audit:read")
    assert not denied["allowed"] and denied["reason"] == "no policy grants audit:read"
    assert denied["version"] >= 2
    claims = decision(admin, tenant, "u9", "tenants:read", roles=["viewer"])
    assert claims["allowed"] and claims["reason"] == "granted by role viewer via token claims"

    in_use = admin.delete(f"{path}/groups/ops")
    assert in_use.status_code == 409 and in_use.json()["policies"] == ["p2"]
    ok(admin.put(f"{path}/groups/ops", json={"members": ["u3"]}))
    assert not decision(admin, tenant, "u2", "audit:read")["allowed"]
    assert admin.delete(f"{path}/policies/p2").status_code == 204
    assert not decision(admin, tenant, "u3", "audit:read")["allowed"]
    assert admin.delete(f"{path}/groups/ops").status_code == 204
    assert admin.get(f"{path}/groups/ops").status_code == 404


def test_groups_and_policies_list_with_cursors(admin: Api, tenant: dict[str, Any]) -> None:
    for i in range(5):
        ok(admin.put(f"{base(tenant)}/groups/g{i}", json={"members": []}), 201)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = ok(admin.get(f"{base(tenant)}/groups", params=params))
        seen += [g["id"] for g in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"g{i}" for i in range(5)]
    assert ok(admin.get(f"{base(tenant)}/policies"))["items"] == []


BAD_INPUT: list[BadRequest] = [
    ("PUT", "/roles/editor", {"name": "E", "permissions": ["nope:read"]}, 422),
    ("PUT", "/roles/editor", {"name": "E", "permissions": ["tenants:create"]}, 422),
    ("PUT", "/roles/editor", {"name": "", "permissions": []}, 422),
    ("PUT", "/roles/editor", {"name": "E", "permissions": [], "extra": 1}, 422),
    ("PUT", "/roles/Bad-Id", {"name": "E", "permissions": []}, 422),
    ("PUT", "/roles/admin", {"name": "E", "permissions": []}, 409),
    ("PUT", "/groups/ops", {"members": ["a/b"]}, 422),
    ("PUT", "/groups/ops", {"members": "u1"}, 422),
    ("PUT", "/groups/OPS", {"members": []}, 422),
    ("PUT", "/policies/p1", {"role": "ghost", "members": []}, 422),
    ("PUT", "/policies/p1", {"role": "admin", "members": ["group:nope"]}, 422),
    ("PUT", "/policies/p1", {"role": "admin", "members": ["robot:r2"]}, 422),
    ("PUT", "/policies/p1", {"role": "Admin", "members": []}, 422),
    ("PUT", "/policies/p1", "not json", 400),
    ("POST", "/decisions", {"principal": {"uid": "u1"}, "permission": "nope:read"}, 422),
    ("POST", "/decisions", {"permission": "tenants:read"}, 422),
    (
        "POST",
        "/decisions",
        {"principal": {"uid": "u1", "roles": ["x y"]}, "permission": "tenants:read"},
        422,
    ),
    ("GET", "/roles/zzz", None, 404),
    ("GET", "/groups/nope", None, 404),
    ("GET", "/policies/nope", None, 404),
    ("GET", "/principals/nobody", None, 404),
    ("GET", "/groups?limit=0", None, 422),
    ("DELETE", "/policies/nope", None, 404),
    ("DELETE", "/groups/nope", None, 404),
    ("DELETE", "/roles/nope", None, 404),
    ("POST", "/principals/nobody/restore", {}, 404),
    ("PATCH", "/roles/editor", {}, 405),
]


@pytest.mark.usefixtures("paused_sealing")
def test_bad_input_gets_a_problem_and_changes_nothing(
    admin: Api, tenant: dict[str, Any], db: Any, subtests: pytest.Subtests
) -> None:
    def request(method: str, path: str, body: Any) -> requests.Response:
        return send(admin, method, base(tenant) + path, body)

    def points_at_the_field(response: requests.Response) -> None:
        if response.status_code == 422:
            assert response.json()["errors"][0]["pointer"].startswith("#/")

    bad_requests_change_nothing(
        db, subtests, BAD_INPUT, request, tenant_id=tenant["id"], check=points_at_the_field
    )


@pytest.mark.usefixtures("paused_sealing")
def test_one_rule_for_granting_roles_whatever_the_path(
    clean: Suite,
    admin: Api,
    as_operator: Api,
    tokens: Callable[..., str],
    tenant: dict[str, Any],
    db: Any,
) -> None:
    path = base(tenant)
    ok(as_operator.put(f"{path}/groups/owners", json={"members": []}), 201)
    ok(as_operator.put(f"{path}/policies/po", json={"role": "owner", "members": ["group:owners"]}), 201)
    before = quiescent(db, tenant_id=tenant["id"])
    refused = [
        # An admin binds owner to themselves (or anyone) through a policy...
        admin.put(f"{path}/policies/p-own", json={"role": "owner", "members": ["user:u-admin"]}),
        # ... or joins a group an owner policy binds.
        admin.put(f"{path}/groups/owners", json={"members": ["u-admin"]}),
    ]
    for response in refused:
        assert response.status_code == 403 and response.headers["Content-Type"] == PROBLEM, response.text
        assert response.json()["type"].endswith("role-not-grantable") and response.json()["role"] == "owner"
    assert dump_firestore(db, tenant["id"]) == before
    # Up to their own role an admin grants by every path; an owner grants owner.
    ok(admin.put(f"{path}/policies/p-adm", json={"role": "admin", "members": ["user:u2"]}), 201)
    owner = Api(
        clean.function_url("access_control_api"), tokens("owner@acme.example", tenant["id"], ("owner",))
    )
    ok(owner.put(f"{path}/groups/owners", json={"members": ["u3"]}))


def test_other_tenants_get_404_and_roles_without_access_permissions_get_403(
    clean: Suite, tenant_api: Api, tokens: Callable[..., str], tenant: dict[str, Any], admin: Api
) -> None:
    other = ok(
        tenant_api.post(
            "/tenants", json={"name": "O", "slug": "other", "plan": "free", "admin_email": "a@other.example"}
        ),
        201,
    )
    url = clean.function_url("access_control_api")
    outsider = Api(url, tokens("a@other.example", other["id"], ("admin",)))
    for method, path in [
        ("GET", "/roles"),
        ("PUT", "/roles/editor"),
        ("GET", "/groups/ops"),
        ("DELETE", "/policies/p1"),
        ("POST", "/decisions"),
        ("GET", "/principals/u1"),
    ]:
        response = outsider.request(method, base(tenant) + path, json={"name": "x", "permissions": []})
        assert response.status_code == 404, (method, path, response.text)
    for role in ("viewer", "member"):
        limited = Api(url, tokens(f"{role}@acme.example", tenant["id"], (role,)))
        assert limited.get(f"{base(tenant)}/roles").status_code == 403
        assert limited.put(f"{base(tenant)}/groups/ops", json={"members": []}).status_code == 403
        decide = limited.post(
            f"{base(tenant)}/decisions", json={"principal": {"uid": "u1"}, "permission": "tenants:read"}
        )
        assert decide.status_code == 403
    assert Api(url).get(f"{base(tenant)}/roles").status_code == 401
    assert ok(admin.get(f"{base(tenant)}/roles"))["items"]


# --------------------------------------------------------------------------------------------------------
# Permission Policy Changed
# --------------------------------------------------------------------------------------------------------


def test_every_change_publishes_permission_policy_changed(
    admin: Api, tenant: dict[str, Any], policy_changes: Callable[[int], list[dict[str, Any]]]
) -> None:
    path = base(tenant)
    ok(
        admin.put(
            f"{path}/roles/editor", json={"name": "E", "permissions": ["seats:assign", "tenants:read"]}
        ),
        201,
    )
    ok(
        admin.put(
            f"{path}/roles/editor", json={"name": "E", "permissions": ["seats:release", "tenants:read"]}
        )
    )
    ok(admin.put(f"{path}/policies/p1", json={"role": "editor", "members": ["user:u1"]}), 201)
    ok(admin.put(f"{path}/groups/ops", json={"members": []}), 201)  # bound by no policy: no event
    ok(admin.put(f"{path}/policies/p2", json={"role": "admin", "members": ["group:ops"]}), 201)
    ok(admin.put(f"{path}/groups/ops", json={"members": ["u7"]}))  # p2 now grants admin to u7
    assert admin.delete(f"{path}/policies/p1").status_code == 204

    envelopes = policy_changes(6)
    assert {e["type"] for e in envelopes} == {"com.cmp.permission.policy.changed.v1"}
    assert {e["tenantid"] for e in envelopes} == {tenant["id"]}
    data = [e["data"] for e in envelopes]
    assert [(d["policy_id"], d["role"]) for d in data] == [
        ("role:editor", "editor"),
        ("role:editor", "editor"),
        ("p1", "editor"),
        ("p2", "admin"),
        ("p2", "admin"),
        ("p1", "editor"),
    ]
    assert (data[0]["granted"], data[0]["revoked"]) == (["seats:assign", "tenants:read"], [])
    assert (data[1]["granted"], data[1]["revoked"]) == (["seats:release"], ["seats:assign"])
    assert (data[2]["granted"], data[2]["revoked"]) == (["seats:release", "tenants:read"], [])
    assert (data[3]["granted"], data[3]["revoked"]) == ([], [])  # an empty group: nobody gained anything
    assert "seats:assign" in data[4]["granted"] and set(data[4]["granted"]) <= BUILTIN_ROLES["admin"]
    assert (data[5]["granted"], data[5]["revoked"]) == ([], ["seats:release", "tenants:read"])
    assert [e["subject"] for e in envelopes] == [d["policy_id"] for d in data]
    versions = [d["version"] for d in data]
    assert versions == sorted(versions) and len(set(versions)) == 6
    assert all(e["aggregateversion"] == d["version"] for e, d in zip(envelopes, data, strict=True))
    assert data[0]["actor"] == {"type": "user", "id": data[0]["actor"]["id"], "email": "admin@acme.example"}


# --------------------------------------------------------------------------------------------------------
# Consumed events
# --------------------------------------------------------------------------------------------------------


def test_suspension_by_the_tenant_api_blocks_the_tenant_and_reactivation_unblocks_it(
    tenant_api: Api, as_operator: Api, tenant: dict[str, Any]
) -> None:
    assert decision(as_operator, tenant, "u1", "tenants:read", roles=["admin"])["allowed"]
    ok(tenant_api.post(f"/tenants/{tenant['id']}/suspend", json={"reason": "unpaid invoice"}))

    def blocked() -> dict[str, Any] | None:
        answer = decision(as_operator, tenant, "u1", "tenants:read", roles=["admin"])
        return None if answer["allowed"] else answer

    answer = eventually(blocked, timeout=10, what="the suspension to deny the tenant's principals")
    assert answer["reason"] == "tenant suspended: unpaid invoice"
    ok(tenant_api.post(f"/tenants/{tenant['id']}/reactivate", json={}))
    eventually(
        lambda: decision(as_operator, tenant, "u1", "tenants:read", roles=["admin"])["allowed"],
        timeout=10,
        what="the reactivation to allow them again",
    )
    ok(tenant_api.post(f"/tenants/{tenant['id']}/deactivate", json={"reason": "churned"}))
    eventually(
        lambda: (
            decision(as_operator, tenant, "u1", "tenants:read", roles=["admin"])["reason"]
            == "tenant deactivated: churned"
        ),
        timeout=10,
        what="the deactivation to deny them",
    )


def test_a_stale_tenant_event_changes_nothing(clean: Suite, as_operator: Api, tenant: dict[str, Any]) -> None:
    actor = Actor(type="user", id="op", email=None)
    tid = tenant["id"]
    suspended = TenantSuspended(tenant_id=tid, reason="late", actor=actor)
    reactivated = TenantReactivated(tenant_id=tid, actor=actor)
    assert push(clean, event(reactivated, tenant, tid, source="tenant-api", version=9)) == "processed"
    assert push(clean, event(suspended, tenant, tid, source="tenant-api", version=8)) == "processed"
    assert decision(as_operator, tenant, "u1", "tenants:read", roles=["admin"])["allowed"]
    # Without aggregateversion the event time orders them.
    now = datetime.now(UTC)
    other = {"id": tid}
    push(clean, event(reactivated, other, "elsewhere", source="tenant-api", at=now))
    push(clean, event(suspended, other, "elsewhere", source="tenant-api", at=now - timedelta(minutes=1)))
    assert decision(as_operator, tenant, "u1", "tenants:read", roles=["admin"])["allowed"]
    push(clean, event(suspended, other, "elsewhere", source="tenant-api", at=now + timedelta(seconds=1)))
    assert (
        decision(as_operator, tenant, "u1", "tenants:read", roles=["admin"])["reason"]
        == "tenant suspended: late"
    )


def mfa_failure(user_id: str, at: datetime, locked_out: bool = False) -> MfaChallengeFailed:
    return MfaChallengeFailed(
        user_id=user_id,
        method="totp",
        consecutive_failures=1,
        locked_out=locked_out,
        ip_address="203.0.113.24",
        occurred_at=at,
    )


def test_five_mfa_failures_within_fifteen_minutes_lock_the_principal_and_a_duplicate_changes_nothing(
    clean: Suite, admin: Api, tenant: dict[str, Any], db: Any
) -> None:
    now = datetime.now(UTC)
    old = event(mfa_failure("u1", now - timedelta(minutes=20)), tenant, "u1")
    assert push(clean, old) == "processed"  # outside the window of the ones that follow
    for minutes in (10, 8, 6, 4):
        push(clean, event(mfa_failure("u1", now - timedelta(minutes=minutes)), tenant, "u1"))
    assert decision(admin, tenant, "u1", "tenants:read", roles=["admin"])["allowed"]
    assert ok(admin.get(f"{base(tenant)}/principals/u1"))["mfa_failures"] == 4

    fifth = event(mfa_failure("u1", now), tenant, "u1")
    assert push(clean, fifth) == "processed"
    answer = decision(admin, tenant, "u1", "tenants:read", roles=["admin"])
    assert not answer["allowed"]
    assert answer["reason"].startswith("principal locked until")
    assert answer["reason"].endswith("5 failed MFA challenges within 15 minutes")
    state = ok(admin.get(f"{base(tenant)}/principals/u1"))
    assert datetime.fromisoformat(state["locked_until"]) == now + timedelta(minutes=30)
    assert decision(admin, tenant, "u2", "tenants:read", roles=["admin"])["allowed"]

    before = quiescent(db, tenant_id=tenant["id"])
    assert push(clean, fifth) == "duplicate"
    assert dump_firestore(db, tenant["id"]) == before

    restored = ok(admin.post(f"{base(tenant)}/principals/u1/restore", json={}))
    assert restored["locked_until"] is None and restored["mfa_failures"] == 0
    assert decision(admin, tenant, "u1", "tenants:read", roles=["admin"])["allowed"]


def test_the_tenants_security_policy_sets_the_mfa_threshold(
    clean: Suite, admin: Api, tenant: dict[str, Any]
) -> None:
    policy = SecurityPolicyUpdated(
        policy_id="sec_1",
        version=2,
        changes={
            "mfa_lockout_threshold": FieldChange(before=5, after=2),
            "mfa_required": FieldChange(before=False, after=True),
        },
        effective_at=datetime.now(UTC),
        actor=SECURITY_ACTOR,
    )
    assert push(clean, event(policy, tenant, "sec_1", source="identity")) == "processed"
    older = policy.model_copy(
        update={"version": 1, "changes": {"mfa_lockout_threshold": FieldChange(before=2, after=9)}}
    )
    assert push(clean, event(older, tenant, "sec_1", source="identity")) == "processed"  # stale: ignored
    now = datetime.now(UTC)
    push(clean, event(mfa_failure("u1", now - timedelta(minutes=1)), tenant, "u1"))
    assert decision(admin, tenant, "u1", "tenants:read", roles=["admin"])["allowed"]
    push(clean, event(mfa_failure("u1", now), tenant, "u1"))
    reason = decision(admin, tenant, "u1", "tenants:read", roles=["admin"])["reason"]
    assert reason.endswith("2 failed MFA challenges within 15 minutes")


def test_a_failure_the_identity_platform_reports_as_locked_out_locks(
    clean: Suite, admin: Api, tenant: dict[str, Any]
) -> None:
    push(clean, event(mfa_failure("u1", datetime.now(UTC), locked_out=True), tenant, "u1"))
    assert decision(admin, tenant, "u1", "tenants:read", roles=["admin"])["reason"].startswith(
        "principal locked"
    )


def test_user_access_revoked_removes_the_bindings_marks_the_principal_and_publishes(
    clean: Suite,
    admin: Api,
    tenant: dict[str, Any],
    policy_changes: Callable[[int], list[dict[str, Any]]],
) -> None:
    path = base(tenant)
    ok(admin.put(f"{path}/groups/ops", json={"members": ["u1", "u2"]}), 201)
    ok(admin.put(f"{path}/policies/p1", json={"role": "viewer", "members": ["user:u1", "user:u3"]}), 201)
    ok(admin.put(f"{path}/policies/p2", json={"role": "member", "members": ["group:ops"]}), 201)
    policy_changes(2)
    revoked = UserAccessRevoked(
        user_id="u1", scope="all", reason="compromised", revoked_at=datetime.now(UTC), actor=SECURITY_ACTOR
    )
    assert push(clean, event(revoked, tenant, "u1")) == "processed"

    assert ok(admin.get(f"{path}/policies/p1"))["members"] == ["user:u3"]
    assert ok(admin.get(f"{path}/groups/ops"))["members"] == ["u2"]
    state = ok(admin.get(f"{path}/principals/u1"))
    assert state["revoked"] is True
    assert datetime.fromisoformat(state["tokens_valid_after"]) == revoked.revoked_at
    answer = decision(admin, tenant, "u1", "tenants:read", roles=["admin"])
    assert not answer["allowed"] and answer["reason"] == "principal access revoked"
    assert decision(admin, tenant, "u2", "tenants:read")["allowed"]  # through the group, still

    published = policy_changes(4)[2:]
    assert [(e["data"]["policy_id"], e["data"]["revoked"]) for e in published] == [
        ("p1", sorted(BUILTIN_ROLES["viewer"])),
        ("p2", sorted(BUILTIN_ROLES["member"])),
    ]
    assert published[0]["data"]["actor"]["id"] == "usr_sec"
    assert published[0]["data"]["version"] == published[1]["data"]["version"]

    restored = ok(admin.post(f"{path}/principals/u1/restore", json={}))
    assert restored["revoked"] is False
    assert not decision(admin, tenant, "u1", "tenants:read")["allowed"]  # the bindings stay removed


def test_user_events_record_the_principal_and_deactivation_denies(
    clean: Suite, admin: Api, tenant: dict[str, Any]
) -> None:
    actor = Actor(type="user", id="usr_admin", email="admin@acme.example")
    now = datetime.now(UTC)
    invited = UserInvited(
        user_id="u5",
        invitation_id="inv_1",
        email="u5@acme.example",
        role="member",
        expires_at=now + timedelta(days=7),
        actor=actor,
    )
    push(clean, event(invited, tenant, "u5", at=now - timedelta(minutes=2)))
    state = ok(admin.get(f"{base(tenant)}/principals/u5"))
    assert (state["status"], state["role"], state["email"]) == ("pending", "member", "u5@acme.example")
    # Without roles the decision uses the recorded role.
    assert decision(admin, tenant, "u5", "tenants:read", roles=None)["allowed"]
    assert not decision(admin, tenant, "u5", "seats:assign", roles=None)["allowed"]

    promoted = UserRoleChanged(user_id="u5", previous_role="member", new_role="admin", actor=actor)
    push(clean, event(promoted, tenant, "u5", at=now))
    stale = UserRoleChanged(user_id="u5", previous_role="member", new_role="viewer", actor=actor)
    push(clean, event(stale, tenant, "u5", at=now - timedelta(minutes=1)))
    promoted_state = ok(admin.get(f"{base(tenant)}/principals/u5"))
    assert promoted_state["role"] == "admin"
    # Tokens signed in before the role change are revoked; the older event does not move that back.
    assert datetime.fromisoformat(promoted_state["tokens_valid_after"]) == now
    assert decision(admin, tenant, "u5", "seats:assign", roles=None)["allowed"]

    deactivated = UserDeactivated(
        user_id="u5", email="u5@acme.example", reason="offboarded", sessions_revoked=True, actor=actor
    )
    deactivation = event(deactivated, tenant, "u5")
    push(clean, deactivation)
    state = ok(admin.get(f"{base(tenant)}/principals/u5"))
    assert datetime.fromisoformat(state["tokens_valid_after"]) == deactivation.time  # sessions revoked
    answer = decision(admin, tenant, "u5", "tenants:read", roles=["owner"])
    assert not answer["allowed"] and answer["reason"] == "principal deactivated"
    restored = ok(admin.post(f"{base(tenant)}/principals/u5/restore", json={}))
    assert restored["deactivated"] is True  # deactivation is User Management's to undo


def test_a_critical_role_escalation_alert_locks_its_actor(
    clean: Suite, admin: Api, tenant: dict[str, Any]
) -> None:
    def alert(severity: str, rule_id: str, actor_id: str) -> AuditAlertTriggered:
        return AuditAlertTriggered(
            alert_id=uuid.uuid4().hex,
            rule_id=rule_id,
            rule_name="Role escalation to admin or owner",
            severity=severity,
            summary="user.role.changed by the actor",
            entry_ids=["e1"],
            actor_id=actor_id,
        )

    push(clean, event(alert("high", "role-escalation", "u6"), tenant, "a1", source="audit-api"))
    push(clean, event(alert("critical", "mass-export", "u6"), tenant, "a2", source="audit-api"))
    assert decision(admin, tenant, "u6", "tenants:read", roles=["admin"])["allowed"]
    push(clean, event(alert("critical", "role-escalation", "u6"), tenant, "a3", source="audit-api"))
    answer = decision(admin, tenant, "u6", "tenants:read", roles=["admin"])
    assert not answer["allowed"] and "critical audit alert" in answer["reason"]
