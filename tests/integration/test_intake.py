"""Pub/Sub push intake (shared.intake) on the real Firestore and Pub/Sub emulators, and the Tenant API's
events function over HTTP exactly as a push subscription calls it.

Push bodies are built as Pub/Sub builds them: {"message": {"data": base64(envelope), "attributes",
"messageId", "publishTime"}, "subscription"}. The handlers are written here; the catalog decides which
events the Tenant API must handle.
"""

from __future__ import annotations

import base64
import contextlib
import json
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from google.api_core import exceptions as gexc
from google.cloud import firestore, pubsub_v1

from emulators.suite import Suite
from shared.auth import sign_local_service_token
from shared.catalog import load_catalog
from shared.clients import publisher
from shared.config import get_settings
from shared.contracts import Actor
from shared.contracts.payloads import PaymentFailed, PlanUpgraded, SubscriptionCancelled, TenantCreated
from shared.events import CloudEvent, new_event
from shared.intake import ATTEMPTS, DEAD_LETTERS, PROCESSED, QUARANTINE, Delivered, EventHandler, EventIntake
from shared.problems import CONTENT_TYPE as PROBLEM_TYPE
from shared.problems import Problem
from shared.uow import Outbox, Tx, UnitOfWork
from tests.conftest import Api, eventually, store_tenant

API_NAME = "Tenant API"
EFFECTS = "test_effects"
MAX_ATTEMPTS = 3
MAX_TRANSIENT_ATTEMPTS = 5
BILLING_SOURCE = "//billing.cmp.example/subscriptions"
T0 = datetime(2026, 3, 1, tzinfo=UTC)


# --------------------------------------------------------------------------------------------------------
# Push bodies and envelopes
# --------------------------------------------------------------------------------------------------------


def subscription_of(event_name: str) -> str:
    catalog = load_catalog()
    name = catalog.event(event_name).push_subscription(catalog.api(API_NAME))
    return f"projects/{get_settings().project_id}/subscriptions/{name}"


def push_body(
    data: CloudEvent | bytes,
    message_id: str | None = None,
    subscription: str | None = None,
    delivery_attempt: int | None = None,
) -> bytes:
    if isinstance(data, CloudEvent):
        raw, attributes = data.to_message()
        entry = load_catalog().event_by_type(data.type)
        if entry is not None and subscription is None:
            subscription = subscription_of(entry.name)
    else:
        raw, attributes = data, {}
    body: dict[str, Any] = {
        "message": {
            "data": base64.b64encode(raw).decode(),
            "attributes": attributes,
            "messageId": message_id or str(uuid.uuid4().int)[:16],
            "publishTime": "2026-03-01T10:00:00.000Z",
        },
        "subscription": subscription or subscription_of("Plan Upgraded"),
    }
    if delivery_attempt is not None:
        body["deliveryAttempt"] = delivery_attempt
    return json.dumps(body).encode()


def plan_upgraded(
    tenant_id: str, new_plan: str = "growth", effective_at: datetime = T0, event_id: str | None = None
) -> CloudEvent:
    payload = PlanUpgraded.model_validate(
        {
            "tenant_id": tenant_id,
            "previous_plan": "starter",
            "new_plan": new_plan,
            "effective_at": effective_at,
        }
    )
    return new_event(
        payload,
        tenant_id=tenant_id,
        subject=f"sub_{tenant_id}",
        source_api_slug="billing",
        source=BILLING_SOURCE,
        event_id=event_id,
    )


def payment_failed(tenant_id: str) -> CloudEvent:
    payload = PaymentFailed.model_validate(
        {
            "tenant_id": tenant_id,
            "invoice_id": "inv_1",
            "amount_cents": 4900,
            "currency": "EUR",
            "attempt": 1,
            "final": False,
        }
    )
    return new_event(
        payload, tenant_id=tenant_id, subject="inv_1", source_api_slug="billing", source=BILLING_SOURCE
    )


def subscription_cancelled(tenant_id: str) -> CloudEvent:
    payload = SubscriptionCancelled(
        tenant_id=tenant_id, subscription_id="sub_1", reason="moving on", effective_at=T0
    )
    return new_event(
        payload, tenant_id=tenant_id, subject="sub_1", source_api_slug="billing", source=BILLING_SOURCE
    )


