"""axe-core (npm, served from portal/node_modules) on every page, at a phone's width (375 px): no serious
or critical violation, and no horizontal scrolling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from emulators.suite import Suite
from tests.portal.conftest import (
    OPERATOR_EMAIL,
    ROOT,
    Workspace,
    accept_by_api,
    accept_link,
    portal_url,
    sign_in,
)

AXE = ROOT / "portal" / "node_modules" / "axe-core" / "axe.min.js"


def audit(page: Any, what: str) -> list[str]:
    """Serious and critical axe violations of the page, and a note when it scrolls sideways."""
    page.evaluate(AXE.read_text(encoding="utf-8"))  # by the DevTools protocol: the page's CSP stays strict
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    found = [
        f"{what}: {v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    if page.evaluate("document.documentElement.scrollWidth > window.innerWidth"):
        found.append(f"{what}: scrolls horizontally at {page.viewport_size['width']} px")
    return found


def test_every_page_is_accessible_and_fits_a_phone(
    clean: Suite, workspace: Workspace, operator_token: str, new_page: Callable[..., Any]
) -> None:
    if not AXE.exists():
        pytest.fail("axe-core is missing: run `make portal` (npm ci in portal/)")
    _, token = accept_link(clean, workspace.admin_email)
    accept_by_api(clean, token)
    problems: list[str] = []

    page = new_page(width=375, height=800)
    page.goto(portal_url(clean) + "#/accept?token=t.inv_x.y")
    expect(page.get_by_role("heading", name="Accept your invitation")).to_be_visible()
    problems += audit(page, "accept")
    sign_in(page, clean, workspace.slug, workspace.admin_email)
    expect(page.get_by_role("heading", name="Onboarding")).to_be_visible()
    problems += audit(page, "dashboard")
    headings = (
        "Notifications",
        "Users",
        "Customers",
        "Customer health",
        "Audit trail",
        "Webhooks",
        "Workflows",
    )
    links = ("Notifications", "Users", "Customers", "Health", "Audit", "Webhooks", "Workflows")
    for name, heading in zip(links, headings, strict=True):
        page.get_by_role("link", name=name).first.click()
        expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        expect(page.locator(".loading")).to_have_count(0)
        problems += audit(page, name.lower())
    # A workflow's detail: versions, the JSON editor, its runs.
    page.get_by_test_id("workflow").first.get_by_role("button").click()
    expect(page.get_by_test_id("workflow-detail")).to_be_visible()
    expect(page.locator(".loading")).to_have_count(0)
    problems += audit(page, "workflow detail")

    operator = new_page(width=375, height=800)
    operator.goto(portal_url(clean) + "#/sign-in")
    expect(operator.get_by_role("heading", name="Sign in")).to_be_visible()
    problems += audit(operator, "sign-in")
    sign_in(operator, clean, "", OPERATOR_EMAIL)
    expect(operator.get_by_test_id(f"tenant-{workspace.slug}")).to_be_visible()
    problems += audit(operator, "tenants")
    operator.get_by_role("link", name="Operations").click()
    expect(operator.get_by_role("heading", level=1)).to_have_text("Operations")
    expect(operator.locator(".loading")).to_have_count(0)
    problems += audit(operator, "operations")
    assert problems == []
