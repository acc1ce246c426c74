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
import re
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
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
OWNER_DEADLINE_SECONDS = 10.0
RUN_FIELDS = ["process", "status", "current_step", "updated_at", "error", "steps"]
RUN_ID = r"^[A-Za-z0-9_.:-]{1,200}$"


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
    route = resume_route(collection, tenant_id, snapshot.id, str(run.get("process") or ""))
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
        "resume": route,
        "resume_here": f"/operations/runs/{collection}/{tenant_id}/{snapshot.id}/resume" if route else None,
    }


def view(snapshot: firestore.DocumentSnapshot[Any]) -> dict[str, Any]:
    """A record as operators see it: its id, the envelope parsed, times as ISO 8601."""
    data = {"id": snapshot.id, **(snapshot.to_dict() or {})}
    envelope = data.get("envelope")
    if isinstance(envelope, str):
        with contextlib.suppress(ValueError):
            data["envelope"] = json.loads(envelope)
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in data.items()}


@dataclass(frozen=True)
class Operator:
    uid: str
    authorization: str  # the operator's own `Authorization` header, for the owning API


class OperationsService:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self._owners = requests.Session()
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

    def _trail(
        self, action: str, target: dict[str, str], details: dict[str, Any], refused: str
    ) -> str | None:
        """Write an operator's action to the platform trail (Audit API) before it is done; answers the
        entry's id. A trail that cannot be written refuses the action (503, `refused` says so)."""
        response = self.platform.services.call(
            AUDIT_FUNCTION,
            "POST",
            AUDIT_PATH,
            {
                "key": f"{action}:{target['id']}:{uuid.uuid4().hex}",
                "action": action,
                "target": target,
                "occurred_at": datetime.now(UTC).isoformat(),
                "details": details,
            },
        )
        if response.status_code not in (200, 201):
            raise Problem(503, "audit-unavailable", refused)
        entry: str | None = response.json().get("id")
        return entry

    def discard(self, kind: str, record_id: str, reason: str, operator: str) -> dict[str, Any]:
        collection, _ = KINDS[kind]
        snapshot = self._record(collection, record_id)
        record = snapshot.to_dict() or {}
        entry = self._trail(
            f"operations.{kind.replace('-', '_')}.discarded",
            {"type": "DeadLetter" if kind == "dead-letters" else "QuarantinedMessage", "id": record_id},
            {
                "operator": operator,
                "reason": reason,
                "api": record.get("api"),
                "event_id": record.get("event_id"),
                "type": record.get("type"),
                "tenant_id": record.get("tenant_id"),
            },
            "The discard could not be recorded: nothing was discarded.",
        )
        snapshot.reference.delete()
        return {"id": record_id, "discarded": True, "audit_entry": entry}

    def resume(
        self, collection: str, tenant_id: str, run_id: str, from_step: str | None, operator: Operator
    ) -> dict[str, Any]:
        """Resume a run through the resume route of the API that owns it, called with the operator's
        own credentials: the owning API applies its rules (which runs resume, from which step) and the
        operator's permission, and records the operator as who resumed it. The operator's request is
        written to the platform trail first."""
        if collection not in RUN_COLLECTIONS or not all(
            re.fullmatch(RUN_ID, value) for value in (tenant_id, run_id)
        ):
            raise not_found(f"The run {run_id}")
        snapshot = self.db.collection("tenants", tenant_id, collection).document(run_id).get()
        if not snapshot.exists:
            raise not_found(f"The run {run_id}")
        route = resume_route(collection, tenant_id, run_id, str(snapshot.get("process") or ""))
        if route is None:
            raise Problem(409, "not-resumable", f"No API resumes the run {run_id} of {collection}.")
        entry = self._trail(
            "operations.run.resumed",
            {"type": "ProcessRun", "id": run_id},
            {
                "operator": operator.uid,
                "tenant_id": tenant_id,
                "collection": collection,
                "from_step": from_step,
            },
            "The resume could not be recorded: the run was not resumed.",
        )
        function = route.split("/", 1)[0]
        try:
            answer = self._owners.post(
                f"{self.platform.settings.function_url(function)}{route.removeprefix(function)}",
                json={} if from_step is None else {"from_step": from_step},
                headers={"Authorization": operator.authorization},
                timeout=OWNER_DEADLINE_SECONDS,
            )
        except requests.RequestException as exc:
            raise self._owner_unavailable(function) from exc
        if answer.status_code >= 500:
            raise self._owner_unavailable(function)
        if answer.status_code >= 400:  # the owning API's refusal (unknown step, run not failed) as it is
            problem = answer.json() if answer.content else {}
            raise Problem(
                answer.status_code,
                str(problem.get("type") or "").rsplit("/", 1)[-1] or "resume-refused",
                str(problem.get("detail") or problem.get("title") or f"{function} refused the resume."),
            )
        return {"resumed": True, "route": route, "audit_entry": entry, "run": answer.json()}

    @staticmethod
    def _owner_unavailable(function: str) -> Problem:
        return Problem(
            503,
            "dependency-unavailable",
            f"The {function} function did not resume the run; nothing was changed by this call.",
            headers={"Retry-After": "1"},
        )
