"""Offboard Tenant and Handle Support Ticket on the running suite: a tenant with data in several APIs
is deactivated; its users' sessions are revoked, its webhooks disabled (after their last notification),
its data exported with a manifest whose checksums verify; after the retention period (15 s here,
tests/conftest.py) nothing of it is left but a tombstone, and the proof and the ticket say so."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from emulators.suite import Suite
from tests.conftest import Api, Receiver, dump_firestore, eventually, quiescent

PROBLEM = "application/problem+json"
PASSWORD = "correct-horse-battery"
RETENTION_WAIT = 120  # 15 s of retention, then the steps on a 2-core machine shared with other tests


def webhook_secrets(suite: Suite, tenant_id: str) -> list[str]:
    from shared.clients import secrets_client

    listed = secrets_client().list_secrets(request={"parent": f"projects/{suite.project}"})
    return [
        s.name
        for s in listed
        if s.name.rsplit("/", 1)[-1].startswith(f"integration-api--webhook-{tenant_id}-")
    ]


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def populate(clean: Suite, operator: str, receiver: Receiver) -> dict[str, Any]:
    """A tenant with data in the Tenant, User Management, Access Control and Integration APIs."""
    tenant_api = Api(clean.function_url("tenant_api"), operator)
    slug = f"off-{uuid.uuid4().hex[:8]}"
    tenant = ok(
        tenant_api.post(
            "/tenants",
            json={
                "name": "Offboarded",
                "slug": slug,
                "plan": "growth",
                "admin_email": f"admin@{slug}.example",
            },
        ),
        201,
    )
    tid = tenant["id"]
    # Onboarding (started by Tenant Created) invites the first admin: let it finish first.
    onboarding = Api(clean.function_url("onboarding_api"), operator)
    eventually(
        lambda: onboarding.get(f"/tenants/{tid}/onboarding").json().get("status") == "succeeded",
        timeout=60,
        what="the tenant's onboarding",
    )
    users = Api(clean.function_url("user_management_api"), operator)
    invited = ok(
        users.post(f"/tenants/{tid}/invitations", json={"email": f"ann@{slug}.example", "role": "admin"}), 201
    )
    ok(
        users.as_(None).post(
            "/invitations/accept",
            json={"token": invited["token"], "password": PASSWORD, "display_name": "Ann"},
        )
    )
    ok(
        users.post(f"/tenants/{tid}/invitations", json={"email": f"bob@{slug}.example", "role": "member"}),
        201,
    )
    access = Api(clean.function_url("access_control_api"), operator)
    ok(
        access.put(
            f"/tenants/{tid}/access/roles/auditor", json={"name": "Auditor", "permissions": ["audit:read"]}
        ),
        201,
    )
    hooks = Api(clean.function_url("integration_api"), operator)
    final = ok(
        hooks.post(
            f"/tenants/{tid}/webhooks/endpoints",
            json={"url": receiver.url, "event_types": ["Tenant Deactivated"]},
        ),
        201,
    )
    other = ok(
        hooks.post(
            f"/tenants/{tid}/webhooks/endpoints",
            json={"url": "http://127.0.0.1:9/none", "event_types": ["Contact Created"]},
        ),
        201,
    )
    return {"tenant": tenant, "slug": slug, "endpoints": [final["id"], other["id"]]}


def test_offboarding_exports_then_erases_every_trace_and_proves_it(
    clean: Suite, db: Any, operator: str, receiver: Receiver, tokens: Callable[..., str]
) -> None:
    made = populate(clean, operator, receiver)
    tid = made["tenant"]["id"]
    tenant_api = Api(clean.function_url("tenant_api"), operator)
    ok(tenant_api.post(f"/tenants/{tid}/deactivate", json={"reason": "contract ended"}))
    # A second deactivation is refused and starts nothing.
    assert tenant_api.post(f"/tenants/{tid}/deactivate", json={"reason": "again"}).status_code == 409

    # Access: the tenant is blocked and the accepted user's sessions revoked.
    def revoked() -> Any:
        runs = ok(tenant_api.get(f"/tenants/{tid}/offboarding"))["runs"]
        steps = {s["name"]: s for s in runs[0]["steps"]} if runs else {}
        return runs if steps.get("disable-webhooks", {}).get("status") == "done" else None

    runs = eventually(revoked, timeout=60, what="access revoked and webhooks disabled")
    assert len(runs) == 1
    steps = {s["name"]: s for s in runs[0]["steps"]}
    assert steps["revoke-access"]["output"]["sessions_revoked"] == 1
    assert steps["disable-webhooks"]["output"]["endpoints_disabled"] == 2
    assert len(webhook_secrets(clean, tid)) == 2
    # The last notification was delivered before the endpoints were disabled.
    assert any(b["type"] == "com.cmp.tenant.deactivated.v1" for b in receiver.bodies())
    endpoints = db.collection("tenants", tid, "webhook_endpoints").stream()
    assert all(e.get("enabled") is False for e in endpoints)

    # The export: a manifest, and every file verifies against it.
    export = eventually(
        lambda: (r := tenant_api.get(f"/tenants/{tid}/export")).status_code == 200 and r.json(),
        timeout=60,
        what="the export",
    )
    manifest = export["manifest"]
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    assert hashlib.sha256(canonical).hexdigest() == export["manifest_sha256"]
    files = {f["collection"]: f for f in manifest["files"]}
    for collection in ("users", "invitations", "seats", "access_roles", "webhook_endpoints", "identity"):
        assert collection in files, (collection, sorted(files))
    # The first admin (invited by onboarding), Ann and Bob; the custom role.
    assert files["users"]["documents"] == 3 and files["access_roles"]["documents"] == 1
    for entry in manifest["files"]:
        response = tenant_api.get(f"/tenants/{tid}/export/files/{entry['name']}")
        assert response.status_code == 200 and response.headers["Content-Type"].startswith(
            "application/x-ndjson"
        )
        assert (
            hashlib.sha256(response.content).hexdigest()
            == entry["sha256"]
            == response.headers["ETag"].strip('"')
        )
        assert len(response.content) == entry["bytes"]
        lines = [json.loads(line) for line in response.content.splitlines()]
        assert len(lines) == entry["documents"]
        assert all(line["path"].startswith(entry["collection"].split("/")[0] + "/") for line in lines)
    assert "tenant_runs" not in files  # the process's own records are not customer data

    # The support ticket, for the Customer Support Service.
    ticket = eventually(
        lambda: ok(tenant_api.get("/support-tickets", params={"tenant_id": tid}))["items"],
        timeout=60,
        what="the support ticket",
    )[0]
    assert ticket["reason"] == "contract ended" and ticket["status"] == "open"
    assert ticket["open_items"]["pending_invitations"] == 2  # the first admin's and Bob's
    # The Customer Health API scored the tenant since Tenant Created: the ticket carries its grade.
    assert ticket["health"]["http_status"] == 200, ticket["health"]
    assert ticket["health"]["status"] == ticket["health"]["grade"]
    assert ticket["health"]["grade"] in ("healthy", "watch", "at_risk", "critical")
    assert "email" not in json.dumps(ticket["open_items"])

    # Soft delete: marked for erasure, at the end of the retention period.
    body = ok(tenant_api.get(f"/tenants/{tid}"))
    assert body["status"] == "deactivated"
    assert (
        body["erasure"]["status"] == "pending"
        and body["erasure"]["export_sha256"] == export["manifest_sha256"]
    )

    # After the retention period: erased, proven, and the run records purged.
    proof = eventually(
        lambda: (
            (r := tenant_api.get(f"/tenants/{tid}/erasure-proof")).status_code == 200
            and r.json()["status"] == "complete"
            and r.json()
        ),
        timeout=RETENTION_WAIT,
        what="the erasure to complete",
    )
    assert proof["export"]["manifest_sha256"] == export["manifest_sha256"]
    for collection in ("users", "invitations", "seats", "access_roles", "webhook_endpoints"):
        assert proof["deleted"][collection] == files[collection]["documents"], collection
    assert proof["identity_tenant_deleted"] is True
    # The signing secrets live in Secret Manager, outside the tenant's documents: gone too.
    assert proof["webhook_secrets_deleted"] == 2 and webhook_secrets(clean, tid) == []
    assert proof["outside"]["tenant_slugs"] == 1
    assert proof["verified_empty"] is True

    # The proof is also an entry of the Audit API's platform trail, which outlives the tenant's own.
    audit = Api(clean.function_url("audit_api"), operator)
    trail = ok(audit.get("/audit/platform/entries", params={"target": tid}))["items"]
    assert [e["id"] for e in trail] == [proof["audit_entry_id"]]
    assert trail[0]["action"] == "tenant.erased" and trail[0]["actor"]["type"] == "service"
    assert trail[0]["details"]["documents_deleted"] == proof["documents_deleted"]
    assert trail[0]["details"]["export_manifest_sha256"] == export["manifest_sha256"]
    sealed = eventually(
        lambda: (report := ok(audit.get("/audit/platform/verify")))["unsealed"] == 0 and report,
        what="the platform trail to be sealed",
    )
    assert sealed["ok"] is True and sealed["first_broken"] is None, sealed
    # Tenants read no platform trail.
    admin = Api(clean.function_url("audit_api"), tokens("admin@x.example", tid, ("admin",)))
    assert admin.get("/audit/platform/entries").status_code in (401, 403)

    everything = quiescent(db)
    under = [p for p in everything if p.startswith(f"tenants/{tid}/")]
    assert under == []
    assert everything[f"tenants/{tid}"] == {
        "id": tid,
        "status": "erased",
        "erased_at": everything[f"tenants/{tid}"]["erased_at"],
    }
    traces = [
        path
        for path, data in everything.items()
        if not path.startswith("tenants/") and data.get("tenant_id") == tid
    ]
    assert sorted(p.split("/")[0] for p in traces) == ["erasure_proofs", "support_tickets"]
    assert f"tenant_slugs/{made['slug']}" not in everything
    assert tenant_api.get(f"/tenants/{tid}").status_code == 410
    assert tenant_api.get(f"/tenants/{tid}/export").status_code == 404
    assert tenant_api.post(f"/tenants/{tid}/reactivate", json={}).status_code == 410
    listed = ok(tenant_api.get("/tenants", params={"limit": 200}))["items"]
    assert tid not in [t["id"] for t in listed]


def test_the_erase_and_prove_steps_run_again_change_nothing(
    clean: Suite, db: Any, operator: str, receiver: Receiver
) -> None:
    """A killed erase step is retried by the queue: running it (and the proof) again after it finished
    deletes nothing more and leaves the proof's counts as they were."""
    from functions.tenant_api.offboarding import IdentityAdmin, Offboarding
    from shared.config import get_settings
    from shared.steps import StepContext

    made = populate(clean, operator, receiver)
    tid = made["tenant"]["id"]
    tenant_api = Api(clean.function_url("tenant_api"), operator)
    deactivated = ok(tenant_api.post(f"/tenants/{tid}/deactivate", json={"reason": "gone"}))
    eventually(
        lambda: (
            (r := tenant_api.get(f"/tenants/{tid}/erasure-proof")).status_code == 200
            and r.json()["status"] == "complete"
        ),
        timeout=RETENTION_WAIT,
        what="the erasure to complete",
    )
    before = dump_firestore(db, tid)

    class NoQueue:
        def enqueue(self, *args: Any, **kwargs: Any) -> bool:
            return False

    steps = Offboarding(db, IdentityAdmin(get_settings()), lambda: NoQueue())  # type: ignore[arg-type,return-value]

    def ctx(step: str) -> StepContext:
        return StepContext(
            tenant_id=tid,
            run_id=f"offboard-v{deactivated['version']}",
            process="offboard-tenant",
            step=step,
            attempt=2,
            input={"deactivated_at": deactivated["deactivated_at"], "reason": "gone"},
            outputs={
                "export": {"manifest_sha256": before[f"erasure_proofs/{tid}"]["export"]["manifest_sha256"]}
            },
            started_at=datetime.now(UTC),
        )

    again = steps.erase(ctx("erase"))
    assert again.output["deleted"] == before[f"erasure_proofs/{tid}"]["deleted"]
    assert steps.purge_runs(tid, f"offboard-v{deactivated['version']}") == "purged"
    after = dump_firestore(db, tid)
    assert [p for p in after if p.startswith(f"tenants/{tid}/")] == []
    assert after[f"erasure_proofs/{tid}"]["deleted"] == before[f"erasure_proofs/{tid}"]["deleted"]
    assert after[f"erasure_proofs/{tid}"]["outside"] == before[f"erasure_proofs/{tid}"]["outside"]


