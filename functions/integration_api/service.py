"""Integration API use cases: webhook endpoints, their signing secrets, fan-out and delivery.

Layout, all under the tenant so isolation and erasure are structural:
    tenants/{tid}/webhook_endpoints/{endpoint_id}                 the endpoint (never its secret)
    tenants/{tid}/webhook_messages/{msg_id}                       one event for one endpoint
    tenants/{tid}/webhook_messages/{msg_id}/attempts/{n:04d}      one per HTTP attempt

Signing secrets live only in Secret Manager (secret `webhook-<tenant>-<endpoint>`, one version per
rotation); the endpoint document records which version numbers sign (numbers are not secrets).

Every attempt is a NAMED Cloud Task on the "webhook-delivery" queue (max_attempts 1: we schedule the
retries). A task carries the message's current `dispatch` token and attempt number; a task that does
not match the message any more (stale after a replay, or enqueued by an intake transaction that then
failed and was redelivered) is acknowledged and does nothing, so no message is sent twice by us.
"""

from __future__ import annotations

import logging
import secrets as _random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from google.cloud import firestore

from functions.integration_api import domain
from functions.integration_api.domain import EndpointStatus, MessageStatus, Outcome
from shared import outbound
from shared import webhook_signing as signing
from shared.catalog import Catalog
from shared.config import Settings
from shared.contracts import EventPayload
from shared.contracts.payloads import WebhookDelivered, WebhookFailed
from shared.events import new_event
from shared.idempotency import AnsweredOnce
from shared.intake import Delivered
from shared.platform import Platform
from shared.problems import not_found
from shared.secrets import SecretAccessor, SecretNotFound, add_version, delete_secret
from shared.tasks import TaskQueue, task_id
from shared.uow import Tx, UnitOfWork

log = logging.getLogger(__name__)

API_NAME = "Integration API"
TENANTS = "tenants"
ENDPOINTS = "webhook_endpoints"
MESSAGES = "webhook_messages"
ATTEMPTS = "attempts"
QUEUE = "webhook-delivery"
TASKS_FUNCTION = "integration_api_tasks"
DELIVER_PATH = "/deliver"
REPLAY_LIMIT = 500


LABELS = {"purpose": "webhook-signing"}


class SigningSecrets:
    """Secret Manager: one secret per endpoint, one version per rotation. Values are never logged."""

    def __init__(self, settings: Settings, accessor: SecretAccessor) -> None:
        self.settings = settings
        self.accessor = accessor

    def create(self, tenant_id: str, endpoint_id: str) -> tuple[str, int]:
        value = signing.generate_secret()
        return value, add_version(domain.secret_id(tenant_id, endpoint_id), value, LABELS)

    def rotate(self, tenant_id: str, endpoint_id: str) -> tuple[str, int]:
        # A secret erased meanwhile (offboarding) is created again: a rotation always yields a secret.
        return self.create(tenant_id, endpoint_id)

    def read(self, tenant_id: str, endpoint_id: str, version: int) -> str:
        # By version number, so the per-instance cache can never serve a rotated-out "latest".
        return self.accessor.get(domain.secret_id(tenant_id, endpoint_id), str(version)).get_secret_value()

    def delete(self, tenant_id: str, endpoint_id: str) -> None:
        delete_secret(domain.secret_id(tenant_id, endpoint_id))
        self.accessor.invalidate(domain.secret_id(tenant_id, endpoint_id))


@dataclass(frozen=True)
class DeliverTask:
    tenant_id: str
    message_id: str
    dispatch: str
    attempt: int
    waits: int = 0

    def payload(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "message_id": self.message_id,
            "dispatch": self.dispatch,
            "attempt": self.attempt,
            "waits": self.waits,
        }


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None
    duration_ms: int
    error: str | None
    retry_after: float | None


