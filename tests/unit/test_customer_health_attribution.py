"""Attributing a bounce to an organization through the Customer Data API: which answers are decisions
(the signal counts for the tenant only) and which are retried."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from functions.customer_health_api.service import DependencyUnavailable, OrganizationDirectory
from shared.config import Settings
from shared.services import ServiceClient


class FakeClient(ServiceClient):
    """Answers from a table of path -> (status, body); records the calls."""

    def __init__(self, answers: dict[str, tuple[int, Any]]) -> None:
        super().__init__(Settings())
        self.answers = answers
        self.calls: list[tuple[str, str]] = []

    def call(
        self, function: str, method: str, path: str, body: dict[str, Any] | None = None
    ) -> requests.Response:
        self.calls.append((function, path))
        status, content = self.answers.get(path, (404, {"title": "Not Found"}))
        response = requests.Response()
        response.status_code = status
        response._content = content.encode() if isinstance(content, str) else json.dumps(content).encode()
        return response


CONTACT = "/tenants/t1/contacts/con_1"
BY_EMAIL = "/tenants/t1/contacts?email=ana%40globex.example"


def directory(answers: dict[str, tuple[int, Any]]) -> tuple[OrganizationDirectory, FakeClient]:
    client = FakeClient(answers)
    return OrganizationDirectory(client), client


def test_a_contact_with_an_organization() -> None:
    found, client = directory({CONTACT: (200, {"id": "con_1", "organization_id": "org_9"})})
    assert found.organization_of("t1", "con_1", "ana@globex.example") == ("org_9", "contact")
    assert client.calls == [("customer_data_api", CONTACT)]


def test_an_unknown_contact_falls_back_to_the_email() -> None:
    found, client = directory(
        {BY_EMAIL: (200, {"items": [{"organization_id": "org_2"}, {"organization_id": "org_2"}]})}
    )
    assert found.organization_of("t1", "con_1", "ana@globex.example") == ("org_2", "email")
    assert [path for _, path in client.calls] == [CONTACT, BY_EMAIL]


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ({CONTACT: (200, {"id": "con_1", "organization_id": None})}, (None, "contact-without-organization")),
        (
            {BY_EMAIL: (200, {"items": [{"organization_id": "org_1"}, {"organization_id": "org_2"}]})},
            (None, "ambiguous-email"),
        ),
        ({BY_EMAIL: (200, {"items": []})}, (None, "unknown-recipient")),
        ({CONTACT: (200, "ok"), BY_EMAIL: (200, "not json")}, (None, "unknown-recipient")),
        ({CONTACT: (400, {"title": "Bad"})}, (None, "unknown-recipient")),
    ],
)
def test_answers_that_decide_the_tenant_level_only(
    answers: dict[str, tuple[int, Any]], expected: tuple[Any, str]
) -> None:
    found, _ = directory(answers)
    assert found.organization_of("t1", "con_1", "ana@globex.example") == expected


@pytest.mark.parametrize("status", [500, 503, 401, 403, 429])
def test_failures_are_retried_not_decided(status: int) -> None:
    found, _ = directory({CONTACT: (status, {"title": "x"})})
    with pytest.raises(DependencyUnavailable, match=str(status)):
        found.organization_of("t1", "con_1", None)


def test_no_contact_and_no_email_asks_nothing() -> None:
    found, client = directory({})
    assert found.organization_of("t1", None, None) == (None, "unknown-recipient")
    assert client.calls == []
