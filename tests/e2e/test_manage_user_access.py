"""The Manage User Access process end to end, exactly as in production: an admin invites, the user
accepts and signs in to the tenant's Identity Platform tenant, the admin changes the role (the user's
next sign-in carries the new permissions) and deactivates the user (locked out); every step is in the
audit trail, through Pub/Sub push to the Audit API."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import requests

from tests.conftest import Api, eventually

PASSWORD = "a-long-enough-password"


def sign_in(email: str, idp_tenant_id: str) -> requests.Response:
    host = os.environ["FIREBASE_AUTH_EMULATOR_HOST"]
    return requests.post(
        f"http://{host}/identitytoolkit.googleapis.com/v1/accounts:signInWithPassword?key=any",
        json={"email": email, "password": PASSWORD, "returnSecureToken": True, "tenantId": idp_tenant_id},
        timeout=10,
    )


def entries(audit: Api, tenant_id: str, action: str) -> list[dict[str, Any]]:
    response = audit.get(f"/tenants/{tenant_id}/audit/entries", params={"action": action})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_manage_user_access_from_invitation_to_lockout_is_audited(
    tenant_api: Api, audit_api: Api, tokens: Callable[..., str], clean: Any
) -> None:
    tenant = tenant_api.post(
        "/tenants",
        json={"name": "Globex", "slug": "globex", "plan": "starter", "admin_email": "admin@globex.example"},
    ).json()
    tid = tenant["id"]
    # Onboarding (started by Tenant Created) takes the first admin's seat: let it finish first.
    onboarding = Api(clean.function_url("onboarding_api"), tenant_api.token)
    eventually(
        lambda: onboarding.get(f"/tenants/{tid}/onboarding").json().get("status") == "succeeded",
        timeout=120,  # the first test of a run: every function's first request is a cold start
        what="the tenant's onboarding",
    )
    seats_onboarded = tenant_api.get(f"/tenants/{tid}").json()["seats_used"]
    admin_token = tokens("admin@globex.example", tid, ("admin",))
    admin = Api(clean.function_url("user_management_api"), admin_token)
    audit = audit_api.as_(admin_token)

    # 1. The admin invites; the token goes to the invitee (the Notification API mails it).
    invited = admin.post(
        f"/tenants/{tid}/invitations", json={"email": "lena@globex.example", "role": "member"}
    )
    assert invited.status_code == 201, invited.text
    token = invited.json()["token"]

    # 2. The invitee accepts, signs in to the tenant's identity tenant, and works as a member.
    accepted = admin.as_(None).post(
        "/invitations/accept", json={"token": token, "password": PASSWORD, "display_name": "Lena Fischer"}
    )
    assert accepted.status_code == 200, accepted.text
    user = accepted.json()
    first = sign_in("lena@globex.example", user["idp_tenant_id"])
    assert first.status_code == 200, first.text
    member_token = first.json()["idToken"]
    assert tenant_api.as_(member_token).get(f"/tenants/{tid}").status_code == 200
    assert admin.as_(member_token).get(f"/tenants/{tid}/users").status_code == 200
    assert audit.as_(member_token).get(f"/tenants/{tid}/audit/entries").status_code == 403
    # Lena's seat, beside the first admin's that onboarding took.
    seats = tenant_api.as_(member_token).get(f"/tenants/{tid}/seats").json()["items"]
    assert user["id"] in [s["user_id"] for s in seats] and len(seats) == seats_onboarded + 1

    # 3. The admin makes her an admin: her old token stops working, her next sign-in carries the role.
    time.sleep(1.1)  # revocation has one-second resolution
    promoted = admin.patch(f"/tenants/{tid}/users/{user['id']}", json={"role": "admin"})
    assert promoted.status_code == 200, promoted.text
    # Her token is in use (looked up already): User Role Changed reaches the access state, which refuses it.
    eventually(
        lambda: audit.as_(member_token).get(f"/tenants/{tid}/audit/entries").status_code == 401,
        what="the member token to be refused as revoked",
    )
    admin_now = sign_in("lena@globex.example", user["idp_tenant_id"]).json()["idToken"]
    assert audit.as_(admin_now).get(f"/tenants/{tid}/audit/entries").status_code == 200

    # 4. The admin deactivates her: locked out, token refused, seat released.
    time.sleep(1.1)
    deactivated = admin.post(f"/tenants/{tid}/users/{user['id']}/deactivate", json={"reason": "offboarded"})
    assert deactivated.status_code == 200, deactivated.text
    eventually(
        lambda: audit.as_(admin_now).get(f"/tenants/{tid}/audit/entries").status_code == 401,
        what="the deactivated user's token to be refused as revoked",
    )
    locked = sign_in("lena@globex.example", user["idp_tenant_id"])
    assert locked.status_code == 400 and "USER_DISABLED" in locked.text
    assert tenant_api.get(f"/tenants/{tid}").json()["seats_used"] == seats_onboarded

    # 5. Every step on Lena is in the audit trail, attributed to the admin (onboarding's invitation of
    # the first admin is there too, by the platform).
    def about_lena(action: str) -> list[dict[str, Any]]:
        return [e for e in entries(audit, tid, action) if e["target"] == {"type": "User", "id": user["id"]}]

    for action in ("user.invited", "user.role.changed", "user.deactivated"):

        def recorded(action: str = action) -> list[dict[str, Any]]:
            return about_lena(action)

        found = eventually(recorded, what=f"the {action} audit entry")
        assert len(found) == 1
        assert found[0]["actor"]["email"] == "admin@globex.example"
        assert found[0]["outcome"] == "success"
    changed = about_lena("user.role.changed")[0]["details"]
    assert (changed["previous_role"], changed["new_role"]) == ("member", "admin")
    assert about_lena("user.deactivated")[0]["details"]["reason"] == "offboarded"
    assert about_lena("user.invited")[0]["details"]["email"] == "lena@globex.example"
