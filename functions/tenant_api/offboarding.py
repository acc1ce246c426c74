"""Offboard Tenant: revoke access, disable webhooks, export, soft delete, wait, hard erase, prove it.

The process ("offboard-tenant") runs on the step engine (shared.steps), started in the transaction that
deactivates the tenant. Every step is idempotent and first checks that the run is still current: a
tenant reactivated (or deactivated again, which starts a new run) ends it without touching anything.

Layout, outside `tenants/{tid}` so that erasure does not reach them before their time:
    tenant_exports/{tid}                                   the export's manifest and its SHA-256
    tenant_exports/{tid}/files/{file}/chunks/{n:06d}        NDJSON of one collection, 256 KiB a chunk
    erasure_proofs/{tid}                                   what was erased, when, the export checksum

The export is kept until the retention period ends and erased with everything else; the proof is kept
(it names collections and counts, never data). The tenant document becomes a tombstone.

The pure part (encoding, chunked NDJSON writing with checksums, the manifest, walking and erasing
through the `TenantData` port) comes first; the Firestore and Identity Platform adapters and the
steps follow.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from google.cloud import firestore

    from shared.config import Settings
    from shared.steps import FinishContext, StepContext, StepOutcome
    from shared.tasks import TaskQueue

log = logging.getLogger(__name__)

PROCESS = "offboard-tenant"
TENANTS = "tenants"
RUNS = "tenant_runs"  # the step engine's runs of the Tenant API (erased last, by the purge task)
EXPORTS = "tenant_exports"
FILES = "files"
CHUNKS = "chunks"
PROOFS = "erasure_proofs"
TICKETS = "support_tickets"
PURGE_PATH = "/purge-runs"
# Platform records about a tenant that are kept on purpose: the proof and the support ticket hold ids,
# counts and checksums, no tenant data. Every other top-level document naming the tenant is erased.
KEPT_TOP_LEVEL = frozenset({TENANTS, PROOFS, TICKETS})

CHUNK_BYTES = 256 * 1024  # a Firestore document holds at most 1 MiB
PAGE_SIZE = 300  # documents read (or deleted: one batch) at a time; nothing loads a whole collection
# How long webhook endpoints stay enabled for the tenant's last notification (Tenant Deactivated).
FINAL_NOTICE_GRACE = timedelta(minutes=10)
FINAL_NOTICE_POLL = timedelta(seconds=2)
FINAL_NOTICE_EVENT = "Tenant Deactivated"


# --- pure: one document as one NDJSON line ----------------------------------------------------------
def collection_of(relative_path: str) -> str:
    """`webhook_messages/m1/attempts/0001` -> `webhook_messages/attempts`: the path's collection ids."""
    return "/".join(relative_path.split("/")[0::2])


def file_name(collection: str) -> str:
    return collection.replace("/", ".") + ".ndjson"


