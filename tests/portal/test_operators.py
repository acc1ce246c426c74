"""An operator creates a tenant in the portal (its first admin is invited by mail), then deactivates
another with a reason and follows its offboarding run step by step to the proof of erasure; and handles
the Operations API's dead letters (re-drive) and quarantined messages (discard with a reason)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from playwright.sync_api import expect

from emulators.suite import Suite
from shared.intake import QUARANTINE
from tests.conftest import Api, eventually
from tests.integration.test_operations_api import parked_by_audit
from tests.portal.conftest import OPERATOR_EMAIL, Workspace, accept_link, sign_in


def test_operator_creates_a_tenant_then_deactivates_one_and_follows_its_offboarding(
    clean: Suite, workspace: Workspace, new_page: Callable[..., Any]
) -> None:
    operator = new_page()
    sign_in(operator, clean, "", OPERATOR_EMAIL)
    expect(operator.get_by_role("heading", name="Tenants", level=1)).to_be_visible()

    slug = f"made-{secrets.token_hex(3)}"
    form = operator.get_by_role("form", name="Create a tenant")
    form.get_by_label("Name").fill("Made <here>")
    form.get_by_label("Slug").fill(slug)
    form.get_by_label("Plan").select_option("starter")
    form.get_by_label("First admin's e-mail").fill(f"first@{slug}.example")
    form.get_by_role("button", name="Create tenant").click()
    expect(operator.get_by_role("status").filter(has_text="Made <here> created")).to_be_visible()
    expect(operator.get_by_test_id(f"tenant-{slug}")).to_contain_text("starter")
    made = [t for t in workspace.operator.get("/tenants?limit=100").json()["items"] if t["slug"] == slug]
    assert [(t["name"], t["plan"]) for t in made] == [("Made <here>", "starter")]
    accept_link(clean, f"first@{slug}.example")  # the first admin's invitation was mailed

    row = operator.get_by_test_id(f"tenant-{workspace.slug}")
    row.get_by_label(f"Reason to deactivate {workspace.slug}").fill("contract ended")
    operator.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Deactivate").click()
    expect(operator.get_by_role("status").filter(has_text="offboarding started")).to_be_visible()
    expect(row.get_by_test_id("status")).to_contain_text("deactivated")
    assert workspace.operator.get(f"/tenants/{workspace.id}").json()["status_reason"] == "contract ended"

    offboarding = operator.get_by_test_id("offboarding")

    def proven() -> bool:
        operator.get_by_role("button", name="Refresh offboarding").click()
        expect(operator.locator(".loading")).to_have_count(0)
        run = offboarding.get_by_test_id("offboarding-run").first
        return bool(
            offboarding.get_by_test_id("erasure-proof").count() == 1
            and "succeeded" in (run.locator("h3").text_content() or "")
        )

    eventually(proven, timeout=120, what="the offboarding run done, with its proof")
    steps = offboarding.get_by_test_id("offboarding-step")
    expect(steps.first).to_contain_text("start-ticket: done")
    expect(steps.last).to_contain_text("prove: done")
    status = workspace.operator.get(f"/tenants/{workspace.id}/offboarding").json()
    assert status["proof"] is not None
    expect(offboarding.get_by_test_id("erasure-proof")).to_contain_text(workspace.id)


def test_operator_redrives_a_dead_letter_and_discards_a_quarantined_message(
    clean: Suite, db: Any, workspace: Workspace, new_page: Callable[..., Any]
) -> None:
    key, _ = parked_by_audit(db, workspace.id)
    _, quarantined = db.collection(QUARANTINE).add(
        {
            "api": "Audit API",
            "reason": "schema <violation>",
            "body_preview": "{}",
            "received_at": datetime.now(UTC),
        }
    )
    ops = Api(clean.function_url("operations_api"), workspace.operator.token)

    operator = new_page(width=375)
    sign_in(operator, clean, "", OPERATOR_EMAIL)
    expect(operator.get_by_role("heading", name="Tenants", level=1)).to_be_visible()
    operator.get_by_role("link", name="Operations").click()
    dead = operator.get_by_test_id("dead-letters-record")
    expect(dead).to_have_count(1)
    expect(dead).to_contain_text("ServiceUnavailable('down')")
    parked = operator.get_by_test_id("quarantine-record")
    expect(parked).to_contain_text("schema <violation>")  # untrusted text shows literally

    dead.get_by_role("button", name="Re-drive").click()
    expect(operator.get_by_role("status").filter(has_text=f"{key} re-driven to Audit API")).to_be_visible()
    expect(operator.get_by_text("No dead letters")).to_be_visible()
    assert ops.get("/operations/dead-letters").json()["items"] == []

    parked.get_by_label(f"Reason to discard {quarantined.id}").fill("a malformed test message")
    parked.get_by_role("button", name="Discard").click()
    expect(operator.get_by_text("Nothing quarantined")).to_be_visible()
    assert not quarantined.get().exists
    trail = Api(clean.function_url("audit_api"), workspace.operator.token).get("/audit/platform/entries")
    [entry] = [e for e in trail.json()["items"] if e["action"] == "operations.quarantine.discarded"]
    assert entry["details"]["reason"] == "a malformed test message"
