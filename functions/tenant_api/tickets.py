"""Handle Support Ticket: when a tenant is deactivated, the Customer Support Service gets a ticket.

The process ("support-ticket") has one step, started in the deactivating transaction like offboarding.
It reads, never writes, other APIs' data: the tenant's health from the Customer Health API (as a
platform service; "unknown" when that API does not answer it), and its open items from Firestore
(pending invitations, failing webhook endpoints, unfinished user imports, unfinished runs of the other
APIs' processes). The ticket holds ids, counts and the deactivation reason, no personal data, and is a
platform record (`support_tickets/{id}`) that erasure keeps. Operators move it open -> in_progress ->
resolved (and back), each change kept in its history.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from google.cloud import firestore

    from shared.services import ServiceClient
    from shared.steps import StepContext, StepOutcome

log = logging.getLogger(__name__)

PROCESS = "support-ticket"
TICKETS = "support_tickets"
HEALTH_FUNCTION = "customer_health_api"
TicketStatus = Literal["open", "in_progress", "resolved"]
STATUSES: tuple[str, ...] = ("open", "in_progress", "resolved")
UNFINISHED_RUN = ("pending", "running", "waiting")
AT_RISK = frozenset({"at_risk", "critical"})  # the Customer Health API's two lowest grades


# --- pure -------------------------------------------------------------------------------------------
def ticket_id(tenant_id: str, run_id: str) -> str:
    return "tk_" + hashlib.sha256(f"{tenant_id}\n{run_id}".encode()).hexdigest()[:24]


def health_summary(status_code: int | None, body: Any) -> dict[str, Any]:
    """The health answer reduced to what support needs; "unknown" unless the API answered it."""
    if status_code != 200 or not isinstance(body, Mapping):
        return {"status": "unknown", "source": "customer_health_api", "http_status": status_code}
    picked = {k: body[k] for k in ("score", "grade", "previous_score", "trend", "computed_at") if k in body}
    status = picked.get("grade") or "known"  # healthy, watch, at_risk or critical
    return {**picked, "status": str(status), "source": "customer_health_api", "http_status": 200}


def build_ticket(
    *,
    tenant: Mapping[str, Any],
    run_id: str,
    reason: str,
    health: Mapping[str, Any],
    open_items: Mapping[str, int],
    now: datetime,
) -> dict[str, Any]:
    """A new support ticket for a deactivated tenant. Priority is high when something is still in
    flight (open items) or the tenant's health was at risk: the customer may need a call."""
    busy = any(count > 0 for count in open_items.values())
    risky = str(health.get("status", "")).lower() in AT_RISK
    return {
        "id": ticket_id(str(tenant["id"]), run_id),
        "kind": "tenant-deactivated",
        "tenant_id": tenant["id"],
        "tenant_name": tenant.get("name"),
        "plan": tenant.get("plan"),
        "reason": reason,
        "deactivated_at": tenant.get("deactivated_at"),
        "retention_until": tenant.get("retention_until"),
        "health": dict(health),
        "open_items": dict(open_items),
        "priority": "high" if busy or risky else "normal",
        "status": "open",
        "run_id": run_id,
        "created_at": now,
        "updated_at": now,
        "history": [{"status": "open", "at": now, "by": "platform"}],
    }


def change_status(
    ticket: Mapping[str, Any], status: str, by: str, note: str | None, now: datetime
) -> dict[str, Any]:
    if status not in STATUSES:
        raise ValueError(status)
    if ticket.get("status") == status and not note:
        return dict(ticket)
    entry: dict[str, Any] = {"status": status, "at": now, "by": by}
    if note:
        entry["note"] = note
    return {**ticket, "status": status, "updated_at": now, "history": [*ticket.get("history", []), entry]}


# --- the process ------------------------------------------------------------------------------------
class SupportTickets:
    def __init__(
        self,
        db: firestore.Client,
        services: Callable[[], ServiceClient],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.db = db
        self.services = services
        self.clock = clock

    def process(self) -> Any:
        from shared.steps import Process, Step

        return Process(PROCESS, [Step("open-ticket", self.open_ticket)])

    def ref(self, ticket: str) -> firestore.DocumentReference:
        return self.db.collection(TICKETS).document(ticket)

    def health(self, tenant_id: str) -> dict[str, Any]:
        from shared.problems import Problem

        try:
            response = self.services().call(HEALTH_FUNCTION, "GET", f"/tenants/{tenant_id}/health")
        except Problem:
            return health_summary(None, None)  # not deployed, or did not answer
        try:
            body = response.json()
        except ValueError:
            body = None
        return health_summary(response.status_code, body)

    def open_items(self, tenant_id: str, own_runs: str) -> dict[str, int]:
        from google.cloud import firestore as fs

        tenant = self.db.collection("tenants").document(tenant_id)

        def count(collection: str, field: str, values: tuple[str, ...]) -> int:
            query = tenant.collection(collection).where(filter=fs.FieldFilter(field, "in", list(values)))
            result = query.count().get()
            return int(result[0][0].value)

        items = {
            "pending_invitations": count("invitations", "status", ("pending",)),
            "failing_webhooks": count("webhook_endpoints", "status", ("failing",)),
            "running_imports": count("user_imports", "status", ("queued", "running")),
        }
        # Unfinished runs of every API's processes (onboarding, workflows): their run collections.
        for collection in tenant.collections():
            if collection.id.endswith("_runs") and collection.id != own_runs:
                items[f"open_{collection.id}"] = count(collection.id, "status", UNFINISHED_RUN)
        return items

    def open_ticket(self, ctx: StepContext) -> StepOutcome:
        from shared.steps import StepOutcome

        ticket = ticket_id(ctx.tenant_id, ctx.run_id)
        existing = self.ref(ticket).get()
        if existing.exists:
            return StepOutcome(output={"ticket_id": ticket, "created": False})
        tenant_snapshot = self.db.collection("tenants").document(ctx.tenant_id).get()
        tenant = tenant_snapshot.to_dict() if tenant_snapshot.exists else None
        if tenant is None or tenant.get("status") == "erased":
            return StepOutcome(output={"ticket_id": None, "reason": "the tenant is gone"}, skipped=True)
        from functions.tenant_api.offboarding import RUNS

        document = build_ticket(
            tenant=tenant,
            run_id=ctx.run_id,
            reason=str(ctx.input.get("reason") or tenant.get("status_reason") or ""),
            health=self.health(ctx.tenant_id),
            open_items=self.open_items(ctx.tenant_id, RUNS),
            now=self.clock(),
        )
        from google.api_core import exceptions as gexc

        try:
            self.ref(ticket).create(document)
        except gexc.AlreadyExists:
            return StepOutcome(output={"ticket_id": ticket, "created": False})
        return StepOutcome(output={"ticket_id": ticket, "created": True, "priority": document["priority"]})
