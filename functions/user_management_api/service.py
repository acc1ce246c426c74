"""User Management API use cases over the unit of work, Identity Platform and the Tenant API's seats.

Layout, all under the tenant so isolation and erasure are structural:
    tenants/{tid}/identity/config                    {idp_tenant_id}: the tenant's Identity Platform tenant
    tenants/{tid}/users/{uid}                        the user (uid derived from tenant and email)
    tenants/{tid}/invitations/{invitation_id}        token_hash only: the token is never stored
    tenants/{tid}/user_imports/{job_id}              an import job and its counts
    tenants/{tid}/user_imports/{job_id}/chunks/{n}   the validated rows of chunk n, as submitted
    tenants/{tid}/user_imports/{job_id}/rows/{row}   what became of each row

Across systems, every step is ordered so that a failure leaves nothing half done, or something a retry
of the same request completes:
- accept: lease the invitation, take a seat, create the identity (on failure: delete it, release the
  seat, drop the lease), then mark the invitation accepted and the user active in one transaction;
- role change: commit the role (and its event), then set the claims and revoke the sessions; a retry
  of the request re-syncs claims that did not make it;
- deactivate: disable the identity and revoke its sessions, release the seat, then commit;
- reactivate: take a seat, enable the identity (on failure: release the seat), then commit.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from google.cloud import firestore
from pydantic import SecretStr

from functions.user_management_api.adapters import IdentityProvider, IdentityUnavailable, SeatPool
from functions.user_management_api.domain import (
    DEFAULT_INVITATION_HOURS,
    DeactivationReason,
    Grantor,
    IllegalTransition,
    ImportFormat,
    ImportJob,
    ImportRow,
    Invitation,
    InvitationGone,
    InvitationNotFound,
    Role,
    User,
    UserExists,
    UserStatus,
    chunked,
    hash_token,
    idp_display_name,
    make_token,
    parse_token,
    plan_chunk,
    user_id_for,
)
from shared.catalog import Catalog
from shared.contracts import Actor, EventPayload
from shared.events import new_event
from shared.platform import Platform
from shared.problems import Problem, not_found
from shared.tasks import TaskQueue, task_id
from shared.uow import Tx, UnitOfWork

log = logging.getLogger(__name__)

API_NAME = "User Management API"
HTTP_FUNCTION = "user_management_api"
TASKS_FUNCTION = "user_management_api_tasks"
QUEUE = "user-import"
CHUNK_PATH = "/import-chunk"
RESYNC_PATH = "/resync-claims"

TENANTS = "tenants"
USERS = "users"
INVITATIONS = "invitations"
IDENTITY = "identity"
IDENTITY_CONFIG = "config"
IMPORTS = "user_imports"
CHUNKS = "chunks"
ROWS = "rows"

ACCEPT_LEASE = timedelta(minutes=2)
RESYNC_PAGE = 200


def new_id(prefix: str) -> str:
    # Random, not sequential: Firestore spreads writes by key and sequential ids make hotspots.
    return prefix + secrets.token_hex(10)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def _now() -> datetime:
    return datetime.now(UTC)


class UserService:
    def __init__(
        self,
        db: firestore.Client,
        uow: UnitOfWork,
        catalog: Catalog,
        identity: IdentityProvider,
        seats: SeatPool,
        queue: TaskQueue,
        api_url: str,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.db = db
        self.uow = uow
        self.api_slug = catalog.api(API_NAME).slug
        self.identity = identity
        self.seats = seats
        self.queue = queue
        self.api_url = api_url.rstrip("/")
        self.clock = clock

    # --- persistence -------------------------------------------------------------------------------
    def _tenant(self, tenant_id: str) -> firestore.DocumentReference:
        return self.db.collection(TENANTS).document(tenant_id)

    def _collection(self, parent: firestore.DocumentReference, name: str) -> firestore.CollectionReference:
        collection: firestore.CollectionReference = parent.collection(name)
        return collection

    def users(self, tenant_id: str) -> firestore.CollectionReference:
        return self._collection(self._tenant(tenant_id), USERS)

    def invitations(self, tenant_id: str) -> firestore.CollectionReference:
        return self._collection(self._tenant(tenant_id), INVITATIONS)

    def imports(self, tenant_id: str) -> firestore.CollectionReference:
        return self._collection(self._tenant(tenant_id), IMPORTS)

    def rows(self, tenant_id: str, job_id: str) -> firestore.CollectionReference:
        return self._collection(self.imports(tenant_id).document(job_id), ROWS)

    def _chunks(self, tenant_id: str, job_id: str) -> firestore.CollectionReference:
        return self._collection(self.imports(tenant_id).document(job_id), CHUNKS)

    def _identity_ref(self, tenant_id: str) -> firestore.DocumentReference:
        return self._collection(self._tenant(tenant_id), IDENTITY).document(IDENTITY_CONFIG)

    def _emit(self, tx: Tx, tenant_id: str, subject: str, version: int, events: list[EventPayload]) -> None:
        for payload in events:
            tx.emit(
                new_event(
                    payload,
                    tenant_id=tenant_id,
                    subject=subject,
                    source_api_slug=self.api_slug,
                    aggregate_version=version,
                )
            )
        events.clear()

    def _save_user(self, tx: Tx, user: User, create: bool = False) -> None:
        ref = self.users(user.tenant_id).document(user.id)
        data = user.model_dump(mode="python")
        if create:
            tx.create(ref, data)
        else:
            tx.set(ref, data)
        self._emit(tx, user.tenant_id, user.id, user.version, user.events)

    def _load_user(self, tx: Tx, tenant_id: str, user_id: str) -> User:
        data = tx.get(self.users(tenant_id).document(user_id))
        if data is None:
            raise not_found(f"User {user_id}")
        return User.model_validate(data)

    def _load_invitation(self, tx: Tx, tenant_id: str, invitation_id: str) -> Invitation:
        data = tx.get(self.invitations(tenant_id).document(invitation_id))
        if data is None:
            raise not_found(f"Invitation {invitation_id}")
        return Invitation.model_validate(data)

    def _save_invitation(self, tx: Tx, invitation: Invitation, create: bool = False) -> None:
        ref = self.invitations(invitation.tenant_id).document(invitation.id)
        if create:
            tx.create(ref, invitation.model_dump(mode="python"))
        else:
            tx.set(ref, invitation.model_dump(mode="python"))

    def _save_job(self, tx: Tx, job: ImportJob) -> None:
        tx.set(self.imports(job.tenant_id).document(job.id), job.model_dump(mode="python"))
        self._emit(tx, job.tenant_id, job.id, job.version, job.events)

    # --- reads -------------------------------------------------------------------------------------
    def get_user(self, tenant_id: str, user_id: str) -> User:
        snapshot = self.users(tenant_id).document(user_id).get()
        if not snapshot.exists:
            raise not_found(f"User {user_id}")
        return User.model_validate(snapshot.to_dict())

    def get_invitation(self, tenant_id: str, invitation_id: str) -> Invitation:
        snapshot = self.invitations(tenant_id).document(invitation_id).get()
        if not snapshot.exists:
            raise not_found(f"Invitation {invitation_id}")
        return Invitation.model_validate(snapshot.to_dict())

    def get_job(self, tenant_id: str, job_id: str) -> ImportJob:
        snapshot = self.imports(tenant_id).document(job_id).get()
        if not snapshot.exists:
            raise not_found(f"User import {job_id}")
        return ImportJob.model_validate(snapshot.to_dict())

    def identity_config(self, tenant_id: str) -> dict[str, Any] | None:
        snapshot = self._identity_ref(tenant_id).get()
        return snapshot.to_dict() if snapshot.exists else None

    # --- the tenant's Identity Platform tenant -----------------------------------------------------
    def ensure_identity_tenant(self, tenant_id: str) -> tuple[dict[str, Any], bool]:
        """The tenant's IdP tenant, created on first need; returns (config, created)."""
        existing = self.identity_config(tenant_id)
        if existing is not None:
            return existing, False
        self.seats.capacity(tenant_id)  # a tenant the Tenant API does not know gets no IdP tenant (404)
        display_name = idp_display_name(tenant_id)
        idp_tenant_id = self.identity.create_tenant(display_name)
        config = {"idp_tenant_id": idp_tenant_id, "display_name": display_name, "created_at": self.clock()}

        def work(tx: Tx) -> tuple[dict[str, Any], bool]:
            ref = self._identity_ref(tenant_id)
            current = tx.get(ref)
            if current is not None:
                return current, False
            tx.create(ref, config)
            return config, True

        result, created = self.uow.run(work, serialize_on=f"identity:{tenant_id}")
        if not created:  # another request created one first: ours is an orphan
            self.identity.delete_tenant(idp_tenant_id)
        return result, created

    def _idp_of(self, user: User) -> str:
        return user.idp_tenant_id or str(self.ensure_identity_tenant(user.tenant_id)[0]["idp_tenant_id"])

    # --- invitations -------------------------------------------------------------------------------
    def invite(
        self, tenant_id: str, email: str, role: Role, hours: int, grantor: Grantor, actor: Actor
    ) -> tuple[Invitation, str]:
        """A new invited user and its invitation; returns the token, which is never stored."""
        grantor.ensure_may_grant(role)
        email = email.lower()
        idp_tenant_id = str(self.ensure_identity_tenant(tenant_id)[0]["idp_tenant_id"])
        user_id = user_id_for(tenant_id, email)
        invitation_id = new_id("inv_")
        token = make_token(tenant_id, invitation_id, new_secret())

        def work(tx: Tx) -> Invitation:
            existing = tx.get(self.users(tenant_id).document(user_id))
            if existing is not None:
                raise UserExists(user_id, str(existing.get("status")))
            now = self.clock()
            invitation = Invitation.issue(
                invitation_id, tenant_id, user_id, email, role, hours, hash_token(token), grantor.uid, now
            )
            self._save_invitation(tx, invitation, create=True)
            self._save_user(tx, User.invite(invitation, None, idp_tenant_id, actor, now), create=True)
            return invitation

        return self.uow.run(work, serialize_on=f"user:{tenant_id}/{user_id}"), token

    def resend(self, tenant_id: str, invitation_id: str, grantor: Grantor) -> tuple[Invitation, str]:
        token = make_token(tenant_id, invitation_id, new_secret())

        def work(tx: Tx) -> Invitation:
            invitation = self._load_invitation(tx, tenant_id, invitation_id)
            grantor.ensure_may_grant(invitation.role)
            invitation.resend(hash_token(token), self.clock())
            self._save_invitation(tx, invitation)
            return invitation

        return self.uow.run(work, serialize_on=f"invitation:{tenant_id}/{invitation_id}"), token

    def mail_token(self, tenant_id: str, invitation_id: str) -> str:
        """A token for the accept link of the invitation mail being sent now; only its hash is kept."""
        token = make_token(tenant_id, invitation_id, new_secret())

        def work(tx: Tx) -> None:
            invitation = self._load_invitation(tx, tenant_id, invitation_id)
            invitation.issue_mail_token(hash_token(token), self.clock())
            self._save_invitation(tx, invitation)

        self.uow.run(work, serialize_on=f"invitation:{tenant_id}/{invitation_id}")
        return token

    def revoke(self, tenant_id: str, invitation_id: str, grantor: Grantor) -> Invitation:
        """The invitation is revoked and its invited user removed (it never signed in)."""

        def work(tx: Tx) -> Invitation:
            invitation = self._load_invitation(tx, tenant_id, invitation_id)
            grantor.ensure_may_grant(invitation.role)
            user_ref = self.users(tenant_id).document(invitation.user_id)
            user = tx.get(user_ref)
            invitation.revoke(self.clock())
            self._save_invitation(tx, invitation)
            if (
                user
                and user.get("status") == UserStatus.INVITED
                and user.get("invitation_id") == invitation.id
            ):
                tx.delete(user_ref)
            return invitation

        return self.uow.run(work, serialize_on=f"invitation:{tenant_id}/{invitation_id}")

    def accept(self, token: str, password: SecretStr, display_name: str) -> User:
        """Single use. Seat first (409 when none is free, nothing changed), then the identity with its
        claims; if the identity fails, the seat is released and the caller gets 503."""
        tenant_id, invitation_id = parse_token(token)
        digest = hash_token(token)
        serial = f"invitation:{tenant_id}/{invitation_id}"
        invitation_ref = self.invitations(tenant_id).document(invitation_id)

        def begin(tx: Tx) -> tuple[Invitation, User | None, Exception | None]:
            data = tx.get(invitation_ref)
            if data is None:
                raise InvitationNotFound
            invitation = Invitation.model_validate(data)
            user_data = tx.get(self.users(tenant_id).document(invitation.user_id))
            now = self.clock()
            try:
                invitation.begin_accept(digest, now, ACCEPT_LEASE)
            except InvitationGone as gone:
                if invitation.expire(now):  # remember it: lists and later attempts see `expired`
                    self._save_invitation(tx, invitation)
                return invitation, None, gone
            if user_data is None:
                raise InvitationNotFound
            self._save_invitation(tx, invitation)
            return invitation, User.model_validate(user_data), None

        _, invited, refused = self.uow.run(begin, serialize_on=serial)
        if refused is not None:
            raise refused
        assert invited is not None
        try:
            idp_tenant_id = self._idp_of(invited)
            self.seats.take(tenant_id, invited.id, invited.email)
        except BaseException:
            self._abandon(tenant_id, invitation_id)
            raise
        try:
            self.identity.create_user(idp_tenant_id, invited.id, invited.email, password, display_name)
            self.identity.set_claims(idp_tenant_id, invited.id, invited.claims)
        except IdentityUnavailable:
            self._compensate_accept(tenant_id, invitation_id, invited.id, idp_tenant_id)
            raise

        def finish(tx: Tx) -> User:
            invitation = Invitation.model_validate(tx.get(invitation_ref))
            user = self._load_user(tx, tenant_id, invited.id)
            now = self.clock()
            invitation.accept(now)
            user.activate(display_name, idp_tenant_id, now)
            self._save_invitation(tx, invitation)
            self._save_user(tx, user)
            return user

        user = self.uow.run(finish, serialize_on=serial)
        if user.claims != invited.claims:  # the role changed while the identity was being created
            self.sync_claims(user)
        return user

    def _abandon(self, tenant_id: str, invitation_id: str) -> None:
        def work(tx: Tx) -> None:
            invitation = self._load_invitation(tx, tenant_id, invitation_id)
            invitation.abandon_accept()
            self._save_invitation(tx, invitation)

        self.uow.run(work, serialize_on=f"invitation:{tenant_id}/{invitation_id}")

    def _compensate_accept(
        self, tenant_id: str, invitation_id: str, user_id: str, idp_tenant_id: str
    ) -> None:
        try:
            self.identity.delete_user(idp_tenant_id, user_id)
        except IdentityUnavailable:
            log.warning("a half-created identity could not be deleted", extra={"user_id": user_id})
        try:
            self.seats.release(tenant_id, user_id)
        except Problem:
            log.error("the seat of a failed acceptance could not be released", extra={"user_id": user_id})
        self._abandon(tenant_id, invitation_id)

    # --- users -------------------------------------------------------------------------------------
    def sync_claims(self, user: User) -> bool:
        """Make the identity's claims those of the user's role; when they change, revoke its sessions
        so tokens with the old claims stop working. False when nothing changed (or no identity)."""
        if user.idp_tenant_id is None:
            return False
        current = self.identity.claims(user.idp_tenant_id, user.id)
        if current is None or current == user.claims:
            return False
        self.identity.set_claims(user.idp_tenant_id, user.id, user.claims)
        self.identity.revoke_sessions(user.idp_tenant_id, user.id)
        return True

    def change_role(
        self, tenant_id: str, user_id: str, role: Role, if_match: int | None, grantor: Grantor, actor: Actor
    ) -> User:
        def work(tx: Tx) -> User:
            user = self._load_user(tx, tenant_id, user_id)
            if if_match is not None and user.version != if_match:
                raise Problem(
                    412,
                    "precondition-failed",
                    "The user changed since you read it: fetch it again.",
                    current_version=user.version,
                )
            grantor.ensure_may_manage(user, "change the role of")
            grantor.ensure_may_grant(role)
            invitation = None
            if user.status is UserStatus.INVITED and user.invitation_id:
                data = tx.get(self.invitations(tenant_id).document(user.invitation_id))
                invitation = Invitation.model_validate(data) if data else None
            if user.change_role(role, actor, self.clock()):
                self._save_user(tx, user)
                if invitation is not None:
                    invitation.role = role
                    self._save_invitation(tx, invitation)
            return user

        user = self.uow.run(work, serialize_on=f"user:{tenant_id}/{user_id}")
        if user.status is UserStatus.ACTIVE:
            self.sync_claims(user)  # also on a retry that changed nothing: claims a failure left behind
        return user

    def deactivate(
        self, tenant_id: str, user_id: str, reason: DeactivationReason, grantor: Grantor, actor: Actor
    ) -> User:
        current = self.get_user(tenant_id, user_id)
        grantor.ensure_may_manage(current, "deactivate")
        if current.status is not UserStatus.ACTIVE:
            raise IllegalTransition("deactivate a user", current.status.value)
        # Locked out first, then the seat; both are idempotent, so a failed request is simply retried.
        if current.idp_tenant_id and self.identity.set_disabled(current.idp_tenant_id, user_id, True):
            self.identity.revoke_sessions(current.idp_tenant_id, user_id)
        self.seats.release(tenant_id, user_id)

        def work(tx: Tx) -> User:
            user = self._load_user(tx, tenant_id, user_id)
            grantor.ensure_may_manage(user, "deactivate")
            user.deactivate(reason, actor, self.clock())
            self._save_user(tx, user)
            return user

        return self.uow.run(work, serialize_on=f"user:{tenant_id}/{user_id}")

    def reactivate(self, tenant_id: str, user_id: str, grantor: Grantor) -> User:
        current = self.get_user(tenant_id, user_id)
        grantor.ensure_may_manage(current, "reactivate")
        current.check_reactivatable()
        self.seats.take(tenant_id, user_id, current.email)  # 409 seat-limit-reached: nothing changed
        try:
            idp_tenant_id = self._idp_of(current)
            if self.identity.set_disabled(idp_tenant_id, user_id, False):
                self.identity.set_claims(idp_tenant_id, user_id, current.claims)
            else:
                log.warning("a reactivated user has no identity", extra={"user_id": user_id})
        except IdentityUnavailable:
            try:
                self.seats.release(tenant_id, user_id)
            except Problem:
                log.error(
                    "the seat of a failed reactivation could not be released", extra={"user_id": user_id}
                )
            raise

        def work(tx: Tx) -> User:
            user = self._load_user(tx, tenant_id, user_id)
            user.reactivate(self.clock())
            self._save_user(tx, user)
            return user

        user = self.uow.run(work, serialize_on=f"user:{tenant_id}/{user_id}")
        if user.claims != current.claims:
            self.sync_claims(user)
        return user

    # --- claims after a permission policy change ---------------------------------------------------
    def schedule_resync(self, tenant_id: str, role: str, policy_id: str, version: int) -> None:
        """One named task per policy version: a redelivered event schedules nothing more."""
        self.queue.enqueue(
            RESYNC_PATH,
            {"tenant_id": tenant_id, "role": role},
            name=task_id("resync-claims", tenant_id, policy_id, str(version)),
        )

    def resync_claims(self, tenant_id: str, role: str) -> int:
        """Recompute the claims of the tenant's active users holding `role`; returns how many changed."""
        changed = 0
        query = (
            self.users(tenant_id)
            .where(filter=firestore.FieldFilter("role", "==", role))
            .where(filter=firestore.FieldFilter("status", "==", UserStatus.ACTIVE.value))
            .order_by("__name__")
        )
        last: firestore.DocumentSnapshot[Any] | None = None
        while True:
            page = query.start_after(last).limit(RESYNC_PAGE) if last else query.limit(RESYNC_PAGE)
            snapshots = list(page.stream())
            for snapshot in snapshots:
                if self.sync_claims(User.model_validate(snapshot.to_dict())):
                    changed += 1
            if len(snapshots) < RESYNC_PAGE:
                return changed
            last = snapshots[-1]

    # --- bulk import -------------------------------------------------------------------------------
    def submit_import(
        self, tenant_id: str, fmt: ImportFormat, rows: list[ImportRow], actor: Actor
    ) -> ImportJob:
        """Save the job and its validated rows in chunks (one batch), then schedule the first chunk."""
        self.seats.capacity(tenant_id)  # 404 for a tenant the Tenant API does not know
        job = ImportJob.start(new_id("imp_"), tenant_id, fmt, len(rows), actor, self.clock())
        batch = self.db.batch()
        batch.create(self.imports(tenant_id).document(job.id), job.model_dump(mode="python"))
        for number, chunk in enumerate(chunked(rows)):
            batch.create(
                self._chunks(tenant_id, job.id).document(f"{number:05d}"),
                {"chunk": number, "rows": [row.model_dump() for row in chunk]},
            )
        batch.commit()
        self._schedule_chunk(job, 0)
        return job

    def _schedule_chunk(self, job: ImportJob, chunk: int) -> None:
        try:
            self.queue.enqueue(
                CHUNK_PATH,
                {"tenant_id": job.tenant_id, "job_id": job.id, "chunk": chunk},
                name=task_id("user-import", job.tenant_id, job.id, str(chunk), f"g{job.generation}"),
            )
        except Exception as exc:
            log.exception("an import chunk could not be scheduled", extra={"job_id": job.id, "chunk": chunk})
            raise Problem(
                503,
                "dependency-unavailable",
                "The import is saved but its next step could not be scheduled: resume it.",
                headers={"Retry-After": "1"},
                job_id=job.id,
            ) from exc

    def resume(self, tenant_id: str, job_id: str) -> ImportJob:
        """Schedule the next chunk again under fresh task names (after its task gave up)."""

        def work(tx: Tx) -> ImportJob:
            data = tx.get(self.imports(tenant_id).document(job_id))
            if data is None:
                raise not_found(f"User import {job_id}")
            job = ImportJob.model_validate(data)
            job.resume(self.clock())
            self._save_job(tx, job)
            return job

        job = self.uow.run(work, serialize_on=f"import:{tenant_id}/{job_id}")
        self._schedule_chunk(job, job.next_chunk)
        return job

    def _free_seats(self, tenant_id: str) -> int:
        """Seats neither taken nor promised to an outstanding invitation."""
        limit, used = self.seats.capacity(tenant_id)
        query = self.users(tenant_id).where(
            filter=firestore.FieldFilter("status", "==", UserStatus.INVITED.value)
        )
        aggregation: Any = query.count(alias="n")  # the client's annotation of count() is wrong
        invited = int(aggregation.get()[0][0].value)
        return max(0, limit - used - invited)

    def run_chunk(self, tenant_id: str, job_id: str, chunk: int) -> str:
        """Decide and write one chunk; its rows, users, invitations, events and the job's progress
        commit in one transaction, so a crash anywhere redoes the whole chunk or none of it."""
        snapshot = self.imports(tenant_id).document(job_id).get()
        if not snapshot.exists:
            return "missing"
        job = ImportJob.model_validate(snapshot.to_dict())
        if job.done or job.next_chunk > chunk:
            if not job.done:
                self._schedule_chunk(job, job.next_chunk)  # the crash was after this chunk's commit
            return "already-done"
        if job.next_chunk < chunk:
            raise RuntimeError(f"chunk {chunk} of {job_id} ran before chunk {job.next_chunk}")
        stored = self._chunks(tenant_id, job_id).document(f"{chunk:05d}").get().to_dict() or {}
        rows = [ImportRow.model_validate(row) for row in stored.get("rows", [])]
        idp_tenant_id: str | None = None
        free = 0
        if any(row.status == "pending" for row in rows):
            idp_tenant_id = str(self.ensure_identity_tenant(tenant_id)[0]["idp_tenant_id"])
            free = self._free_seats(tenant_id)
        report_url = f"{self.api_url}/tenants/{tenant_id}/user-imports/{job_id}/rows?status=failed"

        def work(tx: Tx) -> tuple[ImportJob, bool]:
            current = ImportJob.model_validate(tx.get(self.imports(tenant_id).document(job_id)))
            if current.done or current.next_chunk != chunk:
                return current, False
            candidates = [r.email for r in rows if r.status == "pending" and r.email]
            found = tx.get_all(
                [self.users(tenant_id).document(user_id_for(tenant_id, e)) for e in candidates]
            )
            existing = {str(data["email"]) for _, data in found if data is not None}
            now = self.clock()
            decided: list[ImportRow] = []
            for row in plan_chunk(rows, existing, free):
                if row.status == "created" and row.email and row.role:
                    invitation = Invitation.issue(
                        new_id("inv_"),
                        tenant_id,
                        user_id_for(tenant_id, row.email),
                        row.email,
                        row.role,
                        DEFAULT_INVITATION_HOURS,
                        None,  # no token yet: resending the invitation issues (and returns) one
                        current.actor.id,
                        now,
                    )
                    self._save_invitation(tx, invitation, create=True)
                    user = User.invite(invitation, row.display_name, idp_tenant_id, current.actor, now)
                    self._save_user(tx, user, create=True)
                    row = row.model_copy(update={"user_id": user.id, "invitation_id": invitation.id})
                tx.set(self.rows(tenant_id, job_id).document(f"{row.row:06d}"), row.model_dump())
                decided.append(row)
            current.record_chunk(chunk, decided, now, report_url)
            self._save_job(tx, current)
            return current, True

        job, recorded = self.uow.run(work, serialize_on=f"import:{tenant_id}/{job_id}")
        if not job.done:
            self._schedule_chunk(job, job.next_chunk)
        return "recorded" if recorded else "already-done"


def build_service(platform: Platform) -> UserService:
    settings = platform.settings
    return UserService(
        platform.db,
        platform.uow,
        platform.catalog,
        IdentityProvider(settings),
        SeatPool(platform.services),
        TaskQueue(settings, QUEUE, TASKS_FUNCTION),
        settings.function_url(HTTP_FUNCTION),
    )
