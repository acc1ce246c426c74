"""Onboarding API use cases: onboarding runs on the step engine (shared.steps), their steps (calls to
the other APIs as a platform service), the events, and the onboarding record.

Layout, under the tenant:
    tenants/{tid}/onboarding_runs/{run_id}     one run: its steps, attempts, timings, errors (shared.steps)
    tenants/{tid}/onboarding/state             the onboarding record: latest runs, ready flag

Runs start inside the event intake's transaction (Tenant Created, Tenant Reactivated), together with
Onboarding Started; Onboarding Completed is raised in the transaction that finishes the run. So each is
published exactly once per run, and a run exists exactly when its Started event does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from google.cloud import firestore

from functions.onboarding_api import domain
from functions.onboarding_api.domain import Answer
from shared.contracts.base import Actor
from shared.contracts.payloads import OnboardingCompleted, OnboardingStarted, TenantCreated, TenantReactivated
from shared.events import new_event
from shared.intake import Delivered
from shared.pagination import PageParams
from shared.platform import Platform
from shared.problems import Problem, not_found
from shared.services import ServiceClient
from shared.steps import FinishContext, Process, Step, StepContext, StepEngine, StepOutcome
from shared.uow import Tx

log = logging.getLogger(__name__)

API_NAME = "Onboarding API"
QUEUE = "onboarding-steps"
TASKS_FUNCTION = "onboarding_api_tasks"
RUNS = "onboarding_runs"
STATE = "onboarding"
STEPS_PATH = "/steps"

TENANT_API = "tenant_api"
USER_API = "user_management_api"
ACCESS_API = "access_control_api"
HEALTH_API = "customer_health_api"
WORKFLOW_API = "workflow_api"

SYSTEM = Actor(type="system", id="onboarding-api")
# Verifications of what another API makes on its own (on an event) wait this many attempts for it.
VERIFY_ATTEMPTS = 3


class StepFailed(Exception):
    """A call answered something this step cannot go on with; the queue retries it."""


StepBody = Callable[[StepContext], StepOutcome | None]


class OnboardingService:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.db = platform.db
        self.engine = StepEngine(
            platform,
            queue=QUEUE,
            function=TASKS_FUNCTION,
            collection=RUNS,
            resolve=self.process,
            path=STEPS_PATH,
        )
        self._bodies: dict[str, dict[str, StepBody]] = {
            domain.ONBOARD: {
                "identity": self.identity,
                "admin_seat": self.admin_seat,
                "admin_invitation": self.admin_invitation,
                "health_model": self.health_model,
                "default_workflows": self.default_workflows,
                "mark_ready": self.mark_ready,
            },
            domain.REONBOARD: {
                "identity": self.identity,
                "admin_access": self.admin_access,
                "health_model": self.health_model_check,
                "default_workflows": self.workflows_check,
            },
        }

    @property
    def services(self) -> ServiceClient:
        return self.platform.services

    # --- processes ---------------------------------------------------------------------------------
    def process(self, name: str, _input: Mapping[str, Any]) -> Process:
        bodies = self._bodies[name]
        steps = [Step(step, bodies[step]) for step in domain.PLAYBOOKS[name]]
        return Process(name, steps, on_finish=self.finished)

    def state_ref(self, tenant_id: str) -> firestore.DocumentReference:
        return self.db.collection("tenants", tenant_id, STATE).document("state")

    # --- events ------------------------------------------------------------------------------------
    def on_tenant_created(self, delivered: Delivered, tx: Tx) -> None:
        payload = delivered.payload
        assert isinstance(payload, TenantCreated)
        run_id = domain.onboarding_run_id(payload.tenant_id)
        run_input = {"tenant_id": payload.tenant_id, "admin_email": payload.admin_email, "plan": payload.plan}
        self._start(tx, domain.ONBOARD, payload.tenant_id, run_id, run_input)

    def on_tenant_reactivated(self, delivered: Delivered, tx: Tx) -> None:
        payload = delivered.payload
        assert isinstance(payload, TenantReactivated)
        run_id = domain.reonboarding_run_id(payload.tenant_id, delivered.envelope.id)
        self._start(tx, domain.REONBOARD, payload.tenant_id, run_id, {"tenant_id": payload.tenant_id})

    def _start(self, tx: Tx, process: str, tenant_id: str, run_id: str, run_input: dict[str, Any]) -> None:
        if not self.engine.start(tx, tenant_id=tenant_id, process=process, run_id=run_id, input=run_input):
            return  # this run exists: a second delivery of its event changes nothing
        payload = OnboardingStarted(
            onboarding_id=run_id,
            playbook=process,
            trigger=domain.TRIGGERS[process],
            steps=list(domain.PLAYBOOKS[process]),
            actor=SYSTEM,
        )
        tx.emit(self._event(payload, tenant_id, run_id))
        field = "onboarding_run_id" if process == domain.ONBOARD else "reonboarding_run_id"
        tx.set(self.state_ref(tenant_id), {field: run_id, "updated_at": datetime.now(UTC)}, merge=True)

    def finished(self, ctx: FinishContext) -> None:
        """Inside the transaction that finishes the run: Completed is raised once, with the run."""
        changes: dict[str, Any] = {"updated_at": ctx.finished_at}
        if ctx.process == domain.ONBOARD:
            changes["onboarding_status"] = ctx.status
        if ctx.status == "succeeded":
            payload = OnboardingCompleted(
                onboarding_id=ctx.run_id,
                playbook=ctx.process,
                completed_steps=ctx.steps_with("done"),
                skipped_steps=ctx.steps_with("skipped"),
                started_at=ctx.started_at,
                completed_at=ctx.finished_at,
                actor=SYSTEM,
            )
            ctx.tx.emit(self._event(payload, ctx.tenant_id, ctx.run_id))
        ctx.tx.set(self.state_ref(ctx.tenant_id), changes, merge=True)

    def _event(self, payload: Any, tenant_id: str, run_id: str) -> Any:
        slug = self.platform.catalog.api(API_NAME).slug
        return new_event(payload, tenant_id=tenant_id, subject=run_id, source_api_slug=slug)

    # --- calls -------------------------------------------------------------------------------------
    def _call(
        self, function: str, method: str, path: str, body: dict[str, Any] | None = None
    ) -> domain.Reply:
        response = self.services.call(function, method, path, body)
        content_type = response.headers.get("Content-Type", "")
        try:
            parsed = response.json() if content_type.startswith("application/") else None
        except ValueError:
            parsed = None
        return domain.Reply(response.status_code, content_type, parsed)

    @staticmethod
    def _unexpected(what: str, reply: domain.Reply) -> StepFailed:
        kind = reply.body.get("type") if isinstance(reply.body, dict) else None
        return StepFailed(f"{what} answered {reply.status}" + (f" ({kind})" if kind else ""))

    def _verify(self, function: str, path: str, what: str) -> tuple[Answer, domain.Reply]:
        """GET what another API makes on its own; an API failing right now is retried by the queue."""
        reply = self._call(function, "GET", path)
        answer = domain.classify(reply)
        if answer is Answer.UNAVAILABLE:
            raise self._unexpected(what, reply)
        return answer, reply

    # --- steps of a first onboarding ---------------------------------------------------------------
    def identity(self, ctx: StepContext) -> StepOutcome:
        """The Identity Platform tenant (created by User Management on first need: make the need now) and
        the built-in roles the Access Control API serves for the tenant."""
        tid = ctx.tenant_id
        made = self._call(USER_API, "POST", f"/tenants/{tid}/identity")
        if made.status not in (200, 201) or not isinstance(made.body, dict):
            raise self._unexpected("the identity tenant", made)
        roles = self._call(ACCESS_API, "GET", f"/tenants/{tid}/access/roles")
        if roles.status != 200:
            raise self._unexpected("the roles", roles)
        names = sorted(
            str(r.get("id") or r.get("name")) for r in domain.items(roles.body) if isinstance(r, dict)
        )
        if "admin" not in names:
            raise StepFailed(f"the built-in admin role is not served: {names}")
        return StepOutcome(
            output={
                "idp_tenant_id": made.body.get("idp_tenant_id"),
                "identity_created": made.status == 201,
                "roles": names,
            }
        )

    def admin_seat(self, ctx: StepContext) -> StepOutcome:
        email = str(ctx.input["admin_email"])
        user_id = domain.seat_user_id(ctx.tenant_id, email)
        reply = self._call(
            TENANT_API, "POST", f"/tenants/{ctx.tenant_id}/seats", {"user_id": user_id, "email": email}
        )
        if reply.status not in (200, 201):
            raise self._unexpected("the seat", reply)
        return StepOutcome(output={"user_id": user_id, "seat": "taken" if reply.status == 201 else "held"})

    def admin_invitation(self, ctx: StepContext) -> StepOutcome:
        """Invites the first admin (User Management mails it). The invitation token in the answer is
        never kept: only the admin's mailbox gets it."""
        body = {"email": str(ctx.input["admin_email"]), "role": "admin"}
        reply = self._call(USER_API, "POST", f"/tenants/{ctx.tenant_id}/invitations", body)
        problem = reply.body if isinstance(reply.body, dict) else {}
        kind = str(problem.get("type", "")).rsplit("/", 1)[-1]
        if reply.status == 201:
            invitation = problem.get("invitation") or {}
            return StepOutcome(
                output={"invitation_id": invitation.get("id"), "expires_at": invitation.get("expires_at")}
            )
        if reply.status == 409 and kind == "user-exists":  # invited before (a retry), or already a user
            return StepOutcome(
                output={"user_id": problem.get("user_id"), "user_status": problem.get("current_status")}
            )
        raise self._unexpected("the invitation", reply)

    def health_model(self, ctx: StepContext) -> StepOutcome:
        """The Customer Health API makes the default model on Tenant Created: wait for it (the queue's
        backoff), up to the queue's attempts; then the run fails, visibly, and can be resumed."""
        answer, reply = self._verify(HEALTH_API, f"/tenants/{ctx.tenant_id}/health/model", "the health model")
        if answer is Answer.MISSING:
            raise self._unexpected("the health model", reply)
        return _verified(answer, reply, "health model")

    def default_workflows(self, ctx: StepContext) -> StepOutcome:
        """The Workflow API installs its built-in workflows on Onboarding Started: wait a few attempts for
        them; none by then is recorded as a finding (a plan may have none)."""
        answer, reply = self._verify(WORKFLOW_API, f"/tenants/{ctx.tenant_id}/workflows", "the workflows")
        if answer is Answer.PRESENT and not domain.items(reply.body) and ctx.attempt < VERIFY_ATTEMPTS:
            raise StepFailed("no workflow installed yet")
        return _verified(answer, reply, "workflows")

    def mark_ready(self, ctx: StepContext) -> StepOutcome:
        now = datetime.now(UTC)
        self.state_ref(ctx.tenant_id).set(
            {"ready": True, "ready_at": now, "ready_run_id": ctx.run_id}, merge=True
        )
        return StepOutcome(output={"ready": True})

    # --- steps of a re-onboarding check ------------------------------------------------------------
    def admin_access(self, ctx: StepContext) -> StepOutcome:
        reply = self._call(USER_API, "GET", f"/tenants/{ctx.tenant_id}/users?role=admin&status=active")
        if reply.status != 200:
            raise self._unexpected("the users", reply)
        admins = len(domain.items(reply.body))
        finding = "ok" if admins else "no active admin: invite one"
        return StepOutcome(output={"active_admins": admins, "finding": finding})

    def health_model_check(self, ctx: StepContext) -> StepOutcome:
        answer, reply = self._verify(HEALTH_API, f"/tenants/{ctx.tenant_id}/health/model", "the health model")
        return _verified(answer, reply, "health model")

    def workflows_check(self, ctx: StepContext) -> StepOutcome:
        answer, reply = self._verify(WORKFLOW_API, f"/tenants/{ctx.tenant_id}/workflows", "the workflows")
        return _verified(answer, reply, "workflows")

    # --- queries and operator calls ----------------------------------------------------------------
    def state(self, tenant_id: str) -> dict[str, Any]:
        snapshot = self.state_ref(tenant_id).get()
        return (snapshot.to_dict() or {}) if snapshot.exists else {}

    def latest(self, tenant_id: str) -> dict[str, Any]:
        """The tenant's first onboarding run, or 404 before its Tenant Created arrived."""
        run_id = domain.onboarding_run_id(tenant_id)
        try:
            return self.engine.inspect(tenant_id=tenant_id, run_id=run_id)
        except Problem as exc:
            raise not_found(f"The onboarding of tenant {tenant_id}") from exc

    def run(self, tenant_id: str, run_id: str) -> dict[str, Any]:
        return self.engine.inspect(tenant_id=tenant_id, run_id=run_id)

    def runs(
        self, tenant_id: str, process: str | None, page: PageParams
    ) -> tuple[list[dict[str, Any]], str | None]:
        return self.engine.runs(tenant_id=tenant_id, process=process, page=page)

    def resume(self, tenant_id: str, run_id: str, from_step: str | None) -> dict[str, Any]:
        return self.engine.resume(tenant_id=tenant_id, run_id=run_id, from_step=from_step)


def _verified(answer: Answer, reply: domain.Reply, what: str) -> StepOutcome:
    """A verification's outcome: what was found, a finding, or skipped where no API serves it."""
    if answer is Answer.ABSENT_API:
        return StepOutcome(skipped=True, output={"reason": f"no API serves the {what} in this deployment"})
    if answer is Answer.MISSING:
        return StepOutcome(output={"finding": f"the {what} is missing"})
    if isinstance(reply.body, dict) and "items" in reply.body:
        found = len(domain.items(reply.body))
        return StepOutcome(output={"found": found, **({} if found else {"finding": f"no {what}"})})
    return StepOutcome(output={"found": True})


def build_service(platform: Platform) -> OnboardingService:
    return OnboardingService(platform)
