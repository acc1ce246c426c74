"""An admin invites a member from the portal; the member accepts the mailed link and sees only what a
member may do. The audit trail's chain verifies as intact."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from emulators.suite import Suite
from tests.conftest import Api
from tests.portal.conftest import PASSWORD, Workspace, accept_by_api, accept_link, sign_in

# What a member's (and a viewer's) menu offers; the Notifications entry carries the unread badge.
MEMBER_MENU = ["Dashboard", re.compile(r"^Notifications\s*[0-9]*$"), "Users", "Customers", "Health"]


def test_admin_invites_a_member_who_sees_a_restricted_menu_then_changes_their_role_and_deactivates_them(
    clean: Suite, workspace: Workspace, new_page: Callable[..., Any]
) -> None:
    _, token = accept_link(clean, workspace.admin_email)
    accept_by_api(clean, token)
    admin = new_page()
    sign_in(admin, clean, workspace.slug, workspace.admin_email)
    admin.get_by_role("link", name="Users").click()
    form = admin.locator("form", has=admin.get_by_role("heading", name="Invite a user"))
    form.get_by_label("E-mail").fill("member@portal.example")
    form.get_by_label("Role").select_option("member")
    form.get_by_role("button", name="Send invitation").click()
    expect(
        admin.get_by_role("status").filter(has_text="Invitation sent to member@portal.example")
    ).to_be_visible()
    expect(admin.get_by_test_id("user-row").filter(has_text="member@portal.example")).to_contain_text(
        "invited"
    )

    link, _ = accept_link(clean, "member@portal.example")
    member = new_page(width=375)
    member.goto(link)
    member.get_by_label("Your name").fill("<img src=x onerror=alert(1)>")
    member.get_by_label("Password", exact=True).fill(PASSWORD)
    member.get_by_label("Repeat the password").fill(PASSWORD)
    member.get_by_role("button", name="Set password and sign in").click()

    nav = member.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Dashboard")).to_be_visible()
    expect(nav.get_by_role("link")).to_have_text(MEMBER_MENU)
    member.get_by_role("link", name="Users").click()
    own = member.get_by_test_id("user-row").filter(has_text="member@portal.example")
    expect(own).to_contain_text("<img src=x onerror=alert(1)>")  # untrusted text shows literally
    expect(member.locator("main img")).to_have_count(0)
    expect(member.get_by_role("heading", name="Invite a user")).to_have_count(0)
    expect(member.get_by_role("button", name="Change role")).to_have_count(0)
    expect(member.get_by_role("button", name="Deactivate")).to_have_count(0)
    # A page the member may not see is not shown, even by its address: they land on the dashboard.
    member.goto(member.url.split("#")[0] + "#/audit")
    expect(member.get_by_role("heading", level=1)).to_have_text(workspace.tenant["name"])
    member.get_by_role("link", name="Users").click()
    expect(own).to_be_visible()

    users = workspace.users.get(f"/tenants/{workspace.id}/users").json()["items"]
    mia = next(u for u in users if u["email"] == "member@portal.example")
    assert (mia["role"], mia["status"], mia["display_name"]) == (
        "member",
        "active",
        "<img src=x onerror=alert(1)>",
    )

    # The admin makes the member a viewer, then deactivates them.
    admin.get_by_role("button", name="Search").click()
    row = admin.get_by_test_id("user-row").filter(has_text="member@portal.example")
    expect(row).to_contain_text("active")
    row.get_by_label("Role of member@portal.example").select_option("viewer")
    row.get_by_role("button", name="Change role").click()
    expect(
        admin.get_by_role("status").filter(has_text="member@portal.example is now viewer.")
    ).to_be_visible()
    assert workspace.users.get(f"/tenants/{workspace.id}/users/{mia['id']}").json()["role"] == "viewer"
    admin.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Deactivate").click()
    expect(
        admin.get_by_role("status").filter(has_text="member@portal.example is deactivated.")
    ).to_be_visible()
    expect(row.get_by_role("button", name="Reactivate")).to_be_visible()
    assert workspace.users.get(f"/tenants/{workspace.id}/users/{mia['id']}").json()["status"] == "deactivated"

    # The member's open page (the Users page): its next call, the badge's refresh, answers 401 (the
    # identity is disabled), which takes them to sign-in, where they are told the account is disabled.
    expect(member.get_by_role("status").filter(has_text="Your session ended")).to_be_visible()
    sign_in(member, clean, workspace.slug, "member@portal.example", reload=False)
    expect(member.get_by_role("alert")).to_contain_text("This account is disabled")
    # Reactivated, they sign in again and come back to the page they were on, as a viewer.
    row.get_by_role("button", name="Reactivate").click()
    expect(
        admin.get_by_role("status").filter(has_text="member@portal.example is active again.")
    ).to_be_visible()
    member.get_by_role("button", name="Sign in").click()
    expect(member.get_by_role("heading", level=1)).to_have_text("Users")
    expect(member.get_by_role("navigation", name="Main").get_by_role("link")).to_have_text(MEMBER_MENU)
    assert workspace.users.get(f"/tenants/{workspace.id}/users/{mia['id']}").json()["status"] == "active"


def test_the_audit_chain_verifies_intact(
    clean: Suite, workspace: Workspace, new_page: Callable[..., Any]
) -> None:
    _, token = accept_link(clean, workspace.admin_email)
    accept_by_api(clean, token)
    page = new_page()
    sign_in(page, clean, workspace.slug, workspace.admin_email)
    page.get_by_role("link", name="Audit").click()
    page.get_by_role("button", name="Verify chain").click()
    expect(page.get_by_test_id("verify-result")).to_contain_text("Intact:")
    audit = Api(clean.function_url("audit_api"), workspace.operator.token)
    report = audit.get(f"/tenants/{workspace.id}/audit/verify")
    assert report.status_code == 200 and report.json()["ok"] is True
