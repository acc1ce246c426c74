"""What a person does in the portal, in a real browser, and what the APIs hold afterwards."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from emulators import identity
from emulators.suite import Suite
from tests.conftest import Api, eventually
from tests.portal.conftest import (
    ARTIFACTS,
    OPERATOR_EMAIL,
    PASSWORD,
    Workspace,
    accept_by_api,
    accept_link,
    portal_url,
    sign_in,
)


def test_first_admin_accepts_the_mailed_link_and_lands_on_the_dashboard(
    clean: Suite, workspace: Workspace, new_page: Callable[..., Any]
) -> None:
    link, _ = accept_link(clean, workspace.admin_email)
    assert link.startswith(portal_url(clean) + "#/accept?token=")

    page = new_page()
    page.goto(link)
    page.get_by_label("Your name").fill("Ada <b>Admin</b>")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat the password").fill(PASSWORD)
    page.get_by_role("button", name="Set password and sign in").click()

    expect(page.get_by_role("heading", level=1)).to_have_text(workspace.tenant["name"])
    expect(page.get_by_test_id("seats")).to_contain_text("1 of")
    expect(page.get_by_role("link", name="Users")).to_be_visible()
    assert "token=" not in page.url  # the token left the address bar

    users = workspace.users.get(f"/tenants/{workspace.id}/users").json()["items"]
    admin = next(u for u in users if u["email"] == workspace.admin_email)
    assert (admin["status"], admin["role"], admin["display_name"]) == ("active", "admin", "Ada <b>Admin</b>")
    invitations = workspace.users.get(f"/tenants/{workspace.id}/invitations").json()["items"]
    assert [i["status"] for i in invitations] == ["accepted"]

    # The same link again: the invitation says plainly that it was used.
    again = new_page(width=375)
    again.goto(link)
    again.get_by_label("Your name").fill("Someone")
    again.get_by_label("Password", exact=True).fill(PASSWORD)
    again.get_by_label("Repeat the password").fill(PASSWORD)
    again.get_by_role("button", name="Set password and sign in").click()
    expect(again.get_by_role("alert")).to_contain_text("already accepted")


def test_a_revoked_invitation_says_so(
    clean: Suite, workspace: Workspace, new_page: Callable[..., Any]
) -> None:
    invited = workspace.users.post(
        f"/tenants/{workspace.id}/invitations", json={"email": "late@portal.example", "role": "member"}
    )
    assert invited.status_code == 201, invited.text
    link, _ = accept_link(clean, "late@portal.example")
    revoked = workspace.users.post(
        f"/tenants/{workspace.id}/invitations/{invited.json()['invitation']['id']}/revoke"
    )
    assert revoked.status_code == 200, revoked.text

    page = new_page()
    page.goto(link)
    page.get_by_label("Your name").fill("Late Comer")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat the password").fill(PASSWORD)
    page.get_by_role("button", name="Set password and sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("was revoked")
    users = workspace.users.get(f"/tenants/{workspace.id}/users").json()["items"]
    assert "late@portal.example" not in [u["email"] for u in users]


def test_a_notification_arrives_and_the_badge_changes_then_all_are_read(
    clean: Suite, workspace: Workspace, new_page: Callable[..., Any]
) -> None:
    _, token = accept_link(clean, workspace.admin_email)
    accept_by_api(clean, token)
    page = new_page()
    calls: list[str] = []
    api_prefix = clean.function_url("")
    page.on(
        "request",
        lambda request: (
            calls.append(request.url)
            if request.url.startswith(api_prefix) and "/portal/" not in request.url
            else None
        ),
    )
    sign_in(page, clean, workspace.slug, workspace.admin_email)
    expect(page.get_by_role("heading", level=1)).to_have_text(workspace.tenant["name"])
    expect(page.get_by_role("heading", name="Onboarding")).to_be_visible()
    expect(page.get_by_role("heading", name="Latest alerts")).to_be_visible()
    badge = page.get_by_test_id("unread-badge")
    first_screen = sorted({c for c in calls if "/sign-in" not in c})  # a badge refresh may repeat one
    admin = Api(
        clean.function_url("notification_api"),
        identity.sign_in_tenant(workspace.admin_email, PASSWORD, _idp(workspace)),
    )
    inbox = f"/tenants/{workspace.id}/notifications/inbox"

    def shown() -> int:
        return int(badge.text_content() or 0) if badge.is_visible() else 0

    def unread() -> int:
        return int(admin.get(f"{inbox}/unread-count").json()["unread"])

    def invitation_item() -> dict[str, Any] | None:
        items = admin.get(inbox, params={"limit": 50}).json()["items"]
        return next(
            (
                i
                for i in items
                if i["event_name"] == "User Invited" and "new.member@portal.example" in i["body"]
            ),
            None,
        )

    before = shown()
    # Someone is invited: the admins get an in-app notification; the open page's badge shows it. The
    # API's count only grows meanwhile, so the badge equal to it now has refreshed since the item came.
    invited = workspace.users.post(
        f"/tenants/{workspace.id}/invitations", json={"email": "new.member@portal.example", "role": "member"}
    )
    assert invited.status_code == 201, invited.text
    item = eventually(invitation_item, what="the admin's notification of the invitation")
    assert item["read"] is False
    eventually(
        lambda: shown() == unread() > before, timeout=30, what="the badge to count the new notification"
    )

    page.get_by_role("link", name=re.compile("^Notifications")).click()
    notice = page.get_by_test_id("notification").filter(has_text="You are invited to join as member")
    expect(notice.filter(has_text="new.member@portal.example")).to_be_visible()
    page.get_by_role("button", name="Mark all read").click()
    expect(page.get_by_role("status").filter(has_text="Everything is read.")).to_be_visible()
    read = next(i for i in admin.get(inbox, params={"limit": 50}).json()["items"] if i["id"] == item["id"])
    assert read["read"] is True
    eventually(lambda: shown() == unread(), timeout=30, what="the badge to follow the inbox")

    # Preferences: e-mails about customers off; the API keeps the choice.
    page.get_by_label("E-mail notifications about customers").uncheck()
    page.get_by_role("button", name="Save preferences").click()
    expect(page.get_by_role("status").filter(has_text="Preferences saved.")).to_be_visible()
    saved = admin.get(f"/tenants/{workspace.id}/notifications/preferences").json()
    assert saved["categories"]["customers"] == {"in_app": True, "email": False}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "first-screen-api-calls.json").write_text(json.dumps(first_screen, indent=2))
    assert 1 <= len(first_screen) <= 6, first_screen


def test_operator_suspends_the_tenant_and_the_admin_sees_the_banner_and_is_refused(
    clean: Suite, workspace: Workspace, operator_token: str, new_page: Callable[..., Any]
) -> None:
    _, token = accept_link(clean, workspace.admin_email)
    accept_by_api(clean, token)
    admin = new_page()
    sign_in(admin, clean, workspace.slug, workspace.admin_email)
    expect(admin.get_by_test_id("tenant-status")).to_have_text("active")

    operator = new_page()
    sign_in(operator, clean, "", OPERATOR_EMAIL)
    expect(operator.get_by_role("heading", name="Tenants")).to_be_visible()
    row = operator.get_by_test_id(f"tenant-{workspace.slug}")
    row.get_by_label(f"Reason to suspend {workspace.slug}").fill("unpaid invoices")
    row.get_by_role("button", name="Suspend").click()
    expect(row.get_by_test_id("status")).to_contain_text("suspended")
    assert workspace.operator.get(f"/tenants/{workspace.id}").json()["status"] == "suspended"

    # The APIs refuse the admin once the Access Control API has applied Tenant Suspended (an event):
    # wait for that, then the page shows the refusal's reason.
    admin_token = identity.sign_in_tenant(workspace.admin_email, PASSWORD, _idp(workspace))
    tenants = Api(clean.function_url("tenant_api"), admin_token)
    refused = eventually(
        lambda: (r := tenants.get(f"/tenants/{workspace.id}")).status_code == 403 and r.json(),
        what="the admin to be refused",
    )
    assert "suspended" in refused["reason"]
    admin.reload()
    expect(admin.get_by_test_id("tenant-banner")).to_contain_text("suspended: unpaid invoices")


def _idp(workspace: Workspace) -> str:
    body = Api(workspace.users.base).get(f"/tenants/{workspace.id}/sign-in").json()
    return str(body["idp_tenant_id"])
