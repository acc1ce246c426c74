"""The Pub/Sub emulator stopped while writes go on, then started again: every write commits, every event
committed meanwhile arrives through the outbox relay, and an event Pub/Sub acknowledged is never
published again.

The test stops a Pub/Sub emulator of its own (the suite's may be shared with other test workers): the
real unit of work and outbox (shared.uow) commit to the suite's Firestore emulator and publish to it.
The emulator keeps nothing across a restart, so its topic and subscription are made again, as a
deployed project's would still be there.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.api_core.timeout import ConstantTimeout
from google.cloud import pubsub_v1
from google.cloud.firestore import FieldFilter
from google.cloud.pubsub_v1.types import PublisherOptions

from emulators.suite import Ports, Suite
from shared.catalog import load_catalog
from shared.contracts import PAYLOADS
from shared.events import new_event
from shared.uow import OUTBOX, Outbox, Tx, UnitOfWork
from tests.conftest import eventually

CATALOG = load_catalog()
EVENT = "Contact Updated"
TOPIC = CATALOG.event(EVENT).topic


class PrivatePubSub:
    """A Pub/Sub emulator for one test, with the catalog topic of EVENT and a pull subscription to it."""

    def __init__(self, project: str) -> None:
        self.project = project
        self.suite = Suite(Ports.free(), project=project)
        self.host = ""
        self.publisher: Any = None
        self.subscriber: Any = None

    def start(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.host = self.suite.start_pubsub()
        with monkeypatch.context() as patched:  # the clients find the emulator by this variable
            patched.setenv("PUBSUB_EMULATOR_HOST", self.host)
            # Ordering keys as production publishes them; a publish gives up after 3 s (not 15).
            self.publisher = pubsub_v1.PublisherClient(
                publisher_options=PublisherOptions(enable_message_ordering=True, timeout=ConstantTimeout(3))  # type: ignore[no-untyped-call]
            )
            self.subscriber = pubsub_v1.SubscriberClient()
        self.provision()

    def provision(self) -> None:
        topic = self.publisher.topic_path(self.project, TOPIC)
        subscription = self.subscriber.subscription_path(self.project, "fault-probe")
        try:
            self.publisher.create_topic(name=topic)
            self.subscriber.create_subscription(name=subscription, topic=topic, ack_deadline_seconds=60)
        except gexc.AlreadyExists:
            pass
        self.subscription = subscription

    def stop(self) -> None:
        self.suite.kill("pubsub")

    def restart(self) -> None:
        self.suite.start_pubsub()  # on the same port: the clients reconnect
        self.provision()

    def pull(self) -> list[str]:
        """The event ids delivered since the last pull (acknowledged)."""
        answer = self.subscriber.pull(
            subscription=self.subscription, max_messages=100, return_immediately=True, timeout=10
        )
        if answer.received_messages:
            self.subscriber.acknowledge(
                subscription=self.subscription, ack_ids=[m.ack_id for m in answer.received_messages]
            )
        return [json.loads(m.message.data)["id"] for m in answer.received_messages]


@pytest.fixture
def pubsub(clean: Suite, monkeypatch: pytest.MonkeyPatch) -> Iterator[PrivatePubSub]:
    from shared.config import get_settings

    # A publish is waited for 3 s (not 15): each write while Pub/Sub is down waits that long.
    monkeypatch.setenv("CMP_CALL_DEADLINE_SECONDS", "3")
    get_settings.cache_clear()
    private = PrivatePubSub(clean.project)
    try:
        private.start(monkeypatch)
        yield private
    finally:
        private.suite.stop()
        monkeypatch.undo()
        get_settings.cache_clear()


def test_events_committed_while_pubsub_is_down_all_arrive_once_through_the_relay(
    db: Any, pubsub: PrivatePubSub
) -> None:
    tenant_id = f"t_{uuid.uuid4().hex[:12]}"
    outbox = Outbox(db, lambda: pubsub.publisher, CATALOG, pubsub.project)
    uow = UnitOfWork(db, outbox)
    written: list[str] = []
    received: Counter[str] = Counter()

    def write(n: int) -> None:
        contact = f"con_{n}"
        payload = PAYLOADS[EVENT].model_validate(
            {
                "contact_id": contact,
                "changes": {"lifecycle_stage": {"before": "lead", "after": "customer"}},
                "source": "manual",
                "actor": {"type": "user", "id": "usr_1", "email": None},
            }
        )
        event = new_event(payload, tenant_id=tenant_id, subject=contact, source_api_slug="customer-data-api")

        def work(tx: Tx) -> None:
            tx.set(db.collection("tenants", tenant_id, "fault_probe").document(contact), {"n": n})
            tx.emit(event)

        uow.run(work)
        written.append(event.id)

    def unpublished() -> list[str]:
        entries = db.collection(OUTBOX).where(filter=FieldFilter("tenant_id", "==", tenant_id)).stream()
        return [e.id for e in entries if not e.get("published")]

    def arrived(expected: list[str]) -> bool:
        received.update(pubsub.pull())
        return set(expected) <= set(received)

    for n in range(3):
        write(n)
    assert unpublished() == []
    eventually(lambda: arrived(written), what="the events published while Pub/Sub was up")

    pubsub.stop()
    for n in range(3, 5):  # the writes go on: each commits; its publish fails, and the write succeeds
        write(n)
    stranded = unpublished()
    assert sorted(stranded) == sorted(written[3:])
    assert db.collection("tenants", tenant_id, "fault_probe").count().get()[0][0].value == 5

    pubsub.restart()
    for n in range(5, 7):  # published directly, or left to the relay while the client reconnects
        write(n)

    def relayed() -> bool:
        outbox.relay(older_than=timedelta(0))
        return not unpublished() and arrived(written)

    eventually(relayed, timeout=60, what="the relay to publish every stranded event")
    arrived(written)  # anything still on its way
    assert set(received) == set(written) and len(written) == 7
    # What Pub/Sub acknowledged was marked published and never published again. An event whose publish
    # had no answer in time may be published again by the relay (at least once): consumers dedupe by
    # event id (tests/integration/test_duplicate_delivery.py).
    assert [received[event_id] for event_id in written[:3]] == [1, 1, 1]
    assert outbox.relay(older_than=timedelta(0)) == 0  # nothing left to publish
    assert db.collection("tenants", tenant_id, "fault_probe").count().get()[0][0].value == 7