@pytest.mark.usefixtures("paused_sealing")  # a seal landing between the two snapshots is not a change
def test_a_reactivated_tenant_is_not_erased(clean: Suite, db: Any, operator: str) -> None:
    tenant_api = Api(clean.function_url("tenant_api"), operator)
    slug = f"back-{uuid.uuid4().hex[:8]}"
    tenant = ok(
        tenant_api.post(
            "/tenants",
            json={"name": "Back", "slug": slug, "plan": "free", "admin_email": f"a@{slug}.example"},
        ),
        201,
    )
    tid = tenant["id"]
    ok(tenant_api.post(f"/tenants/{tid}/deactivate", json={"reason": "by mistake"}))
    ok(tenant_api.post(f"/tenants/{tid}/reactivate", json={}))

    def finished() -> Any:
        runs = ok(tenant_api.get(f"/tenants/{tid}/offboarding"))["runs"]
        return runs if runs and runs[0]["status"] == "succeeded" else None

    run = eventually(finished, timeout=60, what="the offboarding run to end")[0]
    cancelled = [s for s in run["steps"] if s["output"] and "cancelled" in s["output"]]
    assert cancelled and cancelled[0]["output"]["cancelled"] == "the tenant is active"
    assert ok(tenant_api.get(f"/tenants/{tid}"))["status"] == "active"
    assert db.collection("tenant_slugs").document(slug).get().exists
    assert tenant_api.get(f"/tenants/{tid}/erasure-proof").status_code == 404

    # Only a failed or stalled run can be resumed; refusals change nothing.
    before = quiescent(db, tenant_id=tid)
    resume = f"/tenants/{tid}/offboarding/{run['run_id']}/resume"
    refused = tenant_api.post(resume, json={})
    assert refused.status_code == 409 and refused.headers["Content-Type"] == PROBLEM
    assert refused.json()["type"].endswith("/run-not-resumable")
    assert tenant_api.post(resume, json={"from_step": 5}).status_code == 422
    assert tenant_api.post(resume, json={"step": "erase"}).status_code == 422
    assert tenant_api.post(f"/tenants/{tid}/offboarding/offboard-v999/resume", json={}).status_code == 404
    assert tenant_api.post(f"/tenants/{tid}/offboarding/nope/resume", json={}).status_code == 404
    assert dump_firestore(db, tid) == before