def encode(value: Any) -> Any:
    """A Firestore value as JSON: times as ISO 8601, bytes as base64, references as their path."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode()}
    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    if hasattr(value, "latitude") and hasattr(value, "longitude"):
        return {"$geo": [value.latitude, value.longitude]}
    if hasattr(value, "path") and hasattr(value, "id"):
        return {"$ref": str(value.path)}
    return value


def ndjson_line(relative_path: str, data: Mapping[str, Any]) -> bytes:
    # Sorted keys: the same document always gives the same bytes, so checksums are reproducible.
    line = json.dumps(
        {"path": relative_path, "data": encode(data)},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return line.encode() + b"\n"


def digest_of(manifest: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class ChunkSink(Protocol):
    def write(self, file: str, index: int, data: bytes) -> None: ...


@dataclass
class _OpenFile:
    collection: str
    sha256: Any = field(default_factory=hashlib.sha256)
    documents: int = 0
    size: int = 0
    chunks: int = 0
    buffer: bytearray = field(default_factory=bytearray)


class ExportWriter:
    """NDJSON per collection, written in chunks as documents arrive: memory holds at most one chunk per
    collection, whatever the tenant's size."""

    def __init__(self, sink: ChunkSink, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.sink = sink
        self.chunk_bytes = chunk_bytes
        self._files: dict[str, _OpenFile] = {}

    def add(self, relative_path: str, data: Mapping[str, Any]) -> None:
        collection = collection_of(relative_path)
        name = file_name(collection)
        open_file = self._files.setdefault(name, _OpenFile(collection))
        line = ndjson_line(relative_path, data)
        open_file.sha256.update(line)
        open_file.documents += 1
        open_file.size += len(line)
        open_file.buffer += line
        if len(open_file.buffer) >= self.chunk_bytes:
            self._flush(name, open_file)

    def _flush(self, name: str, open_file: _OpenFile) -> None:
        if open_file.buffer:
            self.sink.write(name, open_file.chunks, bytes(open_file.buffer))
            open_file.chunks += 1
            open_file.buffer = bytearray()

    def finish(self, tenant_id: str, generated_at: datetime) -> dict[str, Any]:
        """Flush every file and answer the manifest."""
        files = []
        for name in sorted(self._files):
            open_file = self._files[name]
            self._flush(name, open_file)
            files.append(
                {
                    "name": name,
                    "collection": open_file.collection,
                    "documents": open_file.documents,
                    "bytes": open_file.size,
                    "sha256": open_file.sha256.hexdigest(),
                    "chunks": open_file.chunks,
                }
            )
        return {
            "format": "ndjson",
            "line": '{"path": <path under the tenant>, "data": <document>}',
            "tenant_id": tenant_id,
            "generated_at": encode(generated_at),
            "files": files,
            "documents": sum(f["documents"] for f in files),
            "bytes": sum(f["bytes"] for f in files),
        }


# --- pure: walking and erasing a tenant through a port ----------------------------------------------
class TenantData(Protocol):
    """A tenant's documents: every collection under `tenants/{tid}`, each read recursively."""

    def collections(self, tenant_id: str) -> list[str]:
        """The ids of the tenant document's direct subcollections."""
        ...

    def page(
        self, tenant_id: str, collection: str, after: str | None, limit: int
    ) -> list[tuple[str, dict[str, Any]]]:
        """Up to `limit` documents of the collection and all its descendants, ordered by path, after
        the path `after`: (path relative to the tenant document, data)."""
        ...

    def delete_page(self, tenant_id: str, collection: str, limit: int) -> dict[str, int]:
        """Delete up to `limit` documents of the collection and its descendants, counting them in the
        tenant's erasure proof atomically with the deletion; answers {collection path: deleted}."""
        ...


def walk(
    data: TenantData, tenant_id: str, exclude: Iterable[str] = (), page_size: int = PAGE_SIZE
) -> Iterator[tuple[str, dict[str, Any]]]:
    skip = set(exclude)
    for collection in sorted(data.collections(tenant_id)):
        if collection not in skip:
            yield from walk_collection(data, tenant_id, collection, page_size)


def walk_collection(
    data: TenantData, tenant_id: str, collection: str, page_size: int = PAGE_SIZE
) -> Iterator[tuple[str, dict[str, Any]]]:
    """One collection (and its descendants) of the tenant, page by page."""
    after: str | None = None
    while True:
        page = data.page(tenant_id, collection, after, page_size)
        yield from page
        if len(page) < page_size:
            return
        after = page[-1][0]


def export_tenant(
    data: TenantData,
    sink: ChunkSink,
    tenant_id: str,
    now: datetime,
    exclude: Iterable[str] = (),
    chunk_bytes: int = CHUNK_BYTES,
) -> dict[str, Any]:
    writer = ExportWriter(sink, chunk_bytes)
    for path, document in walk(data, tenant_id, exclude):
        writer.add(path, document)
    return writer.finish(tenant_id, now)


def erase_tenant(
    data: TenantData, tenant_id: str, exclude: Iterable[str] = (), page_size: int = PAGE_SIZE
) -> dict[str, int]:
    """Delete every document under the tenant but the excluded collections, page by page. Resumable:
    each page starts again from what is left. Answers what this call deleted, by collection path."""
    skip = set(exclude)
    deleted: dict[str, int] = {}
    # Collections written again while we erase (a late event consumer) are caught by the next pass.
    for _ in range(3):
        remaining = [c for c in data.collections(tenant_id) if c not in skip]
        if not remaining:
            break
        for collection in sorted(remaining):
            while True:
                counts = data.delete_page(tenant_id, collection, page_size)
                for name, count in counts.items():
                    deleted[name] = deleted.get(name, 0) + count
                if sum(counts.values()) < page_size:
                    break
    return deleted


# --- adapters -------------------------------------------------------------------------------------
class FirestoreTenantData:
    """TenantData over Firestore: recursive queries (`all_descendants`) over each subcollection."""

    def __init__(self, db: firestore.Client) -> None:
        self.db = db

    def tenant(self, tenant_id: str) -> firestore.DocumentReference:
        return self.db.collection(TENANTS).document(tenant_id)

    def collections(self, tenant_id: str) -> list[str]:
        return [c.id for c in self.tenant(tenant_id).collections()]

    def _query(self, tenant_id: str, collection: str, after: str | None, limit: int) -> Any:
        from google.cloud.firestore_v1.field_path import FieldPath

        query = self.tenant(tenant_id).collection(collection).recursive()
        if after is not None:
            full = f"{self.tenant(tenant_id).path}/{after}"
            query = query.start_after({FieldPath.document_id(): full})
        return query.limit(limit)

    def _relative(self, tenant_id: str, path: str) -> str:
        return path[len(self.tenant(tenant_id).path) + 1 :]

    def page(
        self, tenant_id: str, collection: str, after: str | None, limit: int
    ) -> list[tuple[str, dict[str, Any]]]:
        return [
            (self._relative(tenant_id, s.reference.path), s.to_dict() or {})
            for s in self._query(tenant_id, collection, after, limit).stream()
        ]

    def delete_page(self, tenant_id: str, collection: str, limit: int) -> dict[str, int]:
        from google.cloud import firestore as fs
        from google.cloud.firestore_v1.field_path import FieldPath

        query = self._query(tenant_id, collection, None, limit).select([FieldPath.document_id()])
        refs = [s.reference for s in query.stream()]
        if not refs:
            return {}
        counts: dict[str, int] = {}
        batch = self.db.batch()
        for ref in refs:
            name = collection_of(self._relative(tenant_id, ref.path))
            counts[name] = counts.get(name, 0) + 1
            batch.delete(ref)
        # The counters commit with the deletions: a crash between pages never miscounts.
        increments: dict[str, Any] = {
            FieldPath("deleted", name).to_api_repr(): fs.Increment(n) for name, n in counts.items()
        }
        batch.update(self.db.collection(PROOFS).document(tenant_id), increments)
        batch.commit()
        return counts


class FirestoreChunks:
    """ChunkSink writing `tenant_exports/{tid}/files/{file}/chunks/{n}`."""

    def __init__(self, db: firestore.Client, tenant_id: str) -> None:
        self.db = db
        self.tenant_id = tenant_id

    def file(self, name: str) -> firestore.DocumentReference:
        ref: firestore.DocumentReference = self.db.collection(EXPORTS, self.tenant_id, FILES).document(name)
        return ref

    def write(self, file: str, index: int, data: bytes) -> None:
        ref = self.file(file)
        ref.set({"tenant_id": self.tenant_id, "name": file})
        ref.collection(CHUNKS).document(f"{index:06d}").set({"data": data})


class IdentityAdmin:
    """What offboarding needs of Identity Platform: revoke a user's sessions, delete the IdP tenant."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _auth(self, idp_tenant_id: str) -> Any:
        from firebase_admin import tenant_mgt

        from shared.clients import firebase_app

        return tenant_mgt.auth_for_tenant(idp_tenant_id, app=firebase_app())

    def revoke_sessions(self, idp_tenant_id: str, uid: str) -> bool:
        """False when the user has no identity (an invitation never accepted)."""
        from firebase_admin import auth

        try:
            self._auth(idp_tenant_id).revoke_refresh_tokens(uid)
        except auth.UserNotFoundError:
            return False
        return True

    def delete_tenant(self, idp_tenant_id: str) -> bool:
        """False when it was already gone."""
        host = os.environ.get("FIREBASE_AUTH_EMULATOR_HOST")
        if host:
            # firebase-admin's tenant management ignores the emulator; the emulator serves the REST API.
            import requests

            response = requests.delete(
                f"http://{host}/identitytoolkit.googleapis.com/v2/projects/{self.settings.project_id}"
                f"/tenants/{idp_tenant_id}",
                headers={"Authorization": "Bearer owner"},
                timeout=10,
            )
            if response.status_code == 404:
                return False
            response.raise_for_status()
            return True
        from firebase_admin import tenant_mgt

        from shared.clients import firebase_app

        try:
            tenant_mgt.delete_tenant(idp_tenant_id, app=firebase_app())
        except tenant_mgt.TenantNotFoundError:
            return False
        return True


# --- the process ------------------------------------------------------------------------------------
class NotYet(Exception):
    """A precondition another API fulfils asynchronously is not met yet: the queue retries the step."""


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None


class Offboarding:
    def __init__(
        self,
        db: firestore.Client,
        identity: IdentityAdmin,
        purge_queue: Callable[[], TaskQueue],
        start_ticket: Callable[[str, str, Mapping[str, Any]], bool] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        audit: Callable[[str, dict[str, Any]], str] | None = None,
        erase_webhook_secrets: Callable[[str], int] | None = None,
    ) -> None:
        self.db = db
        # Deletes the tenant's webhook signing secrets (they live in Secret Manager, not under the
        # tenant) -> how many; None: left to the Integration API's own endpoint deletion.
        self.erase_webhook_secrets = erase_webhook_secrets
        # Records the proof in the platform's audit trail (key, entry) -> entry id; None: not recorded.
        self.audit = audit
        self.data = FirestoreTenantData(db)
        self.identity = identity
        self.purge_queue = purge_queue
        self.start_ticket = start_ticket
        self.clock = clock

    def process(self) -> Any:
        from shared.steps import Process, Step

        return Process(
            PROCESS,
            [
                Step("start-ticket", self.open_ticket),
                Step("revoke-access", self.revoke_access),
                Step("disable-webhooks", self.disable_webhooks),
                Step("export", self.export),
                Step("soft-delete", self.soft_delete),
                Step("erase", self.erase),
                Step("prove", self.prove),
            ],
            on_finish=self.finished,
        )

    # --- helpers ---
    def _tenant_ref(self, tenant_id: str) -> firestore.DocumentReference:
        return self.db.collection(TENANTS).document(tenant_id)

    def _sub(self, tenant_id: str, collection: str) -> firestore.CollectionReference:
        ref: firestore.CollectionReference = self._tenant_ref(tenant_id).collection(collection)
        return ref

    def _get(self, ref: firestore.DocumentReference) -> dict[str, Any] | None:
        snapshot = ref.get()
        return snapshot.to_dict() if snapshot.exists else None

    def _cancelled(self, ctx: StepContext) -> StepOutcome | None:
        """The run ends when its deactivation is no longer the tenant's (reactivated, or deactivated
        again: that deactivation has its own run). An erased tenant goes on (a step re-run)."""
        from shared.steps import StepOutcome

        tenant = self._get(self._tenant_ref(ctx.tenant_id)) or {}
        if tenant.get("status") == "erased":
            return None
        current = _as_datetime(tenant.get("deactivated_at"))
        expected = _as_datetime(ctx.input.get("deactivated_at"))
        if tenant.get("status") != "deactivated" or current != expected:
            log.info("offboarding cancelled", extra={"tenant_id": ctx.tenant_id, "run_id": ctx.run_id})
            return StepOutcome(
                output={"cancelled": f"the tenant is {tenant.get('status', 'gone')}"}, finish=True
            )
        return None

    # --- 0. the support ticket: its own process, started once (idempotent by run id) ---
    def open_ticket(self, ctx: StepContext) -> StepOutcome:
        from shared.steps import StepOutcome

        started = self.start_ticket(ctx.tenant_id, ctx.run_id, ctx.input) if self.start_ticket else False
        return StepOutcome(output={"ticket_run_started": started})

    # --- 1. revoke access ---
    def revoke_access(self, ctx: StepContext) -> StepOutcome:
        from shared.steps import StepOutcome

        if (cancelled := self._cancelled(ctx)) is not None:
            return cancelled
        # The Access Control API blocks the tenant on Tenant Deactivated; every API's kernel then
        # refuses its users. Verify it happened (else the queue retries the step until it has).
        block = self._get(self._sub(ctx.tenant_id, "access_state").document("tenant")) or {}
        if not (block.get("blocked") is True and block.get("status") == "deactivated"):
            raise NotYet("the Access Control API has not blocked the tenant yet")
        # Complete it: refresh tokens revoked, so no user gets a new ID token from Identity Platform.
        config = self._get(self._sub(ctx.tenant_id, "identity").document("config")) or {}
        idp_tenant_id = config.get("idp_tenant_id")
        revoked = without_identity = 0
        if isinstance(idp_tenant_id, str) and idp_tenant_id:
            for path, _ in walk_collection(self.data, ctx.tenant_id, "users"):
                if "/" in path.removeprefix("users/"):
                    continue  # a subcollection of a user, not a user
                if self.identity.revoke_sessions(idp_tenant_id, path.removeprefix("users/")):
                    revoked += 1
                else:
                    without_identity += 1
        return StepOutcome(
            output={
                "tenant_blocked": True,
                "sessions_revoked": revoked,
                "users_without_identity": without_identity,
            }
        )

    # --- 2. disable webhooks ---
    def disable_webhooks(self, ctx: StepContext) -> StepOutcome:
        from google.cloud import firestore as fs

        from shared.steps import StepOutcome

        if (cancelled := self._cancelled(ctx)) is not None:
            return cancelled
        # The Integration API notifies the endpoints subscribed to Tenant Deactivated; they stay enabled
        # (for a bounded time) while that last notification is still pending.
        now = self.clock()
        pending = (
            self._sub(ctx.tenant_id, "webhook_messages")
            .where(filter=fs.FieldFilter("event_name", "==", FINAL_NOTICE_EVENT))
            .where(filter=fs.FieldFilter("status", "==", "pending"))
            .limit(1)
            .get()
        )
        if pending and now - ctx.started_at < FINAL_NOTICE_GRACE:
            return StepOutcome(
                output={"waiting_for": "the final notification"},
                next_step="disable-webhooks",
                delay=FINAL_NOTICE_POLL,
            )
        disabled = 0
        endpoints = self._sub(ctx.tenant_id, "webhook_endpoints")
        for snapshot in endpoints.where(filter=fs.FieldFilter("enabled", "==", True)).stream():
            # The Integration API checks `enabled` before every attempt: nothing is delivered after this.
            snapshot.reference.update(
                {"enabled": False, "disabled_reason": "tenant deactivated", "updated_at": now}
            )
            disabled += 1
        remaining = endpoints.where(filter=fs.FieldFilter("enabled", "==", True)).limit(1).get()
        if remaining:
            raise NotYet("an endpoint was enabled again while disabling")
        return StepOutcome(output={"endpoints_disabled": disabled}, skipped=disabled == 0)

    # --- 3. export ---
    def export(self, ctx: StepContext) -> StepOutcome:
        from shared.steps import StepOutcome

        if (cancelled := self._cancelled(ctx)) is not None:
            return cancelled
        now = self.clock()
        manifest = export_tenant(
            self.data, FirestoreChunks(self.db, ctx.tenant_id), ctx.tenant_id, now, {RUNS}
        )
        digest = digest_of(manifest)
        self.db.collection(EXPORTS).document(ctx.tenant_id).set(
            {
                "tenant_id": ctx.tenant_id,
                "run_id": ctx.run_id,
                "manifest": manifest,
                "manifest_sha256": digest,
                "created_at": now,
            }
        )
        return StepOutcome(
            output={
                "manifest_sha256": digest,
                "files": len(manifest["files"]),
                "documents": manifest["documents"],
                "bytes": manifest["bytes"],
            }
        )

    # --- 4. soft delete, then wait for the end of the retention period ---
    def soft_delete(self, ctx: StepContext) -> StepOutcome:
        from functions.tenant_api.domain import Tenant
        from shared.steps import StepOutcome

        if (cancelled := self._cancelled(ctx)) is not None:
            return cancelled
        ref = self._tenant_ref(ctx.tenant_id)
        export_sha256 = ctx.outputs.get("export", {}).get("manifest_sha256")

        @_transactional(self.db)
        def mark(transaction: Any) -> Tenant:
            snapshot = ref.get(transaction=transaction)
            tenant = Tenant.model_validate(snapshot.to_dict())
            if tenant.mark_erasure_pending(ctx.run_id, export_sha256, self.clock()):
                transaction.set(ref, tenant.model_dump(mode="python"))
            return tenant

        tenant = mark()
        assert tenant.erasure is not None
        erase_after = tenant.erasure.erase_after
        wait = max(erase_after - self.clock(), timedelta(0))
        return StepOutcome(output={"erase_after": encode(erase_after)}, delay=wait or None)

    # --- 5. hard erase ---
    def erase(self, ctx: StepContext) -> StepOutcome:
        from shared.steps import StepOutcome

        if (cancelled := self._cancelled(ctx)) is not None:
            return cancelled
        tenant_ref = self._tenant_ref(ctx.tenant_id)
        tenant = self._get(tenant_ref) or {}
        now = self.clock()
        erase_after = _as_datetime((tenant.get("erasure") or {}).get("erase_after"))
        if tenant.get("status") != "erased" and erase_after is not None and now < erase_after:
            # Early (a clock ahead of the task's schedule): wait out the rest of the retention period.
            return StepOutcome(
                next_step="erase", delay=erase_after - now, output={"waiting_until": encode(erase_after)}
            )
        proof_ref = self.db.collection(PROOFS).document(ctx.tenant_id)
        proof = self._get(proof_ref)
        if proof is None:
            # Read before anything goes: the last link of the tenant's audit chain and its identity tenant.
            head = self._get(self._sub(ctx.tenant_id, "audit_chain").document("head")) or {}
            config = self._get(self._sub(ctx.tenant_id, "identity").document("config")) or {}
            proof = {
                "tenant_id": ctx.tenant_id,
                "run_id": ctx.run_id,
                "status": "erasing",
                "deactivated_at": ctx.input.get("deactivated_at"),
                "erase_after": erase_after,
                "erasure_started_at": now,
                "audit_chain_head": {
                    k: encode(v) for k, v in head.items() if k in ("hash", "seq", "root", "sealed_at")
                }
                or None,
                "idp_tenant_id": config.get("idp_tenant_id"),
                "deleted": {},
                "outside": {},
            }
            proof_ref.create(proof)
        idp_tenant_id = proof.get("idp_tenant_id")
        identity_deleted = False
        if isinstance(idp_tenant_id, str) and idp_tenant_id:
            identity_deleted = self.identity.delete_tenant(idp_tenant_id)
        if self.erase_webhook_secrets is not None:
            # Before the endpoint documents go: they are how the Integration API finds the secrets.
            secrets_deleted = self.erase_webhook_secrets(ctx.tenant_id)
            if secrets_deleted:
                proof_ref.update({"webhook_secrets_deleted": secrets_deleted})
        erase_tenant(self.data, ctx.tenant_id, exclude={RUNS})
        outside = self._erase_outside(ctx.tenant_id)
        # The tombstone: the id stays taken, nothing else of the tenant remains.
        tenant_ref.set({"id": ctx.tenant_id, "status": "erased", "erased_at": now})
        final = self._get(proof_ref) or {}
        return StepOutcome(
            output={
                "deleted": final.get("deleted", {}),
                "outside": {**final.get("outside", {}), **outside},
                "identity_tenant_deleted": identity_deleted or bool(final.get("identity_tenant_deleted")),
                "webhook_secrets_deleted": final.get("webhook_secrets_deleted", 0),
            }
        )

    def _erase_outside(self, tenant_id: str) -> dict[str, int]:
        """Every top-level document naming the tenant (slug claim, outbox, kernel records, the export),
        but the kept platform records; counted in the proof with each page deleted."""
        from google.cloud import firestore as fs
        from google.cloud.firestore_v1.field_path import FieldPath

        proof_ref = self.db.collection(PROOFS).document(tenant_id)
        counts: dict[str, int] = {}
        for collection in self.db.collections():
            if collection.id in KEPT_TOP_LEVEL:
                continue
            query = collection.where(filter=fs.FieldFilter("tenant_id", "==", tenant_id)).limit(PAGE_SIZE)
            while True:
                refs = [s.reference for s in query.select([FieldPath.document_id()]).stream()]
                if not refs:
                    break
                for ref in refs:
                    for sub in ref.collections():
                        self.db.recursive_delete(sub)
                batch = self.db.batch()
                for ref in refs:
                    batch.delete(ref)
                batch.update(
                    proof_ref, {FieldPath("outside", collection.id).to_api_repr(): fs.Increment(len(refs))}
                )
                batch.commit()
                counts[collection.id] = counts.get(collection.id, 0) + len(refs)
        return counts

    # --- 6. proof of erasure ---
    def prove(self, ctx: StepContext) -> StepOutcome:
        from shared.steps import StepOutcome

        proof_ref = self.db.collection(PROOFS).document(ctx.tenant_id)
        proof = self._get(proof_ref)
        if proof is None:
            raise NotYet("the erasure has not started")
        left = sum(1 for _ in walk(self.data, ctx.tenant_id, exclude={RUNS}, page_size=50))
        if left:
            # Written by a late consumer after the erasure: erase again.
            return StepOutcome(output={"left": left}, next_step="erase")
        export = ctx.outputs.get("export", {})
        deleted: dict[str, int] = proof.get("deleted", {})
        outside: dict[str, int] = proof.get("outside", {})
        identity_deleted = bool(ctx.outputs.get("erase", {}).get("identity_tenant_deleted"))
        now = self.clock()
        proof_ref.update(
            {
                "status": "erased",
                "erased_at": now,
                "documents_deleted": sum(deleted.values()),
                "outside_deleted": sum(outside.values()),
                "identity_tenant_deleted": identity_deleted,
                "export": {
                    "manifest_sha256": export.get("manifest_sha256"),
                    "files": export.get("files"),
                    "documents": export.get("documents"),
                    "bytes": export.get("bytes"),
                },
                "steps": {
                    name: {k: v for k, v in output.items() if k in ("sessions_revoked", "endpoints_disabled")}
                    for name, output in ctx.outputs.items()
                    if name in ("revoke-access", "disable-webhooks")
                },
                "verified_empty": True,
            }
        )
        audit_entry_id = None
        if self.audit is not None:
            # The Audit API's platform trail outlives the tenant's own, which the erasure removed.
            audit_entry_id = self.audit(
                f"tenant-erased:{ctx.tenant_id}:{ctx.run_id}",
                {
                    "action": "tenant.erased",
                    "target": {"type": "Tenant", "id": ctx.tenant_id},
                    "occurred_at": now.isoformat(),
                    "details": {
                        "run_id": ctx.run_id,
                        "documents_deleted": sum(deleted.values()),
                        "deleted": deleted,
                        "outside_deleted": outside,
                        "identity_tenant_deleted": identity_deleted,
                        "webhook_secrets_deleted": proof.get("webhook_secrets_deleted", 0),
                        "export_manifest_sha256": export.get("manifest_sha256"),
                        "proof": f"{PROOFS}/{ctx.tenant_id}",
                    },
                },
            )
            proof_ref.update({"audit_entry_id": audit_entry_id})
        return StepOutcome(
            output={
                "proof": f"{PROOFS}/{ctx.tenant_id}",
                "documents_deleted": sum(deleted.values()),
                "audit_entry_id": audit_entry_id,
            }
        )

    def finished(self, fctx: FinishContext) -> None:
        """A succeeded erasure leaves only its own run records under the tenant: a task removes them
        once this transaction has marked the run finished."""
        if fctx.status != "succeeded" or "prove" not in fctx.outputs:
            return
        from shared.tasks import task_id

        self.purge_queue().enqueue(
            PURGE_PATH,
            {"tenant_id": fctx.tenant_id, "run_id": fctx.run_id},
            name=task_id("purge-runs", fctx.tenant_id, fctx.run_id),
            schedule_time=self.clock() + timedelta(seconds=1),
        )

    # --- the purge task ---
    def purge_runs(self, tenant_id: str, run_id: str) -> str:
        """Delete the tenant's run records once the erasing run is finished; verify nothing is left."""
        run = self._get(self._sub(tenant_id, RUNS).document(run_id))
        proof_ref = self.db.collection(PROOFS).document(tenant_id)
        proof = self._get(proof_ref)
        if proof is None or proof.get("run_id") != run_id:
            return "unknown"
        if run is not None and run.get("status") not in ("succeeded", "failed"):
            raise NotYet("the run has not finished")
        purged = sum(erase_tenant(self.data, tenant_id).values())
        left = sum(1 for _ in walk(self.data, tenant_id, page_size=50))
        if left:
            raise NotYet(f"{left} documents are left under the tenant")
        proof_ref.update({"status": "complete", "verified_empty_at": self.clock(), "runs_purged": purged})
        return "purged"


def _transactional(db: firestore.Client) -> Callable[[Callable[[Any], Any]], Callable[[], Any]]:
    """Run a read-then-write function in a Firestore transaction (retried on contention)."""
    from google.cloud import firestore as fs

    def decorate(function: Callable[[Any], Any]) -> Callable[[], Any]:
        wrapped = fs.transactional(function)

        def run() -> Any:
            return wrapped(db.transaction())

        return run

    return decorate
