"""The Integration API's outbound webhooks on the running suite: a local receiver (http.server on
127.0.0.1, allowed by CMP_WEBHOOKS_ALLOW_LOOPBACK=true, which the suite sets), events pushed through the
real push endpoint, deliveries through the real Tasks emulator.

The retry schedule is shortened to [0.2, 0.4, 0.6] s for the functions the test suite starts
(tests/conftest.py).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests

from emulators.suite import Suite
from shared.auth import sign_local_service_token
from shared.catalog import load_catalog, schemas_dir
from shared.contracts import PAYLOADS
from shared.events import CloudEvent, new_event
from shared.webhook_signing import verify
from tests.conftest import Api, Receiver, dump_firestore, eventually, push_body, quiescent, store_tenant

CATALOG = load_catalog()
PROBLEM = "application/problem+json"


@pytest.fixture
def tenant(tenant_api: Api) -> dict[str, Any]:
    # Stored without Tenant Created: the tenant's own onboarding events would reach its endpoints too.
    return store_tenant(f"hooks-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def hooks(clean: Suite, tenant: dict[str, Any], tokens: Callable[..., str]) -> Api:
    admin = tokens(f"admin@{tenant['slug']}.example", tenant["id"], ("admin",))
    return Api(clean.function_url("integration_api") + f"/tenants/{tenant['id']}/webhooks", admin)


def create_endpoint(hooks: Api, url: str, **extra: Any) -> dict[str, Any]:
    body = {"url": url, "event_types": ["Contact Created"], "description": "test", **extra}
    response = hooks.post("/endpoints", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def contact_created(tenant_id: str, subject: str | None = None) -> CloudEvent:
    schema = json.loads((schemas_dir() / CATALOG.event("Contact Created").schema_path).read_text())
    payload = dict(schema["examples"][0])
    if "tenant_id" in payload:
        payload["tenant_id"] = tenant_id
    return new_event(
        PAYLOADS["Contact Created"].model_validate(payload),
        tenant_id=tenant_id,
        subject=subject or f"contact-{uuid.uuid4().hex[:8]}",
        source_api_slug="customer-data-api",
    )


def push(suite: Suite, event: CloudEvent) -> requests.Response:
    token = sign_local_service_token(
        suite.signing_key, f"pubsub-push@{suite.project}.iam.gserviceaccount.com"
    )
    url = f"{suite.function_url('integration_api_events')}?token={token}"
    body = push_body(event.model_dump_json(), str(uuid.uuid4()), "projects/p/subscriptions/contact-created")
    response = requests.post(url, json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response


def messages(hooks: Api, endpoint_id: str, status: str | None = None) -> list[dict[str, Any]]:
    query = f"?status={status}" if status else ""
    response = hooks.get(f"/endpoints/{endpoint_id}/messages{query}")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_an_event_is_delivered_signed_once(clean: Suite, hooks: Api, receiver: Receiver) -> None:
    endpoint = create_endpoint(hooks, receiver.url)
    assert endpoint["secret"].startswith("whsec_") and endpoint["status"] == "active"
    assert "secret" not in hooks.get(f"/endpoints/{endpoint['id']}").json()

    event = contact_created(endpoint_tenant(hooks))
    assert push(clean, event).json()["result"] == "processed"
    eventually(lambda: receiver.received(), what="the webhook")
    headers, body = receiver.received()[0]
    verify(body, headers, endpoint["secret"])
    assert json.loads(body)["id"] == event.id
    delivered = eventually(lambda: messages(hooks, endpoint["id"], "delivered"), what="delivered")
    assert delivered[0]["id"] == headers["webhook-id"]
    detail = hooks.get(f"/messages/{headers['webhook-id']}").json()
    assert [a["status_code"] for a in detail["attempts"]] == [204]

    # The same event again (a relay republish): nothing new is created or sent.
    assert push(clean, event).json()["result"] == "duplicate"
    assert len(messages(hooks, endpoint["id"])) == 1
    assert len(receiver.received()) == 1


def endpoint_tenant(hooks: Api) -> str:
    return hooks.base.split("/tenants/")[1].split("/")[0]


def test_a_failing_receiver_is_retried_then_flagged_then_replayed(
    clean: Suite, hooks: Api, receiver: Receiver
) -> None:
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    subscription = subscriber.subscription_path(clean.project, f"webhook-failed--test-{uuid.uuid4().hex[:8]}")
    subscriber.create_subscription(
        request={"name": subscription, "topic": f"projects/{clean.project}/topics/webhook-failed"}
    )
    receiver.status = 500
    endpoint = create_endpoint(hooks, receiver.url)
    push(clean, contact_created(endpoint_tenant(hooks)))

    failed = eventually(lambda: messages(hooks, endpoint["id"], "failed"), timeout=30, what="failed")
    assert len(receiver.received()) == 4  # the first attempt and the three of the short schedule
    assert len({h["webhook-id"] for h, _ in receiver.received()}) == 1
    detail = hooks.get(f"/messages/{failed[0]['id']}").json()
    assert [a["status_code"] for a in detail["attempts"]] == [500] * 4
    assert hooks.get(f"/endpoints/{endpoint['id']}").json()["status"] == "failing"

    def final_failure() -> dict[str, Any] | None:
        response = subscriber.pull(request={"subscription": subscription, "max_messages": 50}, timeout=5)
        found = None
        for message in response.received_messages:
            envelope = json.loads(message.message.data)
            if envelope["data"]["message_id"] == failed[0]["id"] and envelope["data"]["final"]:
                found = envelope
        if response.received_messages:
            subscriber.acknowledge(
                request={
                    "subscription": subscription,
                    "ack_ids": [m.ack_id for m in response.received_messages],
                }
            )
        return found

    final = eventually(final_failure, what="a final Webhook Failed")
    assert final["data"]["status_code"] == 500 and final["data"]["attempt"] == 4

    receiver.status = 200
    replayed = hooks.post(f"/messages/{failed[0]['id']}/replay", json={})
    assert replayed.status_code == 202, replayed.text
    eventually(lambda: messages(hooks, endpoint["id"], "delivered"), what="the replay")
    assert len(receiver.received()) == 5
    verify(receiver.received()[-1][1], receiver.received()[-1][0], endpoint["secret"])
    assert hooks.get(f"/endpoints/{endpoint['id']}").json()["status"] == "active"
    subscriber.delete_subscription(request={"subscription": subscription})


def test_410_disables_the_endpoint(clean: Suite, hooks: Api, receiver: Receiver) -> None:
    receiver.status = 410
    endpoint = create_endpoint(hooks, receiver.url)
    push(clean, contact_created(endpoint_tenant(hooks)))
    eventually(lambda: messages(hooks, endpoint["id"], "failed"), what="failed")
    view = hooks.get(f"/endpoints/{endpoint['id']}").json()
    assert view["status"] == "disabled" and view["enabled"] is False
    assert len(receiver.received()) == 1
    # A disabled endpoint gets nothing more.
    push(clean, contact_created(endpoint_tenant(hooks)))
    assert len(messages(hooks, endpoint["id"])) == 1


def test_rotation_signs_with_both_secrets_and_no_secret_is_stored_or_logged(
    clean: Suite, hooks: Api, receiver: Receiver, db: Any
) -> None:
    endpoint = create_endpoint(hooks, receiver.url)
    rotated = hooks.post(f"/endpoints/{endpoint['id']}/rotate-secret", json={})
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret != endpoint["secret"] and rotated.json()["previous_secret_valid_until"]
    push(clean, contact_created(endpoint_tenant(hooks)))
    eventually(lambda: receiver.received(), what="the webhook")
    headers, body = receiver.received()[0]
    assert len(headers["webhook-signature"].split(" ")) == 2
    verify(body, headers, new_secret)
    verify(body, headers, endpoint["secret"])

    stored = json.dumps(dump_firestore(db), default=str)
    logs = (clean.log_dir / "functions host.log").read_text(errors="replace")
    for secret in (endpoint["secret"], new_secret):
        raw = secret.removeprefix("whsec_")
        assert raw not in stored
        assert raw not in logs


def test_an_idempotent_create_or_rotation_stores_no_secret_and_belongs_to_the_tenant(
    hooks: Api, receiver: Receiver, db: Any
) -> None:
    body = {"url": receiver.url, "event_types": ["Contact Created"], "description": "idempotent"}
    first = hooks.post("/endpoints", json=body, headers={"Idempotency-Key": "create-1"})
    assert first.status_code == 201, first.text
    endpoint = first.json()
    rotated = hooks.post(
        f"/endpoints/{endpoint['id']}/rotate-secret", json={}, headers={"Idempotency-Key": "rotate-1"}
    )
    assert rotated.status_code == 200, rotated.text

    # A retry replays the answer, without the secret, and says where it was left out.
    again = hooks.post("/endpoints", json=body, headers={"Idempotency-Key": "create-1"})
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == {**endpoint, "secret": None}
    assert again.headers["Idempotent-Redacted"] == "#/secret"

    stored = json.dumps(dump_firestore(db), default=str)
    for secret in (endpoint["secret"], rotated.json()["secret"]):
        assert secret.removeprefix("whsec_") not in stored
    tenant_id = endpoint_tenant(hooks)
    records = [d.to_dict() for d in db.collection("_idempotency").stream()]
    assert len(records) == 2 and all(r["tenant_id"] == tenant_id for r in records)


@pytest.mark.usefixtures("paused_sealing")
def test_bad_input_is_422_and_changes_nothing(hooks: Api, receiver: Receiver, db: Any) -> None:
    endpoint = create_endpoint(hooks, receiver.url)
    before = quiescent(db, tenant_id=endpoint_tenant(hooks))
    for body in [
        {"url": "ftp://127.0.0.1/hook", "event_types": ["Contact Created"]},
        {"url": "http://10.0.0.1/hook", "event_types": ["Contact Created"]},
        {"url": "http://169.254.169.254/computeMetadata/v1/", "event_types": ["Contact Created"]},
        {"url": receiver.url, "event_types": ["Not An Event"]},
        {"url": receiver.url, "event_types": []},
        {"url": receiver.url, "event_types": ["Contact Created"], "secret": "mine"},
    ]:
        response = hooks.post("/endpoints", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["Content-Type"] == PROBLEM
    for change in [{"url": "http://192.168.1.1/"}, {"event_types": ["Nope"]}, {"enabled": None}]:
        response = hooks.patch(f"/endpoints/{endpoint['id']}", json=change)
        assert response.status_code == 422, (change, response.text)
    assert hooks.post(f"/endpoints/{endpoint['id']}/replay", json={"since": "yesterday"}).status_code == 422
    assert dump_firestore(db, endpoint_tenant(hooks)) == before


def test_other_tenants_and_roles(
    clean: Suite, hooks: Api, receiver: Receiver, tenant_api: Api, tokens: Callable[..., str]
) -> None:
    endpoint = create_endpoint(hooks, receiver.url)
    other = tenant_api.post(
        "/tenants",
        json={"name": "Other", "slug": "other-hooks", "plan": "growth", "admin_email": "a@other.example"},
    ).json()
    outsider = hooks.as_(tokens("a@other.example", other["id"], ("admin",)))
    for method, path in [
        ("GET", "/endpoints"),
        ("GET", f"/endpoints/{endpoint['id']}"),
        ("PATCH", f"/endpoints/{endpoint['id']}"),
        ("DELETE", f"/endpoints/{endpoint['id']}"),
        ("POST", f"/endpoints/{endpoint['id']}/rotate-secret"),
        ("GET", f"/endpoints/{endpoint['id']}/messages"),
    ]:
        response = outsider.request(method, path, json={})
        assert response.status_code == 404, (method, path, response.text)
    viewer = hooks.as_(tokens("viewer@hooks.example", endpoint_tenant(hooks), ("viewer",)))
    assert viewer.get("/endpoints").status_code == 403
    assert hooks.get(f"/endpoints/{endpoint['id']}").status_code == 200
    assert hooks.delete(f"/endpoints/{endpoint['id']}").status_code == 204
    assert hooks.get(f"/endpoints/{endpoint['id']}").status_code == 404