def test_ticket_routes_refuse_bad_input_and_change_nothing(
    clean: Suite, db: Any, operator: str, tokens: Callable[..., str]
) -> None:
    tenant_api = Api(clean.function_url("tenant_api"), operator)
    slug = f"tk-{uuid.uuid4().hex[:8]}"
    tenant = ok(
        tenant_api.post(
            "/tenants", json={"name": "Tk", "slug": slug, "plan": "free", "admin_email": f"a@{slug}.example"}
        ),
        201,
    )
    tid = tenant["id"]
    ok(tenant_api.post(f"/tenants/{tid}/deactivate", json={"reason": "moving on"}))
    ticket = eventually(
        lambda: ok(tenant_api.get("/support-tickets", params={"tenant_id": tid}))["items"],
        timeout=60,
        what="the support ticket",
    )[0]
    path = f"/support-tickets/{ticket['id']}"
    assert ok(tenant_api.get(path))["id"] == ticket["id"]
    before_ticket = db.collection("support_tickets").document(ticket["id"]).get().to_dict()
    for bad in ({"status": "closed"}, {"status": "resolved", "extra": 1}, {}):
        response = tenant_api.patch(path, json=bad)
        assert response.status_code == 422 and response.headers["Content-Type"] == PROBLEM, response.text
    assert tenant_api.patch("/support-tickets/tk_nope", json={"status": "resolved"}).status_code == 404
    assert tenant_api.get("/support-tickets", params={"status": "closed"}).status_code == 422
    assert tenant_api.get(f"/tenants/{tid}/export/files/..%2Fsecrets.ndjson").status_code == 404
    assert db.collection("support_tickets").document(ticket["id"]).get().to_dict() == before_ticket

    working = ok(tenant_api.patch(path, json={"status": "in_progress", "note": "called the customer"}))
    assert working["status"] == "in_progress"
    done = ok(tenant_api.patch(path, json={"status": "resolved"}))
    assert [h["status"] for h in done["history"]] == ["open", "in_progress", "resolved"]
    assert [
        t["id"] for t in ok(tenant_api.get("/support-tickets", params={"status": "resolved"}))["items"]
    ] == [ticket["id"]]
    # A tenant's own admin never sees support tickets.
    admin = Api(clean.function_url("tenant_api"), tokens(f"admin@{slug}.example", tid, ("admin",)))
    assert admin.get(path).status_code == 403
    assert admin.get(f"/tenants/{tid}/export").status_code == 403
