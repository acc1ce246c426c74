"""Notification API use cases: events into notifications, the inbox, preferences, templates, email
sending over SMTP, the digest, and provider delivery reports (bounces, complaints).

Layout, all under the tenant so isolation and erasure are structural:
    tenants/{tid}/inbox/{user_id}/items/{ntf_id}          in-app notifications of one user
    tenants/{tid}/notification_emails/{ntf_id or dig_id}  one email (or digest) and its sending state
    tenants/{tid}/notification_preferences/{user_id}      a user's choices
    tenants/{tid}/notification_templates/{slug}--{locale} the tenant's template overrides
    tenants/{tid}/notification_suppressions/{addr_hash}   addresses that hard-bounced or complained
    tenants/{tid}/notification_reports/{hash}             provider delivery reports already applied

Recipients are read from the User Management API's `tenants/{tid}/users` (read-only: active users,
admins and owners for the tenant's events), falling back to the tenant's `admin_email` (Tenant API)
when the tenant has no active admin yet.

Each email is sent by a NAMED Cloud Task on the "notification-email" queue, enqueued in the same
transaction attempt that creates the email document; the task carries the document's `dispatch` token,
so a task of a rolled-back attempt finds no match and does nothing. A temporary SMTP failure answers 503
and Cloud Tasks retries with the queue's backoff; nothing is lost while attempts remain.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import smtplib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from google.cloud import firestore

from functions.notification_api import domain
from functions.notification_api.domain import Channel, DeliveryKind, Preferences, Recipient, Target
from functions.notification_api.links import InvitationLinks, LinkUnavailable
from functions.notification_api.templates import ACCEPT_LINK, DEFAULT_LOCALE, Template
from shared.catalog import Catalog
from shared.config import Settings
from shared.contracts.payloads import NotificationBounced
from shared.events import new_event
from shared.intake import Delivered
from shared.platform import Platform
from shared.problems import Problem, not_found
from shared.secrets import SecretAccessor, SecretNotFound
from shared.tasks import TaskQueue, task_id
from shared.uow import Tx, UnitOfWork, write_in_batches

log = logging.getLogger(__name__)

API_NAME = "Notification API"
TENANTS = "tenants"
USERS = "users"  # the User Management API's collection, read only
INBOX = "inbox"
ITEMS = "items"
EMAILS = "notification_emails"
ERASED = "[erased]"
PREFERENCES = "notification_preferences"
TEMPLATES = "notification_templates"
SUPPRESSIONS = "notification_suppressions"
REPORTS = "notification_reports"
QUEUE = "notification-email"
TASKS_FUNCTION = "notification_api_tasks"
SEND_PATH = "/send"
PROVIDER_SECRET = "notification-provider-webhook"  # noqa: S105 (a secret's name, not a value)
SIGNATURE_TOLERANCE_SECONDS = 300
ADMIN_ROLES = ("admin", "owner")
DIGEST_BATCH = 400  # items per digest mail: the mail and its items commit in one transaction (max 500)
MISSING_TASK_RETRIES = 5
REDISPATCH_AFTER = timedelta(hours=2)  # longer than the queue's retries last, so never while they run


class TemporaryFailure(Exception):
    """The mail can be retried later (4xx, connection refused, timeout)."""


class PermanentFailure(Exception):
    """The relay refused the mail for good (5xx)."""

    def __init__(self, message: str, code: int | None = None, recipient_refused: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.recipient_refused = recipient_refused  # the relay knows the address does not exist


class NotReady(Exception):
    """The email document is not committed yet: the task is retried."""


class BadSignature(Exception):
    pass


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


class SmtpMailer:
    """stdlib smtplib. The password, when the relay needs a login, comes from Secret Manager and is
    never logged (SecretStr)."""

    def __init__(self, settings: Settings, secrets: SecretAccessor) -> None:
        self.settings = settings
        self.secrets = secrets

    def send(self, message: EmailMessage) -> None:
        s = self.settings
        try:
            with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds) as smtp:
                if s.smtp_starttls:
                    smtp.starttls()
                if s.smtp_username:
                    password = self.secrets.get(s.smtp_password_secret)
                    smtp.login(s.smtp_username, password.get_secret_value())
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            detail = "; ".join(f"{code} {_text(text)}" for code, text in exc.recipients.values())
            if codes and min(codes) >= 500:
                raise PermanentFailure(detail[:500], min(codes), recipient_refused=True) from exc
            raise TemporaryFailure(detail[:500]) from exc
        except smtplib.SMTPResponseException as exc:
            text = f"{exc.smtp_code} {_text(exc.smtp_error)}"[:500]
            if exc.smtp_code >= 500:
                raise PermanentFailure(text, exc.smtp_code) from exc
            raise TemporaryFailure(text) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise TemporaryFailure(f"{type(exc).__name__}: {exc}"[:500]) from exc


@dataclass(frozen=True)
class ProviderReport:
    id: str
    type: str
    message_id: str
    recipient: str
    bounce_type: str | None
    diagnostic: str | None
    provider: str
    occurred_at: datetime


def sign_report(secret: str, timestamp: int, body: bytes) -> str:
    """The `Notification-Signature` header value: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_report(secret: str, header: str | None, body: bytes, now: float) -> None:
    if not header:
        raise BadSignature("missing Notification-Signature header")
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts.get("t", ""))
    except ValueError as exc:
        raise BadSignature("the signature's timestamp is not an integer") from exc
    if abs(now - timestamp) > SIGNATURE_TOLERANCE_SECONDS:
        raise BadSignature("the signature's timestamp is outside the tolerance")
    expected = sign_report(secret, timestamp, body).encode()
    if not hmac.compare_digest(f"t={timestamp},v1={parts.get('v1', '')}".encode(), expected):
        raise BadSignature("the signature does not match")


