"""The Onboarding API on the emulator suite: a new tenant is onboarded by itself, step by step, through the
other APIs; a failing step is retried with the queue's backoff, fails the run, and a resume completes it;
duplicate events start nothing; reactivations are checked; bad requests change nothing."""

from __future__ import annotations

import contextlib
import itertools
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
import requests
from google.cloud import firestore

from emulators.suite import Suite
from functions.onboarding_api import domain
from shared.auth import sign_local_service_token
from shared.contracts.payloads import TenantCreated
from shared.events import new_event
from tests.conftest import Api, dump_firestore, eventually, push_body, quiescent

STARTED = "com.cmp.onboarding.started.v1"
COMPLETED = "com.cmp.onboarding.completed.v1"


def create_tenant(tenant_api: Api, slug: str) -> dict[str, Any]:
    response = tenant_api.post(
        "/tenants",
        json={"name": slug.title(), "slug": slug, "plan": "growth", "admin_email": f"boss@{slug}.example"},
    )
    assert response.status_code == 201, response.text
    tenant: dict[str, Any] = response.json()
    return tenant


def onboarding(suite: Suite, token: str) -> Api:
    return Api(suite.function_url("onboarding_api"), token)


def settled(api: Api, tenant_id: str, status: str, timeout: float = 60) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        response = api.get(f"/tenants/{tenant_id}/onboarding")
        body: dict[str, Any] = response.json()
        return body if response.status_code == 200 and body["status"] == status else None

    result: dict[str, Any] = eventually(check, timeout=timeout, what=f"the onboarding to be {status}")
    return result


def outbox(db: Any, tenant_id: str, event_type: str, run_id: str | None = None) -> list[dict[str, Any]]:
    """The events of this type raised for the tenant (for one run: its id is their subject)."""
    query = db.collection("_outbox").where(filter=firestore.FieldFilter("tenant_id", "==", tenant_id))
    found = [d.to_dict() for d in query.stream() if d.get("type") == event_type]
    return [d for d in found if run_id is None or json.loads(d["envelope"])["subject"] == run_id]


def _at(value: str | None) -> datetime:
    assert value is not None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_a_new_tenant_is_onboarded_by_itself_step_by_step(
    tenant_api: Api, tokens: Callable[..., str], db: Any, clean: Suite
) -> None:
    tenant = create_tenant(tenant_api, "onb-happy")
    tid = tenant["id"]
    admin = onboarding(clean, tokens("boss@onb-happy.example", tid, ("admin",)))

    summary = settled(admin, tid, "succeeded")
    assert summary["percent"] == 100
    assert summary["ready"] is True
    assert summary["run_id"] == domain.onboarding_run_id(tid)
    assert summary["steps_done"] == summary["steps_total"] == len(domain.ONBOARD_STEPS)

    checklist = admin.get(f"/tenants/{tid}/onboarding/checklist").json()
    items = {i["name"]: i for i in checklist["items"]}
    assert [i["name"] for i in checklist["items"]] == list(domain.ONBOARD_STEPS)
    # Every API the steps use is deployed on the suite: nothing is skipped.
    for name in domain.ONBOARD_STEPS:
        assert items[name]["status"] == "done", items[name]
    # One step after the other: each started once the previous one had finished.
    ordered = checklist["items"]
    for before, after in itertools.pairwise(ordered):
        assert _at(before["finished_at"]) <= _at(after["started_at"]), (before, after)
    assert all(i["duration_ms"] is not None for i in ordered)

    run = admin.get(f"/tenants/{tid}/onboarding/runs/{summary['run_id']}").json()
    identity = run["steps"][0]["output"]
    assert identity["idp_tenant_id"] and "admin" in identity["roles"]
    seat_user = run["steps"][1]["output"]["user_id"]
    assert seat_user == domain.seat_user_id(tid, "boss@onb-happy.example")
    seats = tenant_api.get(f"/tenants/{tid}/seats").json()["items"]
    assert [s["user_id"] for s in seats] == [seat_user]
    assert run["steps"][2]["output"]["invitation_id"]  # User Management invited the first admin
    assert "token" not in str(run["steps"][2]["output"])  # an invitation token is never kept

    # Each event once: Started when the run began, Completed with the run's end.
    assert len(outbox(db, tid, STARTED)) == 1
    completed = outbox(db, tid, COMPLETED)
    assert len(completed) == 1
    listed = admin.get(f"/tenants/{tid}/onboarding/runs").json()
    assert [r["run_id"] for r in listed["items"]] == [summary["run_id"]]


