"""An admin reads the audit trail in the portal: filters it, pages through it, opens an entry, downloads
the NDJSON export, adds an alert rule and sees the alert it raises."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from emulators.suite import Suite
from tests.conftest import Api, eventually
from tests.portal.conftest import Workspace, signed_in_admin


def test_trail_filters_pages_detail_export_and_an_alert_rule_that_raises_an_alert(
    clean: Suite, workspace: Workspace, new_page: Callable[..., Any]
) -> None:
    audit = Api(clean.function_url("audit_api"), workspace.operator.token)
    trail = f"/tenants/{workspace.id}/audit"
    # 26 invitations: more than one page of 25 entries, and a rule added next that the 27th will match.
    for i in range(26):
        invited = workspace.users.post(
            f"/tenants/{workspace.id}/invitations", json={"email": f"u{i}@portal.example", "role": "member"}
        )
        assert invited.status_code == 201, invited.text

    def recorded() -> list[dict[str, Any]] | None:
        answer = audit.get(f"{trail}/entries?action=user.invited&limit=100")
        items: list[dict[str, Any]] = answer.json()["items"]
        return items if len(items) >= 27 else None  # the first admin's invitation and the 26

    invitations = eventually(recorded, timeout=90, what="the invitations in the trail")

    page = signed_in_admin(clean, workspace, new_page)
    page.get_by_role("link", name="Audit").click()
    filters = page.get_by_role("form", name="Filter the trail")
    filters.get_by_label("Action").select_option("user.invited")
    filters.get_by_role("button", name="Apply filters").click()
    rows = page.get_by_test_id("audit-entry")
    expect(rows).to_have_count(25)
    expect(rows.first).to_contain_text("user.invited")
    page.get_by_role("button", name="Next page").click()
    expect(rows).to_have_count(len(invitations) - 25)
    page.get_by_role("button", name="Previous page").click()
    expect(rows).to_have_count(25)

    rows.first.get_by_role("button", name="user.invited").click()
    detail = page.get_by_test_id("entry-detail")
    expect(detail).to_contain_text(invitations[0]["id"])
    expect(detail).to_contain_text(invitations[0]["target"]["id"])

    with page.expect_download() as waiting:
        page.get_by_role("button", name="Export NDJSON").click()
    with open(waiting.value.path()) as file:
        exported = [json.loads(line) for line in file if line.strip()]
    assert {e["action"] for e in exported} == {"user.invited"}
    assert len(exported) == len(invitations)
    done = f"Exported {len(invitations)} entries."
    expect(page.get_by_role("status").filter(has_text=done)).to_be_visible()

    # A rule of the tenant's own: inviting an admin raises a critical alert.
    form = page.get_by_role("form", name="Add or replace an alert rule")
    form.get_by_label("Rule id").fill("admin-invited")
    form.get_by_label("Name").fill("Admin invited <b>now</b>")
    form.get_by_label("Severity").select_option("critical")
    form.get_by_label("Action").select_option("user.invited")
    form.get_by_label("Only when the detail").fill("role")
    form.get_by_label("Is one of").fill("admin, owner")
    form.get_by_role("button", name="Save rule").click()
    expect(page.get_by_role("status").filter(has_text="Rule Admin invited <b>now</b> saved.")).to_be_visible()
    rule_rows = page.get_by_test_id("alert-rule")
    expect(rule_rows).to_have_count(1)  # the tenant's own rules replace the built-in ones
    expect(rule_rows.first).to_contain_text("Admin invited <b>now</b>")
    stored = audit.get(f"{trail}/alert-rules/admin-invited")
    assert stored.status_code == 200, stored.text
    assert stored.json()["condition"] == {"path": "role", "in": ["admin", "owner"]}

    invited = workspace.users.post(
        f"/tenants/{workspace.id}/invitations", json={"email": "boss@portal.example", "role": "admin"}
    )
    assert invited.status_code == 201, invited.text
    eventually(lambda: audit.get(f"{trail}/alerts").json()["items"], timeout=90, what="the alert")
    page.reload()
    alert = page.get_by_test_id("audit-alert")
    expect(alert).to_have_count(1)
    expect(alert).to_contain_text("critical")
    expect(alert).to_contain_text("Admin invited <b>now</b>")


def test_a_refused_rule_shows_the_problem_the_api_answered(
    clean: Suite, workspace: Workspace, new_page: Callable[..., Any]
) -> None:
    page = signed_in_admin(clean, workspace, new_page, width=375)
    page.get_by_role("link", name="Audit").click()
    form = page.get_by_role("form", name="Add or replace an alert rule")
    form.get_by_label("Rule id").fill("burst")
    form.get_by_label("Name").fill("Burst")
    form.get_by_label("Kind").select_option("threshold")
    form.get_by_label("Only when the detail").fill("not a path")
    form.get_by_role("button", name="Save rule").click()
    expect(page.get_by_role("alert").first).to_contain_text("Validation failed")
    expect(page.get_by_role("alert").first).to_contain_text("condition/path")
    audit = Api(clean.function_url("audit_api"), workspace.operator.token)
    assert audit.get(f"/tenants/{workspace.id}/audit/alert-rules/burst").status_code == 404
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
