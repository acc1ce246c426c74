"""Customer Data API use cases over the unit of work: organizations, contacts, search, duplicates, merges,
bulk imports, the events it consumes, and GDPR export and erasure.

Layout, all under the tenant so isolation and offboarding erasure are structural:
    tenants/{tid}/organizations/{org_id}                    an organization (search key `name_key`)
    tenants/{tid}/organization_domains/{domain}             {organization_id}: the claim that makes a
                                                            domain unique in the tenant
    tenants/{tid}/contacts/{contact_id}                     a contact (keys `name_key`, `email_keys`, ...)
    tenants/{tid}/contact_emails/{sha256(email)[:32]}       {contact_ids: {id: true}}: who has an email,
                                                            read by key (an import looks up 100 at once)
    tenants/{tid}/customer_merges/{merge_id}                a merge and the before-images that undo it
    tenants/{tid}/customer_imports/{job_id}                 an import job and its progress
    tenants/{tid}/customer_imports/{job_id}/chunks/{n}      the validated rows of chunk n, as submitted
    tenants/{tid}/customer_import_rows/{job_id}-{row}       what became of each row (and its before-image)
    tenants/{tid}/customer_settings/{defaults|health}       lifecycle stages and custom fields; the
                                                            tenant-level health score
    tenants/{tid}/customer_user_imports/{import_id}         user imports the User Management API finished
    tenants/{tid}/customer_erasures/{contact_id}            the summary of an erasure (no personal data)
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.cloud import firestore

from functions.customer_data_api import domain
from functions.customer_data_api.domain import DomainError, ImportFormat, ImportMode, Kind, Side, Source
from shared.catalog import Catalog
from shared.contracts import EventPayload
from shared.contracts.payloads import ContactCreated, ContactUpdated, CustomerProfileMerged
from shared.events import new_event
from shared.platform import Platform
from shared.problems import Problem, not_found
from shared.tasks import TaskQueue, task_id
from shared.uow import Tx, UnitOfWork

log = logging.getLogger(__name__)

API_NAME = "Customer Data API"
TASKS_FUNCTION = "customer_data_api_tasks"
QUEUE = "customer-import"
CHUNK_PATH = "/import-chunk"

TENANTS = "tenants"
COLLECTIONS: dict[Kind, str] = {"contact": "contacts", "organization": "organizations"}
PREFIXES: dict[Kind, str] = {"contact": "con_", "organization": "org_"}
TITLES: dict[Kind, str] = {"contact": "Contact", "organization": "Organization"}
DOMAINS = "organization_domains"
EMAILS = "contact_emails"
MERGES = "customer_merges"
IMPORTS = "customer_imports"
CHUNKS = "chunks"
ROWS = "customer_import_rows"
SETTINGS = "customer_settings"
USER_IMPORTS = "customer_user_imports"
ERASURES = "customer_erasures"

MAX_MOVED_CONTACTS = 400  # contacts re-pointed by one organization merge: one transaction's writes
CANDIDATES_PER_KEY = 50
IMPORT_WINDOW = 4  # import chunks of one job in flight at once


@dataclass(frozen=True)
class Phase:
    """What an import's phase (the import itself, or its revert) reads and writes on its way."""

    flag: str  # set on a chunk once this phase has committed it
    active: tuple[str, ...]  # job statuses in which its chunks run
    counter: str  # the job's count of chunks done in this phase
    final: str  # the job's status once every chunk is done
    stamp: str  # ... and when


PHASES = {
    "import": Phase("imported", ("queued", "running"), "chunks_done", "completed", "completed_at"),
    "revert": Phase("reverted", ("reverting",), "chunks_reverted", "reverted", "reverted_at"),
}
ANY_LIMIT = 30  # Firestore's limit on the values of one `in` / `array_contains_any` filter


def new_id(prefix: str) -> str:
    # Random, not sequential: Firestore spreads writes by key and sequential ids make hotspots.
    return prefix + secrets.token_hex(10)


def _now() -> datetime:
    return datetime.now(UTC)


def _batches(values: Sequence[str], size: int = ANY_LIMIT) -> Iterable[list[str]]:
    for i in range(0, len(values), size):
        yield list(values[i : i + size])


def _kind_of(record_id: str) -> Kind:
    return "contact" if record_id.startswith("con_") else "organization"


def _problem(exc: DomainError) -> Problem:
    return Problem(exc.status, exc.kind, exc.detail, **exc.extensions)


def default_settings(now: datetime) -> dict[str, Any]:
    return {
        "lifecycle_stages": list(domain.DEFAULT_LIFECYCLE_STAGES),
        "custom_fields": {"contact": [], "organization": []},
        "created_at": now,
    }


@dataclass(frozen=True)
class Search:
    """A list query: at most one of the search keys (`name` prefix, `email`, `domain`), filters, a page."""

    name: str | None = None
    email: str | None = None
    domain: str | None = None
    organization_id: str | None = None
    lifecycle_stage: str | None = None
    email_status: str | None = None
    owner_id: str | None = None
    tag: str | None = None
    include_deleted: bool = False


def _email_doc_id(email_key: str) -> str:
    # Hashed: an address may hold "/", and a document id should not spell out personal data.
    return hashlib.sha256(email_key.encode()).hexdigest()[:32]