def tenant_created(tenant_id: str) -> CloudEvent:
    payload = TenantCreated(
        tenant_id=tenant_id,
        name="Acme",
        slug="acme",
        plan="starter",
        seat_limit=10,
        admin_email="admin@acme.example",
        actor=Actor(type="system", id="test"),
    )
    return new_event(payload, tenant_id=tenant_id, subject=tenant_id, source_api_slug="tenant-api")


# --------------------------------------------------------------------------------------------------------
# The intake under test, with handlers that leave visible effects
# --------------------------------------------------------------------------------------------------------


@dataclass
class Handlers:
    db: firestore.Client
    calls: list[tuple[str, str]] = field(default_factory=list)  # (event name, event id)
    extensions: list[dict[str, Any]] = field(default_factory=list)  # of every Plan Upgraded handled
    down: set[str] = field(default_factory=set)  # tenants whose dependency answers 503 for now

    def plan_upgraded(self, event: Delivered, tx: Tx) -> None:
        self.calls.append(("Plan Upgraded", event.envelope.id))
        if event.tenant_id in self.down:
            raise Problem(503, "dependency-unavailable", "The tenant_api function did not answer.")
        self.extensions.append(event.envelope.extensions)
        ref = self.db.collection(EFFECTS).document(event.tenant_id)
        current = tx.get(ref) or {"count": 0, "events": []}
        tx.set(ref, {"count": current["count"] + 1, "events": [*current["events"], event.envelope.id]})

    def payment_failed(self, event: Delivered, tx: Tx) -> None:
        self.calls.append(("Payment Failed", event.envelope.id))
        raise RuntimeError("the billing adapter exploded")

    def subscription_cancelled(self, event: Delivered, tx: Tx) -> None:
        self.calls.append(("Subscription Cancelled", event.envelope.id))
        tx.set(self.db.collection(EFFECTS).document("partial-set"), {"half": True})
        tx.create(self.db.collection(EFFECTS).document("partial-create"), {"half": True})
        raise RuntimeError("failed after partial writes")

    def table(self) -> dict[str, EventHandler]:
        return {
            "Plan Upgraded": self.plan_upgraded,
            "Payment Failed": self.payment_failed,
            "Subscription Cancelled": self.subscription_cancelled,
        }


@dataclass
class Intake:
    intake: EventIntake
    handlers: Handlers
    db: firestore.Client

    def deliver(self, body: bytes) -> tuple[int, str]:
        outcome = self.intake.handle(body)
        return outcome.status, outcome.result

    def docs(self, collection: str) -> list[dict[str, Any]]:
        """This intake's records: the running functions of other tests may still be writing theirs."""
        found = [snapshot.to_dict() or {} for snapshot in self.db.collection(collection).stream()]
        return [doc for doc in found if doc.get("api", API_NAME) == API_NAME]


def build_intake(db: firestore.Client, project: str, handlers: dict[str, EventHandler]) -> EventIntake:
    catalog = load_catalog()
    uow = UnitOfWork(db, Outbox(db, publisher, catalog, project))
    return EventIntake(
        catalog.api(API_NAME),
        catalog,
        handlers,
        uow,
        publisher,
        project,
        MAX_ATTEMPTS,
        timedelta(days=8),
        max_transient_attempts=MAX_TRANSIENT_ATTEMPTS,
    )


@pytest.fixture
def intake(db: firestore.Client, suite: Suite) -> Intake:
    handlers = Handlers(db)
    return Intake(build_intake(db, suite.project, handlers.table()), handlers, db)


def test_the_handler_table_must_match_the_catalog_exactly(db: firestore.Client, suite: Suite) -> None:
    expected = {event.name for event in load_catalog().consumed_by(API_NAME)}
    table = Handlers(db).table()
    assert set(table) == expected
    missing = {name: h for name, h in table.items() if name != "Payment Failed"}
    with pytest.raises(ValueError, match="Payment Failed"):
        build_intake(db, suite.project, missing)
    extra = {**table, "Tenant Created": table["Plan Upgraded"]}
    with pytest.raises(ValueError, match="Tenant Created"):
        build_intake(db, suite.project, extra)


