"""The User Management API over HTTP, through functions-framework, on the real emulators: the Auth
emulator's Identity Platform tenants, the Tenant API's seats, Pub/Sub, and our Cloud Tasks emulator."""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import requests
from google.cloud import pubsub_v1

from emulators.suite import Suite
from shared.catalog import load_catalog
from shared.contracts import Actor
from shared.contracts.payloads import PermissionPolicyChanged
from shared.events import new_event
from tests.conftest import (
    Api,
    bad_requests_change_nothing,
    dump_firestore,
    eventually,
    quiescent,
    send,
    store_tenant,
)

PROBLEM = "application/problem+json"
PASSWORD = "correct-horse-battery"
CATALOG = load_catalog()


# --- helpers -----------------------------------------------------------------------------------------
def create_tenant(tenant_api: Api, slug: str, plan: str = "growth") -> dict[str, Any]:
    # Stored without Tenant Created: onboarding would take the first admin's seat and invite them, and
    # these tests count seats and users from zero (onboarding has its own tests).
    tenant = store_tenant(slug, plan)
    assert tenant_api.get(f"/tenants/{tenant['id']}").status_code == 200
    return tenant


def invite(
    api: Api, tenant_id: str, email: str, role: str = "member", **extra: Any
) -> tuple[dict[str, Any], str]:
    response = api.post(f"/tenants/{tenant_id}/invitations", json={"email": email, "role": role, **extra})
    assert response.status_code == 201, response.text
    body = response.json()
    return body["invitation"], body["token"]


def accept(api: Api, token: str, name: str = "New User", password: str = PASSWORD) -> requests.Response:
    return api.as_(None).post(
        "/invitations/accept", json={"token": token, "password": password, "display_name": name}
    )


def sign_in(email: str, idp_tenant_id: str, password: str = PASSWORD) -> requests.Response:
    """Exactly as a client app signs in to the tenant's Identity Platform tenant."""
    host = os.environ["FIREBASE_AUTH_EMULATOR_HOST"]
    return requests.post(
        f"http://{host}/identitytoolkit.googleapis.com/v1/accounts:signInWithPassword?key=any",
        json={"email": email, "password": password, "returnSecureToken": True, "tenantId": idp_tenant_id},
        timeout=10,
    )


def id_token(email: str, idp_tenant_id: str, password: str = PASSWORD) -> str:
    response = sign_in(email, idp_tenant_id, password)
    assert response.status_code == 200, response.text
    token: str = response.json()["idToken"]
    return token


def claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def onboard(api: Api, tenant_id: str, email: str, role: str = "member") -> tuple[dict[str, Any], str]:
    """Invite and accept; returns the active user and an ID token of theirs."""
    _, token = invite(api, tenant_id, email, role)
    accepted = accept(api, token)
    assert accepted.status_code == 200, accepted.text
    user: dict[str, Any] = accepted.json()
    return user, id_token(email, user["idp_tenant_id"])


def seats_used(tenant_api: Api, tenant_id: str) -> int:
    return int(tenant_api.get(f"/tenants/{tenant_id}").json()["seats_used"])


class Subscription:
    """A pull subscription of our own on an event's topic, created before the action."""

    def __init__(self, suite: Suite, event_name: str) -> None:
        self.client = pubsub_v1.SubscriberClient()
        topic = self.client.topic_path(suite.project, CATALOG.event(event_name).topic)
        self.path = self.client.subscription_path(suite.project, f"test-um-{uuid.uuid4().hex[:10]}")
        self.client.create_subscription(request={"name": self.path, "topic": topic})
        self.seen: list[dict[str, Any]] = []

    def received(self, tenant_id: str) -> list[dict[str, Any]]:
        response = self.client.pull(request={"subscription": self.path, "max_messages": 100}, timeout=5)
        if response.received_messages:
            self.seen += [json.loads(m.message.data) for m in response.received_messages]
            self.client.acknowledge(
                request={"subscription": self.path, "ack_ids": [m.ack_id for m in response.received_messages]}
            )
        return [e for e in self.seen if e["tenantid"] == tenant_id]

    def close(self) -> None:
        self.client.delete_subscription(request={"subscription": self.path})


@pytest.fixture
def subscribe(clean: Suite) -> Iterator[Callable[[str], Subscription]]:
    made: list[Subscription] = []

    def make(event_name: str) -> Subscription:
        made.append(Subscription(clean, event_name))
        return made[-1]

    yield make
    for subscription in made:
        subscription.close()


@pytest.fixture
def users_api(clean: Suite) -> Api:
    return Api(clean.function_url("user_management_api"))


@pytest.fixture
def acme(tenant_api: Api, users_api: Api, tokens: Callable[..., str]) -> tuple[dict[str, Any], Api]:
    """A growth-plan tenant and its admin's client of the User Management API."""
    tenant = create_tenant(tenant_api, f"acme-{uuid.uuid4().hex[:6]}")
    admin = users_api.as_(tokens(f"admin@{tenant['slug']}.example", tenant["id"], ("admin",)))
    return tenant, admin