@contextlib.contextmanager
def fast_retries(suite: Suite) -> Iterator[None]:
    """The onboarding queue retries within a fraction of a second (same attempts as deployed)."""
    from google.cloud import tasks_v2
    from google.protobuf import duration_pb2, field_mask_pb2

    from shared.clients import tasks_client
    from shared.config import get_settings

    name = f"projects/{suite.project}/locations/{get_settings().location}/queues/onboarding-steps"
    client = tasks_client()
    original = client.get_queue(name=name)
    fast = tasks_v2.Queue(
        name=name,
        retry_config=tasks_v2.RetryConfig(
            max_attempts=original.retry_config.max_attempts,
            min_backoff=duration_pb2.Duration(nanos=100_000_000),
            max_backoff=duration_pb2.Duration(nanos=400_000_000),
            max_doublings=2,
        ),
    )
    mask = field_mask_pb2.FieldMask(paths=["retry_config"])
    client.update_queue(queue=fast, update_mask=mask)
    try:
        yield
    finally:
        client.update_queue(
            queue=tasks_v2.Queue(name=name, retry_config=original.retry_config), update_mask=mask
        )


def test_a_failing_step_is_retried_then_fails_the_run_and_a_resume_completes_it(
    tenant_api: Api, operator: str, db: Any, clean: Suite
) -> None:
    from shared.clients import tasks_client
    from shared.config import get_settings

    queue = f"projects/{clean.project}/locations/{get_settings().location}/queues/onboarding-steps"
    ops = onboarding(clean, operator)
    with fast_retries(clean):
        tasks_client().pause_queue(name=queue)
        try:
            tenant = create_tenant(tenant_api, "onb-retry")
            tid = tenant["id"]
            eventually(lambda: ops.get(f"/tenants/{tid}/onboarding").status_code == 200, what="the run")
            # The tenant's seats refuse while it is suspended: the seat step cannot succeed.
            suspended = tenant_api.post(f"/tenants/{tid}/suspend", json={"reason": "Unpaid invoice"})
            assert suspended.status_code == 200, suspended.text
        finally:
            tasks_client().resume_queue(name=queue)
        failed = settled(ops, tid, "failed")

    assert failed["failed_step"] == "admin_seat"
    assert "409" in failed["error"]
    checklist = ops.get(f"/tenants/{tid}/onboarding/checklist").json()
    statuses = {i["name"]: i["status"] for i in checklist["items"]}
    assert statuses["identity"] == "done"
    assert statuses["admin_seat"] == "failed"
    assert statuses["mark_ready"] == "pending"
    seat = next(i for i in checklist["items"] if i["name"] == "admin_seat")
    assert seat["attempts"] == 8  # the queue's max_attempts, each one retried with backoff
    assert outbox(db, tid, COMPLETED) == []
    assert ops.get(f"/tenants/{tid}/onboarding").json()["ready"] is False

    # While the cause remains, an admin's resume is accepted (it fails again later); first fix it.
    assert tenant_api.post(f"/tenants/{tid}/reactivate", json={}).status_code == 200
    resumed = ops.post(f"/tenants/{tid}/onboarding/runs/{failed['run_id']}/resume", json={})
    assert resumed.status_code == 202, resumed.text
    assert resumed.json()["generation"] == 1
    done = settled(ops, tid, "succeeded")
    assert done["ready"] is True
    run = ops.get(f"/tenants/{tid}/onboarding/runs/{failed['run_id']}").json()
    assert [s["status"] for s in run["steps"]][:2] == ["done", "done"]
    assert run["steps"][0]["attempts"] == 1  # steps before the failed one did not run again
    assert len(outbox(db, tid, COMPLETED, failed["run_id"])) == 1


def _push(suite: Suite, payload: Any, tenant_id: str) -> requests.Response:
    envelope = new_event(payload, tenant_id=tenant_id, subject=tenant_id, source_api_slug="tenant-api")
    token = sign_local_service_token(
        suite.signing_key, f"pubsub-push@{suite.project}.iam.gserviceaccount.com"
    )
    body = push_body(envelope.model_dump_json(), str(uuid.uuid4()), "projects/p/subscriptions/tenant-created")
    return requests.post(
        f"{suite.function_url('onboarding_api_events')}?token={token}", json=body, timeout=30
    )