# --------------------------------------------------------------------------------------------------------
# Processing and dedupe
# --------------------------------------------------------------------------------------------------------


def test_first_delivery_is_processed_and_a_redelivery_is_a_duplicate(intake: Intake) -> None:
    event = plan_upgraded("t_dedupe")
    body = push_body(event, message_id="1001")

    assert intake.deliver(body) == (200, "processed")
    assert intake.deliver(body) == (200, "duplicate")
    # The relay may republish the same event as a new Pub/Sub message: still the same event.
    assert intake.deliver(push_body(event, message_id="2002")) == (200, "duplicate")

    effect = intake.db.collection(EFFECTS).document("t_dedupe").get().to_dict()
    assert effect == {"count": 1, "events": [event.id]}
    assert intake.handlers.calls == [("Plan Upgraded", event.id)]
    # Other tests' functions may still be delivering in the background: look at this event's records.
    (record,) = [doc for doc in intake.docs(PROCESSED) if doc["event_id"] == event.id]
    assert record["api"] == API_NAME
    assert record["type"] == event.type
    assert record["tenant_id"] == "t_dedupe"
    assert record["expire_at"] - record["processed_at"] == timedelta(days=8)


def test_the_same_id_from_another_source_is_another_event(intake: Intake) -> None:
    event = plan_upgraded("t_sources")
    other = event.model_copy(update={"source": "//another-billing.example/subscriptions"})

    assert intake.deliver(push_body(event)) == (200, "processed")
    assert intake.deliver(push_body(other)) == (200, "processed")
    assert (intake.db.collection(EFFECTS).document("t_sources").get().to_dict() or {})["count"] == 2


def test_an_event_with_extension_attributes_is_processed_and_they_are_kept(intake: Intake) -> None:
    extensions = {
        "tracestate": "vendor=1",
        "partitionkey": "k1",
        "sequence": "42",
        "dataref": "https://billing.example/d/1",
        "sampledrate": 10,
        "comexamplevip": True,
    }
    envelope = {**json.loads(plan_upgraded("t_ext").model_dump_json()), **extensions}

    assert intake.deliver(push_body(json.dumps(envelope).encode(), message_id="4001")) == (200, "processed")
    assert intake.handlers.extensions[-1] == extensions
    assert not [doc for doc in intake.docs(QUARANTINE) if doc.get("message_id") == "4001"]


# --------------------------------------------------------------------------------------------------------
# Quarantine
# --------------------------------------------------------------------------------------------------------


def _message(data: str, **extra: Any) -> bytes:
    message = {"data": data, "attributes": {}, "publishTime": "2026-03-01T10:00:00Z", **extra}
    return json.dumps({"message": message, "subscription": subscription_of("Plan Upgraded")}).encode()


def _envelope_with(**changes: Any) -> bytes:
    envelope = json.loads(plan_upgraded("t_q").model_dump_json())
    envelope.update(changes)
    return push_body(json.dumps(envelope).encode(), message_id="3003")


QUARANTINE_CASES: dict[str, tuple[Callable[[], bytes], str, str | None]] = {
    "bad-json": (lambda: b'{"message": {"data": ', "malformed push envelope", None),
    "not-an-object": (lambda: b"[1, 2, 3]", "malformed push envelope", None),
    "missing-message-id": (
        lambda: _message(base64.b64encode(plan_upgraded("t_q").model_dump_json().encode()).decode()),
        "malformed push envelope",
        None,
    ),
    "base64-garbage": (
        lambda: _message("%%% not base64 %%%", messageId="3001"),
        "malformed CloudEvent",
        "3001",
    ),
    "not-a-cloudevent": (
        lambda: push_body(b'{"hello": "world"}', message_id="3002"),
        "malformed CloudEvent",
        "3002",
    ),
    "bad-extension-name": (
        lambda: _envelope_with(**{"Trace-State": "x"}),
        "malformed CloudEvent",
        "3003",
    ),
    "object-extension": (lambda: _envelope_with(vendor={"a": 1}), "malformed CloudEvent", "3003"),
    "naive-time": (lambda: _envelope_with(time="2026-03-01T10:00:00"), "malformed CloudEvent", "3003"),
    "unknown-type": (
        lambda: _envelope_with(type="com.cmp.nothing.happened.v1"),
        "unknown event type",
        "3003",
    ),
    "not-subscribed": (
        lambda: push_body(
            tenant_created("t_q"), message_id="3004", subscription=subscription_of("Plan Upgraded")
        ),
        "event type not subscribed by this API",
        "3004",
    ),
    "schema-violation": (
        lambda: _envelope_with(
            data={"tenant_id": "t_q", "previous_plan": "starter", "new_plan": "platinum", "effective_at": "x"}
        ),
        "schema violation",
        "3003",
    ),
    "unknown-payload-field": (
        lambda: _envelope_with(
            data={
                "tenant_id": "t_q",
                "previous_plan": "starter",
                "new_plan": "growth",
                "effective_at": "2026-03-01T00:00:00Z",
                "discount": 10,
            }
        ),
        "schema violation",
        "3003",
    ),
}


