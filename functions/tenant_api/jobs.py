"""The Tenant API's background processes on the step engine (queue "tenant-offboarding", function
tenant_api_tasks): Offboard Tenant and Handle Support Ticket, both started in the transaction that
deactivates a tenant, and the task that removes the run records once a tenant is erased."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

import flask
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from functions.tenant_api import offboarding, tickets
from shared.http import problem_response
from shared.platform import Platform
from shared.problems import not_found

if TYPE_CHECKING:
    from shared.steps import Process, StepEngine
    from shared.tasks import TaskQueue
    from shared.uow import Tx

log = logging.getLogger(__name__)

QUEUE = "tenant-offboarding"
TASKS_FUNCTION = "tenant_api_tasks"
STEPS_PATH = "/steps"
AUDIT_FUNCTION = "audit_api"
AUDIT_PATH = "/audit/platform/entries"
INTEGRATION_FUNCTION = "integration_api"

Handler = Callable[[flask.Request], flask.Response]


class TenantProcesses:
    """The engine and the two processes, built on first use (never at import)."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    @cached_property
    def offboarding(self) -> offboarding.Offboarding:
        return offboarding.Offboarding(
            self.platform.db,
            offboarding.IdentityAdmin(self.platform.settings),
            lambda: self.queue,
            self.start_ticket,
            audit=self.record_in_audit_trail,
            erase_webhook_secrets=self.erase_webhook_secrets,
        )

    def _post(self, function: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST as a platform service; any other answer than 200/201 fails the step, which the queue
        retries: the step is not done until the other API has done its part."""
        response = self.platform.services.call(function, "POST", path, body)
        if response.status_code not in (200, 201):
            raise RuntimeError(f"{function} answered {response.status_code}: {response.text[:300]}")
        answer: dict[str, Any] = response.json()
        return answer

    def record_in_audit_trail(self, key: str, entry: dict[str, Any]) -> str:
        """An entry of the Audit API's platform trail, recorded once per key (a retry answers 200)."""
        return str(self._post(AUDIT_FUNCTION, AUDIT_PATH, {"key": key, **entry})["id"])

    def erase_webhook_secrets(self, tenant_id: str) -> int:
        """The Integration API deletes the tenant's signing secrets."""
        path = f"/tenants/{tenant_id}/webhooks/erase-secrets"
        return int(self._post(INTEGRATION_FUNCTION, path, {})["secrets_deleted"])

    @cached_property
    def tickets(self) -> tickets.SupportTickets:
        return tickets.SupportTickets(self.platform.db, lambda: self.platform.services)

    @cached_property
    def queue(self) -> TaskQueue:
        from shared.tasks import TaskQueue

        return TaskQueue(self.platform.settings, QUEUE, TASKS_FUNCTION)

    def resolve(self, process: str, run_input: Mapping[str, Any]) -> Process:
        if process == offboarding.PROCESS:
            built: Process = self.offboarding.process()
            return built
        if process == tickets.PROCESS:
            ticket: Process = self.tickets.process()
            return ticket
        raise KeyError(f"unknown process {process}")

    @cached_property
    def engine(self) -> StepEngine:
        from shared.steps import StepEngine

        return StepEngine(
            self.platform,
            queue=QUEUE,
            function=TASKS_FUNCTION,
            collection=offboarding.RUNS,
            resolve=self.resolve,
            path=STEPS_PATH,
        )

    def start_for_deactivation(
        self, tx: Tx, tenant_id: str, version: int, reason: str, deactivated_at: Any
    ) -> None:
        """Offboarding, in the deactivating transaction (run id from the tenant version: a retried
        transaction or a duplicate billing event starts nothing twice). Reads first: call it before the
        transaction's writes. Its first step starts the support ticket (one transaction may start only
        one run: the engine reads the run document, and Firestore refuses reads after writes)."""
        self.engine.start(
            tx,
            tenant_id=tenant_id,
            process=offboarding.PROCESS,
            run_id=offboarding_run_id(version),
            input={
                "deactivated_at": offboarding.encode(deactivated_at),
                "reason": reason,
                "version": version,
            },
        )

    def start_ticket(self, tenant_id: str, offboarding_run: str, run_input: Mapping[str, Any]) -> bool:
        return self.engine.start(
            None,
            tenant_id=tenant_id,
            process=tickets.PROCESS,
            run_id=offboarding_run.replace("offboard-", "ticket-", 1),
            input=dict(run_input),
        )


def offboarding_run_id(version: int) -> str:
    return f"offboard-v{version}"


class PurgeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str = Field(min_length=1, max_length=128, pattern=r"^[^/]+$")
    run_id: str = Field(min_length=1, max_length=128, pattern=r"^[^/]+$")


def _json(body: dict[str, Any], status: int = 200) -> flask.Response:
    return flask.Response(json.dumps(body), status=status, content_type="application/json")


def build_task_handler(platform: Platform) -> Handler:
    processes = TenantProcesses(platform)

    def handle(request: flask.Request) -> flask.Response:
        path = request.path.rstrip("/")
        if request.method != "POST" or path not in (STEPS_PATH, offboarding.PURGE_PATH):
            return problem_response(not_found(f"The resource {request.path}"), request.path)
        if path == STEPS_PATH:
            status, body = processes.engine.handle(request.get_data(), dict(request.headers))
            return _json(body, status)
        try:
            purge = PurgeBody.model_validate_json(request.get_data())
        except ValidationError as exc:
            log.error("malformed purge task acknowledged", extra={"errors": exc.errors(include_url=False)})
            return _json({"result": "rejected"})
        try:
            result = processes.offboarding.purge_runs(purge.tenant_id, purge.run_id)
        except offboarding.NotYet as exc:
            return _json({"result": "waiting", "detail": str(exc)}, 503)
        return _json({"result": result})

    return handle
