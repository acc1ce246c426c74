"""Tenant API use cases: each loads the aggregate in a transaction, acts, saves, and emits its events."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from google.cloud import firestore

from functions.tenant_api.domain import Plan, Tenant
from shared.catalog import Catalog
from shared.contracts import Actor
from shared.contracts.payloads import TenantDeactivated
from shared.events import new_event
from shared.platform import Platform
from shared.problems import Problem, conflict, not_found
from shared.uow import Tx, UnitOfWork

TENANTS = "tenants"
SLUGS = "tenant_slugs"
SEATS = "seats"

T = TypeVar("T")


def new_tenant_id() -> str:
    # Random, not sequential: Firestore spreads writes by key and sequential ids make hotspots.
    return "t_" + secrets.token_hex(10)


class DeactivationStarter(Protocol):
    """Starts the processes of a deactivation (offboarding, support ticket) in its transaction."""

    def __call__(self, tx: Tx, tenant_id: str, version: int, reason: str, deactivated_at: Any) -> None: ...


def erased(tenant_id: str) -> Problem:
    return Problem(410, "tenant-erased", f"Tenant {tenant_id} was offboarded and its data erased.")


class TenantService:
    def __init__(
        self,
        db: firestore.Client,
        uow: UnitOfWork,
        catalog: Catalog,
        retention: timedelta,
        on_deactivated: DeactivationStarter | None = None,
    ) -> None:
        self.db = db
        self.uow = uow
        self.api_slug = catalog.api("Tenant API").slug
        self.retention = retention
        self.on_deactivated = on_deactivated

    # --- persistence -------------------------------------------------------------------------------
    def ref(self, tenant_id: str) -> firestore.DocumentReference:
        return self.db.collection(TENANTS).document(tenant_id)

    def seats(self, tenant_id: str) -> firestore.CollectionReference:
        seats: firestore.CollectionReference = self.ref(tenant_id).collection(SEATS)
        return seats

    def _load(self, tx: Tx, tenant_id: str) -> Tenant:
        data = tx.get(self.ref(tenant_id))
        if data is None:
            raise not_found(f"Tenant {tenant_id}")
        if data.get("status") == "erased":
            raise erased(tenant_id)
        return Tenant.model_validate(data)

    def _save(self, tx: Tx, tenant: Tenant, create: bool = False) -> None:
        # Offboarding and the support ticket start with the deactivation, in its transaction (their
        # reads come before this transaction's writes).
        for payload in tenant.events:
            if isinstance(payload, TenantDeactivated) and self.on_deactivated is not None:
                self.on_deactivated(tx, tenant.id, tenant.version, payload.reason, tenant.deactivated_at)
        data = tenant.model_dump(mode="python")
        if create:
            tx.create(self.ref(tenant.id), data)
        else:
            tx.set(self.ref(tenant.id), data)
        for payload in tenant.events:
            tx.emit(
                new_event(
                    payload,
                    tenant_id=tenant.id,
                    subject=tenant.id,
                    source_api_slug=self.api_slug,
                    aggregate_version=tenant.version,
                )
            )
        tenant.events.clear()

    def _change(
        self, tenant_id: str, action: Callable[[Tenant, datetime], T], if_match: int | None = None
    ) -> Tenant:
        def work(tx: Tx) -> Tenant:
            tenant = self._load(tx, tenant_id)
            if if_match is not None and tenant.version != if_match:
                raise Problem(
                    412,
                    "precondition-failed",
                    "The tenant changed since you read it: fetch it again.",
                    current_version=tenant.version,
                )
            action(tenant, datetime.now(UTC))
            self._save(tx, tenant)
            return tenant

        return self.uow.run(work, serialize_on=f"tenant:{tenant_id}")

    # --- commands ----------------------------------------------------------------------------------
    def create(self, name: str, slug: str, plan: Plan, admin_email: str, actor: Actor) -> Tenant:
        tenant_id = new_tenant_id()

        def work(tx: Tx) -> Tenant:
            slug_ref = self.db.collection(SLUGS).document(slug)
            owner = tx.get(slug_ref)
            if owner is not None:
                raise conflict("slug-taken", f"The slug {slug!r} is taken.", slug=slug)
            tenant = Tenant.create(tenant_id, name, slug, plan, admin_email, actor, datetime.now(UTC))
            tx.create(slug_ref, {"tenant_id": tenant_id})
            self._save(tx, tenant, create=True)
            return tenant

        return self.uow.run(work)

    def by_slug(self, slug: str) -> Tenant | None:
        """The live tenant a workspace slug names (None: no such slug, or the tenant is gone)."""
        claim = self.db.collection(SLUGS).document(slug).get()
        tenant_id = (claim.to_dict() or {}).get("tenant_id") if claim.exists else None
        if not isinstance(tenant_id, str):
            return None
        snapshot = self.ref(tenant_id).get()
        data = snapshot.to_dict() if snapshot.exists else None
        if not data or data.get("status") in ("deactivated", "erased"):
            return None
        return Tenant.model_validate(data)

    def get(self, tenant_id: str) -> Tenant:
        snapshot = self.ref(tenant_id).get()
        if not snapshot.exists:
            raise not_found(f"Tenant {tenant_id}")
        data = snapshot.to_dict() or {}
        if data.get("status") == "erased":
            raise erased(tenant_id)
        return Tenant.model_validate(data)

    def update(self, tenant_id: str, name: str | None, plan: Plan | None, if_match: int | None) -> Tenant:
        def action(tenant: Tenant, now: datetime) -> None:
            if name is not None:
                tenant.rename(name, now)
            if plan is not None:
                tenant.change_plan(plan, now)

        return self._change(tenant_id, action, if_match)

    def suspend(self, tenant_id: str, reason: str, actor: Actor) -> Tenant:
        return self._change(tenant_id, lambda t, now: t.suspend(reason, actor, now))

    def reactivate(self, tenant_id: str, actor: Actor) -> Tenant:
        return self._change(tenant_id, lambda t, now: t.reactivate(actor, now))

    def deactivate(self, tenant_id: str, reason: str, actor: Actor) -> Tenant:
        return self._change(tenant_id, lambda t, now: t.deactivate(reason, actor, now, self.retention))

    def assign_seat(
        self, tenant_id: str, user_id: str, email: str | None, actor: Actor
    ) -> tuple[dict[str, Any], bool]:
        """Take a seat for a user; returns (seat, created). The seat limit holds under any concurrency:
        every assignment reads and bumps the tenant document in its transaction."""

        def work(tx: Tx) -> tuple[dict[str, Any], bool]:
            tenant = self._load(tx, tenant_id)
            seat_ref = self.seats(tenant_id).document(user_id)
            existing = tx.get(seat_ref)
            if existing is not None:
                return existing, False
            now = datetime.now(UTC)
            tenant.take_seat(now)
            seat = {"user_id": user_id, "email": email, "assigned_at": now, "assigned_by": actor.id}
            tx.create(seat_ref, seat)
            self._save(tx, tenant)
            return seat, True

        return self.uow.run(work, serialize_on=f"tenant:{tenant_id}")

    def release_seat(self, tenant_id: str, user_id: str) -> None:
        def work(tx: Tx) -> None:
            tenant = self._load(tx, tenant_id)
            seat_ref = self.seats(tenant_id).document(user_id)
            if tx.get(seat_ref) is None:
                raise not_found(f"A seat for user {user_id}")
            tenant.free_seat(datetime.now(UTC))
            tx.delete(seat_ref)
            self._save(tx, tenant)

        self.uow.run(work, serialize_on=f"tenant:{tenant_id}")

    # --- billing reactions (run inside the event intake's transaction) -----------------------------
    def apply_in(self, tx: Tx, tenant_id: str, action: Callable[[Tenant, datetime], bool | None]) -> None:
        """Apply a reaction to the tenant; an action answering False changed nothing and saves nothing."""
        data = tx.get(self.ref(tenant_id))
        if data is None or data.get("status") == "erased":
            return  # billing knows tenants we never had (or already erased): nothing to change
        tenant = Tenant.model_validate(data)
        if action(tenant, datetime.now(UTC)) is not False:
            self._save(tx, tenant)


def build_service(platform: Platform) -> TenantService:
    from functions.tenant_api.jobs import TenantProcesses

    retention = timedelta(days=platform.settings.tenant_retention_days)
    processes = TenantProcesses(platform)
    return TenantService(
        platform.db, platform.uow, platform.catalog, retention, processes.start_for_deactivation
    )