@pytest.mark.parametrize("case", list(QUARANTINE_CASES))
def test_a_malformed_message_is_acknowledged_and_quarantined(intake: Intake, case: str) -> None:
    build, reason, message_id = QUARANTINE_CASES[case]
    body = build()

    # 200: a push that answered 5xx would be redelivered forever, and it can never succeed.
    assert intake.deliver(body) == (200, "quarantined")

    (parked,) = intake.docs(QUARANTINE)
    assert parked["reason"] == reason
    assert parked["api"] == API_NAME
    assert parked["message_id"] == message_id
    assert parked["body_preview"] == body.decode()
    assert parked["detail"]
    assert isinstance(parked["received_at"], datetime)
    assert intake.handlers.calls == []
    assert intake.docs(PROCESSED) == []
    assert intake.docs(EFFECTS) == []


def test_a_quarantined_body_keeps_its_subscription_for_the_operators(intake: Intake) -> None:
    body = _message("%%%", messageId="3005")
    assert intake.deliver(body) == (200, "quarantined")
    (parked,) = intake.docs(QUARANTINE)
    assert parked["subscription"] == subscription_of("Plan Upgraded")


# --------------------------------------------------------------------------------------------------------
# Failures: retry, dead letter, no partial writes
# --------------------------------------------------------------------------------------------------------


@dataclass
class PullSubscription:
    client: pubsub_v1.SubscriberClient
    path: str
    received: list[Any] = field(default_factory=list)

    def wait_for(self, event_id: str) -> Any:
        def arrived() -> Any:
            with warnings.catch_warnings():
                # return_immediately is deprecated but honoured by the emulator, and never leaves a
                # message leased to a pull call that our side abandoned.
                warnings.simplefilter("ignore", DeprecationWarning)
                response = self.client.pull(
                    request={"subscription": self.path, "max_messages": 50, "return_immediately": True},
                    timeout=10,
                )
            if response.received_messages:
                self.client.acknowledge(
                    request={
                        "subscription": self.path,
                        "ack_ids": [m.ack_id for m in response.received_messages],
                    }
                )
                self.received.extend(m.message for m in response.received_messages)
            return next((m for m in self.received if m.attributes.get("ce-id") == event_id), None)

        return eventually(arrived, what=f"event {event_id} on {self.path}")


@pytest.fixture
def dead_letters(suite: Suite) -> Iterator[PullSubscription]:
    topic_name = load_catalog().api(API_NAME).dead_letter_topic
    publisher_client = pubsub_v1.PublisherClient()
    topic = publisher_client.topic_path(suite.project, topic_name)
    with contextlib.suppress(gexc.AlreadyExists):
        publisher_client.create_topic(name=topic)
    client = pubsub_v1.SubscriberClient()
    path = client.subscription_path(suite.project, f"test-dead-letters-{uuid.uuid4().hex[:12]}")
    client.create_subscription(request={"name": path, "topic": topic, "ack_deadline_seconds": 60})
    yield PullSubscription(client, path)
    with contextlib.suppress(gexc.NotFound):
        client.delete_subscription(request={"subscription": path})
    client.close()


