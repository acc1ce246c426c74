"""Onboarding, pure: the playbooks (which steps a run has), run ids, what another API's answer means for
a step, and a run's progress. No I/O here; service.py does the calls and the engine the bookkeeping."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

ONBOARD = "onboard-tenant"
REONBOARD = "reonboard-tenant"

# Steps of a first onboarding, in order. Each is idempotent: it may run again after a crash.
ONBOARD_STEPS = (
    "identity",  # the tenant's Identity Platform tenant exists, the built-in roles answer
    "admin_seat",  # the first admin's seat is held (the one acceptance will find)
    "admin_invitation",  # the first admin is invited (the invitation mail goes out from User Management)
    "health_model",  # the Customer Health API made the default health model
    "default_workflows",  # the Workflow API installed its built-in workflows (on Onboarding Started)
    "mark_ready",  # the tenant is ready: the onboarding record says so
)
# A reactivation checks what must be back before users return, and records the findings.
REONBOARD_STEPS = ("identity", "admin_access", "health_model", "default_workflows")

PLAYBOOKS: dict[str, tuple[str, ...]] = {ONBOARD: ONBOARD_STEPS, REONBOARD: REONBOARD_STEPS}
TRIGGERS = {ONBOARD: "tenant_created", REONBOARD: "tenant_reactivated"}


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


def onboarding_run_id(tenant_id: str) -> str:
    """One first onboarding per tenant, whatever the number of Tenant Created deliveries."""
    return f"onb_{_digest('onboard', tenant_id)}"


def reonboarding_run_id(tenant_id: str, event_id: str) -> str:
    """One check per reactivation (event)."""
    return f"reo_{_digest('reonboard', tenant_id, event_id)}"


def seat_user_id(tenant_id: str, email: str) -> str:
    """The user id the User Management API gives this invited email (its user_id_for): reserving the
    seat under the same id makes the acceptance find it held instead of taking a second one."""
    return "u_" + hashlib.sha256(f"{tenant_id}\n{email.lower()}".encode()).hexdigest()[:28]


class Answer(StrEnum):
    """What another API's answer to a verification means."""

    PRESENT = "present"  # 2xx from the API
    MISSING = "missing"  # the API answered that the resource is not there (yet)
    ABSENT_API = "absent-api"  # no such function in this deployment
    UNAVAILABLE = "unavailable"  # the API is there but failing: try again later


@dataclass(frozen=True)
class Reply:
    """The parts of an HTTP answer that matter here."""

    status: int
    content_type: str
    body: Any = None


def classify(reply: Reply) -> Answer:
    """Our APIs answer JSON, and problem+json for errors; anything else comes from something that is not
    one of our APIs (a front end serving no such function: Cloud Functions' HTML 404, or the local host's
    plain-text fallback)."""
    ours = reply.content_type.startswith(("application/json", "application/problem+json"))
    if not ours:
        return Answer.ABSENT_API
    if 200 <= reply.status < 300:
        return Answer.PRESENT
    if reply.status == 404:
        return Answer.MISSING
    return Answer.UNAVAILABLE


def items(body: Any) -> list[Any]:
    """The `items` of a list answer (any other shape: none)."""
    if isinstance(body, Mapping) and isinstance(body.get("items"), list):
        return list(body["items"])
    return []


@dataclass(frozen=True)
class Progress:
    status: str
    percent: int
    current_step: str | None
    done: int
    total: int


def progress(run: Mapping[str, Any]) -> Progress:
    """A run's progress from its public view (shared.steps.StepEngine.view)."""
    steps: Sequence[Mapping[str, Any]] = run.get("steps", [])
    done = sum(1 for s in steps if s.get("status") in ("done", "skipped"))
    total = len(steps)
    percent = 100 if run.get("status") == "succeeded" else (done * 100 // total if total else 0)
    current = None if run.get("status") == "succeeded" else run.get("current_step")
    return Progress(str(run.get("status")), percent, current, done, total)