# --- invitation, acceptance, sign-in -----------------------------------------------------------------
def test_invite_accept_sign_in_and_the_tenant_token_is_verified_by_the_kernel(
    acme: tuple[dict[str, Any], Api],
    tenant_api: Api,
    db: Any,
    clean: Suite,
    subscribe: Callable[[str], Subscription],
) -> None:
    tenant, admin = acme
    invited_events = subscribe("User Invited")
    response = admin.post(
        f"/tenants/{tenant['id']}/invitations", json={"email": "Jonas@Acme.example", "role": "member"}
    )
    assert response.status_code == 201, response.text
    invitation, token = response.json()["invitation"], response.json()["token"]
    assert response.headers["Location"] == f"/tenants/{tenant['id']}/invitations/{invitation['id']}"
    assert token.startswith(f"{tenant['id']}.{invitation['id']}.")
    assert invitation["status"] == "pending" and invitation["email"] == "jonas@acme.example"
    assert "token_hash" not in invitation and "token" not in invitation

    # The token is never stored: only its hash.
    stored = db.document(f"tenants/{tenant['id']}/invitations/{invitation['id']}").get().to_dict()
    assert stored["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in json.dumps(dump_firestore(db), default=str)

    users = admin.get(f"/tenants/{tenant['id']}/users").json()["items"]
    assert [(u["email"], u["status"], u["role"]) for u in users] == [
        ("jonas@acme.example", "invited", "member")
    ]
    event = eventually(lambda: invited_events.received(tenant["id"]), what="User Invited")[0]
    assert event["type"] == "com.cmp.user.invited.v1" and event["subject"] == invitation["user_id"]
    assert event["data"]["invitation_id"] == invitation["id"] and event["data"]["role"] == "member"
    assert event["data"]["actor"]["email"] == f"admin@{tenant['slug']}.example"

    accepted = accept(admin, token, name="Jonas Berg")
    assert accepted.status_code == 200, accepted.text
    user = accepted.json()
    assert user["status"] == "active" and user["display_name"] == "Jonas Berg" and user["idp_tenant_id"]
    assert seats_used(tenant_api, tenant["id"]) == 1
    again = accept(admin, token)
    assert again.status_code == 409 and again.headers["Content-Type"] == PROBLEM
    assert again.json()["type"].endswith("/invitation-used")

    # A token of the tenant's Identity Platform tenant, verified tenant-aware by the kernel.
    user_token = id_token("jonas@acme.example", user["idp_tenant_id"])
    claims = claims_of(user_token)
    assert claims["firebase"]["tenant"] == user["idp_tenant_id"]
    assert claims["tenant_id"] == tenant["id"] and claims["roles"] == ["member"]
    assert tenant_api.as_(user_token).get(f"/tenants/{tenant['id']}").status_code == 200
    me = admin.as_(user_token).get(f"/tenants/{tenant['id']}/users/{user['id']}")
    assert me.status_code == 200 and me.headers["ETag"] == f'"{user["version"]}"'
    assert (
        admin.as_(user_token)
        .post(f"/tenants/{tenant['id']}/invitations", json={"email": "x@acme.example", "role": "viewer"})
        .status_code
        == 403
    )

    # Neither the token nor the password was stored or logged.
    everything = json.dumps(dump_firestore(db), default=str)
    assert token not in everything and PASSWORD not in everything
    log = clean.log_tail("functions host", 2_000_000)
    assert token not in log and PASSWORD not in log
    assert token.rsplit(".", 1)[1] not in log


def test_identity_tenant_is_created_once(acme: tuple[dict[str, Any], Api]) -> None:
    tenant, admin = acme
    assert admin.get(f"/tenants/{tenant['id']}/identity").status_code == 404
    first = admin.post(f"/tenants/{tenant['id']}/identity", json={})
    assert first.status_code == 201, first.text
    second = admin.post(f"/tenants/{tenant['id']}/identity", json={})
    assert second.status_code == 200 and second.json() == first.json()
    assert first.json()["display_name"].startswith("cmp-") and len(first.json()["display_name"]) <= 20
    assert admin.get(f"/tenants/{tenant['id']}/identity").json() == first.json()
    invitation, _ = invite(admin, tenant["id"], "solo@acme.example")
    user = admin.get(f"/tenants/{tenant['id']}/users/{invitation['user_id']}").json()
    assert user["idp_tenant_id"] == first.json()["idp_tenant_id"]


def test_resend_revoke_expiry_and_listing(acme: tuple[dict[str, Any], Api], db: Any) -> None:
    tenant, admin = acme
    base = f"/tenants/{tenant['id']}/invitations"
    first, old_token = invite(admin, tenant["id"], "resend@acme.example")
    resent = admin.post(f"{base}/{first['id']}/resend", json={})
    assert resent.status_code == 200, resent.text
    new_token = resent.json()["token"]
    assert new_token != old_token and resent.json()["invitation"]["sent_count"] == 2
    assert accept(admin, old_token).status_code == 404  # the old token no longer works

    revoked_inv, revoked_token = invite(admin, tenant["id"], "revoke@acme.example")
    assert admin.post(f"{base}/{revoked_inv['id']}/revoke", json={}).json()["status"] == "revoked"
    gone = accept(admin, revoked_token)
    assert gone.status_code == 410 and gone.json()["type"].endswith("/invitation-revoked")
    assert admin.get(f"/tenants/{tenant['id']}/users/{revoked_inv['user_id']}").status_code == 404
    again = admin.post(f"{base}/{revoked_inv['id']}/revoke", json={})
    assert again.status_code == 409 and again.json()["current_status"] == "revoked"

    late_inv, late_token = invite(admin, tenant["id"], "late@acme.example", expires_in_hours=1)
    db.document(f"tenants/{tenant['id']}/invitations/{late_inv['id']}").update(
        {"expires_at": datetime.now(UTC) - timedelta(minutes=1)}
    )
    expired = accept(admin, late_token)
    assert expired.status_code == 410 and expired.json()["type"].endswith("/invitation-expired")
    assert (
        db.document(f"tenants/{tenant['id']}/invitations/{late_inv['id']}").get().get("status") == "expired"
    )

    def listed(status: str) -> list[str]:
        return sorted(i["email"] for i in admin.get(base, params={"status": status}).json()["items"])

    assert listed("pending") == ["resend@acme.example"]
    assert listed("revoked") == ["revoke@acme.example"]
    assert listed("expired") == ["late@acme.example"]
    assert len(admin.get(base).json()["items"]) == 3

    revived = admin.post(f"{base}/{late_inv['id']}/resend", json={})
    assert revived.json()["invitation"]["status"] == "pending"
    assert accept(admin, revived.json()["token"]).status_code == 200
    assert listed("accepted") == ["late@acme.example"]
    # Tokens are answered once and never replayed from the idempotency store.
    keyed = admin.post(f"{base}/{first['id']}/resend", json={}, headers={"Idempotency-Key": "k1"})
    assert keyed.status_code == 400 and keyed.json()["type"].endswith("/idempotency-key-not-supported")
    keyed_accept = admin.as_(None).post(
        "/invitations/accept",
        json={"token": new_token, "password": PASSWORD, "display_name": "R"},
        headers={"Idempotency-Key": "k2"},
    )
    assert keyed_accept.status_code == 400
    assert admin.get(f"{base}/{first['id']}").json()["status"] == "pending"
    assert admin.get(f"{base}/__inv__").status_code == 404
    assert admin.get(f"/tenants/{tenant['id']}/users/__x__").status_code == 404


def test_invitation_conflicts_and_role_rules(
    acme: tuple[dict[str, Any], Api], tokens: Callable[..., str], users_api: Api
) -> None:
    tenant, admin = acme
    invite(admin, tenant["id"], "dup@acme.example")
    duplicate = admin.post(
        f"/tenants/{tenant['id']}/invitations", json={"email": "DUP@acme.example", "role": "viewer"}
    )
    assert duplicate.status_code == 409 and duplicate.json()["current_status"] == "invited"
    owner_invite = admin.post(
        f"/tenants/{tenant['id']}/invitations", json={"email": "boss@acme.example", "role": "owner"}
    )
    assert owner_invite.status_code == 403 and owner_invite.json()["type"].endswith("/role-not-grantable")
    owner = users_api.as_(tokens(f"owner@{tenant['slug']}.example", tenant["id"], ("owner",)))
    boss, _ = invite(owner, tenant["id"], "boss@acme.example", "owner")
    # An admin cannot change an owner's role, nor make someone an owner.
    assert (
        admin.patch(f"/tenants/{tenant['id']}/users/{boss['user_id']}", json={"role": "member"}).status_code
        == 403
    )
    member = users_api.as_(tokens(f"member@{tenant['slug']}.example", tenant["id"], ("member",)))
    assert (
        member.post(
            f"/tenants/{tenant['id']}/invitations", json={"email": "m@acme.example", "role": "viewer"}
        ).status_code
        == 403
    )
    viewer = users_api.as_(tokens(f"viewer@{tenant['slug']}.example", tenant["id"], ("viewer",)))
    assert viewer.get(f"/tenants/{tenant['id']}/users").status_code == 200
    assert viewer.get(f"/tenants/{tenant['id']}/invitations").status_code == 403


# --- role change, deactivation, reactivation ---------------------------------------------------------
def test_a_role_change_revokes_older_tokens_and_a_new_sign_in_carries_the_new_role(
    acme: tuple[dict[str, Any], Api], tenant_api: Api, subscribe: Callable[[str], Subscription]
) -> None:
    tenant, admin = acme
    changed = subscribe("User Role Changed")
    user, old_token = onboard(admin, tenant["id"], "viewer@acme.example", "viewer")
    time.sleep(1.1)  # revocation has one-second resolution: the old token must predate it
    path = f"/tenants/{tenant['id']}/users/{user['id']}"
    stale = admin.patch(path, json={"role": "member"}, headers={"If-Match": '"99"'})
    assert stale.status_code == 412 and stale.json()["current_version"] == user["version"]
    response = admin.patch(path, json={"role": "member"}, headers={"If-Match": f'"{user["version"]}"'})
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "member" and response.headers["ETag"] == f'"{user["version"] + 1}"'

    refused = tenant_api.as_(old_token).get(f"/tenants/{tenant['id']}")
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    fresh = id_token("viewer@acme.example", user["idp_tenant_id"])
    assert claims_of(fresh)["roles"] == ["member"]
    assert tenant_api.as_(fresh).get(f"/tenants/{tenant['id']}").status_code == 200

    event = eventually(lambda: changed.received(tenant["id"]), what="User Role Changed")[0]
    assert event["subject"] == user["id"]
    assert (event["data"]["previous_role"], event["data"]["new_role"]) == ("viewer", "member")
    # The same role again changes nothing and raises nothing.
    assert admin.patch(path, json={"role": "member"}).json()["version"] == user["version"] + 1


def test_deactivation_locks_the_user_out_and_releases_the_seat_and_reactivation_takes_one(
    acme: tuple[dict[str, Any], Api], tenant_api: Api, subscribe: Callable[[str], Subscription]
) -> None:
    tenant, admin = acme
    deactivated_events = subscribe("User Deactivated")
    user, user_token = onboard(admin, tenant["id"], "leaver@acme.example")
    assert seats_used(tenant_api, tenant["id"]) == 1
    time.sleep(1.1)
    path = f"/tenants/{tenant['id']}/users/{user['id']}"
    response = admin.post(f"{path}/deactivate", json={"reason": "offboarded"})
    assert response.status_code == 200, response.text
    assert (
        response.json()["status"] == "deactivated" and response.json()["deactivation_reason"] == "offboarded"
    )
    refused = sign_in("leaver@acme.example", user["idp_tenant_id"])
    assert refused.status_code == 400 and "USER_DISABLED" in refused.text
    assert tenant_api.as_(user_token).get(f"/tenants/{tenant['id']}").status_code == 401
    assert seats_used(tenant_api, tenant["id"]) == 0
    event = eventually(lambda: deactivated_events.received(tenant["id"]), what="User Deactivated")[0]
    assert event["data"] == {
        "user_id": user["id"],
        "email": "leaver@acme.example",
        "reason": "offboarded",
        "sessions_revoked": True,
        "actor": event["data"]["actor"],
    }
    again = admin.post(f"{path}/deactivate", json={})
    assert again.status_code == 409 and again.json()["current_status"] == "deactivated"
    assert admin.patch(path, json={"role": "admin"}).json()["current_status"] == "deactivated"

    back = admin.post(f"{path}/reactivate", json={})
    assert back.status_code == 200 and back.json()["status"] == "active"
    assert seats_used(tenant_api, tenant["id"]) == 1
    assert sign_in("leaver@acme.example", user["idp_tenant_id"]).status_code == 200
    assert admin.post(f"{path}/reactivate", json={}).json()["current_status"] == "active"


def test_a_reactivated_user_can_use_the_apis_again(
    acme: tuple[dict[str, Any], Api], tenant_api: Api, clean: Suite
) -> None:
    tenant, admin = acme
    user, _ = onboard(admin, tenant["id"], "returner@acme.example")
    path = f"/tenants/{tenant['id']}/users/{user['id']}"
    assert admin.post(f"{path}/deactivate", json={}).status_code == 200
    access = Api(clean.function_url("access_control_api"), admin.token)
    eventually(
        lambda: (
            access.get(f"/tenants/{tenant['id']}/access/principals/{user['id']}").json().get("deactivated")
        ),
        what="the Access Control API to learn of the deactivation",
    )
    assert admin.post(f"{path}/reactivate", json={}).status_code == 200

    # Access Control lets a deactivated principal back in once it has signed in after the deactivation
    # (a disabled identity cannot sign in). Sign-in times have one-second resolution: a sign-in within
    # the second of the deactivation is still refused, so poll with fresh sign-ins.
    def signed_in_again() -> bool:
        fresh = id_token("returner@acme.example", user["idp_tenant_id"])
        return tenant_api.as_(fresh).get(f"/tenants/{tenant['id']}").status_code == 200

    eventually(signed_in_again, what="a fresh sign-in of the reactivated user to be let in")


@pytest.mark.usefixtures("paused_sealing")
def test_a_free_plan_refuses_the_fourth_acceptance_and_nothing_else_changes(
    tenant_api: Api, users_api: Api, tokens: Callable[..., str], db: Any
) -> None:
    tenant = create_tenant(tenant_api, "tiny", plan="free")
    admin = users_api.as_(tokens("admin@tiny.example", tenant["id"], ("admin",)))
    invited = [invite(admin, tenant["id"], f"user{i}@tiny.example") for i in range(4)]
    for _, token in invited[:3]:
        assert accept(admin, token).status_code == 200
    before = quiescent(db)
    refused = accept(admin, invited[3][1])
    assert refused.status_code == 409, refused.text
    assert refused.headers["Content-Type"] == PROBLEM
    assert refused.json()["type"].endswith("/seat-limit-reached") and refused.json()["seat_limit"] == 3
    assert dump_firestore(db) == before
    idp = admin.get(f"/tenants/{tenant['id']}/identity").json()["idp_tenant_id"]
    assert "EMAIL_NOT_FOUND" in sign_in("user3@tiny.example", idp).text
    assert seats_used(tenant_api, tenant["id"]) == 3
    # Once a seat frees up, the same invitation goes through.
    leaver = admin.get(f"/tenants/{tenant['id']}/users", params={"q": "user0"}).json()["items"][0]
    assert admin.post(f"/tenants/{tenant['id']}/users/{leaver['id']}/deactivate", json={}).status_code == 200
    assert accept(admin, invited[3][1]).status_code == 200
    # And reactivating the leaver now finds no seat, and changes nothing.
    full = admin.post(f"/tenants/{tenant['id']}/users/{leaver['id']}/reactivate", json={})
    assert full.status_code == 409 and full.json()["type"].endswith("/seat-limit-reached")
    assert admin.get(f"/tenants/{tenant['id']}/users/{leaver['id']}").json()["status"] == "deactivated"


@pytest.mark.usefixtures("paused_sealing")
def test_when_the_identity_cannot_be_created_the_seat_is_released_and_the_answer_is_503(
    acme: tuple[dict[str, Any], Api], tenant_api: Api, db: Any
) -> None:
    from firebase_admin import tenant_mgt

    from shared.clients import firebase_app

    tenant, admin = acme
    invitation, token = invite(admin, tenant["id"], "taken@acme.example")
    idp_tenant_id = admin.get(f"/tenants/{tenant['id']}/identity").json()["idp_tenant_id"]
    # Someone else already holds the email in the identity tenant: creating our user fails.
    idp = tenant_mgt.auth_for_tenant(idp_tenant_id, app=firebase_app())
    squatter = idp.create_user(email="taken@acme.example", password="squatter-password")
    before = quiescent(db)
    failed = accept(admin, token)
    assert failed.status_code == 503, failed.text
    assert failed.headers["Content-Type"] == PROBLEM and failed.headers["Retry-After"] == "1"
    assert failed.json()["type"].endswith("/identity-unavailable")
    assert seats_used(tenant_api, tenant["id"]) == 0  # the seat taken first was given back
    after = dump_firestore(db)
    tenant_doc = f"tenants/{tenant['id']}"  # the Tenant API counted the seat in and out (its version moved)
    assert {k: v for k, v in after.items() if k != tenant_doc} == {
        k: v for k, v in before.items() if k != tenant_doc
    }
    # Fixed, the same token goes through.
    idp.delete_user(squatter.uid)
    assert accept(admin, token).status_code == 200
    assert seats_used(tenant_api, tenant["id"]) == 1
    assert admin.get(f"/tenants/{tenant['id']}/users/{invitation['user_id']}").json()["status"] == "active"


def test_listing_users_filters_and_pages(acme: tuple[dict[str, Any], Api]) -> None:
    tenant, admin = acme
    for i in range(5):
        invite(admin, tenant["id"], f"ann{i}@acme.example", "viewer" if i % 2 else "member")
    invite(admin, tenant["id"], "bob@acme.example", "admin")
    base = f"/tenants/{tenant['id']}/users"
    seen: list[str] = []
    cursor = None
    while True:
        page = admin.get(
            base, params={"q": "ann", "limit": 2, **({"cursor": cursor} if cursor else {})}
        ).json()
        seen += [u["email"] for u in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"ann{i}@acme.example" for i in range(5)]
    assert [u["email"] for u in admin.get(base, params={"role": "admin"}).json()["items"]] == [
        "bob@acme.example"
    ]
    assert len(admin.get(base, params={"status": "invited", "role": "viewer"}).json()["items"]) == 2
    assert admin.get(base, params={"status": "active"}).json()["items"] == []


def test_a_tenant_never_sees_another_tenants_users(
    tenant_api: Api, users_api: Api, tokens: Callable[..., str]
) -> None:
    a, b = create_tenant(tenant_api, "alpha"), create_tenant(tenant_api, "bravo")
    admin_a = users_api.as_(tokens("admin@alpha.example", a["id"], ("admin",)))
    admin_b = users_api.as_(tokens("admin@bravo.example", b["id"], ("admin",)))
    invitation, token = invite(admin_b, b["id"], "secret@bravo.example")
    job = admin_b.post(
        f"/tenants/{b['id']}/user-imports",
        data="email,role\nx@bravo.example,viewer\n",
        headers={"Content-Type": "text/csv"},
    ).json()
    for method, path in [
        ("GET", f"/tenants/{b['id']}/users"),
        ("GET", f"/tenants/{b['id']}/users/{invitation['user_id']}"),
        ("PATCH", f"/tenants/{b['id']}/users/{invitation['user_id']}"),
        ("POST", f"/tenants/{b['id']}/users/{invitation['user_id']}/deactivate"),
        ("GET", f"/tenants/{b['id']}/invitations"),
        ("POST", f"/tenants/{b['id']}/invitations"),
        ("POST", f"/tenants/{b['id']}/invitations/{invitation['id']}/revoke"),
        ("POST", f"/tenants/{b['id']}/identity"),
        ("GET", f"/tenants/{b['id']}/user-imports/{job['id']}"),
        ("GET", f"/tenants/{b['id']}/user-imports/{job['id']}/rows"),
    ]:
        response = admin_a.request(method, path, json={"role": "admin", "email": "e@x.example"})
        assert response.status_code == 404, (method, path, response.text)
        assert response.headers["Content-Type"] == PROBLEM
    # An id of the other tenant under one's own tenant is simply not found.
    assert admin_a.get(f"/tenants/{a['id']}/users/{invitation['user_id']}").status_code == 404
    assert accept(admin_a, token).status_code == 200  # the token, not the caller, names the tenant


BAD_INPUT: list[tuple[str, str, Any, int]] = [
    ("POST", "/tenants/{tid}/invitations", {"email": "nope", "role": "member"}, 422),
    ("POST", "/tenants/{tid}/invitations", {"email": "a@b.example", "role": "superuser"}, 422),
    ("POST", "/tenants/{tid}/invitations", {"email": "a@b.example", "role": "member", "x": 1}, 422),
    (
        "POST",
        "/tenants/{tid}/invitations",
        {"email": "a@b.example", "role": "member", "expires_in_hours": 0},
        422,
    ),
    (
        "POST",
        "/tenants/{tid}/invitations",
        {"email": "a@b.example", "role": "member", "expires_in_hours": 721},
        422,
    ),
    ("POST", "/tenants/{tid}/invitations", "not json", 400),
    ("POST", "/invitations/accept", {"token": "{token}", "password": "short", "display_name": "A"}, 422),
    ("POST", "/invitations/accept", {"token": "{token}", "password": PASSWORD, "display_name": ""}, 422),
    ("POST", "/invitations/accept", {"password": PASSWORD, "display_name": "A"}, 422),
    ("POST", "/invitations/accept", {"token": "garbage", "password": PASSWORD, "display_name": "A"}, 404),
    (
        "POST",
        "/invitations/accept",
        {"token": "{forged}", "password": PASSWORD, "display_name": "A"},
        404,
    ),
    ("PATCH", "/tenants/{tid}/users/{uid}", {"role": "root"}, 422),
    ("PATCH", "/tenants/{tid}/users/{uid}", {}, 422),
    ("PATCH", "/tenants/{tid}/users/u_missing", {"role": "viewer"}, 404),
    ("POST", "/tenants/{tid}/users/{uid}/deactivate", {"reason": "bored"}, 422),
    ("POST", "/tenants/{tid}/users/{uid}/deactivate", {}, 409),
    ("POST", "/tenants/{tid}/users/{uid}/reactivate", {}, 409),
    ("POST", "/tenants/{tid}/invitations/inv_missing/resend", {}, 404),
    ("GET", "/tenants/{tid}/users?limit=0", None, 422),
    ("GET", "/tenants/{tid}/users?status=sleeping", None, 422),
    ("GET", "/tenants/{tid}/users?cursor=%%%", None, 400),
    ("GET", "/tenants/{tid}/invitations?status=lost", None, 422),
    ("POST", "/tenants/{tid}/user-imports", ("application/json", "[]"), 415),
    ("POST", "/tenants/{tid}/user-imports", ("text/csv", ""), 422),
    ("POST", "/tenants/{tid}/user-imports", ("text/csv", "mail,role\na@b.example,viewer\n"), 422),
    ("POST", "/tenants/{tid}/user-imports", ("text/csv", "email,role\n"), 422),
    ("POST", "/tenants/{tid}/user-imports", ("application/x-ndjson", "\n\n"), 422),
    ("POST", "/tenants/{tid}/user-imports", ("text/csv", "too-many"), 413),
    ("GET", "/tenants/{tid}/user-imports/imp_missing", None, 404),
    ("PUT", "/tenants/{tid}/users/{uid}", {"role": "viewer"}, 405),
]


@pytest.mark.usefixtures("paused_sealing")
def test_bad_input_gets_a_problem_and_changes_nothing(
    acme: tuple[dict[str, Any], Api], db: Any, subtests: pytest.Subtests
) -> None:
    tenant, admin = acme
    invitation, token = invite(admin, tenant["id"], "someone@acme.example")
    forged = token.rsplit(".", 1)[0] + ".forged-secret"

    def request(method: str, path: str, body: Any) -> requests.Response:
        url = path.replace("{tid}", tenant["id"]).replace("{uid}", invitation["user_id"])
        if isinstance(body, tuple) and body[1] == "too-many":
            body = (body[0], "email,role\n" + "".join(f"u{i}@big.example,viewer\n" for i in range(10_001)))
        elif isinstance(body, dict):
            body = json.loads(json.dumps(body).replace("{token}", token).replace("{forged}", forged))
        return send(admin, method, url, body)

    def keeps_the_token_secret(response: requests.Response) -> None:
        assert token not in response.text

    # The Audit API records the invitation asynchronously: it settles before the first request.
    bad_requests_change_nothing(db, subtests, BAD_INPUT, request, check=keeps_the_token_secret)


# --- bulk import -------------------------------------------------------------------------------------
def import_csv(admin: Api, tenant_id: str, text: str) -> dict[str, Any]:
    response = admin.post(
        f"/tenants/{tenant_id}/user-imports", data=text.encode(), headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 202, response.text
    assert response.headers["Location"] == f"/tenants/{tenant_id}/user-imports/{response.json()['id']}"
    body: dict[str, Any] = response.json()
    return body


def finished(admin: Api, tenant_id: str, job_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job: dict[str, Any] = admin.get(f"/tenants/{tenant_id}/user-imports/{job_id}").json()
        return job if job["status"] == "completed" else None

    result: dict[str, Any] = eventually(done, timeout=60, what=f"import {job_id} to complete")
    return result


def all_rows(admin: Api, tenant_id: str, job_id: str, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {"limit": 20, **params, **({"cursor": cursor} if cursor else {})}
        page = admin.get(f"/tenants/{tenant_id}/user-imports/{job_id}/rows", params=query).json()
        rows += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return rows


def test_a_csv_import_with_invalid_and_duplicate_rows_then_run_again_creates_nothing(
    acme: tuple[dict[str, Any], Api], subscribe: Callable[[str], Subscription]
) -> None:
    tenant, admin = acme
    completed_events = subscribe("Bulk Import Completed")
    invite(admin, tenant["id"], "already0@acme.example")
    invite(admin, tenant["id"], "already1@acme.example")
    lines = ["email,role,display_name"]
    lines += [f"person{i}@acme.example,{('member', 'viewer', 'admin')[i % 3]},Person {i}" for i in range(40)]
    lines += ["already0@acme.example,member,", "ALREADY1@acme.example,viewer,"]  # 2 exist
    lines += [f"person{i}@acme.example,member,Again" for i in (1, 2, 3, 4)]  # 4 duplicates
    lines += [
        "not-an-email,member,Bad",
        "bad.role@acme.example,superuser,Bad",
        "boss@acme.example,owner,Admins cannot grant owner",
        "short@acme.example,member",
    ]  # 4 invalid
    text = "\n".join(lines) + "\n"
    job = import_csv(admin, tenant["id"], text)
    assert job["total"] == 50 and job["status"] in ("queued", "running", "completed")

    done = finished(admin, tenant["id"], job["id"])
    counts = {k: done[k] for k in ("status", "total", "processed", "created", "skipped", "failed")}
    assert counts == {
        "status": "completed",
        "total": 50,
        "processed": 50,
        "created": 40,
        "skipped": 6,
        "failed": 4,
    }
    rows = all_rows(admin, tenant["id"], job["id"])
    assert [r["row"] for r in rows] == list(range(1, 51))
    reasons = {r["row"]: (r["status"], r["reason"]) for r in rows}
    assert reasons[1] == ("created", None) and rows[0]["user_id"] and rows[0]["invitation_id"]
    assert reasons[41] == ("skipped", "exists") and reasons[42] == ("skipped", "exists")
    assert reasons[43] == ("skipped", "duplicate of row 2")
    assert reasons[47][0] == "failed" and reasons[47][1].startswith("invalid email")
    assert reasons[48][0] == "failed" and "role" in reasons[48][1]
    assert reasons[49] == ("failed", "invalid role: your role cannot grant owner")
    assert reasons[50][0] == "failed" and "fields" in reasons[50][1]
    failed = all_rows(admin, tenant["id"], job["id"], status="failed")
    assert [r["row"] for r in failed] == [47, 48, 49, 50]

    users = admin.get(f"/tenants/{tenant['id']}/users", params={"q": "person", "limit": 200}).json()["items"]
    assert len(users) == 40 and {u["status"] for u in users} == {"invited"}
    assert next(u for u in users if u["email"] == "person0@acme.example")["display_name"] == "Person 0"
    pending = admin.get(f"/tenants/{tenant['id']}/invitations", params={"limit": 200}).json()["items"]
    imported = next(i for i in pending if i["email"] == "person5@acme.example")
    assert imported["sent_count"] == 0  # no token until the invitation is (re)sent
    resent = admin.post(f"/tenants/{tenant['id']}/invitations/{imported['id']}/resend", json={})
    assert resent.status_code == 200 and resent.json()["invitation"]["sent_count"] == 1

    event = eventually(lambda: completed_events.received(tenant["id"]), what="Bulk Import Completed")[0]
    data = event["data"]
    assert event["subject"] == job["id"] and data["import_id"] == job["id"]
    assert (data["source"], data["mode"], data["status"]) == ("csv", "create_only", "partially_failed")
    assert (data["total_rows"], data["created"], data["updated"], data["skipped"], data["failed"]) == (
        50,
        40,
        0,
        6,
        4,
    )
    assert data["error_report_url"].endswith(f"/user-imports/{job['id']}/rows?status=failed")

    again = finished(admin, tenant["id"], import_csv(admin, tenant["id"], text)["id"])
    assert (again["created"], again["skipped"], again["failed"]) == (0, 46, 4)
    assert len(admin.get(f"/tenants/{tenant['id']}/users", params={"limit": 200}).json()["items"]) == 42
    listed = admin.get(f"/tenants/{tenant['id']}/user-imports").json()["items"]
    assert len(listed) == 2


def test_an_ndjson_import_in_several_chunks_respects_the_seat_limit(
    tenant_api: Api, users_api: Api, tokens: Callable[..., str]
) -> None:
    tenant = create_tenant(tenant_api, "chunky", plan="starter")  # 10 seats
    admin = users_api.as_(tokens("admin@chunky.example", tenant["id"], ("admin",)))
    onboard(admin, tenant["id"], "first@chunky.example")  # 1 seat taken
    invite(admin, tenant["id"], "second@chunky.example")  # 1 seat promised
    lines = [json.dumps({"email": f"n{i:03d}@chunky.example", "role": "viewer"}) for i in range(230)]
    lines[150] = "{not json"
    response = admin.post(
        f"/tenants/{tenant['id']}/user-imports",
        data="\n".join(lines).encode(),
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 202, response.text
    done = finished(admin, tenant["id"], response.json()["id"])
    assert (done["total"], done["processed"], done["created"], done["skipped"], done["failed"]) == (
        230,
        230,
        8,
        221,
        1,
    )
    rows = all_rows(admin, tenant["id"], done["id"], status="skipped")
    assert {r["reason"] for r in rows} == {"no seat"}
    created = all_rows(admin, tenant["id"], done["id"], status="created")
    assert [r["row"] for r in created] == list(range(1, 9))


# --- Permission Policy Changed -----------------------------------------------------------------------
def test_a_permission_policy_change_resyncs_drifted_claims_and_revokes_their_tokens(
    acme: tuple[dict[str, Any], Api], tenant_api: Api, clean: Suite
) -> None:
    from firebase_admin import tenant_mgt

    from shared.clients import firebase_app

    tenant, admin = acme
    drifted, drifted_token = onboard(admin, tenant["id"], "drift@acme.example")
    steady, steady_token = onboard(admin, tenant["id"], "steady@acme.example")
    idp = tenant_mgt.auth_for_tenant(drifted["idp_tenant_id"], app=firebase_app())
    idp.set_custom_user_claims(drifted["id"], {"tenant_id": tenant["id"], "roles": ["admin"]})
    time.sleep(1.1)
    payload = PermissionPolicyChanged(
        policy_id="pol_1",
        role="member",
        version=2,
        granted=["contacts:export"],
        revoked=[],
        actor=Actor(type="user", id="admin-1"),
    )
    envelope = new_event(
        payload, tenant_id=tenant["id"], subject="pol_1", source_api_slug="access-control-api"
    )
    publisher = pubsub_v1.PublisherClient()
    data, attributes = envelope.to_message()
    topic = publisher.topic_path(clean.project, CATALOG.event("Permission Policy Changed").topic)
    publisher.publish(topic, data, **attributes).result(timeout=30)

    eventually(
        lambda: idp.get_user(drifted["id"]).custom_claims == {"tenant_id": tenant["id"], "roles": ["member"]},
        what="the drifted claims to be recomputed",
    )
    eventually(
        lambda: tenant_api.as_(drifted_token).get(f"/tenants/{tenant['id']}").status_code == 401,
        what="the drifted user's old token to be revoked",
    )
    assert tenant_api.as_(steady_token).get(f"/tenants/{tenant['id']}").status_code == 200
    assert steady["role"] == "member"