def test_a_failing_handler_is_retried_then_dead_lettered(
    intake: Intake, dead_letters: PullSubscription
) -> None:
    event = payment_failed("t_dl")
    subscription = subscription_of("Payment Failed")
    body = push_body(event, message_id="4001", subscription=subscription)

    outcomes = [intake.intake.handle(body) for _ in range(MAX_ATTEMPTS)]

    assert [(o.status, o.result) for o in outcomes] == [
        (500, "retry"),
        (500, "retry"),
        (200, "dead-lettered"),
    ]
    assert outcomes[0].detail == f"attempt 1 of {MAX_ATTEMPTS} failed (permanent)"
    assert outcomes[1].detail == f"attempt 2 of {MAX_ATTEMPTS} failed (permanent)"
    assert intake.handlers.calls == [("Payment Failed", event.id)] * MAX_ATTEMPTS
    assert intake.docs(PROCESSED) == []
    (attempts,) = intake.docs(ATTEMPTS)
    assert attempts["attempts"] == MAX_ATTEMPTS
    assert "the billing adapter exploded" in attempts["last_error"]

    message = dead_letters.wait_for(event.id)
    assert CloudEvent.from_message(message.data) == event
    attributes = dict(message.attributes)
    assert attributes["dead-letter-subscription"] == subscription
    assert attributes["dead-letter-attempts"] == str(MAX_ATTEMPTS)
    assert "the billing adapter exploded" in attributes["dead-letter-error"]
    assert attributes["ce-type"] == event.type  # the original attributes travel with it
    assert attributes["ce-tenantid"] == "t_dl"

    (parked,) = intake.docs(DEAD_LETTERS)
    assert parked["api"] == API_NAME
    assert parked["subscription"] == subscription
    assert parked["event_id"] == event.id
    assert parked["type"] == event.type
    assert parked["tenant_id"] == "t_dl"
    assert parked["attempts"] == MAX_ATTEMPTS
    assert parked["failure"] == "permanent"
    assert CloudEvent.model_validate_json(parked["envelope"]) == event


def test_a_dependency_outage_gets_the_longer_budget_and_a_short_one_parks_nothing(
    intake: Intake, dead_letters: PullSubscription
) -> None:
    short, long = plan_upgraded("t_outage_short"), plan_upgraded("t_outage_long")
    intake.handlers.down |= {"t_outage_short", "t_outage_long"}
    short_body = push_body(short, message_id="4101")
    # Past the budget of a bug, an outage is still retried...
    for _ in range(MAX_ATTEMPTS + 1):
        assert intake.deliver(short_body) == (500, "retry")
    (record,) = [d for d in intake.docs(ATTEMPTS) if d.get("event_id") == short.id]
    assert record["transient"] == MAX_ATTEMPTS + 1 and record["last_kind"] == "transient"
    # ... and once the dependency is back, the event is applied, once.
    intake.handlers.down.discard("t_outage_short")
    assert intake.deliver(short_body) == (200, "processed")
    assert intake.deliver(short_body) == (200, "duplicate")
    # An outage longer than the transient budget parks the event, saying so.
    long_body = push_body(long, message_id="4102")
    outcomes = [intake.deliver(long_body) for _ in range(MAX_TRANSIENT_ATTEMPTS)]
    assert outcomes == [(500, "retry")] * (MAX_TRANSIENT_ATTEMPTS - 1) + [(200, "dead-lettered")]
    (parked,) = [d for d in intake.docs(DEAD_LETTERS) if d["event_id"] == long.id]
    assert parked["failure"] == "transient" and parked["attempts"] == MAX_TRANSIENT_ATTEMPTS
    assert dict(dead_letters.wait_for(long.id).attributes)["dead-letter-failure"] == "transient"


def test_an_event_whose_handler_never_answered_is_parked_before_the_pubsub_backstop(
    intake: Intake, dead_letters: PullSubscription
) -> None:
    """A handler killed mid-way answers nothing and counts nothing of ours: Pub/Sub's delivery count
    shows it. Past every budget the event is parked (with its record) instead of running again."""
    event = plan_upgraded("t_killed")
    body = push_body(event, message_id="4201", delivery_attempt=MAX_TRANSIENT_ATTEMPTS + 1)
    assert intake.deliver(body) == (200, "dead-lettered")
    assert intake.handlers.calls == []
    (parked,) = [d for d in intake.docs(DEAD_LETTERS) if d["event_id"] == event.id]
    assert parked["failure"] == "no answer"
    dead_letters.wait_for(event.id)