class CustomerService:
    def __init__(
        self,
        db: firestore.Client,
        uow: UnitOfWork,
        catalog: Catalog,
        queue: TaskQueue,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.db = db
        self.uow = uow
        self.api_slug = catalog.api(API_NAME).slug
        self.queue = queue
        self.clock = clock

    # --- persistence -------------------------------------------------------------------------------
    def _tenant(self, tenant_id: str) -> firestore.DocumentReference:
        return self.db.collection(TENANTS).document(tenant_id)

    def collection(self, tenant_id: str, name: str) -> firestore.CollectionReference:
        collection: firestore.CollectionReference = self._tenant(tenant_id).collection(name)
        return collection

    def records(self, kind: Kind, tenant_id: str) -> firestore.CollectionReference:
        return self.collection(tenant_id, COLLECTIONS[kind])

    def _ref(self, kind: Kind, tenant_id: str, record_id: str) -> firestore.DocumentReference:
        return self.records(kind, tenant_id).document(record_id)

    def _claim(self, tenant_id: str, domain_name: str) -> firestore.DocumentReference:
        return self.collection(tenant_id, DOMAINS).document(domain_name)

    def _settings(self, tenant_id: str, name: str = "defaults") -> firestore.DocumentReference:
        return self.collection(tenant_id, SETTINGS).document(name)

    def _emit(self, tx: Tx, tenant_id: str, subject: str, version: int | None, payload: EventPayload) -> None:
        tx.emit(
            new_event(
                payload,
                tenant_id=tenant_id,
                subject=subject,
                source_api_slug=self.api_slug,
                aggregate_version=version,
            )
        )

    def _contact_created(self, tx: Tx, tenant_id: str, record: Mapping[str, Any], source: Source) -> None:
        payload = ContactCreated(
            contact_id=record["id"],
            organization_id=record.get("organization_id"),
            first_name=record["first_name"],
            last_name=record["last_name"],
            emails=list(record.get("emails") or []),
            phones=list(record.get("phones") or []),
            job_title=record.get("job_title"),
            source=source,
            actor=record["created"]["actor"],
        )
        self._emit(tx, tenant_id, record["id"], record["version"], payload)

    def _contact_updated(
        self,
        tx: Tx,
        tenant_id: str,
        record: Mapping[str, Any],
        diff: Mapping[str, Any],
        source: Source,
        actor: Mapping[str, Any],
    ) -> None:
        if not diff:
            return
        payload = ContactUpdated(
            contact_id=record["id"], changes=dict(diff), source=source, actor=dict(actor)
        )
        self._emit(tx, tenant_id, record["id"], record["version"], payload)

    # --- reads -------------------------------------------------------------------------------------
    def get(
        self, kind: Kind, tenant_id: str, record_id: str, include_deleted: bool = False
    ) -> dict[str, Any]:
        snapshot = self._ref(kind, tenant_id, record_id).get()
        data = snapshot.to_dict() if snapshot.exists else None
        if data is None or (data.get("deleted") and not include_deleted):
            raise not_found(f"{TITLES[kind]} {record_id}")
        return data

    def settings(self, tenant_id: str) -> dict[str, Any]:
        snapshot = self._settings(tenant_id).get()
        return (snapshot.to_dict() or {}) if snapshot.exists else default_settings(self.clock())

    def search_query(self, kind: Kind, tenant_id: str, search: Search) -> tuple[firestore.Query, str]:
        """A query answered by an index whatever the tenant's size: equality and array membership on
        stored keys, and a range on `name_key` for a name prefix; ordered by `name_key`."""
        query: Any = self.records(kind, tenant_id)
        where = firestore.FieldFilter
        if not search.include_deleted:
            query = query.where(filter=where("deleted", "==", False))
        if search.name:
            prefix = domain.fold(search.name)
            query = query.where(filter=where("name_key", ">=", prefix)).where(
                filter=where("name_key", "<", domain.prefix_end(prefix))
            )
        if search.email:
            query = query.where(
                filter=where("email_keys", "array_contains", domain.normalize_email(search.email))
            )
        if search.domain:
            field = "domain_keys" if kind == "contact" else "domains"
            query = query.where(filter=where(field, "array_contains", domain.normalize_domain(search.domain)))
        for name in ("organization_id", "lifecycle_stage", "email_status", "owner_id"):
            value = getattr(search, name)
            if value is not None:
                query = query.where(filter=where(name, "==", value))
        if search.tag and not (search.email or search.domain):
            query = query.where(filter=where("tags", "array_contains", search.tag))
        return query, "name_key"

    # --- settings checks ---------------------------------------------------------------------------
    def _check_references(self, tx: Tx, kind: Kind, tenant_id: str, fields: Mapping[str, Any]) -> None:
        """A contact's organization must exist (not deleted); its lifecycle stage must be the tenant's."""
        if kind != "contact":
            return
        org_id = fields.get("organization_id")
        if org_id:
            org = tx.get(self._ref("organization", tenant_id, org_id))
            if org is None or org.get("deleted"):
                raise Problem(422, "unknown-organization", f"Organization {org_id} was not found.")
        stage = fields.get("lifecycle_stage")
        if stage:
            stages = (tx.get(self._settings(tenant_id)) or default_settings(self.clock()))["lifecycle_stages"]
            if stage not in stages:
                raise Problem(
                    422, "unknown-lifecycle-stage", f"lifecycle_stage must be one of: {', '.join(stages)}."
                )

    def _claim_domains(
        self, tx: Tx, tenant_id: str, org_id: str, before: Iterable[str], after: Iterable[str]
    ) -> None:
        """Move the organization's domain claims from `before` to `after` (reads first, then writes)."""
        added = [d for d in after if d not in set(before)]
        removed = [d for d in before if d not in set(after)]
        found = tx.get_all([self._claim(tenant_id, d) for d in added])
        for name, claim in found:
            if claim is not None and claim.get("organization_id") != org_id:
                raise Problem(
                    409,
                    "domain-taken",
                    f"The domain {name} belongs to another organization.",
                    domain=name,
                    organization_id=claim.get("organization_id"),
                )
        self._set_claims(tx, tenant_id, org_id, added)
        for name in removed:
            tx.delete(self._claim(tenant_id, name))

    def _set_claims(self, tx: Tx, tenant_id: str, org_id: str, domains: Iterable[str]) -> None:
        for name in domains:
            tx.set(self._claim(tenant_id, name), {"organization_id": org_id, "domain": name})

    def _email_ref(self, tenant_id: str, email_key: str) -> firestore.DocumentReference:
        return self.collection(tenant_id, EMAILS).document(_email_doc_id(email_key))

    def _index_emails(
        self,
        tx: Tx,
        tenant_id: str,
        changes: Iterable[tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]],
    ) -> None:
        """Keep the email index in step with contact writes, each change (before, after) with None for
        absent. One write per address, whatever number of contacts it moves (a document is written at
        most once per commit)."""
        entries: dict[str, dict[str, Any]] = {}
        for before, after in changes:
            had = set((before or {}).get("email_keys") or [])
            has = set((after or {}).get("email_keys") or [])
            contact_id = str((after or before or {})["id"])
            for key in has - had:
                entries.setdefault(key, {})[contact_id] = True
            for key in had - has:
                entries.setdefault(key, {})[contact_id] = firestore.DELETE_FIELD
        for key, ids in sorted(entries.items()):
            tx.set(self._email_ref(tenant_id, key), {"contact_ids": ids}, merge=True)

    def _with_email(self, tenant_id: str, email_keys: Sequence[str]) -> dict[str, list[str]]:
        """Email key → ids of the contacts having it (deleted and merged ones too), by key reads."""
        found: dict[str, list[str]] = {}
        by_id = {_email_doc_id(k): k for k in email_keys}
        for batch in _batches(list(by_id), 100):
            refs = [self.collection(tenant_id, EMAILS).document(i) for i in batch]
            for snapshot in self.db.get_all(refs):
                ids = sorted((snapshot.to_dict() or {}).get("contact_ids") or {}) if snapshot.exists else []
                if ids:
                    found[by_id[snapshot.id]] = ids
        return found

    # --- CRUD --------------------------------------------------------------------------------------
    def create(
        self, kind: Kind, tenant_id: str, fields: Mapping[str, Any], actor: Mapping[str, Any], source: Source
    ) -> dict[str, Any]:
        record_id = new_id(PREFIXES[kind])

        def work(tx: Tx) -> dict[str, Any]:
            self._check_references(tx, kind, tenant_id, fields)
            record = domain.new_record(kind, record_id, fields, actor, source, self.clock())
            if kind == "organization":
                self._claim_domains(tx, tenant_id, record_id, [], record.get("domains") or [])
            tx.create(self._ref(kind, tenant_id, record_id), record)
            if kind == "contact":
                self._index_emails(tx, tenant_id, [(None, record)])
                self._contact_created(tx, tenant_id, record, source)
            return record

        return self.uow.run(work)

    def _load(
        self, tx: Tx, kind: Kind, tenant_id: str, record_id: str, if_match: int | None
    ) -> dict[str, Any]:
        record = tx.get(self._ref(kind, tenant_id, record_id))
        if record is None:
            raise not_found(f"{TITLES[kind]} {record_id}")
        if if_match is not None and if_match != record["version"]:
            raise Problem(
                412,
                "precondition-failed",
                f"The {kind} changed: its version is {record['version']}.",
                current_version=record["version"],
            )
        return record

    def update(
        self,
        kind: Kind,
        tenant_id: str,
        record_id: str,
        patch: Mapping[str, Any],
        if_match: int | None,
        actor: Mapping[str, Any],
        source: Source,
    ) -> dict[str, Any]:
        def work(tx: Tx) -> dict[str, Any]:
            record = self._load(tx, kind, tenant_id, record_id, if_match)
            if record.get("deleted"):
                raise not_found(f"{TITLES[kind]} {record_id}")
            try:
                fields = domain.merge_patch(kind, record, patch)
            except DomainError as exc:
                raise _problem(exc) from exc
            changed = {k: fields.get(k) for k in domain.field_names(kind) if fields.get(k) != record.get(k)}
            self._check_references(tx, kind, tenant_id, changed)
            after, diff = domain.apply_fields(kind, record, fields, actor, source, self.clock())
            if not diff:
                return record
            if kind == "organization":
                self._claim_domains(
                    tx, tenant_id, record_id, record.get("domains") or [], after.get("domains") or []
                )
            tx.set(self._ref(kind, tenant_id, record_id), after)
            if kind == "contact":
                self._index_emails(tx, tenant_id, [(record, after)])
                self._contact_updated(tx, tenant_id, after, diff, source, actor)
            return after

        return self.uow.run(work)

    def set_deleted(
        self,
        kind: Kind,
        tenant_id: str,
        record_id: str,
        deleted: bool,
        if_match: int | None,
        actor: Mapping[str, Any],
        source: Source,
    ) -> dict[str, Any]:
        """Soft delete or restore. An organization keeps its domain claims while deleted, so a restore
        always succeeds; its contacts keep their link."""

        def work(tx: Tx) -> dict[str, Any]:
            record = self._load(tx, kind, tenant_id, record_id, if_match)
            try:
                change = domain.soft_delete if deleted else domain.restore
                after = change(record, actor, source, self.clock())
            except DomainError as exc:
                raise _problem(exc) from exc
            tx.set(self._ref(kind, tenant_id, record_id), after)
            if kind == "contact":
                diff = {"deleted": {"before": not deleted, "after": deleted}}
                self._contact_updated(tx, tenant_id, after, diff, source, actor)
            return after

        return self.uow.run(work)

    # --- duplicates --------------------------------------------------------------------------------
    def _candidates(self, kind: Kind, tenant_id: str, record: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Records sharing a key with `record`: an email or a non-free-mail email domain (contacts), a
        domain (organizations), or the first letters of the name. Each is one indexed query."""
        where = firestore.FieldFilter
        base = self.records(kind, tenant_id).where(filter=where("deleted", "==", False))
        queries: list[Any] = []
        if kind == "contact":
            if record.get("email_keys"):
                queries.append(
                    base.where(
                        filter=where("email_keys", "array_contains_any", record["email_keys"][:ANY_LIMIT])
                    )
                )
            company = [d for d in record.get("domain_keys") or [] if d not in domain.FREE_MAIL][:ANY_LIMIT]
            if company:
                queries.append(base.where(filter=where("domain_keys", "array_contains_any", company)))
            last = str(record.get("last_name_key") or "")
            if last:
                queries.append(base.where(filter=where("last_name_key", "==", last)))
        elif record.get("domains"):
            # The claims make domains unique among live organizations; deleted ones keep theirs.
            pass
        name = str(record.get("name_key") or "")
        if name:
            prefix = name[:3]
            queries.append(
                base.where(filter=where("name_key", ">=", prefix)).where(
                    filter=where("name_key", "<", domain.prefix_end(prefix))
                )
            )
        found: dict[str, dict[str, Any]] = {}
        for query in queries:
            for snapshot in query.limit(CANDIDATES_PER_KEY).stream():
                found.setdefault(snapshot.id, snapshot.to_dict() or {})
        return list(found.values())

    def duplicates(self, kind: Kind, tenant_id: str, record_id: str) -> list[dict[str, Any]]:
        record = self.get(kind, tenant_id, record_id)
        ranked = domain.rank_duplicates(kind, record, self._candidates(kind, tenant_id, record))
        return [{"id": c.id, "score": c.score, "reasons": list(c.reasons)} for c in ranked]

    # --- merges ------------------------------------------------------------------------------------
    def _merge_records(
        self, tx: Tx, kind: Kind, tenant_id: str, winner_id: str, loser_id: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        if winner_id == loser_id:
            raise Problem(422, "invalid-merge", "A profile cannot be merged into itself.")
        found = dict(
            tx.get_all([self._ref(kind, tenant_id, winner_id), self._ref(kind, tenant_id, loser_id)])
        )
        for record_id, record in found.items():
            if record is None:
                raise not_found(f"{TITLES[kind]} {record_id}")
        return found[winner_id] or {}, found[loser_id] or {}

    def preview_merge(
        self, kind: Kind, tenant_id: str, winner_id: str, loser_id: str, choices: Mapping[str, Side]
    ) -> dict[str, Any]:
        """The dry run: what the merge would make of the winner, and which fields conflict."""

        def work(tx: Tx) -> dict[str, Any]:
            winner, loser = self._merge_records(tx, kind, tenant_id, winner_id, loser_id)
            try:
                plan = domain.plan_merge(kind, winner, loser, choices)
            except DomainError as exc:
                raise _problem(exc) from exc
            moved = 0
            if kind == "organization":
                moved = len(self._contacts_of(tx, tenant_id, loser_id))
            return {
                "kind": kind,
                "winner_id": winner_id,
                "loser_id": loser_id,
                "result": plan.result,
                "conflicts": plan.conflicts,
                "field_sources": plan.field_sources,
                "changes": plan.changes,
                "moved_contact_count": moved,
            }

        return self.uow.run(work)

    def _contacts_of(self, tx: Tx, tenant_id: str, org_id: str) -> list[dict[str, Any]]:
        query = self.records("contact", tenant_id).where(
            filter=firestore.FieldFilter("organization_id", "==", org_id)
        )
        snapshots = tx.query(query.limit(MAX_MOVED_CONTACTS + 1))
        if len(snapshots) > MAX_MOVED_CONTACTS:
            raise Problem(
                409,
                "too-many-contacts",
                f"An organization merge moves at most {MAX_MOVED_CONTACTS} contacts at once.",
            )
        return [s.to_dict() or {} for s in snapshots]

    def merge(
        self,
        kind: Kind,
        tenant_id: str,
        winner_id: str,
        loser_id: str,
        choices: Mapping[str, Side],
        actor: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Merge the loser into the winner in one transaction: the winner takes the merged fields, the
        loser is tombstoned (`merged_into`), an organization's contacts and domains move to the winner,
        and the before-image of every record touched is kept on the merge, so it can be undone."""
        merge_id = new_id("mrg_")

        def work(tx: Tx) -> dict[str, Any]:
            winner, loser = self._merge_records(tx, kind, tenant_id, winner_id, loser_id)
            contacts = self._contacts_of(tx, tenant_id, loser_id) if kind == "organization" else []
            try:
                plan = domain.plan_merge(kind, winner, loser, choices)
            except DomainError as exc:
                raise _problem(exc) from exc
            now = self.clock()
            merged, tomb = domain.apply_merge(plan, winner, loser, merge_id, actor, now)
            before = {winner_id: winner, loser_id: loser}
            after_versions = {winner_id: merged["version"], loser_id: tomb["version"]}
            moved: list[tuple[dict[str, Any], dict[str, Any]]] = []
            if kind == "organization":
                # The loser's domains (claimed by it, so by no one else) now name the winner.
                self._set_claims(tx, tenant_id, winner_id, loser.get("domains") or [])
                for contact in contacts:
                    fields = {**contact, "organization_id": winner_id}
                    fields = {
                        k: fields.get(k) for k in domain.field_names("contact") if fields.get(k) is not None
                    }
                    moved_to, diff = domain.apply_fields("contact", contact, fields, actor, "manual", now)
                    moved.append((moved_to, diff))
                    before[contact["id"]] = contact
                    after_versions[contact["id"]] = moved_to["version"]
            record = {
                "id": merge_id,
                "kind": kind,
                "status": "applied",
                "winner_id": winner_id,
                "loser_id": loser_id,
                "record_ids": list(before),
                "choices": dict(choices),
                "conflicts": plan.conflicts,
                "field_sources": plan.field_sources,
                "before": before,
                "after_versions": after_versions,
                "actor": dict(actor),
                "created_at": now,
                "undone_at": None,
            }
            tx.create(self.collection(tenant_id, MERGES).document(merge_id), record)
            tx.set(self._ref(kind, tenant_id, winner_id), merged)
            tx.set(self._ref(kind, tenant_id, loser_id), tomb)
            if kind == "contact":
                self._index_emails(tx, tenant_id, [(winner, merged), (loser, tomb)])
            for moved_to, diff in moved:
                tx.set(self._ref("contact", tenant_id, moved_to["id"]), moved_to)
                self._contact_updated(tx, tenant_id, moved_to, diff, "manual", actor)
            if kind == "contact":
                self._contact_updated(tx, tenant_id, merged, plan.changes, "manual", actor)
            self._emit(
                tx,
                tenant_id,
                winner_id,
                merged["version"],
                CustomerProfileMerged(
                    organization_id=winner_id if kind == "organization" else merged.get("organization_id"),
                    merged_organization_ids=[loser_id] if kind == "organization" else [],
                    field_sources=plan.field_sources,
                    moved_contact_count=len(moved),
                    actor=dict(actor),
                    profile_type=kind,
                    contact_id=winner_id if kind == "contact" else None,
                    merged_contact_ids=[loser_id] if kind == "contact" else [],
                    merge_id=merge_id,
                ),
            )
            return record

        return self.uow.run(work, serialize_on=f"merge:{tenant_id}")

    def get_merge(self, tenant_id: str, merge_id: str) -> dict[str, Any]:
        snapshot = self.collection(tenant_id, MERGES).document(merge_id).get()
        if not snapshot.exists:
            raise not_found(f"Merge {merge_id}")
        return snapshot.to_dict() or {}

    def undo_merge(self, tenant_id: str, merge_id: str, actor: Mapping[str, Any]) -> dict[str, Any]:
        """Put every before-image back, if none of the records changed since the merge (else 409)."""

        def work(tx: Tx) -> dict[str, Any]:
            ref = self.collection(tenant_id, MERGES).document(merge_id)
            merge = tx.get(ref)
            if merge is None:
                raise not_found(f"Merge {merge_id}")
            kind: Kind = merge["kind"]
            refs = {
                record_id: self._ref(_kind_of(record_id), tenant_id, record_id)
                for record_id in merge["before"]
            }
            current = dict(tx.get_all(list(refs.values())))
            try:
                domain.check_undo(merge, current)
            except DomainError as exc:
                raise _problem(exc) from exc
            loser_id = merge["loser_id"]
            if kind == "organization":
                # Unchanged since the merge: the winner holds exactly both sides' domains.
                self._set_claims(tx, tenant_id, loser_id, merge["before"][loser_id].get("domains") or [])
            self._index_emails(
                tx,
                tenant_id,
                [(current[i], image) for i, image in merge["before"].items() if i.startswith("con_")],
            )
            for record_id, image in merge["before"].items():
                tx.set(refs[record_id], image)
                if record_id.startswith("con_"):
                    diff = domain.changes(
                        current[record_id] or {}, image, (*domain.field_names("contact"), "deleted")
                    )
                    self._contact_updated(tx, tenant_id, image, diff, "manual", actor)
            merge.update({"status": "undone", "undone_at": self.clock(), "undone_by": dict(actor)})
            tx.set(ref, merge)
            return merge

        return self.uow.run(work, serialize_on=f"merge:{tenant_id}")

    # --- events consumed ---------------------------------------------------------------------------
    def init_tenant(self, tx: Tx, tenant_id: str) -> None:
        ref = self._settings(tenant_id)
        if tx.get(ref) is None:
            tx.set(ref, default_settings(self.clock()))

    def contact_for_user(
        self, tx: Tx, tenant_id: str, email: str, user_id: str, actor: Mapping[str, Any]
    ) -> None:
        """A contact profile for an invited user, unless a contact with that email exists (then linked)."""
        email = domain.normalize_email(email)
        query = self.records("contact", tenant_id).where(
            filter=firestore.FieldFilter("email_keys", "array_contains", email)
        )
        existing = [s.to_dict() or {} for s in tx.query(query.limit(5))]
        live = [c for c in existing if not c.get("deleted")]
        if live:
            target = live[0]
            if target.get("user_id") != user_id:
                tx.update(self._ref("contact", tenant_id, target["id"]), {"user_id": user_id})
            return
        if existing:
            return  # deleted on purpose: an invitation does not bring the profile back
        first, last = domain.name_from_email(email)
        fields = domain.validate_fields(
            "contact", {"first_name": first, "last_name": last, "emails": [email]}
        )
        record = domain.new_record("contact", new_id("con_"), fields, actor, "api", self.clock())
        record.update({"user_id": user_id, "name_inferred": True})
        tx.create(self._ref("contact", tenant_id, record["id"]), record)
        self._index_emails(tx, tenant_id, [(None, record)])
        self._contact_created(tx, tenant_id, record, "api")

    def record_bounce(
        self, tx: Tx, tenant_id: str, recipient: str, contact_id: str | None, bounce: domain.BounceType
    ) -> int:
        """Mark the address on the contact named (following a merge) or on every contact having it."""
        targets: list[dict[str, Any]] = []
        if contact_id:
            record = tx.get(self._ref("contact", tenant_id, contact_id))
            if record is not None and record.get("merged_into"):
                record = tx.get(self._ref("contact", tenant_id, record["merged_into"]))
            if record is not None:
                targets.append(record)
        if not targets:
            query = self.records("contact", tenant_id).where(
                filter=firestore.FieldFilter(
                    "email_keys", "array_contains", domain.normalize_email(recipient)
                )
            )
            targets = [s.to_dict() or {} for s in tx.query(query.limit(20))]
        marked = 0
        for record in targets:
            if record.get("deleted"):
                continue
            after, diff = domain.record_bounce(record, recipient, bounce, self.clock())
            if after == record:
                continue
            tx.set(self._ref("contact", tenant_id, record["id"]), after)
            if diff:
                marked += 1
                system = {"type": "system", "id": "notification-bounce", "email": None}
                self._contact_updated(tx, tenant_id, after, diff, "api", system)
        return marked

    def record_health(
        self, tx: Tx, tenant_id: str, organization_id: str | None, health: Mapping[str, Any]
    ) -> None:
        """Keep the newest score (by `computed_at`) on the organization, or on the tenant's profile."""
        ref = (
            self._ref("organization", tenant_id, organization_id)
            if organization_id
            else self._settings(tenant_id, "health")
        )
        current = tx.get(ref)
        if organization_id and current is None:
            return  # not (or no longer) an organization of this tenant
        held = (current or {}).get("health") or {}
        if held.get("computed_at") is not None and held["computed_at"] >= health["computed_at"]:
            return
        if current is None:
            tx.set(ref, {"health": dict(health)})
        else:
            tx.update(ref, {"health": dict(health)})

    def record_user_import(self, tx: Tx, tenant_id: str, import_id: str, summary: Mapping[str, Any]) -> None:
        ref = self.collection(tenant_id, USER_IMPORTS).document(import_id)
        if tx.get(ref) is None:
            tx.set(ref, {**summary, "recorded_at": self.clock()})

    # --- bulk import -------------------------------------------------------------------------------
    def imports(self, tenant_id: str) -> firestore.CollectionReference:
        return self.collection(tenant_id, IMPORTS)

    def _chunk_ref(self, tenant_id: str, job_id: str, chunk: int) -> firestore.DocumentReference:
        chunks: firestore.CollectionReference = self.imports(tenant_id).document(job_id).collection(CHUNKS)
        return chunks.document(f"{chunk:05d}")

    def _row_ref(self, tenant_id: str, job_id: str, row: int) -> firestore.DocumentReference:
        return self.collection(tenant_id, ROWS).document(f"{job_id}-{row:06d}")

    def get_job(self, tenant_id: str, job_id: str) -> dict[str, Any]:
        snapshot = self.imports(tenant_id).document(job_id).get()
        if not snapshot.exists:
            raise not_found(f"Import {job_id}")
        return snapshot.to_dict() or {}

    def submit_import(
        self,
        tenant_id: str,
        kind: Kind,
        fmt: ImportFormat,
        mode: ImportMode,
        match: str,
        rows: list[dict[str, Any]],
        actor: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Save the job and its validated rows in chunks, then schedule the first chunk."""
        now = self.clock()
        size = domain.CHUNK_ROWS[kind]
        chunks = domain.chunked(rows, size)
        job_id = new_id("cim_")
        job: dict[str, Any] = {
            "id": job_id,
            "kind": kind,
            "format": fmt,
            "mode": mode,
            "match": match,
            "status": "queued",
            "total": len(rows),
            **dict.fromkeys(
                ("processed", "created", "updated", "unchanged", "skipped", "failed", "reverted"), 0
            ),
            "chunk_count": len(chunks),
            "chunks_done": 0,
            "chunks_reverted": 0,
            "generation": 0,
            "actor": dict(actor),
            "created_at": now,
            "updated_at": now,
            "completed_at": None,
            "reverted_at": None,
            "version": 1,
        }
        writes: list[tuple[firestore.DocumentReference, dict[str, Any]]] = [
            (self._chunk_ref(tenant_id, job_id, n), {"chunk": n, "rows": chunk})
            for n, chunk in enumerate(chunks)
        ]
        for start in range(0, len(writes), 20):  # 20 chunks of up to 100 rows: a few MB per request
            batch = self.db.batch()
            for ref, data in writes[start : start + 20]:
                batch.create(ref, data)
            batch.commit()
        # The job last: a job that exists has all its chunks.
        self.imports(tenant_id).document(job_id).create(job)
        self._schedule_window(tenant_id, job, "import", 0)
        return job

    def _schedule_window(self, tenant_id: str, job: Mapping[str, Any], phase: str, first: int) -> None:
        # Chunks run IMPORT_WINDOW at a time: each finished chunk n schedules chunk n + IMPORT_WINDOW.
        for chunk in range(first, min(first + IMPORT_WINDOW, job["chunk_count"])):
            self._schedule(tenant_id, job, phase, chunk)

    def _schedule(self, tenant_id: str, job: Mapping[str, Any], phase: str, chunk: int) -> None:
        try:
            self.queue.enqueue(
                CHUNK_PATH,
                {"tenant_id": tenant_id, "job_id": job["id"], "phase": phase, "chunk": chunk},
                name=task_id(
                    "customer-import", tenant_id, job["id"], phase, str(chunk), f"g{job['generation']}"
                ),
            )
        except Exception as exc:
            log.exception(
                "an import chunk could not be scheduled", extra={"job_id": job["id"], "chunk": chunk}
            )
            raise Problem(
                503, "dependency-unavailable",
                "The import is saved but its next step could not be scheduled: resume it.",
                headers={"Retry-After": "1"}, job_id=job["id"],
            ) from exc  # fmt: skip

    def resume(self, tenant_id: str, job_id: str) -> dict[str, Any]:
        """Schedule the unfinished chunks again under fresh task names (after a task gave up)."""

        def work(tx: Tx) -> dict[str, Any]:
            job = tx.get(self.imports(tenant_id).document(job_id))
            if job is None:
                raise not_found(f"Import {job_id}")
            if job["status"] not in ("queued", "running", "reverting"):
                raise Problem(
                    409, "illegal-transition", f"The import is {job['status']}.", current_status=job["status"]
                )
            job.update(generation=job["generation"] + 1, updated_at=self.clock(), version=job["version"] + 1)
            tx.set(self.imports(tenant_id).document(job_id), job)
            return job

        job = self.uow.run(work, serialize_on=f"import:{tenant_id}/{job_id}")
        phase = "revert" if job["status"] == "reverting" else "import"
        self._schedule_window(tenant_id, job, phase, self._first_unfinished(tenant_id, job_id, phase))
        self._finish_if_done(tenant_id, job_id, phase)
        return job

    def _first_unfinished(self, tenant_id: str, job_id: str, phase: str) -> int:
        # Every chunk below the first unfinished one is done; the window chains on from there.
        flag = PHASES[phase].flag
        chunks = self.imports(tenant_id).document(job_id).collection(CHUNKS)
        for snapshot in chunks.select([flag]).stream():
            if not (snapshot.to_dict() or {}).get(flag):
                return int(snapshot.id)
        return 1 << 30

    def revert(self, tenant_id: str, job_id: str) -> dict[str, Any]:
        """Undo a completed import chunk by chunk: created records are deleted, updated ones get their
        before-image back; a record changed since the import is left as it is (row `revert_skipped`)."""

        def work(tx: Tx) -> dict[str, Any]:
            job = tx.get(self.imports(tenant_id).document(job_id))
            if job is None:
                raise not_found(f"Import {job_id}")
            if job["status"] != "completed":
                raise Problem(
                    409,
                    "illegal-transition",
                    f"Only a completed import can be reverted, not a {job['status']} one.",
                    current_status=job["status"],
                )
            job.update(status="reverting", updated_at=self.clock(), version=job["version"] + 1)
            tx.set(self.imports(tenant_id).document(job_id), job)
            return job

        job = self.uow.run(work, serialize_on=f"import:{tenant_id}/{job_id}")
        self._schedule_window(tenant_id, job, "revert", 0)
        return job

    def run_chunk(self, tenant_id: str, job_id: str, phase: str, chunk: int) -> str:
        """One chunk, in one transaction with its rows, events and its share of the job's progress, so a
        crash redoes the whole chunk or none of it, and a second delivery of the same task changes
        nothing. Chunks run side by side: rows of one file never share a match value or a domain (the
        parse skips or fails the later row), and progress is counted with increments, so chunks of one
        job never contend on its document."""
        job_ref = self.imports(tenant_id).document(job_id)
        snapshot = job_ref.get()
        if not snapshot.exists:
            return "missing"
        job = snapshot.to_dict() or {}
        flag, active = PHASES[phase].flag, PHASES[phase].active
        chunk_ref = self._chunk_ref(tenant_id, job_id, chunk)
        stored = chunk_ref.get().to_dict() if job["status"] in active else None
        if stored is None or stored.get(flag):
            self._chain(tenant_id, job, phase, chunk)  # a crash may have come between commit and chain
            return "already-done"
        rows: list[dict[str, Any]] = stored.get("rows", [])
        step = self._revert_rows if phase == "revert" else self._import_rows
        prepared = None if phase == "revert" else self._lookup(tenant_id, job, rows)

        def work(tx: Tx) -> bool:
            if (tx.get(chunk_ref) or {}).get(flag):
                return False
            decided = step(tx, tenant_id, job, chunk, rows, prepared)
            now = self.clock()
            tx.update(chunk_ref, {flag: True, f"{flag}_at": now})
            progress: dict[str, Any] = {"updated_at": now, "version": firestore.Increment(1)}
            if phase == "revert":
                counts = {"reverted": sum(r["status"] == "reverted" for r in decided)}
            else:
                counts = domain.count_rows(decided)
                progress["status"] = "running"
            counts[PHASES[phase].counter] = 1
            progress.update({name: firestore.Increment(n) for name, n in counts.items()})
            tx.update(job_ref, progress)
            return True

        recorded = self.uow.run(work, serialize_on=f"import:{tenant_id}/{job_id}/{chunk}")
        self._chain(tenant_id, job, phase, chunk)
        self._finish_if_done(tenant_id, job_id, phase)
        return "recorded" if recorded else "already-done"

    def _chain(self, tenant_id: str, job: Mapping[str, Any], phase: str, chunk: int) -> None:
        if job["status"] not in ("completed", "reverted") and chunk + IMPORT_WINDOW < job["chunk_count"]:
            self._schedule(tenant_id, job, phase, chunk + IMPORT_WINDOW)

    def _finish_if_done(self, tenant_id: str, job_id: str, phase: str) -> None:
        """The chunk that finds every chunk done closes the job (several may find it: one transaction)."""
        job_ref = self.imports(tenant_id).document(job_id)
        step = PHASES[phase]

        def finished(job: Mapping[str, Any] | None) -> bool:
            if job is None or job["status"] not in step.active:
                return False
            return bool(job[step.counter] >= job["chunk_count"])

        def work(tx: Tx) -> None:
            job = tx.get(job_ref)
            if job is None or not finished(job):
                return
            now = self.clock()
            job.update(status=step.final, updated_at=now, version=job["version"] + 1, **{step.stamp: now})
            tx.set(job_ref, job)

        if finished(job_ref.get().to_dict()):  # most chunks are not the last: no transaction for them
            self.uow.run(work, serialize_on=f"import:{tenant_id}/{job_id}")

    def _lookup(
        self, tenant_id: str, job: Mapping[str, Any], rows: list[dict[str, Any]]
    ) -> dict[str, list[str]]:
        """Match value → ids of the records having it, found with indexed queries before the
        transaction (a transaction re-reads the records themselves)."""
        keys = sorted({str(r["key"]) for r in rows if r["status"] == "pending" and r.get("key")})
        kind: Kind = job["kind"]
        if job["match"] == "id":
            return {k: [k] for k in keys}
        if kind == "contact":
            return self._with_email(tenant_id, keys)
        found: dict[str, list[str]] = {}
        for batch in _batches(keys, 100):
            for snapshot in self.db.get_all([self._claim(tenant_id, k) for k in batch]):
                if snapshot.exists:
                    found[snapshot.id] = [str((snapshot.to_dict() or {})["organization_id"])]
        return found

    def _import_rows(
        self,
        tx: Tx,
        tenant_id: str,
        job: dict[str, Any],
        chunk: int,
        rows: list[dict[str, Any]],
        prepared: Mapping[str, list[str]] | None,
    ) -> list[dict[str, Any]]:
        kind: Kind = job["kind"]
        matches = prepared or {}
        actor = job["actor"]
        ids = sorted(
            {i for r in rows if r["status"] == "pending" for i in matches.get(str(r.get("key")), [])}
        )
        existing = {
            i: d for i, d in tx.get_all([self._ref(kind, tenant_id, i) for i in ids]) if d is not None
        }
        claims: dict[str, str] = {}
        orgs: set[str] = set()
        stages: list[str] = []
        if kind == "organization":
            names = sorted({d for r in rows if r.get("fields") for d in r["fields"].get("domains") or []})
            claims = {
                n: str(c["organization_id"])
                for n, c in tx.get_all([self._claim(tenant_id, d) for d in names])
                if c
            }
        else:
            wanted = sorted(
                {
                    r["fields"]["organization_id"]
                    for r in rows
                    if (r.get("fields") or {}).get("organization_id")
                }
            )
            orgs = {
                i
                for i, d in tx.get_all([self._ref("organization", tenant_id, i) for i in wanted])
                if d and not d.get("deleted")
            }
            stages = (tx.get(self._settings(tenant_id)) or default_settings(self.clock()))["lifecycle_stages"]
        now = self.clock()
        decided: list[dict[str, Any]] = []
        for source_row in rows:
            row = {k: v for k, v in source_row.items() if k != "fields"}
            row.update(job_id=job["id"], chunk=chunk, tenant_id=tenant_id, before=None, after_version=None)
            if row["status"] == "pending":
                self._import_row(
                    tx,
                    tenant_id,
                    kind,
                    job,
                    row,
                    source_row["fields"],
                    matches,
                    existing,
                    claims,
                    orgs,
                    stages,
                    actor,
                    now,
                )
            tx.set(self._row_ref(tenant_id, job["id"], row["row"]), row)
            decided.append(row)
        if kind == "contact":
            written = [r for r in decided if r["status"] in ("created", "updated")]
            self._index_emails(tx, tenant_id, [(r["before"], existing[r["record_id"]]) for r in written])
        return decided

    def _import_row(
        self,
        tx: Tx,
        tenant_id: str,
        kind: Kind,
        job: Mapping[str, Any],
        row: dict[str, Any],
        fields: dict[str, Any],
        matches: Mapping[str, list[str]],
        existing: dict[str, dict[str, Any]],
        claims: dict[str, str],
        orgs: set[str],
        stages: list[str],
        actor: Mapping[str, Any],
        now: datetime,
    ) -> None:
        found = [existing[i] for i in matches.get(str(row["key"]), []) if i in existing]
        live = [r for r in found if not r.get("deleted")]
        if len(live) > 1:
            row.update(status="failed", reason=f"ambiguous: {len(live)} records match {row['key']}")
            return
        target = live[0] if live else (found[0] if found else None)
        decision, reason = domain.decide_row(job["mode"], target)
        row["record_id"] = target["id"] if target else None
        if decision == "skip":
            row.update(status="skipped", reason=reason)
            return
        if kind == "contact":
            if fields.get("organization_id") and fields["organization_id"] not in orgs:
                row.update(status="failed", reason=f"unknown organization {fields['organization_id']}")
                return
            if fields.get("lifecycle_stage") and fields["lifecycle_stage"] not in stages:
                row.update(status="failed", reason=f"unknown lifecycle stage {fields['lifecycle_stage']}")
                return
        record_id = target["id"] if target else new_id(PREFIXES[kind])
        if kind == "organization":
            taken = [d for d in fields.get("domains") or [] if claims.get(d, record_id) != record_id]
            if taken:
                row.update(
                    status="failed",
                    reason=f"the domain {taken[0]} belongs to organization {claims[taken[0]]}",
                )
                return
        if decision == "create":
            record = domain.new_record(kind, record_id, fields, actor, "import", now)
            tx.create(self._ref(kind, tenant_id, record_id), record)
            if kind == "contact":
                self._contact_created(tx, tenant_id, record, "import")
            row.update(status="created", record_id=record_id, after_version=record["version"])
            existing[record_id] = record
            before_domains: list[str] = []
        else:
            assert target is not None
            merged = {k: target.get(k) for k in domain.field_names(kind) if target.get(k) is not None}
            merged.update(fields)
            record, diff = domain.apply_fields(
                kind, target, domain.validate_fields(kind, merged), actor, "import", now
            )
            if not diff:
                row.update(status="unchanged")
                return
            tx.set(self._ref(kind, tenant_id, record_id), record)
            if kind == "contact":
                self._contact_updated(tx, tenant_id, record, diff, "import", actor)
            row.update(status="updated", before=target, after_version=record["version"])
            existing[record_id] = record
            before_domains = list(target.get("domains") or [])
        if kind == "organization":
            after_domains = list(record.get("domains") or [])
            for name in after_domains:
                if name not in before_domains:
                    tx.set(self._claim(tenant_id, name), {"organization_id": record_id, "domain": name})
                    claims[name] = record_id
            for name in before_domains:
                if name not in after_domains:
                    tx.delete(self._claim(tenant_id, name))
                    claims.pop(name, None)

    def _revert_rows(
        self,
        tx: Tx,
        tenant_id: str,
        job: dict[str, Any],
        chunk: int,
        rows: list[dict[str, Any]],
        prepared: Any,
    ) -> list[dict[str, Any]]:
        kind: Kind = job["kind"]
        reports = tx.get_all([self._row_ref(tenant_id, job["id"], r["row"]) for r in rows])
        touched = [r for _, r in reports if r is not None and r["status"] in ("created", "updated")]
        records = dict(tx.get_all([self._ref(kind, tenant_id, r["record_id"]) for r in touched]))
        decided: list[dict[str, Any]] = []
        indexed: list[tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]] = []
        actor = job["actor"]
        for row in touched:
            current = records.get(row["record_id"])
            if current is None or current.get("version") != row["after_version"]:
                row.update(status="revert_skipped", reason="changed since the import")
            elif row["status"] == "created":
                tx.delete(self._ref(kind, tenant_id, row["record_id"]))
                indexed.append((current, None))
                for name in current.get("domains") or []:
                    tx.delete(self._claim(tenant_id, name))
                if kind == "contact":
                    diff = {"deleted": {"before": False, "after": True}}
                    self._contact_updated(
                        tx, tenant_id, {**current, "version": current["version"] + 1}, diff, "import", actor
                    )
                row.update(outcome="created", status="reverted")
            else:
                before = row["before"]
                tx.set(self._ref(kind, tenant_id, row["record_id"]), before)
                indexed.append((current, before))
                for name in current.get("domains") or []:
                    if name not in (before.get("domains") or []):
                        tx.delete(self._claim(tenant_id, name))
                for name in before.get("domains") or []:
                    tx.set(
                        self._claim(tenant_id, name), {"organization_id": row["record_id"], "domain": name}
                    )
                if kind == "contact":
                    diff = domain.changes(current, before, domain.field_names("contact"))
                    self._contact_updated(tx, tenant_id, before, diff, "import", actor)
                row.update(outcome="updated", status="reverted")
            tx.set(self._row_ref(tenant_id, job["id"], row["row"]), row)
            decided.append(row)
        if kind == "contact":
            self._index_emails(tx, tenant_id, indexed)
        return decided

    # --- GDPR --------------------------------------------------------------------------------------
    def _traces(
        self, tenant_id: str, contact: Mapping[str, Any]
    ) -> dict[str, list[firestore.DocumentSnapshot[Any]]]:
        """Every document of this API that holds the contact's data: profiles merged into it, merges
        naming it, and import rows that touched it or carried one of its emails."""
        where = firestore.FieldFilter
        contact_id = str(contact["id"])
        tombs = list(
            self.records("contact", tenant_id).where(filter=where("merged_into", "==", contact_id)).stream()
        )
        ids = [contact_id, *(t.id for t in tombs)]
        merges: dict[str, Any] = {}
        rows: dict[str, Any] = {}
        for batch in _batches(ids, 10):
            for s in (
                self.collection(tenant_id, MERGES)
                .where(filter=where("record_ids", "array_contains_any", batch))
                .stream()
            ):
                merges[s.id] = s
            for s in self.collection(tenant_id, ROWS).where(filter=where("record_id", "in", batch)).stream():
                rows[s.id] = s
        emails = sorted(
            {e for s in [contact, *(t.to_dict() or {} for t in tombs)] for e in s.get("emails") or []}
        )
        for batch in _batches(emails):
            for s in self.collection(tenant_id, ROWS).where(filter=where("key", "in", batch)).stream():
                rows[s.id] = s
        return {"merged_profiles": tombs, "merges": list(merges.values()), "import_rows": list(rows.values())}

    def export_contact(self, tenant_id: str, contact_id: str) -> dict[str, Any]:
        contact = self.get("contact", tenant_id, contact_id, include_deleted=True)
        traces = self._traces(tenant_id, contact)
        org = None
        if contact.get("organization_id"):
            snapshot = self._ref("organization", tenant_id, contact["organization_id"]).get()
            org = (
                {"id": snapshot.id, "name": (snapshot.to_dict() or {}).get("name")}
                if snapshot.exists
                else None
            )
        rows = []
        for snapshot in traces["import_rows"]:
            row = snapshot.to_dict() or {}
            chunk = (self._chunk_ref(tenant_id, row["job_id"], row["chunk"]).get().to_dict() or {}).get(
                "rows", []
            )
            submitted: dict[str, Any] = next((r for r in chunk if r["row"] == row["row"]), {})
            rows.append({**row, "submitted": submitted.get("fields")})
        return {
            "contact": contact,
            "organization": org,
            "merged_profiles": [s.to_dict() for s in traces["merged_profiles"]],
            "merges": [s.to_dict() for s in traces["merges"]],
            "import_rows": rows,
            "exported_at": self.clock(),
        }

    def erase_contact(self, tenant_id: str, contact_id: str, actor: Mapping[str, Any]) -> dict[str, Any]:
        """Delete the contact, the profiles merged into it, the merges naming them and the import rows
        (and submitted cells) that carried them. Erasing again answers the same summary."""
        receipt = self.collection(tenant_id, ERASURES).document(contact_id)
        done = receipt.get()
        if done.exists:
            return done.to_dict() or {}
        contact = self.get("contact", tenant_id, contact_id, include_deleted=True)
        traces = self._traces(tenant_id, contact)
        scrubbed = 0
        chunks: dict[str, list[int]] = {}
        for snapshot in traces["import_rows"]:
            row = snapshot.to_dict() or {}
            chunks.setdefault(self._chunk_ref(tenant_id, row["job_id"], row["chunk"]).path, []).append(
                row["row"]
            )
        refs: list[firestore.DocumentReference] = [
            *(s.reference for s in traces["merged_profiles"]),
            *(s.reference for s in traces["merges"]),
            *(s.reference for s in traces["import_rows"]),
        ]
        batch = self.db.batch()
        pending = 0
        for path, numbers in chunks.items():
            ref = self.db.document(path)
            stored = ref.get().to_dict() or {}
            cleaned = []
            for row in stored.get("rows", []):
                if row["row"] in numbers:
                    row = {
                        "row": row["row"],
                        "status": row["status"],
                        "reason": "erased",
                        "fields": None,
                        "key": None,
                    }
                    scrubbed += 1
                cleaned.append(row)
            batch.update(ref, {"rows": cleaned})
            pending += 1
        for ref in refs:
            batch.delete(ref)
            pending += 1
            if pending >= 400:
                batch.commit()
                batch, pending = self.db.batch(), 0
        summary = {
            "contact_id": contact_id,
            "erased_at": self.clock(),
            "erased_by": dict(actor),
            "deleted": {
                "contacts": 1 + len(traces["merged_profiles"]),
                "merges": len(traces["merges"]),
                "import_rows": len(traces["import_rows"]),
                "submitted_import_rows_scrubbed": scrubbed,
            },
            "kept": [
                "the audit trail (the Audit API's, append-only)",
                "events already published (consumers hold their copies)",
            ],
        }
        # The contact and the receipt last, together: a crash before leaves the contact to erase again.
        profiles = [contact, *(s.to_dict() or {} for s in traces["merged_profiles"])]
        erased = {str(p["id"]) for p in profiles}
        refs = [
            self._email_ref(tenant_id, k)
            for k in sorted({k for p in profiles for k in p.get("email_keys") or []})
        ]
        for snapshot in self.db.get_all(refs) if refs else []:
            # An address no one else has leaves no index entry behind, not even its hash.
            ref = snapshot.reference
            others = set((snapshot.to_dict() or {}).get("contact_ids") or {}) - erased
            if others:
                batch.set(ref, {"contact_ids": dict.fromkeys(erased, firestore.DELETE_FIELD)}, merge=True)
            else:
                batch.delete(ref)
        batch.delete(self._ref("contact", tenant_id, contact_id))
        batch.set(receipt, summary)
        batch.commit()
        for erased_id in sorted(erased):  # the published events' copies the outbox keeps a while
            self.uow.outbox.forget(tenant_id, erased_id)
        return summary


def build_service(platform: Platform) -> CustomerService:
    return CustomerService(
        platform.db, platform.uow, platform.catalog, TaskQueue(platform.settings, QUEUE, TASKS_FUNCTION)
    )
