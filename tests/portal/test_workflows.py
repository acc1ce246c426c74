"""An admin builds a workflow in the portal: the API's validation errors show in the editor's form, a
dry run on past events says what would fire, activation makes it run, its runs list their steps, and
archiving stops it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from emulators.suite import Suite
from tests.conftest import Api, eventually
from tests.portal.conftest import Workspace, signed_in_admin

GREETING = {
    "trigger": "Contact Created",
    "steps": [{"name": "tell", "type": "notify", "message": "{{contact_id}} was added"}],
}


def test_a_workflow_is_validated_dry_run_activated_run_and_archived(
    clean: Suite, workspace: Workspace, new_page: Callable[..., Any]
) -> None:
    customers = Api(clean.function_url("customer_data_api"), workspace.operator.token)
    flows = Api(clean.function_url("workflow_api"), workspace.operator.token)

    def add_contact(name: str) -> str:
        created = customers.post(
            f"/tenants/{workspace.id}/contacts",
            json={"first_name": name, "last_name": "Flow", "emails": [f"{name.lower()}@portal.example"]},
        )
        assert created.status_code == 201, created.text
        return str(created.json()["id"])

    past = add_contact("Past")  # an event the dry run finds

    page = signed_in_admin(clean, workspace, new_page)
    page.get_by_role("link", name="Workflows").click()
    form = page.get_by_role("form", name="New workflow")
    form.get_by_label("Name").fill("Greet <b>new</b> contacts")
    bad = {**GREETING, "steps": [{"name": "tell", "type": "teleport"}]}
    form.get_by_label("Definition (JSON)").fill(json.dumps(bad))
    form.get_by_role("button", name="Create workflow").click()
    expect(page.get_by_role("alert").first).to_contain_text("steps/0")
    form.get_by_label("Definition (JSON)").fill('{"trigger": ')
    form.get_by_role("button", name="Create workflow").click()
    expect(page.get_by_role("alert").first).to_contain_text("not valid JSON")
    names = [w["name"] for w in flows.get(f"/tenants/{workspace.id}/workflows").json()["items"]]
    assert "Greet <b>new</b> contacts" not in names  # nothing was created by the refused tries

    form.get_by_label("Definition (JSON)").fill(json.dumps(GREETING))
    form.get_by_role("button", name="Create workflow").click()
    detail = page.get_by_test_id("workflow-detail")
    expect(detail.get_by_role("heading", name="Greet <b>new</b> contacts")).to_be_visible()
    expect(detail.get_by_test_id("workflow-version")).to_contain_text("draft")

    def would_fire() -> bool:
        detail.get_by_role("button", name="Dry run").click()
        result = page.get_by_test_id("dry-run")
        result.wait_for()
        return past in (result.text_content() or "")

    eventually(would_fire, timeout=60, what="the dry run finding the past contact")
    [workflow] = [
        w
        for w in flows.get(f"/tenants/{workspace.id}/workflows").json()["items"]
        if w["name"] == "Greet <b>new</b> contacts"
    ]
    runs = f"/tenants/{workspace.id}/workflows/{workflow['id']}/runs"
    assert flows.get(runs).json()["items"] == []  # a dry run runs nothing

    detail.get_by_role("button", name="Activate version 1").click()
    expect(detail).to_contain_text("Status active, version 1 active")
    add_contact("Fresh")
    eventually(
        lambda: [r for r in flows.get(runs).json()["items"] if r["status"] == "succeeded"],
        timeout=60,
        what="the workflow's run",
    )
    page.get_by_role("button", name="Greet <b>new</b> contacts").click()
    run = page.get_by_test_id("workflow-run")
    expect(run.first).to_be_visible()
    run.first.locator("summary").click()
    expect(run.first.get_by_test_id("run-step")).to_contain_text(["tell: done"])

    page.once("dialog", lambda dialog: dialog.accept())
    detail.get_by_role("button", name="Archive").click()
    expect(detail).to_contain_text("Status inactive")
    assert flows.get(f"/tenants/{workspace.id}/workflows/{workflow['id']}").json()["status"] == "inactive"
