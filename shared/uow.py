"""Unit of work over Firestore with a transactional outbox.

An aggregate's writes and the events they raise commit in ONE Firestore transaction: each event is
stored as an `_outbox` document beside the data. After the commit the events are published to Pub/Sub
and their outbox documents are marked; whatever stays unmarked (the process died, Pub/Sub was down) is
republished by the relay. So an event is never lost, and never published for a rolled-back write.
Consumers dedupe by event id, which makes the relay's at-least-once safe.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from google.api_core import exceptions as gexc
from google.cloud import firestore

from shared.catalog import Catalog
from shared.clients import publish_result
from shared.events import CloudEvent

log = logging.getLogger(__name__)

T = TypeVar("T")

OUTBOX = "_outbox"
QUARANTINE = "_quarantine"  # the kernel's record of messages that can never be handled (operators)


class Publisher(Protocol):
    """What the outbox needs of a Pub/Sub publisher; tests may pass a small fake."""

    def publish(self, topic: str, data: bytes, ordering_key: str = "", **attrs: str) -> Future[str]: ...

    def resume_publish(self, topic: str, ordering_key: str) -> None: ...


class Tx:
    """One attempt of a Firestore transaction: reads first, then staged writes and raised events."""

    def __init__(self, db: firestore.Client, transaction: firestore.Transaction) -> None:
        self.db = db
        self.transaction = transaction
        self.events: list[CloudEvent] = []

    def get(self, ref: firestore.DocumentReference) -> dict[str, Any] | None:
        snapshot = ref.get(transaction=self.transaction)
        return snapshot.to_dict() if snapshot.exists else None

    def get_all(self, refs: Sequence[firestore.DocumentReference]) -> list[tuple[str, dict[str, Any] | None]]:
        """Several documents in one round trip, in the order asked: (id, data or None)."""
        if not refs:
            return []
        found = {s.reference.path: s for s in self.db.get_all(list(refs), transaction=self.transaction)}
        return [(ref.id, found[ref.path].to_dict() if found[ref.path].exists else None) for ref in refs]

    def query(self, query: firestore.Query) -> list[firestore.DocumentSnapshot[Any]]:
        """A query inside the transaction locks its whole range until commit: prefer reading by
        document, and querying outside the transaction, where writers of that range are frequent."""
        return list(query.get(transaction=self.transaction))

    def create(self, ref: firestore.DocumentReference, data: dict[str, Any]) -> None:
        self.transaction.create(ref, data)

    def set(self, ref: firestore.DocumentReference, data: dict[str, Any], merge: bool = False) -> None:
        self.transaction.set(ref, data, merge=merge)

    def update(self, ref: firestore.DocumentReference, data: dict[str, Any]) -> None:
        self.transaction.update(ref, data)

    def delete(self, ref: firestore.DocumentReference) -> None:
        self.transaction.delete(ref)

    def emit(self, event: CloudEvent) -> None:
        self.events.append(event)


class Outbox:
    def __init__(
        self,
        db: firestore.Client,
        publisher: Callable[[], Publisher],
        catalog: Catalog,
        project_id: str,
        retention: timedelta = timedelta(days=8),
    ) -> None:
        self.db = db
        self._publisher = publisher
        self._topics = {event.type: event.topic for event in catalog.events}
        self._project_id = project_id
        self._retention = retention

    def ref(self, event_id: str) -> firestore.DocumentReference:
        return self.db.collection(OUTBOX).document(event_id)

    def stage(self, tx: Tx) -> None:
        now = datetime.now(UTC)
        for event in tx.events:
            tx.create(
                self.ref(event.id),
                {
                    "topic": self._topics[event.type],
                    "type": event.type,
                    "tenant_id": event.tenantid,
                    "subject": event.subject,
                    "envelope": event.model_dump_json(),
                    "published": False,
                    "created_at": now,
                },
            )

    def topic_path(self, topic: str) -> str:
        return f"projects/{self._project_id}/topics/{topic}"

    def publish(self, events: Sequence[CloudEvent]) -> list[str]:
        """Publish committed events; mark the ones Pub/Sub accepted. Returns the published ids."""
        if not events:
            return []
        client = self._publisher()
        pending: list[tuple[CloudEvent, str, Future[str]]] = []
        for event in events:
            data, attributes = event.to_message()
            topic = self.topic_path(self._topics[event.type])
            pending.append(
                (event, topic, client.publish(topic, data, ordering_key=event.ordering_key, **attributes))
            )
        published: list[str] = []
        for event, topic, future in pending:
            try:
                publish_result(future)
                published.append(event.id)
            except Exception:
                # The relay republishes it; an ordering key that failed is paused until resumed. A key
                # whose publish is still in flight (our wait ended first) is not paused yet: when the
                # client gives up it pauses it, and the relay's next failed publish resumes it. The
                # commit stands either way: this must not raise.
                log.warning("publish failed; the outbox relay will retry", extra={"event_id": event.id})
                with contextlib.suppress(RuntimeError):  # "Ordering key is not paused."
                    client.resume_publish(topic, event.ordering_key)
        self._mark_published(published)
        return published

    def _mark_published(self, event_ids: Iterable[str]) -> None:
        batch = self.db.batch()
        now = datetime.now(UTC)
        count = 0
        for event_id in event_ids:
            batch.update(
                self.ref(event_id),
                {"published": True, "published_at": now, "expire_at": now + self._retention},
            )
            count += 1
        if count:
            batch.commit()

    def relay(self, older_than: timedelta, limit: int = 500) -> int:
        """Republish entries left unpublished for longer than `older_than`, in commit order. Returns
        how many. An entry that can never be published (it no longer parses, or its type left the
        catalog) is quarantined and the relay goes on with the others."""
        cutoff = datetime.now(UTC) - older_than
        query = (
            self.db.collection(OUTBOX)
            .where(filter=firestore.FieldFilter("published", "==", False))
            .where(filter=firestore.FieldFilter("created_at", "<=", cutoff))
            .order_by("created_at")
            .limit(limit)
        )
        events: list[CloudEvent] = []
        for snapshot in query.stream():
            try:
                event = CloudEvent.model_validate_json(snapshot.get("envelope"))
                if event.type not in self._topics:
                    raise ValueError(f"the type {event.type} is not in the catalog")
            except (KeyError, TypeError, ValueError) as exc:  # ValidationError is a ValueError
                self._quarantine(snapshot, exc)
                continue
            events.append(event)
        return len(self.publish(events))

    def forget(self, tenant_id: str, subject: str) -> int:
        """Erasure: delete the published entries (kept for their retention) of one aggregate's events,
        so no copy of its data stays here. Unpublished ones stay until published: an event is never
        lost. Returns how many were deleted."""
        query = (
            self.db.collection(OUTBOX)
            .where(filter=firestore.FieldFilter("tenant_id", "==", tenant_id))
            .where(filter=firestore.FieldFilter("subject", "==", subject))
            .where(filter=firestore.FieldFilter("published", "==", True))
        )
        return write_in_batches(
            self.db, query.select(["published"]).stream(), lambda batch, s: batch.delete(s.reference)
        )

    def _quarantine(self, snapshot: firestore.DocumentSnapshot[Any], error: Exception) -> None:
        """Move a poisoned entry to the quarantine (with the tenant, so offboarding erases it)."""
        data = snapshot.to_dict() or {}
        log.error("outbox entry quarantined", extra={"event_id": snapshot.id, "error": type(error).__name__})
        batch = self.db.batch()
        batch.set(
            self.db.collection(QUARANTINE).document(f"outbox--{snapshot.id}"),
            {
                "api": "outbox_relay",
                "reason": "unpublishable outbox entry",
                "detail": str(error)[:4000],
                "event_id": snapshot.id,
                "type": data.get("type") if isinstance(data.get("type"), str) else None,
                "tenant_id": data.get("tenant_id") if isinstance(data.get("tenant_id"), str) else None,
                "body_preview": str(data.get("envelope"))[:4000],
                "received_at": datetime.now(UTC),
            },
        )
        batch.delete(snapshot.reference)
        batch.commit()


def write_in_batches(
    db: firestore.Client,
    items: Iterable[T],
    write: Callable[[firestore.WriteBatch, T], Any],
    size: int = 400,
) -> int:
    """Apply `write` to each item in batches of `size` (Firestore takes 500 writes per batch) and commit
    them; returns how many items were written."""
    count = 0
    batch = db.batch()
    for item in items:
        write(batch, item)
        count += 1
        if count % size == 0:
            batch.commit()
            batch = db.batch()
    if count % size:
        batch.commit()
    return count


class StripedLocks:
    """A fixed set of locks picked by key hash: bounded memory, whatever the number of keys."""

    def __init__(self, stripes: int = 256) -> None:
        self._locks = [threading.Lock() for _ in range(stripes)]

    def __call__(self, key: str) -> threading.Lock:
        return self._locks[zlib.crc32(key.encode()) % len(self._locks)]


class UnitOfWork:
    def __init__(self, db: firestore.Client, outbox: Outbox, max_attempts: int = 12) -> None:
        self.db = db
        self.outbox = outbox
        self._max_attempts = max_attempts
        self._locks = StripedLocks()

    def run(self, work: Callable[[Tx], T], serialize_on: str | None = None) -> T:
        """Run `work` in a transaction, retrying contention with jittered backoff; then publish.

        `serialize_on` names a hot document (a tenant's seat pool): requests for it in this instance
        queue up instead of contending. Transactions still guarantee correctness across instances;
        this only avoids an instance aborting its own transactions (costly: seconds on the emulator).
        """
        if serialize_on is None:
            return self._run(work)
        with self._locks(serialize_on):
            return self._run(work)

    def _run(self, work: Callable[[Tx], T]) -> T:
        committed: list[CloudEvent] = []

        @firestore.transactional
        def attempt(transaction: firestore.Transaction) -> T:
            tx = Tx(self.db, transaction)
            result = work(tx)
            self.outbox.stage(tx)
            committed[:] = tx.events
            return result

        delay = 0.01
        for round_ in range(self._max_attempts):
            try:
                result: T = attempt(self.db.transaction(max_attempts=3))
                break
            except (gexc.Aborted, gexc.DeadlineExceeded) as exc:
                last: Exception = exc
            except ValueError as exc:  # the client's "exceeded max attempts", caused by Aborted
                if not isinstance(exc.__cause__, gexc.Aborted):
                    raise
                last = exc
            if round_ == self._max_attempts - 1:
                raise last
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 1.0)
        self.outbox.publish(committed)
        return result
