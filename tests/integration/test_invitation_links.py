"""Every invitation mail carries an accept link into the portal. Its token is minted as the mail is
sent: it is in the mail the relay received and nowhere else (no event, no Firestore document, no log)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from emulators import mail
from emulators.suite import Suite
from tests.conftest import Api, dump_firestore, eventually


def _link(suite: Suite, address: str) -> tuple[str, str]:
    def found() -> tuple[str, str] | None:
        links = [link for m in mail.messages(suite.smtp_url, address) if (link := mail.accept_link(m))]
        return links[-1] if links else None

    result: tuple[str, str] = eventually(found, timeout=60, what=f"an invitation mail to {address}")
    return result


def _nowhere_but_the_mail(suite: Suite, db: Any, token: str) -> None:
    secret = token.rsplit(".", 1)[1]
    assert secret not in repr(dump_firestore(db))  # no outbox event, stored mail or invitation holds it
    for log in suite.log_dir.glob("*.log"):
        assert secret not in log.read_text(errors="replace"), log.name


def test_the_first_admins_invitation_mail_links_to_the_portal_and_its_token_is_kept_nowhere(
    clean: Suite, db: Any, tenant_api: Api, operator: str
) -> None:
    created = tenant_api.post(
        "/tenants",
        json={"name": "Linked", "slug": "linked", "plan": "growth", "admin_email": "first@linked.example"},
    )
    assert created.status_code == 201, created.text
    link, token = _link(clean, "first@linked.example")
    assert link == f"{clean.function_url('portal')}/#/accept?token={token}"
    _nowhere_but_the_mail(clean, db, token)

    users = Api(clean.function_url("user_management_api"))
    accepted = users.post(
        "/invitations/accept", json={"token": token, "password": "a-long-password", "display_name": "First"}
    )
    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["email"], accepted.json()["status"]) == ("first@linked.example", "active")
    again = users.post(
        "/invitations/accept", json={"token": token, "password": "a-long-password", "display_name": "First"}
    )
    assert again.status_code == 409 and again.json()["type"].endswith("invitation-used")


def test_an_invited_users_mail_has_its_own_token_beside_the_answered_one(
    clean: Suite, db: Any, tenant_api: Api, operator: str, tokens: Callable[..., str]
) -> None:
    tenant = tenant_api.post(
        "/tenants", json={"name": "Both", "slug": "both", "plan": "growth", "admin_email": "a@both.example"}
    ).json()
    users = Api(clean.function_url("user_management_api"), operator)
    invited = users.post(
        f"/tenants/{tenant['id']}/invitations", json={"email": "m@both.example", "role": "member"}
    )
    assert invited.status_code == 201, invited.text
    answered = invited.json()["token"]
    _, mailed = _link(clean, "m@both.example")
    assert mailed != answered
    _nowhere_but_the_mail(clean, db, mailed)
    # Either accepts the one invitation (single use): the mailed link here.
    accepted = users.as_(None).post(
        "/invitations/accept", json={"token": mailed, "password": "a-long-password", "display_name": "M"}
    )
    assert accepted.status_code == 200, accepted.text
    used = users.as_(None).post(
        "/invitations/accept", json={"token": answered, "password": "a-long-password", "display_name": "M"}
    )
    assert used.status_code == 409


def test_the_mail_token_route_is_for_platform_services_only(
    clean: Suite, tenant_api: Api, operator: str, tokens: Callable[..., str]
) -> None:
    tenant = tenant_api.post(
        "/tenants", json={"name": "Svc", "slug": "svc-only", "plan": "growth", "admin_email": "a@svc.example"}
    ).json()
    users = Api(clean.function_url("user_management_api"), operator)
    invitation = users.post(
        f"/tenants/{tenant['id']}/invitations", json={"email": "x@svc.example", "role": "member"}
    ).json()["invitation"]
    admin = users.as_(tokens("admin@svc.example", tenant["id"], ("admin",)))
    refused = admin.post(f"/tenants/{tenant['id']}/invitations/{invitation['id']}/mail-token")
    assert refused.status_code == 403


def test_sign_in_lookups_name_the_workspace_and_its_identity_tenant(clean: Suite, tenant_api: Api) -> None:
    tenant = tenant_api.post(
        "/tenants",
        json={"name": "Look Up", "slug": "look-up", "plan": "growth", "admin_email": "a@look.example"},
    ).json()
    anonymous = Api(clean.function_url("tenant_api"))
    workspace = anonymous.get("/sign-in/look-up")
    assert workspace.status_code == 200 and workspace.json() == {"tenant_id": tenant["id"], "name": "Look Up"}
    assert anonymous.get("/sign-in/no-such-workspace").status_code == 404
    assert anonymous.get("/sign-in/NOT%20A%20SLUG").status_code == 404

    identity = Api(clean.function_url("user_management_api"))
    options = eventually(
        lambda: (r := identity.get(f"/tenants/{tenant['id']}/sign-in")).status_code == 200 and r.json(),
        what="the identity tenant onboarding creates",
    )
    assert options["tenant_id"] == tenant["id"] and options["idp_tenant_id"]
    assert identity.get("/tenants/t_unknown/sign-in").status_code == 404
