"""The onboarding steps against a fake of our ServiceClient: what each answer of the other APIs makes of
the step (done, skipped with a reason, a finding, or a retry)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from functions.onboarding_api.service import OnboardingService, StepFailed
from shared.config import Settings
from shared.services import ServiceClient
from shared.steps import StepContext, StepOutcome

JSON = "application/json"
PROBLEM = "application/problem+json"


class FakeResponse:
    def __init__(self, status: int, body: Any = None, content_type: str = JSON) -> None:
        self.status_code = status
        self.headers = {"Content-Type": content_type}
        self._body = body

    def json(self) -> Any:
        if self._body is None:
            raise ValueError("no JSON")
        return json.loads(json.dumps(self._body))


class FakeServices(ServiceClient):
    """Answers by (function, method, path prefix); records every call."""

    def __init__(self) -> None:
        super().__init__(Settings())
        self.answers: dict[tuple[str, str], list[FakeResponse]] = {}
        self.calls: list[tuple[str, str, str, dict[str, Any] | None]] = []

    def answer(self, function: str, method: str, *responses: FakeResponse) -> None:
        self.answers[(function, method)] = list(responses)

    def call(self, function: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        self.calls.append((function, method, path, body))
        queue = self.answers[(function, method)]
        return queue.pop(0) if len(queue) > 1 else queue[0]


class FakePlatform:
    def __init__(self) -> None:
        self.db = None
        self.services = FakeServices()
        self.settings = Settings()


def ctx(step: str, attempt: int = 1) -> StepContext:
    return StepContext(
        tenant_id="t1",
        run_id="onb_x",
        process="onboard-tenant",
        step=step,
        attempt=attempt,
        input={"tenant_id": "t1", "admin_email": "boss@acme.example", "plan": "growth"},
        outputs={},
        started_at=datetime.now(UTC),
    )


@pytest.fixture
def world() -> tuple[OnboardingService, FakeServices]:
    platform = FakePlatform()
    return OnboardingService(platform), platform.services  # type: ignore[arg-type]


def test_identity_makes_the_identity_tenant_and_checks_the_built_in_roles(
    world: tuple[OnboardingService, FakeServices],
) -> None:
    service, calls = world
    calls.answer("user_management_api", "POST", FakeResponse(201, {"idp_tenant_id": "cmp-t1-abc"}))
    calls.answer(
        "access_control_api", "GET", FakeResponse(200, {"items": [{"id": "admin"}, {"id": "viewer"}]})
    )
    outcome = service.identity(ctx("identity"))
    assert outcome.output == {
        "idp_tenant_id": "cmp-t1-abc",
        "identity_created": True,
        "roles": ["admin", "viewer"],
    }
    assert calls.calls[0][:3] == ("user_management_api", "POST", "/tenants/t1/identity")

    calls.answer("access_control_api", "GET", FakeResponse(200, {"items": [{"id": "viewer"}]}))
    with pytest.raises(StepFailed, match="admin role"):
        service.identity(ctx("identity"))


def test_the_seat_is_taken_or_found_held_and_a_refusal_is_retried(
    world: tuple[OnboardingService, FakeServices],
) -> None:
    service, calls = world
    calls.answer("tenant_api", "POST", FakeResponse(201, {}))
    assert service.admin_seat(ctx("admin_seat")).output["seat"] == "taken"
    calls.answer("tenant_api", "POST", FakeResponse(200, {}))
    assert service.admin_seat(ctx("admin_seat")).output["seat"] == "held"
    calls.answer("tenant_api", "POST", FakeResponse(409, {"type": "p/tenant-not-active"}, PROBLEM))
    with pytest.raises(StepFailed, match="409"):
        service.admin_seat(ctx("admin_seat"))
    body = calls.calls[0][3]
    assert body is not None and body["email"] == "boss@acme.example"


def test_the_invitation_never_keeps_the_token_and_a_retry_finds_the_invited_user(
    world: tuple[OnboardingService, FakeServices],
) -> None:
    service, calls = world
    invitation = {
        "invitation": {"id": "inv_1", "expires_at": "2030-01-01T00:00:00Z"},
        "token": "secret-token",
    }
    calls.answer("user_management_api", "POST", FakeResponse(201, invitation))
    outcome = service.admin_invitation(ctx("admin_invitation"))
    assert outcome.output == {"invitation_id": "inv_1", "expires_at": "2030-01-01T00:00:00Z"}
    assert "secret-token" not in json.dumps(dict(outcome.output))

    exists = {"type": "p/user-exists", "user_id": "u_1", "current_status": "invited"}
    calls.answer("user_management_api", "POST", FakeResponse(409, exists, PROBLEM))
    assert service.admin_invitation(ctx("admin_invitation")).output["user_status"] == "invited"

    calls.answer("user_management_api", "POST", FakeResponse(403, {"type": "p/forbidden"}, PROBLEM))
    with pytest.raises(StepFailed):
        service.admin_invitation(ctx("admin_invitation"))


def test_the_health_model_is_awaited_while_missing_and_skipped_where_no_api_serves_it(
    world: tuple[OnboardingService, FakeServices],
) -> None:
    service, calls = world
    calls.answer("customer_health_api", "GET", FakeResponse(404, {"type": "p/not-found"}, PROBLEM))
    with pytest.raises(StepFailed):
        service.health_model(ctx("health_model", attempt=7))
    calls.answer("customer_health_api", "GET", FakeResponse(200, {"version": 1}))
    assert service.health_model(ctx("health_model")) == StepOutcome(output={"found": True})
    calls.answer("customer_health_api", "GET", FakeResponse(200, None, "text/plain; charset=utf-8"))
    absent = service.health_model(ctx("health_model"))
    assert absent.skipped and "no API" in absent.output["reason"]
    calls.answer(
        "customer_health_api", "GET", FakeResponse(503, {"type": "p/dependency-unavailable"}, PROBLEM)
    )
    with pytest.raises(StepFailed):
        service.health_model(ctx("health_model"))


def test_workflows_are_awaited_a_few_attempts_then_none_is_a_finding(
    world: tuple[OnboardingService, FakeServices],
) -> None:
    service, calls = world
    calls.answer("workflow_api", "GET", FakeResponse(200, {"items": [], "next_cursor": None}))
    with pytest.raises(StepFailed, match="no workflow"):
        service.default_workflows(ctx("default_workflows", attempt=1))
    late = service.default_workflows(ctx("default_workflows", attempt=3))
    assert late.output == {"found": 0, "finding": "no workflows"}
    calls.answer("workflow_api", "GET", FakeResponse(200, {"items": [{"id": "w1"}, {"id": "w2"}]}))
    assert service.default_workflows(ctx("default_workflows")).output == {"found": 2}


def test_a_reactivation_check_records_findings_without_waiting(
    world: tuple[OnboardingService, FakeServices],
) -> None:
    service, calls = world
    calls.answer("user_management_api", "GET", FakeResponse(200, {"items": []}))
    assert service.admin_access(ctx("admin_access")).output == {
        "active_admins": 0,
        "finding": "no active admin: invite one",
    }
    calls.answer("customer_health_api", "GET", FakeResponse(404, {"type": "p/not-found"}, PROBLEM))
    assert service.health_model_check(ctx("health_model")).output == {
        "finding": "the health model is missing"
    }