class WebhookService:
    def __init__(
        self,
        db: firestore.Client,
        uow: UnitOfWork,
        catalog: Catalog,
        settings: Settings,
        queue: TaskQueue,
        secrets: SigningSecrets,
    ) -> None:
        self.db = db
        self.uow = uow
        self.catalog = catalog
        self.settings = settings
        self.queue = queue
        self.secrets = secrets
        self.api_slug = catalog.api(API_NAME).slug
        self.event_names = tuple(e.name for e in catalog.consumed_by(API_NAME))
        # Checks every URL again at each call and connects to the address it checked.
        self._http = outbound.session(settings.webhooks_allow_loopback)

    # --- persistence -------------------------------------------------------------------------------
    def endpoints(self, tenant_id: str) -> firestore.CollectionReference:
        collection: firestore.CollectionReference = (
            self.db.collection(TENANTS).document(tenant_id).collection(ENDPOINTS)
        )
        return collection

    def messages(self, tenant_id: str) -> firestore.CollectionReference:
        collection: firestore.CollectionReference = (
            self.db.collection(TENANTS).document(tenant_id).collection(MESSAGES)
        )
        return collection

    def attempts(self, tenant_id: str, msg_id: str) -> firestore.CollectionReference:
        collection: firestore.CollectionReference = (
            self.messages(tenant_id).document(msg_id).collection(ATTEMPTS)
        )
        return collection

    @property
    def schedule(self) -> tuple[float, ...]:
        return tuple(self.settings.webhook_retry_schedule)

    def check_url(self, url: str) -> None:
        outbound.check_url(url, outbound.resolve, self.settings.webhooks_allow_loopback)

    # --- endpoints ---------------------------------------------------------------------------------
    def endpoint(self, tenant_id: str, endpoint_id: str) -> dict[str, Any]:
        snapshot = self.endpoints(tenant_id).document(endpoint_id).get() if "/" not in endpoint_id else None
        if snapshot is None or not snapshot.exists:
            raise not_found(f"Webhook endpoint {endpoint_id}")
        return snapshot.to_dict() or {}

    def create_endpoint(
        self,
        tenant_id: str,
        url: str,
        description: str | None,
        event_types: list[str],
        enabled: bool,
        ordered: bool,
    ) -> tuple[dict[str, Any], str]:
        """The endpoint and its signing secret (answered once, kept only in Secret Manager)."""
        endpoint_id = "ep_" + _random.token_hex(12)
        secret, version = self.secrets.create(tenant_id, endpoint_id)
        now = datetime.now(UTC)
        document = {
            "id": endpoint_id,
            "tenant_id": tenant_id,
            "url": url,
            "description": description,
            "event_types": event_types,
            "enabled": enabled,
            "ordered": ordered,
            "status": (EndpointStatus.ACTIVE if enabled else EndpointStatus.DISABLED).value,
            "secret_version": version,
            "previous_secret_version": None,
            "previous_secret_valid_until": None,
            "created_at": now,
            "updated_at": now,
        }
        try:
            self.endpoints(tenant_id).document(endpoint_id).create(document)
        except Exception:
            self.secrets.delete(tenant_id, endpoint_id)
            raise
        return document, AnsweredOnce(secret)

    def update_endpoint(self, tenant_id: str, endpoint_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        def work(tx: Tx) -> dict[str, Any]:
            ref = self.endpoints(tenant_id).document(endpoint_id)
            current = tx.get(ref)
            if current is None:
                raise not_found(f"Webhook endpoint {endpoint_id}")
            updated = {**current, **changes, "updated_at": datetime.now(UTC)}
            if "enabled" in changes:
                if not changes["enabled"]:
                    updated["status"] = EndpointStatus.DISABLED.value
                elif current.get("status") == EndpointStatus.DISABLED.value:
                    updated["status"] = EndpointStatus.ACTIVE.value
            tx.set(ref, updated)
            return updated

        return self.uow.run(work)

    def delete_endpoint(self, tenant_id: str, endpoint_id: str) -> None:
        self.endpoint(tenant_id, endpoint_id)
        self.endpoints(tenant_id).document(endpoint_id).delete()
        self.secrets.delete(tenant_id, endpoint_id)

    def erase_secrets(self, tenant_id: str) -> int:
        """Delete the signing secret of every endpoint the tenant has (offboarding's erasure, before its
        documents go). Again after a partial run: each delete of a secret already gone is a no-op."""
        erased = 0
        for snapshot in self.endpoints(tenant_id).select([]).stream():
            self.secrets.delete(tenant_id, snapshot.id)
            erased += 1
        return erased

    def rotate_secret(self, tenant_id: str, endpoint_id: str) -> tuple[dict[str, Any], str]:
        self.endpoint(tenant_id, endpoint_id)
        secret, version = self.secrets.rotate(tenant_id, endpoint_id)

        def work(tx: Tx) -> dict[str, Any]:
            ref = self.endpoints(tenant_id).document(endpoint_id)
            current = tx.get(ref)
            if current is None:
                raise not_found(f"Webhook endpoint {endpoint_id}")
            now = datetime.now(UTC)
            updated = {
                **current,
                "secret_version": version,
                "previous_secret_version": current["secret_version"],
                "previous_secret_valid_until": now + timedelta(seconds=domain.ROTATION_OVERLAP_SECONDS),
                "updated_at": now,
            }
            tx.set(ref, updated)
            return updated

        return self.uow.run(work), AnsweredOnce(secret)

    def signing_secrets(self, endpoint: dict[str, Any], now: datetime) -> list[str]:
        tenant_id, endpoint_id = endpoint["tenant_id"], endpoint["id"]
        found = [self.secrets.read(tenant_id, endpoint_id, int(endpoint["secret_version"]))]
        previous, until = endpoint.get("previous_secret_version"), endpoint.get("previous_secret_valid_until")
        if previous is not None and until is not None and until > now:
            found.append(self.secrets.read(tenant_id, endpoint_id, int(previous)))
        return found

    # --- fan-out (inside the event intake's transaction) -------------------------------------------
    def fan_out(self, event: Delivered, tx: Tx) -> None:
        envelope = event.envelope
        tenant_id = event.tenant_id
        enabled = (
            self.endpoints(tenant_id).where(filter=firestore.FieldFilter("enabled", "==", True)).stream()
        )
        targets = [
            d for d in (s.to_dict() or {} for s in enabled) if event.entry.name in d.get("event_types", [])
        ]
        refs = [self.messages(tenant_id).document(domain.message_id(t["id"], envelope.id)) for t in targets]
        existing = dict(tx.get_all(refs))  # all reads before the first write
        now = datetime.now(UTC)
        for endpoint, ref in zip(targets, refs, strict=True):
            if existing.get(ref.id) is not None:
                continue
            dispatch = uuid.uuid4().hex[:16]
            # Before the message commits: a failed enqueue fails the handler and Pub/Sub redelivers.
            self._enqueue(DeliverTask(tenant_id, ref.id, dispatch, 1), None)
            tx.create(
                ref,
                {
                    "id": ref.id,
                    "tenant_id": tenant_id,
                    "endpoint_id": endpoint["id"],
                    "event_id": envelope.id,
                    "event_type": envelope.type,
                    "event_name": event.entry.name,
                    "subject": envelope.subject,
                    "event_time": envelope.time,
                    "body": envelope.model_dump_json(),
                    "status": MessageStatus.PENDING.value,
                    "dispatch": dispatch,
                    "attempt": 1,
                    "attempts_total": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                    "updated_at": now,
                },
            )

    def _enqueue(self, task: DeliverTask, due: datetime | None) -> None:
        parts = [task.message_id, task.dispatch, str(task.attempt)] + (
            [f"w{task.waits}"] if task.waits else []
        )
        self.queue.enqueue(DELIVER_PATH, task.payload(), name=task_id(*parts), schedule_time=due)

    # --- delivery (the task) -----------------------------------------------------------------------
    def deliver(self, task: DeliverTask) -> str:
        message = self._await_message(task)
        if message is None or not self._current(message, task):
            return "stale"
        endpoint_snapshot = self.endpoints(task.tenant_id).document(message["endpoint_id"]).get()
        endpoint = endpoint_snapshot.to_dict() if endpoint_snapshot.exists else None
        if endpoint is None or not endpoint.get("enabled"):
            reason = "the endpoint was deleted" if endpoint is None else "the endpoint is disabled"
            self._abandon(task, reason)
            return "abandoned"
        if endpoint.get("ordered") and self._held_back(task.tenant_id, message):
            later = datetime.now(UTC) + timedelta(seconds=domain.ordered_wait(task.waits))
            self._enqueue(
                DeliverTask(task.tenant_id, task.message_id, task.dispatch, task.attempt, task.waits + 1),
                later,
            )
            return "waiting"
        result = self._post(endpoint, message)
        return self._record(task, result)

    def _await_message(self, task: DeliverTask) -> dict[str, Any] | None:
        """The message. The first task is enqueued before the intake commits the message, and a retry
        before its attempt's record commits, so a task may run first: it waits a little for the commit
        (if that commit failed, Pub/Sub redelivers the event and a new dispatch is enqueued)."""
        ref = self.messages(task.tenant_id).document(task.message_id)
        message: dict[str, Any] | None = None
        for pause in (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 0.0):
            snapshot = ref.get()
            message = snapshot.to_dict() if snapshot.exists else None
            if message is not None and not self._ahead(message, task):
                return message
            if message is None and (task.attempt > 1 or task.waits):
                return None
            time.sleep(pause)
        return message

    @staticmethod
    def _ahead(message: dict[str, Any], task: DeliverTask) -> bool:
        """A retry whose previous attempt has not committed yet."""
        return (
            message.get("status") == MessageStatus.PENDING.value
            and message.get("dispatch") == task.dispatch
            and int(message.get("attempt", 0)) == task.attempt - 1
        )

    @staticmethod
    def _current(message: dict[str, Any], task: DeliverTask) -> bool:
        return (
            message.get("status") == MessageStatus.PENDING.value
            and message.get("dispatch") == task.dispatch
            and int(message.get("attempt", 0)) == task.attempt
        )

    def _held_back(self, tenant_id: str, message: dict[str, Any]) -> bool:
        # Equality filters only: served by single-field indexes, no composite index needed.
        pending = (
            self.messages(tenant_id)
            .where(filter=firestore.FieldFilter("endpoint_id", "==", message["endpoint_id"]))
            .where(filter=firestore.FieldFilter("subject", "==", message["subject"]))
            .where(filter=firestore.FieldFilter("status", "==", MessageStatus.PENDING.value))
            .stream()
        )
        others = [domain.Queued(str(s.get("id")), s.get("event_time")) for s in pending]
        return domain.blocked_by(domain.Queued(message["id"], message["event_time"]), others)

    def _post(self, endpoint: dict[str, Any], message: dict[str, Any]) -> AttemptResult:
        started = time.monotonic()

        def took() -> int:
            return int((time.monotonic() - started) * 1000)

        now = datetime.now(UTC)
        body = str(message["body"]).encode()
        try:
            secrets = self.signing_secrets(endpoint, now)
        except SecretNotFound:
            return AttemptResult(None, took(), "refused: the endpoint's signing secret was erased", None)
        headers = signing.sign(message["id"], int(now.timestamp()), body, secrets)
        headers["Content-Type"] = "application/json"
        headers["User-Agent"] = "cmp-webhooks/1"
        try:
            response = self._http.post(
                endpoint["url"],
                data=body,
                headers=headers,
                timeout=domain.TIMEOUT_SECONDS,
                allow_redirects=False,
            )
        except outbound.UnsafeUrl as exc:  # checked again now: DNS may have changed since it was saved
            return AttemptResult(None, took(), f"refused: {exc}", None)
        except requests.Timeout:
            return AttemptResult(None, took(), f"no answer within {domain.TIMEOUT_SECONDS:.0f} s", None)
        except requests.RequestException as exc:
            return AttemptResult(None, took(), f"connection failed: {type(exc).__name__}", None)
        retry_after = domain.parse_retry_after(response.headers.get("Retry-After"), datetime.now(UTC))
        error = (
            None
            if 200 <= response.status_code <= 299
            else f"HTTP {response.status_code} {response.reason or ''}".strip()
        )
        response.close()
        return AttemptResult(response.status_code, took(), error, retry_after)

    def _record(self, task: DeliverTask, result: AttemptResult) -> str:
        decision = domain.decide(result.status_code, task.attempt, self.schedule, result.retry_after)
        now = datetime.now(UTC)
        next_at = (
            now + timedelta(seconds=decision.delay_seconds or 0)
            if decision.outcome is Outcome.RETRY
            else None
        )
        if next_at is not None:
            # Before the state commits; named, so a rerun of the transaction enqueues nothing more.
            self._enqueue(
                DeliverTask(task.tenant_id, task.message_id, task.dispatch, task.attempt + 1), next_at
            )

        def work(tx: Tx) -> str:
            msg_ref = self.messages(task.tenant_id).document(task.message_id)
            message = tx.get(msg_ref)
            if message is None or not self._current(message, task):
                return "stale"
            ep_ref = self.endpoints(task.tenant_id).document(message["endpoint_id"])
            endpoint = tx.get(ep_ref)
            total = int(message.get("attempts_total", 0)) + 1
            tx.create(
                self.attempts(task.tenant_id, task.message_id).document(f"{total:04d}"),
                {
                    "n": total,
                    "attempt": task.attempt,
                    "dispatch": task.dispatch,
                    "status_code": result.status_code,
                    "duration_ms": result.duration_ms,
                    "error": result.error,
                    "outcome": decision.outcome.value,
                    "at": now,
                },
            )
            changes: dict[str, Any] = {
                "attempts_total": total,
                "last_status_code": result.status_code,
                "last_error": result.error,
                "updated_at": now,
            }
            if decision.outcome is Outcome.DELIVERED:
                changes |= {
                    "status": MessageStatus.DELIVERED.value,
                    "delivered_at": now,
                    "next_attempt_at": None,
                }
            elif decision.outcome is Outcome.RETRY:
                changes |= {"attempt": task.attempt + 1, "next_attempt_at": next_at}
            else:
                changes |= {"status": MessageStatus.FAILED.value, "failed_at": now, "next_attempt_at": None}
            tx.update(msg_ref, changes)
            if endpoint is not None:
                self._endpoint_after(tx, ep_ref, endpoint, decision.outcome, now)
            tx.emit(self._event(task, message, endpoint, result, decision.outcome, next_at, now))
            return decision.outcome.value

        return self.uow.run(work)

    @staticmethod
    def _endpoint_after(
        tx: Tx, ref: firestore.DocumentReference, endpoint: dict[str, Any], outcome: Outcome, now: datetime
    ) -> None:
        status = endpoint.get("status")
        if outcome is Outcome.DISABLE:
            tx.update(
                ref,
                {
                    "enabled": False,
                    "status": EndpointStatus.DISABLED.value,
                    "disabled_reason": "the receiver answered 410 Gone",
                    "updated_at": now,
                },
            )
        elif outcome is Outcome.FAILED and status == EndpointStatus.ACTIVE.value:
            tx.update(ref, {"status": EndpointStatus.FAILING.value, "failing_since": now, "updated_at": now})
        elif outcome is Outcome.DELIVERED and status == EndpointStatus.FAILING.value:
            tx.update(ref, {"status": EndpointStatus.ACTIVE.value, "failing_since": None, "updated_at": now})

    def _event(
        self,
        task: DeliverTask,
        message: dict[str, Any],
        endpoint: dict[str, Any] | None,
        result: AttemptResult,
        outcome: Outcome,
        next_at: datetime | None,
        now: datetime,
    ) -> Any:
        url = str((endpoint or {}).get("url", "https://deleted.invalid/"))
        payload: EventPayload
        if outcome is Outcome.DELIVERED:
            payload = WebhookDelivered(
                webhook_id=message["endpoint_id"],
                message_id=message["id"],
                event_id=message["event_id"],
                event_type=message["event_type"],
                endpoint_url=url,
                status_code=result.status_code or 200,
                attempt=task.attempt,
                duration_ms=result.duration_ms,
                delivered_at=now,
            )
        else:
            payload = WebhookFailed(
                webhook_id=message["endpoint_id"],
                message_id=message["id"],
                event_id=message["event_id"],
                event_type=message["event_type"],
                endpoint_url=url,
                status_code=result.status_code,
                error=(result.error or "failed")[:2000],
                attempt=task.attempt,
                final=outcome is not Outcome.RETRY,
                next_attempt_at=next_at,
                endpoint_disabled=outcome is Outcome.DISABLE,
                failed_at=now,
            )
        return new_event(
            payload, tenant_id=task.tenant_id, subject=message["endpoint_id"], source_api_slug=self.api_slug
        )

    def _abandon(self, task: DeliverTask, reason: str) -> None:
        def work(tx: Tx) -> None:
            ref = self.messages(task.tenant_id).document(task.message_id)
            message = tx.get(ref)
            if message is None or not self._current(message, task):
                return
            now = datetime.now(UTC)
            tx.update(
                ref,
                {
                    "status": MessageStatus.FAILED.value,
                    "last_error": reason,
                    "failed_at": now,
                    "updated_at": now,
                },
            )

        self.uow.run(work)

    # --- replay ------------------------------------------------------------------------------------
    def replay(self, tenant_id: str, msg_id: str) -> dict[str, Any]:
        """Send the message again from attempt 1 (whatever its status), with a new dispatch token."""

        def work(tx: Tx, dispatch: str) -> dict[str, Any]:
            ref = self.messages(tenant_id).document(msg_id)
            message = tx.get(ref)
            if message is None:
                raise not_found(f"Webhook message {msg_id}")
            now = datetime.now(UTC)
            changes = {
                "status": MessageStatus.PENDING.value,
                "dispatch": dispatch,
                "attempt": 1,
                "next_attempt_at": now,
                "replayed_at": now,
                "updated_at": now,
            }
            tx.update(ref, changes)
            return {**message, **changes}

        # After the commit, so the task finds the new dispatch. Should the enqueue fail, the caller
        # gets a 500 and the message stays pending: replaying it again is always allowed.
        dispatch = uuid.uuid4().hex[:16]
        replayed = self.uow.run(lambda tx: work(tx, dispatch))
        self._enqueue(DeliverTask(tenant_id, msg_id, dispatch, 1), None)
        return replayed

    def replay_endpoint(self, tenant_id: str, endpoint_id: str, since: datetime) -> list[str]:
        """Replay the endpoint's failed messages created at or after `since` (at most REPLAY_LIMIT)."""
        self.endpoint(tenant_id, endpoint_id)
        failed = (
            self.messages(tenant_id)
            .where(filter=firestore.FieldFilter("endpoint_id", "==", endpoint_id))
            .where(filter=firestore.FieldFilter("status", "==", MessageStatus.FAILED.value))
            .stream()
        )
        chosen = sorted((s.to_dict() or {} for s in failed), key=lambda m: (m["event_time"], m["id"]))
        ids = [m["id"] for m in chosen if m["created_at"] >= since][:REPLAY_LIMIT]
        for msg_id in ids:
            self.replay(tenant_id, msg_id)
        return ids

    def message(self, tenant_id: str, msg_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        snapshot = self.messages(tenant_id).document(msg_id).get() if "/" not in msg_id else None
        if snapshot is None or not snapshot.exists:
            raise not_found(f"Webhook message {msg_id}")
        attempts = [s.to_dict() or {} for s in self.attempts(tenant_id, msg_id).order_by("n").stream()]
        return snapshot.to_dict() or {}, attempts


def build_service(platform: Platform) -> WebhookService:
    settings = platform.settings
    return WebhookService(
        platform.db,
        platform.uow,
        platform.catalog,
        settings,
        TaskQueue(settings, QUEUE, TASKS_FUNCTION),
        SigningSecrets(settings, SecretAccessor()),
    )