def test_pubsub_delivery_attempt_counts_when_it_is_ahead_of_ours(
    intake: Intake, dead_letters: PullSubscription
) -> None:
    event = payment_failed("t_dl_attempt")
    body = push_body(event, message_id="4002", delivery_attempt=MAX_ATTEMPTS)
    assert intake.deliver(body) == (200, "dead-lettered")
    dead_letters.wait_for(event.id)
    assert intake.handlers.calls == [("Payment Failed", event.id)]


def test_a_handler_failing_after_partial_writes_leaves_none_of_them(intake: Intake) -> None:
    event = subscription_cancelled("t_partial")
    assert intake.deliver(push_body(event, message_id="5001")) == (500, "retry")
    assert intake.handlers.calls == [("Subscription Cancelled", event.id)]
    assert not intake.db.collection(EFFECTS).document("partial-set").get().exists
    assert not intake.db.collection(EFFECTS).document("partial-create").get().exists
    assert intake.docs(PROCESSED) == []
    assert intake.docs(DEAD_LETTERS) == []


# --------------------------------------------------------------------------------------------------------
# The Tenant API's events function, over HTTP
# --------------------------------------------------------------------------------------------------------


def test_the_events_function_authenticates_pushes_and_applies_plan_upgrades_once(
    suite: Suite, tenant_api: Api
) -> None:
    # Stored without Tenant Created: onboarding would take a seat and move the version checked here.
    tenant = store_tenant(f"acme-{uuid.uuid4().hex[:8]}", "starter")
    tenant_id, version = tenant["id"], tenant["version"]
    assert tenant["plan"] == "starter"

    def current() -> dict[str, Any]:
        response = tenant_api.get(f"/tenants/{tenant_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    url = suite.function_url("tenant_api_events")
    newer = push_body(plan_upgraded(tenant_id, "growth", effective_at=T0 + timedelta(days=1)))
    headers = {"Content-Type": "application/json"}

    # Without a token, or with one signed by someone else: refused before anything is decoded.
    anonymous = requests.post(url, data=newer, headers=headers, timeout=30)
    assert anonymous.status_code == 401
    assert anonymous.headers["Content-Type"].startswith(PROBLEM_TYPE)
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    account = f"pubsub-push@{suite.project}.iam.gserviceaccount.com"
    forged = sign_local_service_token("not-the-suite-key-0123456789abcdef", account)
    assert (
        requests.post(url, params={"token": forged}, data=newer, headers=headers, timeout=30).status_code
        == 401
    )
    assert current()["plan"] == "starter"

    token = sign_local_service_token(suite.signing_key, account)

    def push(body: bytes) -> dict[str, Any]:
        response = requests.post(url, params={"token": token}, data=body, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    assert push(newer) == {"result": "processed"}
    upgraded = current()
    assert upgraded["plan"] == "growth"
    assert upgraded["seat_limit"] == 50
    assert upgraded["version"] == version + 1

    # The same push again (Pub/Sub redelivers): nothing changes.
    assert push(newer) == {"result": "duplicate"}
    assert current() == upgraded

    # An older plan change arriving late is accepted but changes nothing.
    older = push_body(plan_upgraded(tenant_id, "enterprise", effective_at=T0))
    assert push(older) == {"result": "processed"}
    assert current() == upgraded


def test_a_plan_upgrade_for_an_unknown_tenant_is_acknowledged_without_effect(
    suite: Suite, tenant_api: Api
) -> None:
    url = suite.function_url("tenant_api_events")
    token = sign_local_service_token(
        suite.signing_key, f"pubsub-push@{suite.project}.iam.gserviceaccount.com"
    )
    response = requests.post(
        url,
        params={"token": token},
        data=push_body(plan_upgraded("t_never_existed")),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 200
    assert response.json() == {"result": "processed"}
    assert tenant_api.get("/tenants/t_never_existed").status_code == 404
