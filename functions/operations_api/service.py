"""Dead letters and quarantined messages of every API: list, count, re-drive, discard.

Re-driving republishes the parked event on its topic addressed to the API that parked it (the
`cmp-redrive-for` attribute): every other subscriber's intake acknowledges it untouched, and the
addressed one runs it through its intake like any delivery, with a fresh attempt budget, exactly once
(its `_processed_events` record). Discarding deletes the record and writes the operator's reason to the
platform trail (Audit API), before the record goes.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from google.cloud import firestore

from shared.catalog import Catalog
from shared.clients import publish_result
from shared.events import CloudEvent
from shared.intake import ATTEMPTS, DEAD_LETTERS, QUARANTINE, REDRIVE_ATTRIBUTE
from shared.pagination import PageParams, paginate
from shared.platform import Platform
from shared.problems import Problem, not_found

AUDIT_FUNCTION = "audit_api"
AUDIT_PATH = "/audit/platform/entries"
REDRIVE_ALL_LIMIT = 200  # per call: the operator calls again while `remaining` is not 0
KINDS = {"dead-letters": (DEAD_LETTERS, "parked_at"), "quarantine": (QUARANTINE, "received_at")}
# The step engine's runs (shared.steps), by collection: a failed one, or a running one that has not
# moved past the engine's step timeout (11 min), is listed with its failing step and its resume route.
RUN_COLLECTIONS = ("onboarding_runs", "tenant_runs", "workflow_runs")
STUCK_AFTER = timedelta(minutes=15)
RUN_FIELDS = ["process", "status", "current_step", "updated_at", "error", "steps"]


def resume_route(collection: str, tenant_id: str, run_id: str, process: str) -> str | None:
    """Where the owning API resumes the run (an operator may call each), or None when it has none."""
    if collection == "onboarding_runs":
        return f"onboarding_api/tenants/{tenant_id}/onboarding/runs/{run_id}/resume"
    if collection == "tenant_runs" and process == "offboard-tenant":
        return f"tenant_api/tenants/{tenant_id}/offboarding/{run_id}/resume"
    if collection == "workflow_runs" and process.startswith("workflow:"):
        workflow_id = process.removeprefix("workflow:")
        return f"workflow_api/tenants/{tenant_id}/workflows/{workflow_id}/runs/{run_id}/resume"
    return None


def run_view(collection: str, snapshot: firestore.DocumentSnapshot[Any]) -> dict[str, Any]:
    run = snapshot.to_dict() or {}
    tenant = snapshot.reference.parent.parent
    tenant_id = tenant.id if tenant is not None else ""
    step = run.get("current_step")
    record = (run.get("steps") or {}).get(step) or {}
    updated = run.get("updated_at")
    return {
        "collection": collection,
        "tenant_id": tenant_id,
        "run_id": snapshot.id,
        "process": run.get("process"),
        "status": run.get("status"),
        "step": step,
        "step_status": record.get("status"),
        "attempts": record.get("attempts"),
        "error": record.get("error") or run.get("error"),
        "updated_at": updated.isoformat() if isinstance(updated, datetime) else updated,
        "resume": resume_route(collection, tenant_id, snapshot.id, str(run.get("process") or "")),
    }


def view(snapshot: firestore.DocumentSnapshot[Any]) -> dict[str, Any]:
    """A record as operators see it: its id, the envelope parsed, times as ISO 8601."""
    data = {"id": snapshot.id, **(snapshot.to_dict() or {})}
    envelope = data.get("envelope")
    if isinstance(envelope, str):
        with contextlib.suppress(ValueError):
            data["envelope"] = json.loads(envelope)
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in data.items()}


class OperationsService:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.db = platform.db
        self.catalog: Catalog = platform.catalog

    def page(self, kind: str, api: str | None, params: PageParams) -> tuple[list[dict[str, Any]], str | None]:
        collection, order = KINDS[kind]
        ref = self.db.collection(collection)
        query: Any = ref if api is None else ref.where(filter=firestore.FieldFilter("api", "==", api))
        found = paginate(ref, query, order, params, descending=True)
        return [view(s) for s in found.snapshots], found.next_cursor

    def counts(self) -> dict[str, dict[str, int]]:
        """Records per API, for alerting (read by field projection: one small read per record)."""
        return {
            kind: dict(
                sorted(
                    Counter(
                        str(s.get("api") or "unknown")
                        for s in self.db.collection(collection).select(["api"]).stream()
                    ).items()
                )
            )
            for kind, (collection, _) in KINDS.items()
        }

    def runs(self, state: str, limit: int) -> list[dict[str, Any]]:
        """Failed runs, or stuck ones (running, unchanged for STUCK_AFTER), newest first."""
        found: list[dict[str, Any]] = []
        cutoff = datetime.now(UTC) - STUCK_AFTER
        for collection in RUN_COLLECTIONS:
            query: Any = self.db.collection_group(collection)
            if state == "failed":
                query = query.where(filter=firestore.FieldFilter("status", "==", "failed"))
            else:
                query = query.where(filter=firestore.FieldFilter("status", "==", "running")).where(
                    filter=firestore.FieldFilter("updated_at", "<", cutoff)
                )
            query = query.order_by("updated_at", direction=firestore.Query.DESCENDING).limit(limit)
            found += [run_view(collection, s) for s in query.select(RUN_FIELDS).stream()]
        found.sort(key=lambda run: str(run["updated_at"]), reverse=True)
        return found[:limit]

    def _record(self, collection: str, record_id: str) -> firestore.DocumentSnapshot[Any]:
        snapshot = self.db.collection(collection).document(record_id).get()
        if not snapshot.exists:
            raise not_found(f"Record {record_id}")
        return snapshot

    def redrive(self, record_id: str) -> dict[str, Any]:
        snapshot = self._record(DEAD_LETTERS, record_id)
        record = snapshot.to_dict() or {}
        try:
            event = CloudEvent.model_validate_json(record["envelope"])
            entry = self.catalog.event_by_type(event.type)
            api = self.catalog.api(str(record["api"]))
        except (KeyError, ValueError) as exc:
            raise Problem(409, "not-redrivable", f"The dead letter {record_id} cannot be re-driven.") from exc
        if entry is None:
            raise Problem(409, "not-redrivable", f"The event type {event.type} left the catalog.")
        data, attributes = event.to_message()
        topic = f"projects/{self.platform.settings.project_id}/topics/{entry.topic}"
        publisher = self.platform.publisher()
        # A fresh budget: the intake counts this delivery's attempts from zero.
        self.db.collection(ATTEMPTS).document(record_id).delete()
        publish_result(
            publisher.publish(
                topic, data, ordering_key=event.ordering_key, **attributes, **{REDRIVE_ATTRIBUTE: api.name}
            )
        )
        snapshot.reference.delete()
        return {"id": record_id, "api": api.name, "event_id": event.id, "redriven": True}

    def redrive_all(self, api: str | None) -> dict[str, Any]:
        query: Any = self.db.collection(DEAD_LETTERS)
        if api is not None:
            query = query.where(filter=firestore.FieldFilter("api", "==", api))
        ids = [s.id for s in query.select(["api"]).limit(REDRIVE_ALL_LIMIT + 1).stream()]
        done, failed = [], []
        for record_id in ids[:REDRIVE_ALL_LIMIT]:
            try:
                done.append(self.redrive(record_id)["id"])
            except Problem:
                failed.append(record_id)
        return {"redriven": len(done), "not_redrivable": failed, "more": len(ids) > REDRIVE_ALL_LIMIT}

    def discard(self, kind: str, record_id: str, reason: str, operator: str) -> dict[str, Any]:
        collection, _ = KINDS[kind]
        snapshot = self._record(collection, record_id)
        record = snapshot.to_dict() or {}
        now = datetime.now(UTC)
        response = self.platform.services.call(
            AUDIT_FUNCTION,
            "POST",
            AUDIT_PATH,
            {
                "key": f"operations-discard:{kind}:{record_id}:{uuid.uuid4().hex}",
                "action": f"operations.{kind.replace('-', '_')}.discarded",
                "target": {
                    "type": "DeadLetter" if kind == "dead-letters" else "QuarantinedMessage",
                    "id": record_id,
                },
                "occurred_at": now.isoformat(),
                "details": {
                    "operator": operator,
                    "reason": reason,
                    "api": record.get("api"),
                    "event_id": record.get("event_id"),
                    "type": record.get("type"),
                    "tenant_id": record.get("tenant_id"),
                },
            },
        )
        if response.status_code not in (200, 201):
            raise Problem(
                503, "audit-unavailable", "The discard could not be recorded: nothing was discarded."
            )
        snapshot.reference.delete()
        return {"id": record_id, "discarded": True, "audit_entry": response.json().get("id")}
