"""An admin adds a webhook endpoint in the portal: the signing secret is shown once, and a delivery of a
subscribed event appears in the endpoint's log."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from emulators.suite import Suite
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
        return bool(delivery.filter(has_text="delivered").count() == 1)

    eventually(delivered, timeout=60, what="the delivery in the log")
    delivery.get_by_role("button", name="Attempts").click()
    expect(delivery.get_by_role("listitem").first).to_contain_text("204")
    assert len(receiver.received()) == 1
