"""Event intake for Pub/Sub push: every subscriber API's events function runs through here.

- The push envelope is decoded and the CloudEvent inside validated against its payload schema.
- A malformed message (bad JSON, schema violation, unknown or unsubscribed type) is acknowledged and
  quarantined with the reason: Pub/Sub push treats every non-2xx answer as a nack and would redeliver
  a message that can never succeed.
- Each handler runs at most once per event per subscriber: the dedupe record is created in the same
  Firestore transaction as the handler's effects, so a redelivery finds it and changes nothing.
- A handler that keeps failing is retried by Pub/Sub (we answer 500); after `max_delivery_attempts`
  the message is parked on the subscriber's dead-letter topic and acknowledged, so it never loops.
  The attempt count is ours (Firestore), since the emulator's push and some setups omit deliveryAttempt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from google.cloud import firestore
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared import logs
from shared.catalog import Api, Catalog
from shared.catalog import Event as CatalogEvent
from shared.clients import publish_result
from shared.contracts import EventPayload
from shared.events import CloudEvent, parse_payload
from shared.uow import QUARANTINE as QUARANTINE  # where the intake parks what it cannot handle
from shared.uow import Publisher, Tx, UnitOfWork

log = logging.getLogger(__name__)

PROCESSED = "_processed_events"
ATTEMPTS = "_delivery_attempts"
DEAD_LETTERS = "_dead_letters"
# An operator's re-drive (Operations API) republishes a parked event for the one API that parked it.
REDRIVE_ATTRIBUTE = "cmp-redrive-for"


class PushMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    data: str = ""
    attributes: dict[str, str] | None = None
    message_id: str = Field(alias="messageId", min_length=1)
    publish_time: str | None = Field(default=None, alias="publishTime")


class PushRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    message: PushMessage
    subscription: str = Field(min_length=1)
    delivery_attempt: int | None = Field(default=None, alias="deliveryAttempt")


@dataclass(frozen=True)
class Delivered:
    """What a handler receives: the envelope, its validated payload, and its catalog entry."""

    envelope: CloudEvent
    payload: EventPayload
    entry: CatalogEvent

    @property
    def tenant_id(self) -> str:
        return self.envelope.tenantid


EventHandler = Callable[[Delivered, Tx], None]


class TransientError(Exception):
    """Raised by a handler when a dependency is unavailable for now: the longer transient budget applies."""


_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def is_transient(exc: BaseException) -> bool:
    """A failure worth waiting out (an outage), as opposed to a handler's bug: a deadline, a dropped
    connection, a 429/5xx of a Google API or of another of our APIs, or TransientError, anywhere in
    the chain of causes."""
    from google.api_core import exceptions as gexc

    from shared.problems import Problem

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TransientError | ConnectionError | TimeoutError):
            return True
        if isinstance(seen, gexc.GoogleAPICallError) and (seen.code or 0) in _TRANSIENT_STATUS:
            return True
        if isinstance(seen, gexc.DeadlineExceeded | gexc.ServiceUnavailable | gexc.Aborted):
            return True
        if isinstance(seen, Problem) and seen.status in _TRANSIENT_STATUS:
            return True
        if type(seen).__module__.startswith("requests") and type(seen).__name__ in (
            "ConnectionError",
            "Timeout",
            "ConnectTimeout",
            "ReadTimeout",
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@dataclass(frozen=True)
class Outcome:
    status: int
    result: str  # processed | duplicate | quarantined | dead-lettered | retry
    detail: str = ""

    def body(self) -> dict[str, str]:
        return {"result": self.result, **({"detail": self.detail} if self.detail else {})}


class Quarantined(Exception):
    def __init__(self, reason: str, detail: Any = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


class EventIntake:
    def __init__(
        self,
        api: Api,
        catalog: Catalog,
        handlers: Mapping[str, EventHandler],
        uow: UnitOfWork,
        publisher: Callable[[], Publisher],
        project_id: str,
        max_attempts: int,
        retention: timedelta,
        serialize_by_tenant: bool = False,
        max_transient_attempts: int | None = None,
    ) -> None:
        missing = {e.name for e in catalog.consumed_by(api.name)} ^ set(handlers)
        if missing:
            raise ValueError(
                f"{api.name}: handlers must match the catalog's subscriptions exactly: {sorted(missing)}"
            )
        self.api = api
        self.catalog = catalog
        self.handlers = handlers
        self.uow = uow
        self.db = uow.db
        self._publisher = publisher
        self._project_id = project_id
        self.max_attempts = max_attempts
        self.max_transient_attempts = max(max_transient_attempts or max_attempts, max_attempts)
        self.retention = retention
        # Handlers that all write one per-tenant document (a version, a counter) queue up per tenant in
        # this instance instead of aborting each other's transactions.
        self.serialize_by_tenant = serialize_by_tenant

    def handle(self, body: bytes) -> Outcome:
        try:
            push = self._decode_push(body)
            envelope, entry, payload = self._decode_event(push)
        except Quarantined as q:
            self._quarantine(body, q)
            return Outcome(200, "quarantined", q.reason)
        addressed = (push.message.attributes or {}).get(REDRIVE_ATTRIBUTE)
        if addressed is not None and addressed != self.api.name:
            return Outcome(200, "not addressed", f"a re-drive for {addressed}")
        logs.tenant_id.set(envelope.tenantid)
        logs.bind_trace(envelope.traceparent)
        key = self._dedupe_key(envelope)
        delivered = Delivered(envelope, payload, entry)
        delivery = push.delivery_attempt or 0
        if delivery > self.max_transient_attempts:
            # Every earlier attempt failed or never answered (a handler killed mid-way counts nowhere
            # but in Pub/Sub's own count): park it now, before the subscription's backstop drops it.
            unanswered = RuntimeError(f"no answer after {delivery - 1} deliveries")
            self._dead_letter(push, envelope, delivery, unanswered, "no answer")
            return Outcome(200, "dead-lettered", "parked: earlier attempts never answered")
        try:
            lane = f"{self.api.slug}:{envelope.tenantid}" if self.serialize_by_tenant else None
            processed = self.uow.run(lambda tx: self._process(tx, key, delivered), serialize_on=lane)
        except Exception as exc:
            return self._failed(push, envelope, key, exc)
        return Outcome(200, "processed" if processed else "duplicate")

    def _decode_push(self, body: bytes) -> PushRequest:
        try:
            return PushRequest.model_validate_json(body)
        except ValidationError as exc:
            raise Quarantined(
                "malformed push envelope", exc.errors(include_url=False, include_input=False)
            ) from exc

    def _decode_event(self, push: PushRequest) -> tuple[CloudEvent, CatalogEvent, EventPayload]:
        try:
            raw = base64.b64decode(push.message.data, validate=True)
            envelope = CloudEvent.from_message(raw)
        except (binascii.Error, ValueError) as exc:
            detail = (
                exc.errors(include_url=False, include_input=False)
                if isinstance(exc, ValidationError)
                else str(exc)
            )
            raise Quarantined("malformed CloudEvent", detail) from exc
        entry = self.catalog.event_by_type(envelope.type)
        if entry is None:
            raise Quarantined("unknown event type", envelope.type)
        if self.api.name not in entry.subscribers:
            raise Quarantined("event type not subscribed by this API", envelope.type)
        try:
            payload = parse_payload(envelope, entry)
        except ValidationError as exc:
            raise Quarantined("schema violation", exc.errors(include_url=False, include_input=False)) from exc
        return envelope, entry, payload

    def _dedupe_key(self, envelope: CloudEvent) -> str:
        # CloudEvents: source + id identify an event; hash them into a safe document id.
        digest = hashlib.sha256(f"{envelope.source}\n{envelope.id}".encode()).hexdigest()[:40]
        return f"{self.api.slug}--{digest}"

    def _process(self, tx: Tx, key: str, delivered: Delivered) -> bool:
        ref = self.db.collection(PROCESSED).document(key)
        if tx.get(ref) is not None:
            return False
        self.handlers[delivered.entry.name](delivered, tx)
        now = datetime.now(UTC)
        tx.create(
            ref,
            {
                "api": self.api.name,
                "event_id": delivered.envelope.id,
                "type": delivered.envelope.type,
                "tenant_id": delivered.tenant_id,
                "processed_at": now,
                "expire_at": now + self.retention,
            },
        )
        return True

    def _failed(self, push: PushRequest, envelope: CloudEvent, key: str, exc: Exception) -> Outcome:
        """Count the attempt by kind: permanent failures (bugs) get `max_attempts`, transient ones
        (outages) `max_transient_attempts`; both are visible in `_delivery_attempts` and the dead letter."""
        kind = "transient" if is_transient(exc) else "permanent"
        ref = self.db.collection(ATTEMPTS).document(key)
        now = datetime.now(UTC)
        ref.set(
            {
                "api": self.api.name,
                "event_id": envelope.id,
                "tenant_id": envelope.tenantid,
                "attempts": firestore.Increment(1),
                kind: firestore.Increment(1),
                "last_kind": kind,
                "last_error": repr(exc)[:1000],
                "updated_at": now,
                "expire_at": now + self.retention,
            },
            merge=True,
        )
        record = ref.get().to_dict() or {}
        attempts = max(int(record.get("attempts", 1)), push.delivery_attempt or 0)
        budget = self.max_transient_attempts if kind == "transient" else self.max_attempts
        log.error(
            "event handler failed",
            exc_info=exc,
            extra={"event_id": envelope.id, "event_type": envelope.type, "attempt": attempts, "kind": kind},
        )
        if attempts < budget:
            return Outcome(500, "retry", f"attempt {attempts} of {budget} failed ({kind})")
        self._dead_letter(push, envelope, attempts, exc, kind)
        return Outcome(200, "dead-lettered", f"parked after {attempts} attempts ({kind})")

    def _dead_letter(
        self, push: PushRequest, envelope: CloudEvent, attempts: int, exc: Exception, kind: str
    ) -> None:
        topic = f"projects/{self._project_id}/topics/{self.api.dead_letter_topic}"
        attributes = {
            **(push.message.attributes or {}),
            "dead-letter-subscription": push.subscription,
            "dead-letter-attempts": str(attempts),
            "dead-letter-error": repr(exc)[:500],
            "dead-letter-failure": kind,
        }
        publish_result(self._publisher().publish(topic, base64.b64decode(push.message.data), **attributes))
        self.db.collection(DEAD_LETTERS).document(self._dedupe_key(envelope)).set(
            {
                "api": self.api.name,
                "subscription": push.subscription,
                "event_id": envelope.id,
                "type": envelope.type,
                "tenant_id": envelope.tenantid,
                "attempts": attempts,
                "failure": kind,  # permanent, transient or no answer
                "error": repr(exc)[:1000],
                "envelope": envelope.model_dump_json(),
                "parked_at": datetime.now(UTC),
            }
        )

    def _quarantine(self, body: bytes, q: Quarantined) -> None:
        log.warning("event quarantined", extra={"reason": q.reason, "api": self.api.name})
        subscription = message_id = None
        try:
            raw = json.loads(body)
            subscription = raw.get("subscription")
            message_id = (raw.get("message") or {}).get("messageId")
        except (ValueError, AttributeError):
            pass
        self.db.collection(QUARANTINE).add(
            {
                "api": self.api.name,
                "reason": q.reason,
                "detail": json.dumps(q.detail, default=str)[:4000],
                "subscription": subscription if isinstance(subscription, str) else None,
                "message_id": message_id if isinstance(message_id, str) else None,
                "body_preview": body[:4000].decode("utf-8", errors="replace"),
                "received_at": datetime.now(UTC),
            }
        )
