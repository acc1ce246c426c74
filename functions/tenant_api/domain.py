"""The Tenant aggregate: lifecycle state machine, plan and seat pool. Pure: no I/O, no clients."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from shared.contracts import Actor, EventPayload
from shared.contracts.payloads import TenantCreated, TenantDeactivated, TenantReactivated, TenantSuspended

Plan = Literal["free", "starter", "growth", "enterprise"]

# The plan decides how many users a tenant may seat.
SEAT_LIMITS: dict[str, int] = {"free": 3, "starter": 10, "growth": 50, "enterprise": 1000}


class TenantStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    DEACTIVATED = "deactivated"


class IllegalTransition(Exception):
    def __init__(self, action: str, status: TenantStatus) -> None:
        super().__init__(f"cannot {action} a tenant that is {status.value}")
        self.action = action
        self.status = status


class SeatLimitReached(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"all {limit} seats are taken")
        self.limit = limit


class SeatsInUse(Exception):
    def __init__(self, used: int, limit: int) -> None:
        super().__init__(f"{used} seats are in use but the plan allows {limit}")
        self.used = used
        self.limit = limit


class Billing(BaseModel):
    past_due: bool = False
    last_payment_failure_at: datetime | None = None
    plan_changed_at: datetime | None = None  # the billing time of the last plan change applied
    cancelled_at: datetime | None = None


class Erasure(BaseModel):
    """Offboarding's soft delete: the data is exported and waits for `erase_after` to be erased."""

    status: Literal["pending"] = "pending"
    erase_after: datetime
    run_id: str
    export_sha256: str | None = None


class Tenant(BaseModel):
    id: str
    name: str
    slug: str
    plan: Plan
    seat_limit: int
    seats_used: int = 0
    status: TenantStatus = TenantStatus.ACTIVE
    status_reason: str | None = None
    admin_email: str
    created_at: datetime
    updated_at: datetime
    deactivated_at: datetime | None = None
    retention_until: datetime | None = None
    billing: Billing = Field(default_factory=Billing)
    erasure: Erasure | None = None
    version: int = 1

    # Raised events, collected by the service and committed with the aggregate (never persisted here).
    events: list[EventPayload] = Field(default_factory=list, exclude=True)

    @classmethod
    def create(
        cls, tenant_id: str, name: str, slug: str, plan: Plan, admin_email: str, actor: Actor, now: datetime
    ) -> Tenant:
        tenant = cls(
            id=tenant_id,
            name=name,
            slug=slug,
            plan=plan,
            seat_limit=SEAT_LIMITS[plan],
            admin_email=admin_email,
            created_at=now,
            updated_at=now,
        )
        tenant.events.append(
            TenantCreated(
                tenant_id=tenant_id,
                name=name,
                slug=slug,
                plan=plan,
                seat_limit=tenant.seat_limit,
                admin_email=admin_email,
                actor=actor,
            )
        )
        return tenant

    def _touch(self, now: datetime) -> None:
        self.updated_at = now
        self.version += 1

    def suspend(self, reason: str, actor: Actor, now: datetime) -> None:
        if self.status is not TenantStatus.ACTIVE:
            raise IllegalTransition("suspend", self.status)
        self.status = TenantStatus.SUSPENDED
        self.status_reason = reason
        self._touch(now)
        self.events.append(TenantSuspended(tenant_id=self.id, reason=reason, actor=actor))

    def reactivate(self, actor: Actor, now: datetime) -> None:
        if self.status is TenantStatus.ACTIVE:
            raise IllegalTransition("reactivate", self.status)
        if self.status is TenantStatus.DEACTIVATED and self.retention_until and now >= self.retention_until:
            # Past retention the data may already be erased: a new tenant is the honest answer.
            raise IllegalTransition("reactivate (retention period over)", self.status)
        self.status = TenantStatus.ACTIVE
        self.status_reason = None
        self.deactivated_at = None
        self.retention_until = None
        self.erasure = None
        self._touch(now)
        self.events.append(TenantReactivated(tenant_id=self.id, actor=actor))

    def deactivate(self, reason: str, actor: Actor, now: datetime, retention: timedelta) -> None:
        if self.status is TenantStatus.DEACTIVATED:
            raise IllegalTransition("deactivate", self.status)
        self.status = TenantStatus.DEACTIVATED
        self.status_reason = reason
        self.deactivated_at = now
        self.retention_until = now + retention
        self._touch(now)
        self.events.append(
            TenantDeactivated(
                tenant_id=self.id, reason=reason, retention_until=self.retention_until, actor=actor
            )
        )

    def mark_erasure_pending(self, run_id: str, export_sha256: str | None, now: datetime) -> bool:
        """Soft delete after the export: erasure waits for the end of the retention period. False when
        already marked for this run (nothing changed)."""
        if self.status is not TenantStatus.DEACTIVATED or self.retention_until is None:
            raise IllegalTransition("mark for erasure", self.status)
        if self.erasure is not None and self.erasure.run_id == run_id:
            return False
        self.erasure = Erasure(erase_after=self.retention_until, run_id=run_id, export_sha256=export_sha256)
        self._touch(now)
        return True

    def rename(self, name: str, now: datetime) -> None:
        if name != self.name:
            self.name = name
            self._touch(now)

    def change_plan(self, plan: Plan, now: datetime) -> None:
        limit = SEAT_LIMITS[plan]
        if self.seats_used > limit:
            raise SeatsInUse(self.seats_used, limit)
        if plan != self.plan:
            self.plan = plan
            self.seat_limit = limit
            self._touch(now)

    def take_seat(self, now: datetime) -> None:
        if self.status is not TenantStatus.ACTIVE:
            raise IllegalTransition("assign a seat of", self.status)
        if self.seats_used >= self.seat_limit:
            raise SeatLimitReached(self.seat_limit)
        self.seats_used += 1
        self._touch(now)

    def free_seat(self, now: datetime) -> None:
        self.seats_used = max(0, self.seats_used - 1)
        self._touch(now)

    # Billing domain reactions (documented in the README).
    def payment_failed(self, final: bool, at: datetime, now: datetime) -> None:
        self.billing.past_due = True
        self.billing.last_payment_failure_at = at
        self._touch(now)
        if final and self.status is TenantStatus.ACTIVE:
            self.suspend("payment failed", Actor(type="system", id="billing"), now)

    def plan_upgraded(self, plan: Plan, effective_at: datetime, now: datetime) -> bool:
        """Apply a billing plan change unless a later one was already applied (out of order)."""
        if self.billing.plan_changed_at and effective_at <= self.billing.plan_changed_at:
            return False
        self.billing.plan_changed_at = effective_at
        self.billing.past_due = False
        self.plan = plan
        self.seat_limit = max(SEAT_LIMITS[plan], self.seats_used)
        self._touch(now)
        return True

    def subscription_cancelled(
        self, reason: str | None, at: datetime, now: datetime, retention: timedelta
    ) -> None:
        self.billing.cancelled_at = at
        if self.status is TenantStatus.DEACTIVATED:
            self._touch(now)
            return
        self.deactivate(
            reason or "subscription cancelled", Actor(type="system", id="billing"), now, retention
        )
