"""Audit API use cases over Firestore: record, seal, sweep, verify, and the reads behind the routes.

Layout, all under the tenant so isolation and erasure are structural:
    tenants/{tid}/audit_entries/{entry_id}      one document per event, written once
    tenants/{tid}/audit_blocks/{seq:012d}       one per seal
    tenants/{tid}/audit_chain/head              {seq, hash} of the last block
    tenants/{tid}/audit_alert_rules/{rule_id}   the tenant's own rules (none: the built-in defaults)
    tenants/{tid}/audit_alerts/{alert_id}       raised alerts

Recording touches only the new entry (Firestore sustains about one write per second per document, so
no per-entry counter or chain head). The head moves once per seal, at most every couple of seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Self

from google.cloud import firestore
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from functions.audit_api.chain import (
    ERASED_DETAILS,
    GENESIS,
    ChainVerifier,
    VerifyReport,
    build_block,
    sealable_count,
)
from functions.audit_api.entries import API_NAME, PLATFORM_SCOPE, audit_entry, audited_actions
from functions.audit_api.rules import DEFAULT_RULES, RULES, Alert, Rule, ThresholdRule, evaluate
from shared.catalog import Catalog
from shared.events import new_event
from shared.intake import Delivered
from shared.platform import Platform
from shared.problems import conflict
from shared.tasks import TaskQueue, task_id
from shared.uow import Tx, UnitOfWork, write_in_batches

log = logging.getLogger(__name__)

TENANTS = "tenants"
ENTRIES = "audit_entries"
BLOCKS = "audit_blocks"
CHAIN = "audit_chain"
HEAD = "head"
ANCHORS = "audit_anchors"  # under the platform scope: each tenant's chain head, written by every seal
RULES_COLLECTION = "audit_alert_rules"
ALERTS = "audit_alerts"

SEAL_QUEUE = "audit-seal"
SEAL_PATH = "/seal"
SEAL_BUCKET_SECONDS = 2
SEAL_BATCH = 400
MAX_TX_WRITES = 500  # Firestore's limit on the writes of one transaction
HISTORY_LIMIT = 2000  # stored entries a seal reads back for threshold windows, newest first
MAX_RULES = 50
SWEEP_AGE = timedelta(seconds=10)
SWEEP_PAGE = 300
SWEEP_BUDGET_SECONDS = 45.0  # the sweep runs every minute: finish before the next one starts
EXPORT_CHUNK = 500
RULE_META = frozenset({"id", "updated_at", "updated_by"})


class EntryFilters(BaseModel):
    """Filters of the entry list and the export; `since` is inclusive and `until` exclusive."""

    model_config = ConfigDict(extra="forbid")

    actor: str | None = Field(default=None, min_length=1, max_length=512, description="An actor id.")
    action: str | None = Field(default=None, description="An audited action, e.g. user.role.changed")
    target: str | None = Field(default=None, min_length=1, max_length=512, description="A target id.")
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None

    @field_validator("action")
    @classmethod
    def _audited(cls, value: str | None) -> str | None:
        if value is not None and value not in audited_actions():
            raise ValueError(f"not an audited action; one of {', '.join(sorted(audited_actions()))}")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("`since` must be before `until`")
        return self


@dataclass(frozen=True)
class SealResult:
    block_seq: int | None  # None: nothing was unsealed
    sealed: int
    alerts: int
    next_recorded_at: datetime | None  # recorded_at of the oldest entry still unsealed, if any

    def to_dict(self) -> dict[str, Any]:
        return {"block_seq": self.block_seq, "sealed": self.sealed, "alerts": self.alerts}


class SealScheduler:
    """Asks for one seal per tenant per time bucket with a NAMED task, so any number of entries in a
    bucket cost one task (Cloud Tasks answers ALREADY_EXISTS to the rest).

    The task of bucket B runs one second after B ends, so it finds the entries recorded in B (one whose
    commit is slower waits for a later seal or the sweep). This instance also remembers which tenants it
    asked for in the current bucket, to skip the round trip.
    """

    def __init__(self, queue: TaskQueue, bucket_seconds: int = SEAL_BUCKET_SECONDS) -> None:
        self.queue = queue
        self.bucket_seconds = bucket_seconds
        self._lock = threading.Lock()
        self._bucket = -1
        self._asked: set[str] = set()

    def schedule(self, tenant_id: str, now: datetime) -> None:
        bucket = int(now.timestamp()) // self.bucket_seconds
        with self._lock:
            if bucket == self._bucket and tenant_id in self._asked:
                return
        due = datetime.fromtimestamp((bucket + 1) * self.bucket_seconds + 1, UTC)
        self.queue.enqueue(
            SEAL_PATH,
            {"tenant_id": tenant_id},
            name=task_id("seal", tenant_id, str(bucket)),
            schedule_time=due,
        )
        with self._lock:
            if bucket != self._bucket:
                self._bucket, self._asked = bucket, set()
            self._asked.add(tenant_id)


class AuditService:
    def __init__(
        self, db: firestore.Client, uow: UnitOfWork, catalog: Catalog, scheduler: SealScheduler
    ) -> None:
        self.db = db
        self.uow = uow
        self.api_slug = catalog.api(API_NAME).slug
        self.scheduler = scheduler

    # --- persistence -------------------------------------------------------------------------------
    def tenant(self, tenant_id: str) -> firestore.DocumentReference:
        return self.db.collection(TENANTS).document(tenant_id)

    def _collection(self, tenant_id: str, name: str) -> firestore.CollectionReference:
        collection: firestore.CollectionReference = self.tenant(tenant_id).collection(name)
        return collection

    def entries(self, tenant_id: str) -> firestore.CollectionReference:
        return self._collection(tenant_id, ENTRIES)

    def blocks(self, tenant_id: str) -> firestore.CollectionReference:
        return self._collection(tenant_id, BLOCKS)

    def anchor(self, tenant_id: str) -> firestore.DocumentReference:
        """The tenant's chain head as the platform trail keeps it, outside the tenant's documents."""
        ref: firestore.DocumentReference = (
            self.db.collection(TENANTS).document(PLATFORM_SCOPE).collection(ANCHORS).document(tenant_id)
        )
        return ref

    def head(self, tenant_id: str) -> firestore.DocumentReference:
        return self._collection(tenant_id, CHAIN).document(HEAD)

    def rules(self, tenant_id: str) -> firestore.CollectionReference:
        return self._collection(tenant_id, RULES_COLLECTION)

    def alerts(self, tenant_id: str) -> firestore.CollectionReference:
        return self._collection(tenant_id, ALERTS)

    # --- recording (inside the event intake's transaction) -----------------------------------------
    def record(self, event: Delivered, tx: Tx) -> None:
        now = datetime.now(UTC)
        entry = audit_entry(event.envelope, event.entry, event.payload, now)
        ref = self.entries(event.tenant_id).document(entry["id"])
        if tx.get(ref) is not None:
            return  # recorded by an earlier delivery: entries are written once, never overwritten
        # Before the entry commits: if the enqueue fails the handler fails and Pub/Sub redelivers, so
        # no committed entry is left without a seal on the way (the sweep is the backstop).
        self.scheduler.schedule(event.tenant_id, now)
        tx.create(ref, entry)
        if event.entry.name == "Data Erasure Completed":
            self.erase_details(event.tenant_id, str(event.envelope.data["subject_id"]))

    def erase_details(self, tenant_id: str, subject_id: str) -> int:
        """A data subject's erasure reaches the trail: the details of every entry about them are replaced
        by ERASED_DETAILS. Their digests stay in the hashed entries, so the chain still verifies.
        Idempotent (a redelivery erases nothing more)."""
        about = self.entries(tenant_id).where(filter=firestore.FieldFilter("target.id", "==", subject_id))
        pending = (s for s in about.select(["details"]).stream() if s.get("details") != ERASED_DETAILS)
        return write_in_batches(
            self.db, pending, lambda batch, s: batch.update(s.reference, {"details": ERASED_DETAILS})
        )

    def record_platform(self, entry: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Record an entry of the platform trail once; (the stored entry, whether it is new)."""
        ref = self.entries(PLATFORM_SCOPE).document(entry["id"])

        def work(tx: Tx) -> tuple[dict[str, Any], bool]:
            existing = tx.get(ref)
            if existing is not None:
                return existing, False
            self.scheduler.schedule(PLATFORM_SCOPE, datetime.now(UTC))  # before the commit, as record()
            tx.create(ref, entry)
            return entry, True

        return self.uow.run(work)

    # --- sealing -----------------------------------------------------------------------------------
    def seal(self, tenant_id: str) -> SealResult:
        """Seal the oldest unsealed entries into the next block; block, flags, head and alerts commit
        together or not at all."""
        return self.uow.run(lambda tx: self._seal(tx, tenant_id), serialize_on=f"audit-seal/{tenant_id}")

    def _seal(self, tx: Tx, tenant_id: str) -> SealResult:
        now = datetime.now(UTC)
        head = tx.get(self.head(tenant_id)) or {}
        seq, prev_hash = int(head.get("seq", 0)), str(head.get("hash", GENESIS))
        anchor = tx.get(self.anchor(tenant_id)) if tenant_id != PLATFORM_SCOPE else None
        if anchor is not None and (anchor.get("seq"), anchor.get("hash")) != (seq, prev_hash):
            # Never extend (and re-anchor) a chain whose head moved behind the platform trail's back.
            raise RuntimeError(f"the audit chain head of {tenant_id} does not match its anchor")
        unsealed = (
            self.entries(tenant_id)
            .where(filter=firestore.FieldFilter("sealed", "==", False))
            .order_by("recorded_at")
            .order_by("__name__")
            .limit(SEAL_BATCH + 1)
        )
        # The candidates are found OUTSIDE the transaction and re-read by document inside it: a query in
        # a transaction locks its whole range, which stalls every concurrent recording of an entry (on
        # the emulator, seconds per conflict). The head read above serializes seals of one tenant.
        candidates = [s.id for s in unsealed.select(["sealed"]).stream()]
        current = tx.get_all([self.entries(tenant_id).document(doc_id) for doc_id in candidates])
        pending = [(doc_id, data) for doc_id, data in current if data is not None and not data.get("sealed")]
        batch = pending[:SEAL_BATCH]
        if not batch:
            return SealResult(None, 0, 0, None)
        # Keyed by document id, whatever the stored content says, so an alert maps back to its entry.
        entries = [{**entry, "id": doc_id} for doc_id, entry in batch]
        rules = self._rules(tenant_id)
        raised = evaluate(tenant_id, rules, entries, self._history(tenant_id, rules, entries))
        # Reads first (Firestore transactions read before they write): a threshold alert may exist already.
        fresh = [a for a in raised if tx.get(self.alerts(tenant_id).document(a.id)) is None]
        position = {doc_id: i for i, (doc_id, _) in enumerate(batch)}
        count = sealable_count(
            len(batch),
            [position[a.trigger_entry_id] for a in fresh],
            MAX_TX_WRITES - 1,  # the anchor
        )
        if count == 0:
            raise RuntimeError(
                f"one audit entry raises more alerts than a transaction can write ({tenant_id})"
            )
        batch, fresh = batch[:count], [a for a in fresh if position[a.trigger_entry_id] < count]

        seq += 1
        block = build_block(seq, prev_hash, [(doc_id, str(e.get("hash"))) for doc_id, e in batch], now)
        tx.create(self.blocks(tenant_id).document(f"{seq:012d}"), block)
        for doc_id, _ in batch:
            tx.update(self.entries(tenant_id).document(doc_id), {"sealed": True, "block_seq": seq})
        tx.set(self.head(tenant_id), {"seq": seq, "hash": block["hash"], "updated_at": now})
        if tenant_id != PLATFORM_SCOPE:
            tx.set(self.anchor(tenant_id), {"seq": seq, "hash": block["hash"], "anchored_at": now})
        for alert in fresh:
            self._raise(tx, tenant_id, alert, now, seq)
        following = pending[count][1].get("recorded_at") if len(pending) > count else None
        return SealResult(seq, count, len(fresh), following if isinstance(following, datetime) else None)

    def _raise(self, tx: Tx, tenant_id: str, alert: Alert, now: datetime, seq: int) -> None:
        tx.create(self.alerts(tenant_id).document(alert.id), alert.document(tenant_id, now, seq))
        tx.emit(
            new_event(alert.payload(), tenant_id=tenant_id, subject=alert.id, source_api_slug=self.api_slug)
        )

    def _rules(self, tenant_id: str) -> dict[str, Rule]:
        snapshots = list(self.rules(tenant_id).limit(MAX_RULES).stream())
        if not snapshots:
            return dict(DEFAULT_RULES)
        own: dict[str, Rule] = {}
        for snapshot in snapshots:
            try:
                own[snapshot.id] = rule_from_document(snapshot.to_dict() or {})
            except ValidationError:
                # A rule stored under an older model: skip it rather than stop sealing the tenant.
                log.warning("skipping an invalid alert rule", extra={"rule_id": snapshot.id})
        return own

    def _history(
        self, tenant_id: str, rules: Mapping[str, Rule], batch: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """Stored entries the threshold windows of this batch reach back to. Read outside the seal's
        transaction (entries never change but for their seal flags, which the rules do not read)."""
        widest: dict[str, int] = {}
        for rule in rules.values():
            if isinstance(rule, ThresholdRule) and rule.enabled:
                widest[rule.action] = max(widest.get(rule.action, 0), rule.window_seconds)
        found: list[dict[str, Any]] = []
        for action, window in sorted(widest.items()):
            times = [
                t
                for e in batch
                if e.get("action") == action and isinstance(t := e.get("occurred_at"), datetime)
            ]
            if not times:
                continue
            query = (
                self.entries(tenant_id)
                .where(filter=firestore.FieldFilter("action", "==", action))
                .where(
                    filter=firestore.FieldFilter("occurred_at", ">", min(times) - timedelta(seconds=window))
                )
                .where(filter=firestore.FieldFilter("occurred_at", "<=", max(times)))
                .order_by("occurred_at", direction=firestore.Query.DESCENDING)
                .limit(HISTORY_LIMIT)
            )
            found += [{**(s.to_dict() or {}), "id": s.id} for s in query.stream()]
        return found

    def seal_and_reschedule(self, tenant_id: str) -> SealResult:
        """The seal task: seal, then ask for the next bucket's seal while entries remain unsealed."""
        result = self.seal(tenant_id)
        if result.next_recorded_at is not None:
            # The bucket we are in has not run yet (a bucket's task runs after it ends).
            self.scheduler.schedule(tenant_id, datetime.now(UTC))
        return result

    def sweep(self) -> dict[str, int]:
        """Seal every tenant holding entries unsealed for longer than SWEEP_AGE (a lost or failed task)."""
        deadline = time.monotonic() + SWEEP_BUDGET_SECONDS
        cutoff = datetime.now(UTC) - SWEEP_AGE
        stale = (
            self.db.collection_group(ENTRIES)
            .where(filter=firestore.FieldFilter("sealed", "==", False))
            .where(filter=firestore.FieldFilter("recorded_at", "<=", cutoff))
            .order_by("recorded_at")
            .select(["recorded_at"])
            .limit(SWEEP_PAGE)
        )
        seen: set[str] = set()
        failed = sealed = 0
        last: firestore.DocumentSnapshot[Any] | None = None
        while time.monotonic() < deadline:
            page = list((stale.start_after(last) if last is not None else stale).stream())
            for snapshot in page:
                tenant_ref = snapshot.reference.parent.parent
                if tenant_ref is None or tenant_ref.id in seen:
                    continue
                seen.add(tenant_ref.id)
                try:
                    sealed += self._seal_older_than(tenant_ref.id, cutoff, deadline)
                except Exception:
                    failed += 1
                    log.exception("sweep could not seal a tenant", extra={"tenant": tenant_ref.id})
            if len(page) < SWEEP_PAGE:
                break
            last = page[-1]
        return {"tenants": len(seen), "sealed": sealed, "failed": failed}

    def _seal_older_than(self, tenant_id: str, cutoff: datetime, deadline: float) -> int:
        total = 0
        while True:
            result = self.seal(tenant_id)
            total += result.sealed
            following = result.next_recorded_at
            if following is None or following > cutoff or time.monotonic() >= deadline:
                return total

    # --- verification ------------------------------------------------------------------------------
    def verify(self, tenant_id: str) -> VerifyReport:
        """Stream the chain up to the head read first (blocks sealed meanwhile are left for next time),
        check it against its anchor in the platform trail, then account for every stored entry."""
        anchored = self.anchor(tenant_id).get() if tenant_id != PLATFORM_SCOPE else None
        anchor = anchored.to_dict() if anchored is not None and anchored.exists else None  # before the head
        verifier = ChainVerifier(self.head(tenant_id).get().to_dict())
        anchor_seq = anchor.get("seq") if anchor else None
        anchored_hash: str | None = None
        for seq in range(1, verifier.head_seq + 1):
            snapshot = self.blocks(tenant_id).document(f"{seq:012d}").get()
            block = snapshot.to_dict() if snapshot.exists else None
            listed = block.get("entry_ids") if block else None
            if not verifier.check_block(seq, block, self._entries_by_id(tenant_id, listed)):
                return verifier.report()
            if seq == anchor_seq and block is not None:
                anchored_hash = str(block.get("hash"))
        if not verifier.check_head():
            return verifier.report()
        if tenant_id != PLATFORM_SCOPE and not verifier.check_anchor(anchor, anchored_hash):
            return verifier.report()

        def newest_seq() -> int:
            return int((self.head(tenant_id).get().to_dict() or {}).get("seq", 0))

        now = datetime.now(UTC)
        for snapshot in self.entries(tenant_id).select(["sealed", "block_seq"]).stream():
            kind = verifier.account(snapshot.id, snapshot.to_dict() or {}, newest_seq)
            if kind is None:
                return verifier.report()
            if kind == "unsealed":
                entry = self.entries(tenant_id).document(snapshot.id).get().to_dict() or {}
                if not verifier.check_unsealed(entry, snapshot.id, now):
                    return verifier.report()
        verifier.check_sealed_total(verifier.claimed)
        return verifier.report()

    def _entries_by_id(self, tenant_id: str, ids: Any) -> dict[str, dict[str, Any]]:
        if not isinstance(ids, list):
            return {}
        # An id that cannot name a document is reported by the verifier as a missing entry.
        refs = [self.entries(tenant_id).document(i) for i in ids if isinstance(i, str) and i and "/" not in i]
        return {s.id: s.to_dict() or {} for s in self.db.get_all(refs) if s.exists} if refs else {}

    # --- reads -------------------------------------------------------------------------------------
    def entry(self, tenant_id: str, entry_id: str) -> dict[str, Any] | None:
        snapshot = self.entries(tenant_id).document(entry_id).get()
        return snapshot.to_dict() if snapshot.exists else None

    def filtered(
        self, tenant_id: str, filters: EntryFilters
    ) -> firestore.Query | firestore.CollectionReference:
        query: Any = self.entries(tenant_id)
        for field, value in (
            ("actor.id", filters.actor),
            ("action", filters.action),
            ("target.id", filters.target),
        ):
            if value is not None:
                query = query.where(filter=firestore.FieldFilter(field, "==", value))
        if filters.since is not None:
            query = query.where(filter=firestore.FieldFilter("occurred_at", ">=", filters.since))
        if filters.until is not None:
            query = query.where(filter=firestore.FieldFilter("occurred_at", "<", filters.until))
        result: firestore.Query | firestore.CollectionReference = query
        return result

    def export(self, tenant_id: str, filters: EntryFilters) -> Iterator[dict[str, Any]]:
        """Every matching entry, newest first, read in chunks so memory stays flat."""
        query = (
            self.filtered(tenant_id, filters)
            .order_by("occurred_at", direction=firestore.Query.DESCENDING)
            .order_by("__name__", direction=firestore.Query.DESCENDING)
        )
        last: firestore.DocumentSnapshot[Any] | None = None
        while True:
            chunk = list(
                (query.start_after(last) if last is not None else query).limit(EXPORT_CHUNK).stream()
            )
            for snapshot in chunk:
                yield snapshot.to_dict() or {}
            if len(chunk) < EXPORT_CHUNK:
                return
            last = chunk[-1]

    # --- alert rules -------------------------------------------------------------------------------
    def effective_rules(self, tenant_id: str) -> tuple[list[dict[str, Any]], bool]:
        """The rules the seal uses, as documents, and whether they are the built-in defaults."""
        own = [
            s.to_dict() or {} for s in self.rules(tenant_id).order_by("__name__").limit(MAX_RULES).stream()
        ]
        if own:
            return own, False
        return [default_rule_document(rule_id) for rule_id in sorted(DEFAULT_RULES)], True

    def rule(self, tenant_id: str, rule_id: str) -> dict[str, Any] | None:
        snapshot = self.rules(tenant_id).document(rule_id).get()
        if snapshot.exists:
            return snapshot.to_dict() or {}
        if rule_id in DEFAULT_RULES and not list(self.rules(tenant_id).limit(1).stream()):
            return default_rule_document(rule_id)
        return None

    def put_rule(
        self, tenant_id: str, rule_id: str, rule: Rule, updated_by: str
    ) -> tuple[dict[str, Any], bool]:
        """Create or replace a tenant rule; answers (document, created)."""

        def work(tx: Tx) -> tuple[dict[str, Any], bool]:
            ref = self.rules(tenant_id).document(rule_id)
            created = tx.get(ref) is None
            if created and len(tx.query(self.rules(tenant_id).limit(MAX_RULES))) >= MAX_RULES:
                raise conflict("too-many-rules", f"A tenant may have at most {MAX_RULES} alert rules.")
            document = {
                **rule.model_dump(mode="json"),
                "id": rule_id,
                "updated_at": datetime.now(UTC),
                "updated_by": updated_by,
            }
            tx.set(ref, document)
            return document, created

        return self.uow.run(work)

    def delete_rule(self, tenant_id: str, rule_id: str) -> bool:
        def work(tx: Tx) -> bool:
            ref = self.rules(tenant_id).document(rule_id)
            if tx.get(ref) is None:
                return False
            tx.delete(ref)
            return True

        return self.uow.run(work)


def rule_from_document(document: Mapping[str, Any]) -> Rule:
    return RULES.validate_python({k: v for k, v in document.items() if k not in RULE_META})


def default_rule_document(rule_id: str) -> dict[str, Any]:
    return {**DEFAULT_RULES[rule_id].model_dump(mode="json"), "id": rule_id, "default": True}


def build_service(platform: Platform) -> AuditService:
    queue = platform.catalog.queue(SEAL_QUEUE)
    scheduler = SealScheduler(TaskQueue(platform.settings, queue.name, queue.target_function))
    return AuditService(platform.db, platform.uow, platform.catalog, scheduler)
