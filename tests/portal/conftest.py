"""Browser journeys through the Tenant Admin Portal: Debian's chromium driven by Playwright, against the
whole emulator suite (the portal function serves the built bundle; every API is real).

The bundle must be built first (`make portal`; `make test` does it). Each journey saves a screenshot of
its last screen under test-artifacts/portal/.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from emulators import identity, mail
from emulators.suite import Suite
from tests.conftest import Api, eventually

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "portal"
CHROMIUM = os.environ.get("CMP_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "portal-test-password"
OPERATOR_EMAIL = "operator@portal.test"
# No background networking: these machines reach no other host, and chromium would keep trying.
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        pytest.fail("chromium is needed by the portal's browser tests: apt-get install chromium")
    if not (ROOT / "functions" / "portal" / "static" / "index.html").exists():
        pytest.fail("the portal is not built: run `make portal`")
    from playwright.sync_api import expect, sync_playwright

    # Pages wait on what they show; the shared 2-core machine can take a while to show it.
    expect.set_options(timeout=20_000)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def new_page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """new_page(width=1280): a page in a fresh browser context (its own session). Console errors and
    CSP violations fail the test; each page's last screen is saved as a screenshot of the journey."""
    contexts: list[Any] = []
    pages: list[Any] = []
    errors: list[str] = []

    def make(width: int = 1280, height: int = 900) -> Any:
        context = browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(30_000)
        page = context.new_page()
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        contexts.append(context)
        pages.append(page)
        return page

    yield make
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for index, page in enumerate(pages, start=1):  # every person's last screen: -1, -2, ... by page
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-{index}.png"), full_page=True)
    for context in contexts:
        context.close()
    # Refused API calls (403/410 the journey provokes) log as console errors; anything else fails.
    unexpected = [e for e in errors if "Failed to load resource" not in e]
    assert unexpected == [], unexpected


@dataclass
class Workspace:
    tenant: dict[str, Any]
    admin_email: str
    operator: Api  # the Tenant API as a platform operator
    users: Api  # the User Management API as a platform operator

    @property
    def id(self) -> str:
        return str(self.tenant["id"])

    @property
    def slug(self) -> str:
        return str(self.tenant["slug"])


def portal_url(suite: Suite) -> str:
    return suite.function_url("portal") + "/"


def accept_link(suite: Suite, address: str, after: int = 0) -> tuple[str, str]:
    """The accept link (and its token) of the newest invitation mail to `address` past the first `after`."""

    def found() -> tuple[str, str] | None:
        links = [link for m in mail.messages(suite.smtp_url, address) if (link := mail.accept_link(m))]
        return links[-1] if len(links) > after else None

    result: tuple[str, str] = eventually(found, timeout=60, what=f"an invitation mail to {address}")
    return result


@pytest.fixture
def operator_token(clean: Suite) -> str:
    return identity.token_for(OPERATOR_EMAIL, {"platform_operator": True, "roles": []}, PASSWORD)


@pytest.fixture
def workspace(clean: Suite, operator_token: str) -> Workspace:
    """A new tenant, created by an operator: onboarding invites its first admin by mail."""
    slug = f"portal-{secrets.token_hex(3)}"
    admin = f"admin@{slug}.example"
    operator = Api(clean.function_url("tenant_api"), operator_token)
    created = operator.post(
        "/tenants", json={"name": f"Portal {slug}", "slug": slug, "plan": "growth", "admin_email": admin}
    )
    assert created.status_code == 201, created.text
    return Workspace(
        created.json(), admin, operator, Api(clean.function_url("user_management_api"), operator_token)
    )


def accept_by_api(suite: Suite, token: str) -> dict[str, Any]:
    answer = Api(suite.function_url("user_management_api")).post(
        "/invitations/accept", json={"token": token, "password": PASSWORD, "display_name": "First Admin"}
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def sign_in(
    page: Any, suite: Suite, workspace_slug: str, email: str, password: str = PASSWORD, reload: bool = True
) -> None:
    """Fill the sign-in form: on a fresh load of the page, or (reload=False) where the portal shows it."""
    if reload:
        page.goto(portal_url(suite) + "#/sign-in")
    page.get_by_label("Workspace").fill(workspace_slug)
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def signed_in_admin(
    suite: Suite, workspace: Workspace, new_page: Callable[..., Any], width: int = 1280
) -> Any:
    """The workspace's first admin, having accepted the invitation, signed in and on the dashboard."""
    from playwright.sync_api import expect

    _, token = accept_link(suite, workspace.admin_email)
    accept_by_api(suite, token)
    page = new_page(width=width)
    sign_in(page, suite, workspace.slug, workspace.admin_email)
    expect(page.get_by_role("heading", level=1)).to_have_text(workspace.tenant["name"])
    return page
