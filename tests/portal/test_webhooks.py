"""An admin adds a webhook endpoint in the portal: the signing secret is shown once, and a delivery of a
subscribed event appears in the endpoint's log."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from emulators.suite import Suite
from shared.webhook_signing import verify
from tests.conftest import Api, Receiver, eventually
from tests.portal.conftest import Workspace, accept_by_api, accept_link, sign_in


def test_an_endpoint_is_created_its_secret_shown_once_and_a_delivery_is_logged(
    clean: Suite, workspace: Workspace, receiver: Receiver, new_page: Callable[..., Any]
) -> None:
    _, token = accept_link(clean, workspace.admin_email)
    accept_by_api(clean, token)
    page = new_page()
    sign_in(page, clean, workspace.slug, workspace.admin_email)
    page.get_by_role("link", name="Webhooks").click()
    page.get_by_label("URL").fill(receiver.url)
    page.get_by_label("Description").fill("CRM sync <script>alert(1)</script>")
    page.get_by_label("Contact Created").check()
    page.get_by_role("button", name="Add endpoint").click()

    secret = page.get_by_test_id("endpoint-secret").locator("code")
    expect(secret).to_have_text(re.compile(r"^whsec_"))
    shown = secret.text_content()
    row = page.get_by_test_id("endpoint").filter(has_text=receiver.url)
    expect(row).to_contain_text("CRM sync <script>alert(1)</script>")  # untrusted text shows literally

    webhooks = Api(clean.function_url("integration_api"), workspace.operator.token)
    endpoints = webhooks.get(f"/tenants/{workspace.id}/webhooks/endpoints").json()["items"]
    assert [e["url"] for e in endpoints] == [receiver.url]
    assert shown and shown not in str(endpoints)  # the API never shows it again

    page.reload()
    expect(page.get_by_test_id("endpoint")).to_have_count(1)
    expect(page.get_by_test_id("endpoint-secret")).to_have_count(0)  # shown once

    customers = Api(clean.function_url("customer_data_api"), workspace.operator.token)
    created = customers.post(
        f"/tenants/{workspace.id}/contacts",
        json={"first_name": "Hook", "last_name": "Test", "emails": ["hook@portal.example"]},
    )
    assert created.status_code == 201, created.text
    page.get_by_test_id("endpoint").get_by_role("button", name="Deliveries").click()
    delivery = page.get_by_test_id("delivery").filter(has_text="Contact Created")

    def delivered() -> bool:
        page.get_by_test_id("endpoint").get_by_role("button", name="Deliveries").click()
        expect(page.locator(".loading")).to_have_count(0)  # the log as the API answered it now
        return bool(delivery.filter(has_text="delivered").count() == 1)

    eventually(delivered, timeout=60, what="the delivery in the log")
    delivery.get_by_role("button", name="Attempts").click()
    expect(delivery.get_by_role("listitem").first).to_contain_text("204")
    assert len(receiver.received()) == 1


def test_an_endpoint_is_edited_its_secret_rotated_failed_deliveries_replayed_and_it_is_disabled(
    clean: Suite, workspace: Workspace, receiver: Receiver, new_page: Callable[..., Any]
) -> None:
    _, token = accept_link(clean, workspace.admin_email)
    accept_by_api(clean, token)
    hooks = Api(clean.function_url("integration_api"), workspace.operator.token)
    base = f"/tenants/{workspace.id}/webhooks"
    receiver.status = 500  # every delivery fails until the receiver is fixed
    created = hooks.post(f"{base}/endpoints", json={"url": receiver.url, "event_types": ["Contact Created"]})
    assert created.status_code == 201, created.text
    endpoint = created.json()
    customers = Api(clean.function_url("customer_data_api"), workspace.operator.token)
    for name in ("Ada", "Grace"):
        contact = customers.post(
            f"/tenants/{workspace.id}/contacts",
            json={"first_name": name, "last_name": "Hook", "emails": [f"{name.lower()}@portal.example"]},
        )
        assert contact.status_code == 201, contact.text

    def failed() -> list[dict[str, Any]] | None:
        answer = hooks.get(f"{base}/endpoints/{endpoint['id']}/messages?status=failed").json()["items"]
        return answer if len(answer) == 2 else None

    eventually(failed, timeout=90, what="two failed deliveries")

    page = new_page()
    sign_in(page, clean, workspace.slug, workspace.admin_email)
    expect(page.get_by_role("heading", level=1)).to_have_text(workspace.tenant["name"])
    page.get_by_role("link", name="Webhooks").click()
    row = page.get_by_test_id("endpoint")
    expect(row).to_contain_text("enabled, failing")

    row.get_by_role("button", name="Edit").click()
    editor = page.get_by_role("form", name="Edit endpoint")
    editor.get_by_label("Description").fill("Billing <i>sync</i>")
    editor.get_by_label("Contact Updated").check()
    editor.get_by_role("button", name="Save endpoint").click()
    expect(row).to_contain_text("Billing <i>sync</i>")
    stored = hooks.get(f"{base}/endpoints/{endpoint['id']}").json()
    assert stored["description"] == "Billing <i>sync</i>"
    assert sorted(stored["event_types"]) == ["Contact Created", "Contact Updated"]

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Rotate secret").click()
    secret = page.get_by_test_id("endpoint-secret").locator("code")
    expect(secret).to_have_text(re.compile(r"^whsec_"))
    rotated = secret.text_content()
    assert rotated and rotated != endpoint["secret"]

    receiver.status = 204
    row.get_by_role("button", name="Deliveries").click()
    deliveries = page.get_by_test_id("delivery")
    expect(deliveries.filter(has_text="failed")).to_have_count(2)
    deliveries.first.get_by_role("button", name="Replay").click()
    expect(page.get_by_role("status").filter(has_text="Replay of Contact Created queued")).to_be_visible()

    def one_delivered() -> bool:
        page.get_by_role("button", name="Refresh deliveries").click()
        expect(page.locator(".loading")).to_have_count(0)
        return bool(deliveries.filter(has_text="delivered").count() == 1)

    eventually(one_delivered, timeout=60, what="the replayed delivery")
    page.get_by_role("button", name="Replay failed").click()
    expect(page.get_by_role("status").filter(has_text="1 failed delivery queued again.")).to_be_visible()

    def all_delivered() -> bool:
        page.get_by_role("button", name="Refresh deliveries").click()
        expect(page.locator(".loading")).to_have_count(0)
        return bool(deliveries.filter(has_text="delivered").count() == 2)

    eventually(all_delivered, timeout=60, what="every delivery replayed")
    headers, body = receiver.received()[-1]
    verify(body, headers, rotated)  # signed with the secret the portal showed

    row.get_by_role("button", name="Disable").click()
    expect(row).to_contain_text("disabled")
    expect(row.get_by_role("button", name="Enable")).to_be_visible()
    assert hooks.get(f"{base}/endpoints/{endpoint['id']}").json()["enabled"] is False
