"""Operations API against the whole suite: dead letters and quarantined messages listed and counted,
a dead letter re-driven to the one API that parked it (exactly once), records discarded with a reason
written to the platform trail; operators only."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from emulators.suite import Suite
from shared.catalog import load_catalog
from shared.contracts import PAYLOADS
from shared.events import new_event
from shared.intake import ATTEMPTS, DEAD_LETTERS, PROCESSED, QUARANTINE
from tests.conftest import Api, eventually, quiescent, store_tenant

CATALOG = load_catalog()
AUDIT = CATALOG.api("Audit API")


def parked_by_audit(db: Any, tenant_id: str) -> tuple[str, str]:
    """A Tenant Suspended the Audit API parked, as its intake records it: (record id, event id)."""
    name = "Tenant Suspended"
    extra: Any = PAYLOADS[name].model_config["json_schema_extra"]
    example: dict[str, Any] = extra["examples"][0]
    payload = PAYLOADS[name].model_validate({**example, "tenant_id": tenant_id})
    event = new_event(payload, tenant_id=tenant_id, subject=tenant_id, source_api_slug="tenant-api")
    key = f"{AUDIT.slug}--" + hashlib.sha256(f"{event.source}\n{event.id}".encode()).hexdigest()[:40]
    db.collection(DEAD_LETTERS).document(key).set(
        {
            "api": AUDIT.name,
            "subscription": f"tenant-suspended--{AUDIT.slug}",
            "event_id": event.id,
            "type": event.type,
            "tenant_id": tenant_id,
            "attempts": 5,
            "failure": "transient",
            "error": "ServiceUnavailable('down')",
            "envelope": event.model_dump_json(),
            "parked_at": datetime.now(UTC),
        }
    )
    db.collection(ATTEMPTS).document(key).set({"attempts": 5, "api": AUDIT.name})
    return key, event.id


def test_a_dead_letter_is_listed_counted_and_redriven_once_to_its_api(
    clean: Suite, db: Any, operator: str, tokens: Callable[..., str]
) -> None:
    tenant = store_tenant(f"ops-{uuid.uuid4().hex[:8]}")
    key, event_id = parked_by_audit(db, tenant["id"])
    ops = Api(clean.function_url("operations_api"), operator)

    listed = ops.get("/operations/dead-letters", params={"api": AUDIT.name})
    assert listed.status_code == 200, listed.text
    [item] = listed.json()["items"]
    assert item["id"] == key and item["failure"] == "transient" and item["envelope"]["id"] == event_id
    assert ops.get("/operations/summary").json()["dead-letters"] == {AUDIT.name: 1}
    admin = ops.as_(tokens(f"admin@{tenant['slug']}.example", tenant["id"], ("admin",)))
    assert admin.get("/operations/dead-letters").status_code == 403
    assert admin.post(f"/operations/dead-letters/{key}/redrive", json={}).status_code == 403

    redriven = ops.post(f"/operations/dead-letters/{key}/redrive", json={})
    assert redriven.status_code == 200, redriven.text
    audit = Api(clean.function_url("audit_api"), operator)
    eventually(
        lambda: [
            e
            for e in audit.get(f"/tenants/{tenant['id']}/audit/entries").json()["items"]
            if e["source_event"]["id"] == event_id
        ],
        timeout=60,
        what="the re-driven event recorded by the Audit API",
    )
    quiescent(db)
    processed = [d.to_dict() for d in db.collection(PROCESSED).stream() if d.get("event_id") == event_id]
    # Addressed to the Audit API only: the other subscribers of Tenant Suspended left it alone.
    assert [p["api"] for p in processed] == [AUDIT.name]
    assert not db.collection(DEAD_LETTERS).document(key).get().exists
    assert ops.get("/operations/summary").json()["dead-letters"] == {}
    assert ops.post(f"/operations/dead-letters/{key}/redrive", json={}).status_code == 404


def test_a_quarantined_message_is_discarded_with_a_reason_in_the_platform_trail(
    clean: Suite, db: Any, operator: str
) -> None:
    ops = Api(clean.function_url("operations_api"), operator)
    _, record = db.collection(QUARANTINE).add(
        {
            "api": AUDIT.name,
            "reason": "schema violation",
            "body_preview": "{}",
            "received_at": datetime.now(UTC),
        }
    )
    assert [i["id"] for i in ops.get("/operations/quarantine").json()["items"]] == [record.id]
    assert ops.post(f"/operations/quarantine/{record.id}/discard", json={"reason": ""}).status_code == 422
    discarded = ops.post(f"/operations/quarantine/{record.id}/discard", json={"reason": "a test message"})
    assert discarded.status_code == 200, discarded.text
    assert not record.get().exists
    trail = Api(clean.function_url("audit_api"), operator).get("/audit/platform/entries").json()["items"]
    [entry] = [e for e in trail if e["action"] == "operations.quarantine.discarded"]
    assert entry["target"]["id"] == record.id and entry["details"]["reason"] == "a test message"
    assert (
        ops.post(f"/operations/quarantine/{record.id}/discard", json={"reason": "again"}).status_code == 404
    )


def test_failed_and_stuck_runs_are_listed_with_their_failing_step_and_resume_route(
    clean: Suite, db: Any, operator: str
) -> None:
    ops = Api(clean.function_url("operations_api"), operator)
    now = datetime.now(UTC)
    old = now - timedelta(hours=1)

    def run(collection: str, run_id: str, process: str, status: str, updated: datetime) -> None:
        db.document(f"tenants/t_ops/{collection}/{run_id}").set(
            {
                "process": process,
                "status": status,
                "current_step": "notify",
                "steps": {"notify": {"status": status, "attempts": 3, "error": f"{run_id} broke"}},
                "input": {},
                "updated_at": updated,
            }
        )

    run("onboarding_runs", "onb_failed", "onboarding", "failed", now)
    run("workflow_runs", "wfr_failed", "workflow:wfl_1", "failed", old)
    run("tenant_runs", "off_stuck", "offboard-tenant", "running", old)
    run("workflow_runs", "wfr_moving", "workflow:wfl_1", "running", now)  # recent: not stuck
    run("workflow_runs", "wfr_done", "workflow:wfl_1", "succeeded", old)

    failed = ops.get("/operations/runs", params={"state": "failed"}).json()["items"]
    assert [(r["run_id"], r["step"], r["error"]) for r in failed] == [
        ("onb_failed", "notify", "onb_failed broke"),
        ("wfr_failed", "notify", "wfr_failed broke"),
    ]
    assert failed[1]["resume"] == "workflow_api/tenants/t_ops/workflows/wfl_1/runs/wfr_failed/resume"
    [stuck] = ops.get("/operations/runs", params={"state": "stuck"}).json()["items"]
    assert (stuck["run_id"], stuck["tenant_id"]) == ("off_stuck", "t_ops")
    assert stuck["resume"] == "tenant_api/tenants/t_ops/offboarding/off_stuck/resume"
    assert ops.get("/operations/runs", params={"state": "lost"}).status_code == 422