def _slug(event_name: str) -> str:
    return event_name.lower().replace(" ", "-")


class NotificationService:
    def __init__(
        self,
        db: firestore.Client,
        uow: UnitOfWork,
        catalog: Catalog,
        settings: Settings,
        queue: TaskQueue,
        mailer: SmtpMailer,
        secrets: SecretAccessor,
        links: InvitationLinks | None = None,
    ) -> None:
        self.db = db
        self.links = links
        self.uow = uow
        self.catalog = catalog
        self.settings = settings
        self.queue = queue
        self.mailer = mailer
        self.secrets = secrets
        self.api_slug = catalog.api(API_NAME).slug
        self.event_names = tuple(e.name for e in catalog.consumed_by(API_NAME))

    # --- persistence -------------------------------------------------------------------------------
    def _tenant(self, tenant_id: str) -> firestore.DocumentReference:
        ref: firestore.DocumentReference = self.db.collection(TENANTS).document(tenant_id)
        return ref

    def inbox(self, tenant_id: str, user_id: str) -> firestore.CollectionReference:
        ref: firestore.CollectionReference = (
            self._tenant(tenant_id).collection(INBOX).document(user_id).collection(ITEMS)
        )
        return ref

    def emails(self, tenant_id: str) -> firestore.CollectionReference:
        ref: firestore.CollectionReference = self._tenant(tenant_id).collection(EMAILS)
        return ref

    def preferences_ref(self, tenant_id: str, user_id: str) -> firestore.DocumentReference:
        ref: firestore.DocumentReference = self._tenant(tenant_id).collection(PREFERENCES).document(user_id)
        return ref

    def templates(self, tenant_id: str) -> firestore.CollectionReference:
        ref: firestore.CollectionReference = self._tenant(tenant_id).collection(TEMPLATES)
        return ref

    def template_ref(self, tenant_id: str, event_name: str, locale: str) -> firestore.DocumentReference:
        ref: firestore.DocumentReference = self.templates(tenant_id).document(
            f"{_slug(event_name)}--{locale}"
        )
        return ref

    def suppressions(self, tenant_id: str) -> firestore.CollectionReference:
        ref: firestore.CollectionReference = self._tenant(tenant_id).collection(SUPPRESSIONS)
        return ref

    def suppression_ref(self, tenant_id: str, address: str) -> firestore.DocumentReference:
        ref: firestore.DocumentReference = self.suppressions(tenant_id).document(domain.address_key(address))
        return ref

    # --- recipients (read outside the transaction: another API's collection, never written here) ----
    def _admins(self, tenant_id: str) -> list[Recipient]:
        users = self._tenant(tenant_id).collection(USERS)
        found = (
            users.where(filter=firestore.FieldFilter("role", "in", list(ADMIN_ROLES)))
            .where(filter=firestore.FieldFilter("status", "==", "active"))
            .stream()
        )
        admins = [Recipient(s.id, (s.to_dict() or {}).get("email")) for s in found]
        if admins:
            return sorted(admins, key=lambda r: r.key)
        # No active admin yet (the first admin has not accepted): the address the tenant was created with.
        tenant = self._tenant(tenant_id).get()
        email = (tenant.to_dict() or {}).get("admin_email") if tenant.exists else None
        return [Recipient(None, email)] if email else []

    def _user(self, tenant_id: str, user_id: str, email: str | None) -> Recipient | None:
        snapshot = self._tenant(tenant_id).collection(USERS).document(user_id).get()
        data = snapshot.to_dict() or {} if snapshot.exists else {}
        if data.get("status") == "deactivated":
            return None
        return Recipient(user_id, data.get("email") or email)

    def _resolve(self, tenant_id: str, targets: Iterable[Target]) -> list[tuple[Recipient, Target]]:
        resolved: list[tuple[Recipient, Target]] = []
        admins: list[Recipient] | None = None
        for target in targets:
            who = target.who
            if isinstance(who, domain.Admins):
                admins = self._admins(tenant_id) if admins is None else admins
                resolved.extend((r, target) for r in admins)
            elif isinstance(who, domain.User):
                user = self._user(tenant_id, who.user_id, who.email)
                if user is not None:
                    resolved.append((user, target))
            else:
                resolved.append((Recipient(who.user_id, who.email, who.contact_id), target))
        return domain.merge_targets(resolved)

    # --- events into notifications (inside the event intake's transaction) -------------------------
    def notify(self, event: Delivered, tx: Tx) -> None:
        name = event.entry.name
        payload = event.payload.model_dump(mode="json")
        if name == "Data Erasure Completed":
            # Our copies go too: what was sent about the subject, and about the request itself.
            self.erase_about(event.tenant_id, {str(payload["subject_id"]), str(payload["request_id"])})
        plan = domain.plan(name, payload)
        if not plan.targets:
            return
        self.create_notifications(
            tx, event.tenant_id, event.envelope.id, name, payload, plan, about=event.envelope.subject
        )

    def erase_about(self, tenant_id: str, subjects: set[str]) -> int:
        """A data subject's erasure: every e-mail and in-app notification raised by an event about them
        (its `about`, the event's subject) keeps its record but not its address nor its text; a pending
        e-mail is not sent any more. Idempotent."""
        found: list[firestore.DocumentSnapshot[Any]] = []
        for subject in sorted(subjects):
            about = firestore.FieldFilter("about", "==", subject)
            found += list(self.emails(tenant_id).where(filter=about).stream())
            found += list(
                self.db.collection_group(ITEMS)
                .where(filter=firestore.FieldFilter("tenant_id", "==", tenant_id))
                .where(filter=about)
                .stream()
            )
        erased = {"subject": ERASED, "body": ERASED, "erased_at": datetime.now(UTC)}
        return write_in_batches(
            self.db,
            (
                s
                for s in found
                if s.get("subject") != ERASED and s.get("event_name") != "Data Erasure Completed"
            ),
            lambda batch, s: batch.update(
                s.reference,
                {**erased, "to": ERASED, "status": "erased"} if s.reference.parent.id == EMAILS else erased,
            ),
        )

    def create_notifications(
        self,
        tx: Tx,
        tenant_id: str,
        event_id: str,
        event_name: str,
        payload: Mapping[str, Any],
        plan: domain.Plan,
        about: str | None = None,
    ) -> int:
        """Every read first (preferences, suppressions, overrides, what exists), then the writes.
        `about` (the event's subject) finds the notifications again when their subject is erased."""
        resolved = self._resolve(tenant_id, plan.targets)
        if not resolved:
            return 0
        users = sorted({r.user_id for r, _ in resolved if r.user_id})
        prefs = {
            uid: Preferences.from_document(doc)
            for uid, doc in tx.get_all([self.preferences_ref(tenant_id, u) for u in users])
        }
        addresses = sorted({r.email.lower() for r, _ in resolved if r.email})
        suppressed = {
            key
            for key, doc in tx.get_all([self.suppression_ref(tenant_id, a) for a in addresses])
            if doc is not None
        }
        locales = sorted({domain.normalize_locale(p.locale) for p in prefs.values()} | {DEFAULT_LOCALE})
        overrides = {
            (event_name, str(doc["locale"])): Template(doc["subject"], doc["body"])
            for _, doc in tx.get_all([self.template_ref(tenant_id, event_name, loc) for loc in locales])
            if doc is not None
        }
        planned: list[tuple[Recipient, Target, domain.Delivery, Preferences]] = []
        refs: list[firestore.DocumentReference] = []
        for recipient, target in resolved:
            pref = prefs.get(recipient.user_id or "", Preferences())
            delivery = domain.channels_for(target, plan.category, pref, recipient)
            planned.append((recipient, target, delivery, pref))
            if delivery.in_app and recipient.user_id:
                ntf = domain.notification_id(event_id, recipient.key, Channel.IN_APP)
                refs.append(self.inbox(tenant_id, recipient.user_id).document(ntf))
            if delivery.email:
                refs.append(
                    self.emails(tenant_id).document(
                        domain.notification_id(event_id, recipient.key, Channel.EMAIL)
                    )
                )
        existing = {ref_id for ref_id, doc in tx.get_all(refs) if doc is not None}
        now = datetime.now(UTC)
        extra = {"tenant_id": tenant_id}
        created = 0
        for recipient, target, delivery, pref in planned:
            rendered = domain.render(event_name, payload, pref.locale, overrides, extra)
            base = {
                "tenant_id": tenant_id,
                "user_id": recipient.user_id,
                "event_id": event_id,
                "event_name": event_name,
                "about": about,
                "category": plan.category,
                "priority": target.priority.value,
                "subject": rendered.subject,
                "body": rendered.body,
                "locale": rendered.locale,
                "created_at": now,
            }
            if delivery.in_app and recipient.user_id:
                ntf = domain.notification_id(event_id, recipient.key, Channel.IN_APP)
                if ntf not in existing:
                    tx.create(
                        self.inbox(tenant_id, recipient.user_id).document(ntf),
                        {**base, "id": ntf, "read": False, "read_at": None, "unread_since": now},
                    )
                    created += 1
            if delivery.email and recipient.email:
                ntf = domain.notification_id(event_id, recipient.key, Channel.EMAIL)
                if ntf in existing:
                    continue
                status = "pending"
                if domain.address_key(recipient.email) in suppressed:
                    status = "suppressed"
                elif delivery.digest:
                    status = "digest"
                document = {
                    **base,
                    "id": ntf,
                    "invitation_id": domain.invitation_to_link(event_name, payload, target),
                    "kind": "notification",
                    "to": recipient.email,
                    "contact_id": recipient.contact_id,
                    "status": status,
                    "attempts": 0,
                    "message_id": domain.message_id(tenant_id, ntf),
                }
                if status == "pending":
                    document["dispatch"] = self._dispatch(tenant_id, ntf)
                tx.create(self.emails(tenant_id).document(ntf), document)
                created += 1
        return created

    def _dispatch(self, tenant_id: str, ntf_id: str) -> str:
        """Enqueue the send task before the commit (a failed enqueue fails the transaction, and the event
        is redelivered); the document carries the token, so only this attempt's task acts."""
        dispatch = uuid.uuid4().hex[:16]
        self.queue.enqueue(
            SEND_PATH,
            {"tenant_id": tenant_id, "notification_id": ntf_id, "dispatch": dispatch},
            name=task_id(ntf_id, dispatch),
        )
        return dispatch

    # --- sending (the task) ------------------------------------------------------------------------
    def send(self, tenant_id: str, ntf_id: str, dispatch: str, retries: int) -> str:
        ref = self.emails(tenant_id).document(ntf_id)
        snapshot = ref.get()
        if not snapshot.exists:
            if retries >= MISSING_TASK_RETRIES:
                return "abandoned"  # the transaction that enqueued it never committed
            raise NotReady(ntf_id)
        mail = snapshot.to_dict() or {}
        if mail.get("dispatch") != dispatch or mail.get("status") != "pending":
            return "stale"
        if self.suppression_ref(tenant_id, mail["to"]).get().exists:
            ref.update({"status": "suppressed", "updated_at": datetime.now(UTC)})
            return "suppressed"
        appendix = self._accept_link(tenant_id, mail)
        if appendix is None:
            now = datetime.now(UTC)
            reason = "the invitation can no longer be accepted"
            ref.update({"status": "failed", "last_error": reason, "updated_at": now})
            return "failed"
        attempts = int(mail.get("attempts", 0)) + 1
        try:
            self.mailer.send(self._message(mail, appendix))
        except TemporaryFailure as exc:
            ref.update({"attempts": attempts, "last_error": str(exc), "updated_at": datetime.now(UTC)})
            raise
        except PermanentFailure as exc:
            now = datetime.now(UTC)
            ref.update({"attempts": attempts, "last_error": str(exc), "status": "failed", "updated_at": now})
            if not exc.recipient_refused:
                return "failed"
            # The relay refused the address itself: a hard bounce, reported as the provider would.
            bounce = ProviderReport(
                id=f"smtp-{ntf_id}",
                type="bounce",
                message_id=mail["message_id"],
                recipient=mail["to"],
                bounce_type="hard",
                diagnostic=str(exc),
                provider="smtp",
                occurred_at=now,
            )
            self.apply_report(bounce)
            return "bounced"
        now = datetime.now(UTC)
        ref.update(
            {"attempts": attempts, "status": "sent", "sent_at": now, "last_error": None, "updated_at": now}
        )
        return "sent"

    def _accept_link(self, tenant_id: str, mail: Mapping[str, Any]) -> str | None:
        """The invitation mail's accept link, as text to append ("" for other mails; None when the
        invitation can no longer be accepted). Its token lives only in the message handed to the relay."""
        invitation_id = mail.get("invitation_id")
        if not invitation_id or self.links is None:
            return ""
        try:
            link = self.links.accept_link(tenant_id, str(invitation_id))
        except LinkUnavailable as exc:
            raise TemporaryFailure(f"no accept link yet: {exc}") from exc
        if not link:
            return link
        text = ACCEPT_LINK.get(str(mail.get("locale") or DEFAULT_LOCALE), ACCEPT_LINK[DEFAULT_LOCALE])
        return "\n" + text.format(link=link) + "\n"

    def _message(self, mail: Mapping[str, Any], appendix: str = "") -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.settings.smtp_from
        message["To"] = mail["to"]
        message["Subject"] = mail["subject"]
        message["Message-ID"] = mail["message_id"]
        message["Date"] = formatdate(usegmt=True)
        message["Content-Language"] = mail.get("locale") or DEFAULT_LOCALE
        if mail.get("kind") == "digest":
            message["Precedence"] = "bulk"
        message.set_content(str(mail["body"]) + "\n" + appendix)
        return message

    # --- digest (the scheduled function) -----------------------------------------------------------
    def run_digest(self, redispatch_after: timedelta = REDISPATCH_AFTER) -> dict[str, int]:
        """Collect every tenant's low-priority emails waiting for the digest into one mail per address,
        and give a new send task to any email still pending long after its last attempt."""
        sent = items = redispatched = 0
        for tenant in self.db.collection(TENANTS).list_documents():
            redispatched += self._redispatch(tenant.id, redispatch_after)
            waiting = (
                self.emails(tenant.id).where(filter=firestore.FieldFilter("status", "==", "digest")).stream()
            )
            found = [
                domain.DigestItem(
                    s.id,
                    str(d["to"]),
                    d.get("user_id"),
                    str(d.get("subject", "")),
                    str(d.get("locale") or DEFAULT_LOCALE),
                    d["created_at"],
                )
                for s in waiting
                if (d := s.to_dict() or {}).get("to")
            ]
            for address, group in domain.digest_groups(found).items():
                for start in range(0, len(group), DIGEST_BATCH):
                    chunk = group[start : start + DIGEST_BATCH]
                    if self._digest(tenant.id, address, chunk):
                        sent += 1
                        items += len(chunk)
        return {"digests": sent, "items": items, "redispatched": redispatched}

    def _redispatch(self, tenant_id: str, after: timedelta) -> int:
        """Cloud Tasks gives up after the queue's max attempts (about 1.5 h of a failing relay): such an
        email, still pending, gets a new task with a new dispatch token, so the old one can never send it
        too. Nothing is lost however long the relay is down."""
        now = datetime.now(UTC)
        pending = (
            self.emails(tenant_id).where(filter=firestore.FieldFilter("status", "==", "pending")).stream()
        )
        count = 0
        for snapshot in pending:
            seen = snapshot.to_dict() or {}
            last = seen.get("updated_at") or seen.get("created_at")
            if last is None or now - last < after:
                continue
            count += int(self._redispatch_one(tenant_id, snapshot.reference, seen.get("dispatch")))
        return count

    def _redispatch_one(self, tenant_id: str, ref: firestore.DocumentReference, dispatch: Any) -> bool:
        def work(tx: Tx) -> bool:
            current = tx.get(ref)
            if current is None or current.get("status") != "pending" or current.get("dispatch") != dispatch:
                return False  # sent, or redispatched by another run, in between
            tx.update(ref, {"dispatch": self._dispatch(tenant_id, ref.id), "updated_at": datetime.now(UTC)})
            return True

        return self.uow.run(work)

    def _digest(self, tenant_id: str, address: str, chunk: list[domain.DigestItem]) -> bool:
        digest_id = domain.digest_id(address, chunk)

        def work(tx: Tx) -> bool:
            refs = [self.emails(tenant_id).document(i.notification_id) for i in chunk]
            digest_ref = self.emails(tenant_id).document(digest_id)
            current = dict(tx.get_all([*refs, digest_ref]))
            if current.get(digest_id) is not None:
                return False
            still = [i for i in chunk if (current.get(i.notification_id) or {}).get("status") == "digest"]
            if len(still) != len(chunk):
                return False  # another run took some: the next run regroups what is left
            rendered = domain.render_digest(chunk)
            now = datetime.now(UTC)
            tx.create(
                digest_ref,
                {
                    "id": digest_id,
                    "kind": "digest",
                    "tenant_id": tenant_id,
                    "user_id": chunk[0].user_id,
                    "to": chunk[0].to,
                    "contact_id": None,
                    "subject": rendered.subject,
                    "body": rendered.body,
                    "locale": rendered.locale,
                    "items": [i.notification_id for i in chunk],
                    "status": "pending",
                    "attempts": 0,
                    "message_id": domain.message_id(tenant_id, digest_id),
                    "dispatch": self._dispatch(tenant_id, digest_id),
                    "created_at": now,
                },
            )
            for ref in refs:
                tx.update(ref, {"status": "digested", "digest_id": digest_id, "updated_at": now})
            return True

        return self.uow.run(work)

    # --- inbox ---------------------------------------------------------------------------------------
    def unread_count(self, tenant_id: str, user_id: str) -> int:
        query: Any = self.inbox(tenant_id, user_id).where(filter=firestore.FieldFilter("read", "==", False))
        result = query.count().get()
        return int(result[0][0].value)

    def mark_read(self, tenant_id: str, user_id: str, ntf_id: str) -> dict[str, Any]:
        def work(tx: Tx) -> dict[str, Any]:
            ref = self.inbox(tenant_id, user_id).document(ntf_id)
            item = tx.get(ref)
            if item is None:
                raise not_found(f"Notification {ntf_id}")
            if item.get("read"):
                return item
            changes = {"read": True, "read_at": datetime.now(UTC), "unread_since": firestore.DELETE_FIELD}
            tx.update(ref, changes)
            return {**item, "read": True, "read_at": changes["read_at"], "unread_since": None}

        return self.uow.run(work)

    def mark_all_read(self, tenant_id: str, user_id: str) -> int:
        marked = 0
        query = self.inbox(tenant_id, user_id).where(filter=firestore.FieldFilter("read", "==", False))
        while True:
            unread = list(query.limit(400).stream())
            if not unread:
                return marked
            batch = self.db.batch()
            now = datetime.now(UTC)
            for snapshot in unread:
                batch.update(
                    snapshot.reference, {"read": True, "read_at": now, "unread_since": firestore.DELETE_FIELD}
                )
            batch.commit()
            marked += len(unread)

    # --- preferences and templates -----------------------------------------------------------------
    def preferences(self, tenant_id: str, user_id: str) -> Preferences:
        snapshot = self.preferences_ref(tenant_id, user_id).get()
        return Preferences.from_document(snapshot.to_dict() if snapshot.exists else None)

    def save_preferences(self, tenant_id: str, user_id: str, preferences: Preferences) -> Preferences:
        self.preferences_ref(tenant_id, user_id).set(
            {**preferences.to_document(), "updated_at": datetime.now(UTC)}
        )
        return preferences

    def template_overrides(self, tenant_id: str) -> list[dict[str, Any]]:
        return [s.to_dict() or {} for s in self.templates(tenant_id).stream()]

    def put_template(
        self, tenant_id: str, event_name: str, locale: str, template: Template, actor: str
    ) -> tuple[dict[str, Any], bool]:
        ref = self.template_ref(tenant_id, event_name, locale)
        document = {
            "event_name": event_name,
            "locale": locale,
            "subject": template.subject,
            "body": template.body,
            "updated_by": actor,
            "updated_at": datetime.now(UTC),
        }

        def work(tx: Tx) -> bool:
            created = tx.get(ref) is None
            tx.set(ref, document)
            return created

        return document, self.uow.run(work)

    def delete_template(self, tenant_id: str, event_name: str, locale: str) -> None:
        ref = self.template_ref(tenant_id, event_name, locale)
        if not ref.get().exists:
            raise not_found(f"The {locale} template override of {event_name}")
        ref.delete()

    def lift_suppression(self, tenant_id: str, address: str) -> None:
        ref = self.suppression_ref(tenant_id, address)
        if not ref.get().exists:
            raise not_found("The suppression of that address")
        ref.delete()

    # --- provider delivery reports -----------------------------------------------------------------
    def provider_secret(self) -> str:
        try:
            return self.secrets.get(PROVIDER_SECRET).get_secret_value()
        except SecretNotFound as exc:
            raise Problem(503, "not-configured", "Delivery reports are not configured.") from exc

    def apply_report(self, report: ProviderReport) -> str:
        """Apply one delivery report once. Returns what happened: applied, duplicate or ignored."""
        kind = domain.normalize_delivery(report.type, report.bounce_type)
        parsed = domain.parse_message_id(report.message_id)
        if parsed is None:
            return "ignored"
        tenant_id, ntf_id = parsed
        key = hashlib.sha256(f"{report.provider}\n{report.id}".encode()).hexdigest()[:40]

        def work(tx: Tx) -> str:
            seen_ref = self._tenant(tenant_id).collection(REPORTS).document(key)
            mail_ref = self.emails(tenant_id).document(ntf_id)
            seen, mail = (doc for _, doc in tx.get_all([seen_ref, mail_ref]))
            if seen is not None:
                return "duplicate"
            if mail is None or str(mail.get("to", "")).lower() != report.recipient.strip().lower():
                return "ignored"
            suppression_ref = self.suppression_ref(tenant_id, report.recipient)
            suppression = tx.get(suppression_ref) if domain.suppresses(kind) else None
            now = datetime.now(UTC)
            self._apply(tx, tenant_id, mail_ref, mail, report, kind, suppression_ref, suppression, now)
            tx.create(
                seen_ref,
                {
                    "tenant_id": tenant_id,
                    "notification_id": ntf_id,
                    "provider": report.provider,
                    "report_id": report.id,
                    "kind": kind.value,
                    "received_at": now,
                },
            )
            return "applied"

        return self.uow.run(work)

    def _apply(
        self,
        tx: Tx,
        tenant_id: str,
        mail_ref: firestore.DocumentReference,
        mail: dict[str, Any],
        report: ProviderReport,
        kind: DeliveryKind,
        suppression_ref: firestore.DocumentReference,
        suppression: dict[str, Any] | None,
        now: datetime,
    ) -> None:
        if kind is DeliveryKind.DELIVERED:
            tx.update(mail_ref, {"delivered_at": report.occurred_at, "updated_at": now})
            return
        changes: dict[str, Any] = {
            "bounce": {"kind": kind.value, "diagnostic": report.diagnostic, "at": report.occurred_at},
            "updated_at": now,
        }
        if domain.suppresses(kind):
            changes["status"] = "complained" if kind is DeliveryKind.COMPLAINT else "bounced"
            if suppression is None:
                tx.create(
                    suppression_ref,
                    {
                        "address": report.recipient.strip().lower(),
                        "reason": kind.value,
                        "notification_id": mail["id"],
                        "provider": report.provider,
                        "diagnostic": report.diagnostic,
                        "created_at": now,
                    },
                )
        tx.update(mail_ref, changes)
        payload = NotificationBounced(
            notification_id=mail["id"],
            channel="email",
            recipient=report.recipient.strip(),
            user_id=mail.get("user_id"),
            contact_id=mail.get("contact_id"),
            bounce_type=domain.bounce_type(kind),
            provider=report.provider,
            provider_message_id=report.message_id[:128],
            diagnostic=report.diagnostic[:2000] if report.diagnostic else None,
            bounced_at=report.occurred_at,
        )
        tx.emit(new_event(payload, tenant_id=tenant_id, subject=mail["id"], source_api_slug=self.api_slug))


def build_service(platform: Platform) -> NotificationService:
    settings = platform.settings
    secrets = SecretAccessor()
    return NotificationService(
        platform.db,
        platform.uow,
        platform.catalog,
        settings,
        TaskQueue(settings, QUEUE, TASKS_FUNCTION),
        SmtpMailer(settings, secrets),
        secrets,
        InvitationLinks(settings, platform.services),
    )