@pytest.mark.usefixtures("paused_sealing")  # a seal landing between the two snapshots is not a change
def test_another_tenant_created_event_for_the_same_tenant_starts_no_second_run(
    tenant_api: Api, operator: str, db: Any, clean: Suite
) -> None:
    tenant = create_tenant(tenant_api, "onb-dup")
    tid = tenant["id"]
    ops = onboarding(clean, operator)
    settled(ops, tid, "succeeded")
    before = quiescent(db, tenant_id=tid)

    payload = TenantCreated(
        tenant_id=tid,
        name="Onb-Dup",
        slug="onb-dup",
        plan="growth",
        seat_limit=10,
        admin_email="other@onb-dup.example",
        actor={"type": "service", "id": "replay", "email": None},
    )
    answer = _push(clean, payload, tid)
    assert answer.status_code == 200 and answer.json()["result"] == "processed", answer.text
    after = quiescent(db, tenant_id=tid)
    changed = {k for k in after if after[k] != before.get(k)} | (before.keys() - after.keys())
    assert all(k.startswith("_processed_events/") for k in changed), changed
    assert len(ops.get(f"/tenants/{tid}/onboarding/runs").json()["items"]) == 1
    assert len(outbox(db, tid, STARTED)) == 1


def test_a_reactivation_runs_a_reonboarding_check_with_findings(
    tenant_api: Api, operator: str, db: Any, clean: Suite
) -> None:
    tenant = create_tenant(tenant_api, "onb-react")
    tid = tenant["id"]
    ops = onboarding(clean, operator)
    settled(ops, tid, "succeeded")
    assert tenant_api.post(f"/tenants/{tid}/suspend", json={"reason": "Audit"}).status_code == 200
    assert tenant_api.post(f"/tenants/{tid}/reactivate", json={}).status_code == 200

    def check() -> dict[str, Any] | None:
        runs = ops.get(f"/tenants/{tid}/onboarding/runs", params={"process": "reonboard-tenant"}).json()
        found = [r for r in runs["items"] if r["status"] == "succeeded"]
        return found[0] if found else None

    run = eventually(check, timeout=60, what="the re-onboarding check")
    steps = {s["name"]: s for s in run["steps"]}
    assert list(steps) == list(domain.REONBOARD_STEPS)
    assert steps["identity"]["status"] == "done"
    assert steps["identity"]["output"]["identity_created"] is False  # it was there: nothing to restore
    assert steps["admin_access"]["output"]["finding"]  # an admin, or what to do about none
    checklist = ops.get(f"/tenants/{tid}/onboarding/checklist", params={"run_id": run["run_id"]}).json()
    assert [i["name"] for i in checklist["items"]] == list(domain.REONBOARD_STEPS)
    started = [d for d in outbox(db, tid, STARTED) if '"tenant_reactivated"' in d["envelope"]]
    assert len(started) == 1


@pytest.mark.usefixtures("paused_sealing")
def test_bad_requests_answer_problems_and_change_nothing(
    tenant_api: Api, operator: str, tokens: Callable[..., str], db: Any, clean: Suite
) -> None:
    tenant = create_tenant(tenant_api, "onb-bad")
    tid = tenant["id"]
    ops = onboarding(clean, operator)
    summary = settled(ops, tid, "succeeded")
    before = quiescent(db, tenant_id=tid)
    run_path = f"/tenants/{tid}/onboarding/runs/{summary['run_id']}"

    cases = [
        (ops.post(f"{run_path}/resume", json={}), 409, "run-not-resumable"),  # it succeeded
        (ops.post(f"{run_path}/resume", json={"from_step": "Nope!"}), 422, "validation-error"),
        (ops.post(f"{run_path}/resume", json={"unknown": 1}), 422, "validation-error"),
        (
            ops.post(f"{run_path}/resume", data="{", headers={"Content-Type": "application/json"}),
            400,
            "bad-request",
        ),
        (ops.post(f"/tenants/{tid}/onboarding/runs/onb_nothere/resume", json={}), 404, "not-found"),
        (ops.get(f"/tenants/{tid}/onboarding/runs/x"), 404, "not-found"),
        (ops.get(f"/tenants/{tid}/onboarding/runs", params={"limit": 0}), 422, "validation-error"),
        (ops.get(f"/tenants/{tid}/onboarding/runs", params={"process": "x"}), 422, "validation-error"),
        (ops.get(f"/tenants/{tid}/onboarding/checklist", params={"run_id": "bad"}), 422, "validation-error"),
        (ops.get("/tenants/tnt_unknown/onboarding"), 404, "not-found"),
    ]
    for response, status, kind in cases:
        assert response.status_code == status, (response.request.url, response.text)
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert response.json()["type"].endswith("/" + kind), response.text
    # A viewer may not read onboarding; another tenant's admin does not even see it.
    viewer = onboarding(clean, tokens("v@onb-bad.example", tid, ("viewer",)))
    assert viewer.get(f"/tenants/{tid}/onboarding").status_code == 403
    stranger = onboarding(clean, tokens("a@elsewhere.example", "tnt_elsewhere", ("admin",)))
    assert stranger.get(f"/tenants/{tid}/onboarding").status_code == 404
    assert dump_firestore(db, tid) == before
