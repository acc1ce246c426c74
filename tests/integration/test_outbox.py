"""The unit of work and its transactional outbox on the real Firestore and Pub/Sub emulators.

Each test pulls from its own subscription (ordering enabled) on the "Tenant Created" topic. To prove
that an event was NOT published, a sentinel event with the same ordering key is committed afterwards:
once the sentinel has arrived, anything published before it on that key has arrived too.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.cloud import firestore, pubsub_v1

from emulators.suite import Suite
from shared.catalog import Catalog, load_catalog
from shared.clients import publisher as real_publisher
from shared.contracts import Actor
from shared.contracts.payloads import TenantCreated
from shared.events import CloudEvent, new_event, ordering_key
from shared.uow import OUTBOX, QUARANTINE, Outbox, Publisher, Tx, UnitOfWork
from tests.conftest import eventually, reset_firestore

AGGREGATES = "test_aggregates"
RETENTION = timedelta(days=8)


# --------------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------------


class Inbox:
    """A pull subscription of this test only; remembers every message it received."""

    def __init__(self, client: pubsub_v1.SubscriberClient, path: str) -> None:
        self.client = client
        self.path = path
        self.received: list[Any] = []  # pubsub_v1.types.PubsubMessage

    def _pull(self) -> None:
        # return_immediately (deprecated, honoured by the emulator) never leaves messages leased to a
        # pull call that timed out on our side, which would hide them for the ack deadline.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                response = self.client.pull(
                    request={"subscription": self.path, "max_messages": 100, "return_immediately": True},
                    timeout=10,
                )
            except gexc.DeadlineExceeded:
                return
        if response.received_messages:
            self.client.acknowledge(
                request={"subscription": self.path, "ack_ids": [m.ack_id for m in response.received_messages]}
            )
            self.received.extend(m.message for m in response.received_messages)

    def ids(self) -> list[str]:
        return [m.attributes.get("ce-id", "") for m in self.received]

    def wait_for(self, event_id: str, count: int = 1) -> list[Any]:
        """Poll until `count` messages of `event_id` have arrived; returns them."""

        def arrived() -> list[Any]:
            self._pull()
            found = [m for m in self.received if m.attributes.get("ce-id") == event_id]
            return found if len(found) >= count else []

        found: list[Any] = eventually(arrived, what=f"{count} message(s) of event {event_id}")
        return found


@pytest.fixture
def inbox(suite: Suite) -> Iterator[Callable[[str], Inbox]]:
    client = pubsub_v1.SubscriberClient()
    publisher_client = pubsub_v1.PublisherClient()
    created: list[str] = []

    def subscribe(event_name: str) -> Inbox:
        topic = publisher_client.topic_path(suite.project, load_catalog().event(event_name).topic)
        with contextlib.suppress(gexc.AlreadyExists):
            publisher_client.create_topic(name=topic)
        path = client.subscription_path(suite.project, f"test-outbox-{uuid.uuid4().hex[:12]}")
        client.create_subscription(
            request={
                "name": path,
                "topic": topic,
                "enable_message_ordering": True,
                "ack_deadline_seconds": 60,
            }
        )
        created.append(path)
        return Inbox(client, path)

    yield subscribe
    for path in created:
        with contextlib.suppress(gexc.NotFound):
            client.delete_subscription(request={"subscription": path})
    client.close()


class RecordingPublisher:
    """The real publisher, recording the event id of every publish call."""

    def __init__(self) -> None:
        self.published: list[str] = []

    def publish(self, topic: str, data: bytes, ordering_key: str = "", **attrs: str) -> Future[str]:
        self.published.append(attrs["ce-id"])
        future: Future[str] = real_publisher().publish(topic, data, ordering_key=ordering_key, **attrs)
        return future

    def resume_publish(self, topic: str, ordering_key: str) -> None:
        real_publisher().resume_publish(topic, ordering_key)


class FailingPublisher:
    """Pub/Sub is down: every publish future fails."""

    def __init__(self) -> None:
        self.attempted: list[str] = []
        self.resumed: list[tuple[str, str]] = []

    def publish(self, topic: str, data: bytes, ordering_key: str = "", **attrs: str) -> Future[str]:
        self.attempted.append(attrs["ce-id"])
        future: Future[str] = Future()
        future.set_exception(ConnectionError("Pub/Sub is unreachable"))
        return future

    def resume_publish(self, topic: str, ordering_key: str) -> None:
        self.resumed.append((topic, ordering_key))


@pytest.fixture
def db(clean: Suite) -> firestore.Client:
    """A database of the tests' own (the emulator keeps one per project): outbox and relay are counted
    whole here, while the suite's functions go on committing their own events in the suite's project."""
    project = f"{clean.project}-outbox"
    reset_firestore(project)
    return firestore.Client(project=project)


def build(db: firestore.Client, suite: Suite, publisher: Publisher) -> tuple[Outbox, UnitOfWork]:
    outbox = Outbox(db, lambda: publisher, load_catalog(), suite.project, RETENTION)
    return outbox, UnitOfWork(db, outbox)


def tenant_created(tenant_id: str) -> CloudEvent:
    payload = TenantCreated(
        tenant_id=tenant_id,
        name="Acme",
        slug="acme",
        plan="starter",
        seat_limit=10,
        admin_email="admin@acme.example",
        actor=Actor(type="user", id="op-1", email="op@platform.test"),
    )
    return new_event(
        payload, tenant_id=tenant_id, subject=tenant_id, source_api_slug="tenant-api", aggregate_version=1
    )


def new_id() -> str:
    return "t_" + uuid.uuid4().hex[:16]


def outbox_entry(db: firestore.Client, event_id: str) -> dict[str, Any] | None:
    snapshot = db.collection(OUTBOX).document(event_id).get()
    return snapshot.to_dict() if snapshot.exists else None


def catalog() -> Catalog:
    return load_catalog()


# --------------------------------------------------------------------------------------------------------
# Commit and rollback
# --------------------------------------------------------------------------------------------------------


def test_a_commit_writes_the_aggregate_and_its_outbox_entry_together_and_publishes(
    db: firestore.Client, suite: Suite, inbox: Callable[[str], Inbox]
) -> None:
    received = inbox("Tenant Created")
    recorder = RecordingPublisher()
    _, uow = build(db, suite, recorder)
    tenant_id = new_id()
    event = tenant_created(tenant_id)
    ref = db.collection(AGGREGATES).document(tenant_id)

    def work(tx: Tx) -> str:
        tx.create(ref, {"name": "Acme", "version": 1})
        tx.emit(event)
        return "committed"

    assert uow.run(work) == "committed"

    aggregate = ref.get()
    entry = db.collection(OUTBOX).document(event.id).get()
    assert aggregate.exists and entry.exists
    # One commit: both documents were created at the same commit time.
    assert aggregate.create_time == entry.create_time
    stored = entry.to_dict() or {}
    assert stored["topic"] == catalog().event("Tenant Created").topic
    assert stored["type"] == event.type == "com.cmp.tenant.created.v1"
    assert stored["tenant_id"] == tenant_id
    assert CloudEvent.model_validate_json(stored["envelope"]) == event
    assert isinstance(stored["created_at"], datetime)
    # Published after the commit, then marked, with an expiry for the TTL policy.
    assert stored["published"] is True
    assert stored["expire_at"] - stored["published_at"] == RETENTION
    assert recorder.published == [event.id]

    (message,) = received.wait_for(event.id)
    assert dict(message.attributes) == {
        "content-type": "application/cloudevents+json",
        "ce-id": event.id,
        "ce-type": "com.cmp.tenant.created.v1",
        "ce-tenantid": tenant_id,
        "ce-subject": tenant_id,
    }
    assert message.ordering_key == ordering_key(tenant_id, tenant_id) == event.ordering_key
    assert CloudEvent.from_message(message.data) == event


def test_a_failing_unit_of_work_commits_nothing_and_publishes_nothing(
    db: firestore.Client, suite: Suite, inbox: Callable[[str], Inbox]
) -> None:
    received = inbox("Tenant Created")
    recorder = RecordingPublisher()
    _, uow = build(db, suite, recorder)
    tenant_id = new_id()
    doomed = tenant_created(tenant_id)
    ref = db.collection(AGGREGATES).document(tenant_id)

    class Refused(Exception):
        pass

    def work(tx: Tx) -> None:
        tx.create(ref, {"name": "Acme"})
        tx.set(db.collection(AGGREGATES).document("other"), {"touched": True})
        tx.emit(doomed)
        raise Refused("the aggregate refused after staging its writes")

    with pytest.raises(Refused):
        uow.run(work)

    assert not ref.get().exists
    assert not db.collection(AGGREGATES).document("other").get().exists
    assert outbox_entry(db, doomed.id) is None
    assert list(db.collection(OUTBOX).stream()) == []
    assert recorder.published == []

    # A later event of the same aggregate (same ordering key) arrives; the doomed one never does.
    sentinel = tenant_created(tenant_id)
    uow.run(lambda tx: tx.emit(sentinel))
    received.wait_for(sentinel.id)
    assert doomed.id not in received.ids()
    assert recorder.published == [sentinel.id]


# --------------------------------------------------------------------------------------------------------
# Publish failure and the relay
# --------------------------------------------------------------------------------------------------------


def test_publish_failure_keeps_the_commit_and_the_relay_republishes_later(
    db: firestore.Client, suite: Suite, inbox: Callable[[str], Inbox]
) -> None:
    received = inbox("Tenant Created")
    failing = FailingPublisher()
    _, uow = build(db, suite, failing)
    tenant_id = new_id()
    event = tenant_created(tenant_id)
    ref = db.collection(AGGREGATES).document(tenant_id)

    def work(tx: Tx) -> None:
        tx.create(ref, {"name": "Acme"})
        tx.emit(event)

    uow.run(work)  # no exception: the commit stands although Pub/Sub refused the event

    assert ref.get().exists
    entry = outbox_entry(db, event.id)
    assert entry is not None
    assert entry["published"] is False
    assert "expire_at" not in entry
    assert failing.attempted == [event.id]
    # The failed ordering key is resumed, or every later event of the aggregate would be refused.
    topic_path = f"projects/{suite.project}/topics/{catalog().event('Tenant Created').topic}"
    assert failing.resumed == [(topic_path, event.ordering_key)]

    # Pub/Sub is back: the relay publishes what was left unpublished.
    recorder = RecordingPublisher()
    relay_outbox, _ = build(db, suite, recorder)
    assert relay_outbox.relay(older_than=timedelta(0)) == 1
    assert recorder.published == [event.id]
    (message,) = received.wait_for(event.id)
    assert CloudEvent.from_message(message.data) == event
    assert message.ordering_key == event.ordering_key
    entry = outbox_entry(db, event.id)
    assert entry is not None
    assert entry["published"] is True
    assert entry["expire_at"] - entry["published_at"] == RETENTION

    # A second run finds nothing unmarked: nothing is published again.
    assert relay_outbox.relay(older_than=timedelta(0)) == 0
    assert recorder.published == [event.id]


def test_the_relay_only_republishes_unmarked_entries_older_than_the_grace(
    db: firestore.Client, suite: Suite, inbox: Callable[[str], Inbox]
) -> None:
    received = inbox("Tenant Created")
    failing = FailingPublisher()
    _, failing_uow = build(db, suite, failing)
    recorder = RecordingPublisher()
    relay_outbox, ok_uow = build(db, suite, recorder)
    tenant_id = new_id()
    delivered = tenant_created(tenant_id)
    stranded = tenant_created(tenant_id)

    ok_uow.run(lambda tx: tx.emit(delivered))
    failing_uow.run(lambda tx: tx.emit(stranded))
    received.wait_for(delivered.id)
    assert recorder.published == [delivered.id]

    # Younger than the grace period: the request that wrote it may still be publishing it.
    assert relay_outbox.relay(older_than=timedelta(hours=1)) == 0
    assert recorder.published == [delivered.id]

    assert relay_outbox.relay(older_than=timedelta(0)) == 1
    assert recorder.published == [delivered.id, stranded.id]
    received.wait_for(stranded.id)
    assert received.ids().count(delivered.id) == 1


def test_a_poisoned_entry_is_quarantined_and_the_relay_goes_on(
    db: firestore.Client, suite: Suite, inbox: Callable[[str], Inbox]
) -> None:
    received = inbox("Tenant Created")
    _, failing_uow = build(db, suite, FailingPublisher())
    tenant_id = new_id()
    before, after = tenant_created(tenant_id), tenant_created(tenant_id)
    failing_uow.run(lambda tx: tx.emit(before))
    old = datetime.now(UTC) - timedelta(minutes=5)
    poisoned = {
        "unparsable": "{not json",
        "left-the-catalog": before.model_copy(
            update={"id": "e-gone", "type": "com.cmp.gone.v1"}
        ).model_dump_json(),
    }
    for entry_id, envelope in poisoned.items():
        db.collection(OUTBOX).document(entry_id).set(
            {"envelope": envelope, "published": False, "created_at": old, "tenant_id": tenant_id}
        )
    db.collection(OUTBOX).document("no-envelope").set({"published": False, "created_at": old})
    failing_uow.run(lambda tx: tx.emit(after))

    recorder = RecordingPublisher()
    relay_outbox, _ = build(db, suite, recorder)
    assert relay_outbox.relay(older_than=timedelta(0)) == 2
    assert sorted(recorder.published) == sorted([before.id, after.id])
    received.wait_for(before.id)
    received.wait_for(after.id)
    quarantined = {d.id: d.to_dict() or {} for d in db.collection(QUARANTINE).stream()}
    assert set(quarantined) == {"outbox--unparsable", "outbox--left-the-catalog", "outbox--no-envelope"}
    assert quarantined["outbox--unparsable"]["tenant_id"] == tenant_id
    assert all(outbox_entry(db, entry) is None for entry in (*poisoned, "no-envelope"))
    assert relay_outbox.relay(older_than=timedelta(0)) == 0  # nothing left behind to trip over


def test_the_relay_is_at_least_once_an_entry_is_republished_until_it_is_marked(
    db: firestore.Client, suite: Suite, inbox: Callable[[str], Inbox]
) -> None:
    received = inbox("Tenant Created")
    _, failing_uow = build(db, suite, FailingPublisher())
    tenant_id = new_id()
    event = tenant_created(tenant_id)
    failing_uow.run(lambda tx: tx.emit(event))

    # Published by someone, but the mark was lost (the relay instance died after publishing):
    class LosesTheMark(Outbox):
        def _mark_published(self, event_ids: Any) -> None:
            return None

    losing = LosesTheMark(db, RecordingPublisher, load_catalog(), suite.project, RETENTION)
    assert losing.relay(older_than=timedelta(0)) == 1
    received.wait_for(event.id)
    entry = outbox_entry(db, event.id)
    assert entry is not None and entry["published"] is False

    # ... so the next relay publishes it again: consumers see the same event id twice and dedupe.
    relay_outbox, _ = build(db, suite, RecordingPublisher())
    assert relay_outbox.relay(older_than=timedelta(0)) == 1
    duplicates = received.wait_for(event.id, count=2)
    assert [CloudEvent.from_message(m.data) for m in duplicates] == [event, event]
    entry = outbox_entry(db, event.id)
    assert entry is not None and entry["published"] is True
    assert relay_outbox.relay(older_than=timedelta(0)) == 0


# --------------------------------------------------------------------------------------------------------
# Contention
# --------------------------------------------------------------------------------------------------------


def test_concurrent_read_modify_write_units_of_work_all_succeed_and_count_exactly(
    db: firestore.Client, suite: Suite
) -> None:
    _, uow = build(db, suite, RecordingPublisher())
    counter = db.collection(AGGREGATES).document("counter")
    counter.set({"value": 0})
    workers = 8
    start = threading.Barrier(workers)
    attempts: list[int] = []

    def increment(tx: Tx) -> int:
        attempts.append(1)
        current = tx.get(counter)
        assert current is not None
        tx.update(counter, {"value": current["value"] + 1, "updated_at": datetime.now(UTC)})
        return int(current["value"])

    def worker(_: int) -> int:
        start.wait(timeout=30)
        return uow.run(increment)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        seen = list(pool.map(worker, range(workers)))

    assert (counter.get().to_dict() or {})["value"] == workers
    # Serializable: every committed increment read a different value, none was lost.
    assert sorted(seen) == list(range(workers))
    # ... and the test did exercise contention: some attempts were aborted and retried.
    assert len(attempts) > workers
