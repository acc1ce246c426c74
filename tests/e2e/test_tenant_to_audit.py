"""End to end, exactly as in production: HTTP -> Firestore + outbox -> Pub/Sub -> push to the Audit
function -> audit entry -> sealed by a named Cloud Task -> queryable and verifiable over HTTP."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from google.cloud import pubsub_v1
from google.cloud.firestore import FieldFilter

from emulators.suite import Suite
from shared.catalog import load_catalog, schemas_dir
from shared.contracts import Actor
from shared.contracts.payloads import PaymentFailed, UserDeactivated
from shared.events import CloudEvent, new_event
from tests.conftest import Api, eventually

CATALOG = load_catalog()
CATALOG_DIR = schemas_dir() / "events"


def publish(suite: Suite, event: CloudEvent) -> None:
    """Publish as the owning service would: the catalog's topic, the kernel's message encoding."""
    publisher = pubsub_v1.PublisherClient()
    data, attributes = event.to_message()
    topic = publisher.topic_path(suite.project, CATALOG.event_by_type(event.type).topic)  # type: ignore[union-attr]
    publisher.publish(topic, data, **attributes).result(timeout=30)


def entries(audit: Api, tenant_id: str, **params: Any) -> list[dict[str, Any]]:
    response = audit.get(f"/tenants/{tenant_id}/audit/entries", params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_a_new_tenant_and_its_suspension_land_in_the_audit_trail(
    tenant_api: Api, audit_api: Api, tokens: Callable[..., str]
) -> None:
    tenant = tenant_api.post(
        "/tenants",
        json={"name": "Acme", "slug": "acme", "plan": "growth", "admin_email": "admin@acme.example"},
    ).json()
    tenant_api.post(f"/tenants/{tenant['id']}/suspend", json={"reason": "overdue invoice"})
    # A suspended tenant's own users are refused (Access Control); the platform operator reads on.
    audit = audit_api.as_(tenant_api.token)
    admin = audit_api.as_(tokens("admin@acme.example", tenant["id"], ("admin",)))

    def blocked() -> dict[str, Any] | None:
        response = admin.get(f"/tenants/{tenant['id']}/audit/entries")
        return response.json() if response.status_code == 403 else None

    refusal = eventually(blocked, what="the suspended tenant's admin to be refused")
    assert "suspended" in refusal["reason"]

    created = eventually(
        lambda: entries(audit, tenant["id"], action="tenant.created"), what="the audit entry"
    )
    assert created[0]["target"] == {"type": "Tenant", "id": tenant["id"]}
    assert created[0]["actor"]["type"] == "user" and created[0]["actor"]["email"] == "operator@platform.test"
    assert created[0]["outcome"] == "success"
    suspended = eventually(lambda: entries(audit, tenant["id"], action="tenant.suspended"), what="suspension")
    assert suspended[0]["details"]["reason"] == "overdue invoice"

    def sealed_and_verified() -> dict[str, Any] | None:
        report: dict[str, Any] = audit.get(f"/tenants/{tenant['id']}/audit/verify").json()
        return report if report["ok"] and report["unsealed"] == 0 and report["entries_checked"] >= 2 else None

    report = eventually(sealed_and_verified, timeout=30, what="the entries to be sealed")
    assert report["first_broken"] is None and report["blocks_checked"] >= 1

    export = audit.get(f"/tenants/{tenant['id']}/audit/export")
    assert export.headers["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in export.text.splitlines()]
    # Besides the tenant's own two, only what its creation set going: onboarding, and a built-in
    # workflow reacting to the health drop the suspension causes.
    actions = {line["action"] for line in lines}
    own = {"tenant.created", "tenant.suspended"}
    assert own <= actions <= own | {"onboarding.started", "onboarding.completed", "workflow.executed"}

    other = tenant_api.post(
        "/tenants",
        json={"name": "Other", "slug": "other", "plan": "free", "admin_email": "admin@other.example"},
    ).json()
    outsider = audit_api.as_(tokens("admin@other.example", other["id"], ("admin",)))
    assert outsider.get(f"/tenants/{tenant['id']}/audit/entries").status_code == 404
    viewer = audit_api.as_(tokens("viewer@acme.example", tenant["id"], ("viewer",)))
    assert viewer.get(f"/tenants/{tenant['id']}/audit/entries").status_code == 403


def test_editing_an_entry_in_the_database_is_detected_by_verify(
    tenant_api: Api, audit_api: Api, tokens: Callable[..., str], db: Any
) -> None:
    tenant = tenant_api.post(
        "/tenants",
        json={"name": "Tamper", "slug": "tamper", "plan": "free", "admin_email": "a@tamper.example"},
    ).json()
    tenant_api.post(f"/tenants/{tenant['id']}/suspend", json={"reason": "r"})
    audit = audit_api.as_(tenant_api.token)  # the operator: the suspended tenant's users are refused
    eventually(
        lambda: (
            audit.get(f"/tenants/{tenant['id']}/audit/verify").json()["blocks_checked"] >= 1
            and audit.get(f"/tenants/{tenant['id']}/audit/verify").json()["unsealed"] == 0
        ),
        timeout=30,
        what="a sealed block",
    )
    victim = entries(audit, tenant["id"], action="tenant.suspended")[0]
    db.document(f"tenants/{tenant['id']}/audit_entries/{victim['id']}").update(
        {"details.reason": "nothing to see"}
    )
    report = audit.get(f"/tenants/{tenant['id']}/audit/verify").json()
    assert report["ok"] is False
    assert report["first_broken"]["entry_id"] == victim["id"]


def test_a_final_payment_failure_from_billing_suspends_the_tenant_and_is_audited(
    tenant_api: Api, audit_api: Api, tokens: Callable[..., str], clean: Suite
) -> None:
    tenant = tenant_api.post(
        "/tenants", json={"name": "Late", "slug": "late", "plan": "starter", "admin_email": "a@late.example"}
    ).json()
    payment = PaymentFailed(
        tenant_id=tenant["id"], invoice_id="inv_1", amount_cents=4900, currency="EUR", attempt=4, final=True
    )
    publish(
        clean,
        new_event(
            payment,
            tenant_id=tenant["id"],
            subject="inv_1",
            source_api_slug="billing",
            source="//billing.example/invoices",
        ),
    )
    eventually(
        lambda: tenant_api.get(f"/tenants/{tenant['id']}").json()["status"] == "suspended",
        what="the tenant to be suspended by the billing event",
    )
    audit = audit_api.as_(tenant_api.token)  # the operator: the suspended tenant's users are refused
    suspended = eventually(
        lambda: entries(audit, tenant["id"], action="tenant.suspended"), what="the audit entry"
    )
    assert suspended[0]["actor"] == {"type": "system", "id": "billing", "email": None}
    assert suspended[0]["details"]["reason"] == "payment failed"


def test_many_user_deactivations_raise_an_audit_alert_that_is_published(
    tenant_api: Api, audit_api: Api, tokens: Callable[..., str], clean: Suite
) -> None:
    subscriber = pubsub_v1.SubscriberClient()
    topic = subscriber.topic_path(clean.project, CATALOG.event("Audit Alert Triggered").topic)
    subscription = subscriber.subscription_path(clean.project, f"test-alerts-{uuid.uuid4().hex[:8]}")
    subscriber.create_subscription(request={"name": subscription, "topic": topic})
    tenant = tenant_api.post(
        "/tenants", json={"name": "Mass", "slug": "mass", "plan": "growth", "admin_email": "a@mass.example"}
    ).json()
    admin = Actor(type="user", id="rogue-admin", email="rogue@mass.example")
    example = json.loads((CATALOG_DIR / "user-deactivated" / "v1.json").read_text())["examples"][0]
    for i in range(5):
        payload = UserDeactivated.model_validate(
            {**example, "user_id": f"user-{i}", "actor": admin.model_dump()}
        )
        publish(
            clean,
            new_event(
                payload,
                tenant_id=tenant["id"],
                subject=f"user-{i}",
                source_api_slug="user-management-api",
                time=datetime.now(UTC),
            ),
        )
    audit = audit_api.as_(tokens("a@mass.example", tenant["id"], ("admin",)))

    def alerts() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = audit.get(f"/tenants/{tenant['id']}/audit/alerts").json()["items"]
        return items

    raised = eventually(alerts, timeout=40, what="the mass-deactivation alert")
    assert [a["rule_id"] for a in raised] == ["mass-user-deactivation"]

    def published() -> list[dict[str, Any]]:
        response = subscriber.pull(request={"subscription": subscription, "max_messages": 10}, timeout=5)
        return [json.loads(m.message.data) for m in response.received_messages]

    envelopes = eventually(published, what="Audit Alert Triggered on its topic")
    assert envelopes[0]["tenantid"] == tenant["id"]
    assert envelopes[0]["data"]["rule_id"] == "mass-user-deactivation"
    assert envelopes[0]["data"]["actor_id"] == "rogue-admin"


def test_a_burst_for_one_tenant_is_recorded_completely_without_contention_failures(
    tenant_api: Api, clean: Suite, db: Any
) -> None:
    tenant = tenant_api.post(
        "/tenants",
        json={"name": "Burst", "slug": "burst", "plan": "growth", "admin_email": "a@burst.example"},
    ).json()
    example = json.loads((CATALOG_DIR / "user-deactivated" / "v1.json").read_text())["examples"][0]
    count = 200
    publisher = pubsub_v1.PublisherClient()
    topic = publisher.topic_path(clean.project, CATALOG.event("User Deactivated").topic)
    futures = []
    for i in range(count):
        payload = UserDeactivated.model_validate({**example, "user_id": f"u-{i}"})
        data, attributes = new_event(
            payload, tenant_id=tenant["id"], subject=f"u-{i}", source_api_slug="user-management-api"
        ).to_message()
        futures.append(publisher.publish(topic, data, **attributes))
    for future in futures:
        future.result(timeout=30)
    # Only the burst's entries: onboarding adds its own for the new tenant meanwhile.
    burst = db.collection(f"tenants/{tenant['id']}/audit_entries").where(
        filter=FieldFilter("action", "==", "user.deactivated")
    )

    def recorded() -> bool:
        return int(burst.count().get()[0][0].value) >= count

    eventually(recorded, timeout=120, what=f"{count} audit entries")
    assert int(burst.count().get()[0][0].value) == count
    assert list(db.collection("_dead_letters").stream()) == []
    assert list(db.collection("_quarantine").stream()) == []


def test_a_forged_entry_or_a_rewound_chain_is_reported_by_verify(
    tenant_api: Api, audit_api: Api, db: Any
) -> None:
    tenant = tenant_api.post(
        "/tenants",
        json={"name": "Forge", "slug": "forge", "plan": "free", "admin_email": "a@forge.example"},
    ).json()
    audit = audit_api.as_(tenant_api.token)
    path = f"/tenants/{tenant['id']}/audit/verify"
    eventually(
        lambda: (r := audit.get(path).json())["blocks_checked"] >= 1 and r["unsealed"] == 0 and r["ok"],
        timeout=30,
        what="a sealed, verified chain",
    )
    entries_path = f"tenants/{tenant['id']}/audit_entries"
    real = entries(audit, tenant["id"], action="tenant.created")[0]
    stored = db.document(f"{entries_path}/{real['id']}").get().to_dict()
    head = db.document(f"tenants/{tenant['id']}/audit_chain/head").get().to_dict()
    # Entries a verify that only walks blocks and unsealed entries would never look at.
    for forged_id, flags in (
        ("forged-beyond", {"block_seq": head["seq"] + 50, "sealed": True}),
        ("forged-string", {"block_seq": "1", "sealed": True}),
        ("forged-missing", {"sealed": True}),
    ):
        forged = {k: v for k, v in stored.items() if k != "block_seq"} | flags
        db.document(f"{entries_path}/{forged_id}").set(forged)
        report = audit.get(path).json()
        assert report["ok"] is False and report["first_broken"]["entry_id"] == forged_id, report
        db.document(f"{entries_path}/{forged_id}").delete()
    assert audit.get(path).json()["ok"] is True

    # Rewind: the newest block is deleted and the head moved back (consistently, as an attacker would).
    seq = head["seq"]
    db.document(f"tenants/{tenant['id']}/audit_blocks/{seq:012d}").delete()
    previous = (
        db.document(f"tenants/{tenant['id']}/audit_blocks/{seq - 1:012d}").get().to_dict()
        if seq > 1
        else {"hash": "0" * 64}
    )
    db.document(f"tenants/{tenant['id']}/audit_chain/head").set({"seq": seq - 1, "hash": previous["hash"]})
    report = audit.get(path).json()
    assert report["ok"] is False and "anchor" in report["first_broken"]["reason"], report
