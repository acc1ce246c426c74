"""An admin imports contacts from a CSV file in the portal: progress to done, the contacts listed (a
hostile name shown literally), one opened, then the import reverted."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from emulators.suite import Suite
from tests.conftest import Api
from tests.portal.conftest import Workspace, accept_by_api, accept_link, sign_in

ROWS = 120


def test_a_csv_import_of_contacts_shows_progress_to_done_then_reverts(
    clean: Suite, workspace: Workspace, new_page: Callable[..., Any], tmp_path: Path
) -> None:
    _, token = accept_link(clean, workspace.admin_email)
    accept_by_api(clean, token)
    csv = tmp_path / "contacts.csv"
    lines = [
        "first_name,last_name,email,job_title",
        "<img src=x onerror=alert(1)>,Hostile,hostile@import.example,CTO",
    ]
    lines += [f"Row{i},Imported,row{i}@import.example,Buyer" for i in range(ROWS - 1)]
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")

    page = new_page()
    sign_in(page, clean, workspace.slug, workspace.admin_email)
    page.get_by_role("link", name="Customers").click()
    expect(page.get_by_role("heading", name="Import contacts from CSV")).to_be_visible()
    page.get_by_label("CSV file").set_input_files(str(csv))
    page.get_by_role("button", name="Import").click()

    status = page.get_by_test_id("import-status")
    expect(status).to_contain_text(f"completed: {ROWS} of {ROWS} rows ({ROWS} created")
    expect(page.get_by_role("progressbar", name="Import progress")).to_have_attribute("value", str(ROWS))
    hostile = page.get_by_test_id("contact-row").filter(has_text="hostile@import.example")
    expect(hostile).to_contain_text("<img src=x onerror=alert(1)> Hostile")
    expect(page.locator("main img")).to_have_count(0)
    hostile.get_by_role("button").click()
    expect(page.get_by_test_id("contact-detail")).to_contain_text("CTO")

    customers = Api(clean.function_url("customer_data_api"), workspace.operator.token)
    jobs = customers.get(f"/tenants/{workspace.id}/customer-imports").json()["items"]
    assert [(j["status"], j["created"]) for j in jobs] == [("completed", ROWS)]

    page.get_by_role("button", name="Revert this import").click()
    expect(status).to_contain_text(f"reverted: {ROWS} rows reverted")
    expect(hostile).to_have_count(0)
    job = customers.get(f"/tenants/{workspace.id}/customer-imports/{jobs[0]['id']}").json()
    assert (job["status"], job["reverted"]) == ("reverted", ROWS)
    left = customers.get(f"/tenants/{workspace.id}/contacts", params={"limit": 200}).json()["items"]
    assert [c for c in left if any(e.endswith("@import.example") for e in c["emails"])] == []
