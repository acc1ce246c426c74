"""The Tenant aggregate's state machine, seat pool and billing reactions, without any I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from functions.tenant_api.domain import (
    SEAT_LIMITS,
    IllegalTransition,
    SeatLimitReached,
    SeatsInUse,
    Tenant,
    TenantStatus,
)
from shared.contracts import Actor
from shared.contracts.payloads import TenantCreated, TenantDeactivated, TenantReactivated, TenantSuspended

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ACTOR = Actor(type="user", id="op-1", email="op@platform.test")
RETENTION = timedelta(days=30)


def new_tenant(plan: str = "free") -> Tenant:
    return Tenant.create("t_1", "Acme", "acme", plan, "admin@acme.example", ACTOR, NOW)  # type: ignore[arg-type]


def test_create_raises_tenant_created_with_the_plan_seat_limit() -> None:
    tenant = new_tenant("starter")
    assert tenant.status is TenantStatus.ACTIVE
    assert tenant.seat_limit == SEAT_LIMITS["starter"]
    assert tenant.events == [
        TenantCreated(
            tenant_id="t_1",
            name="Acme",
            slug="acme",
            plan="starter",
            seat_limit=SEAT_LIMITS["starter"],
            admin_email="admin@acme.example",
            actor=ACTOR,
        )
    ]


def test_suspend_reactivate_deactivate_cycle_raises_one_event_each_and_bumps_version() -> None:
    tenant = new_tenant()
    tenant.events.clear()
    tenant.suspend("unpaid", ACTOR, NOW)
    tenant.reactivate(ACTOR, NOW)
    tenant.deactivate("churned", ACTOR, NOW, RETENTION)
    assert [type(e) for e in tenant.events] == [TenantSuspended, TenantReactivated, TenantDeactivated]
    assert tenant.status is TenantStatus.DEACTIVATED
    assert tenant.retention_until == NOW + RETENTION
    assert tenant.version == 4


@pytest.mark.parametrize(
    ("setup", "action"),
    [
        ([], "reactivate"),
        (["suspend"], "suspend"),
        (["deactivate"], "deactivate"),
        (["deactivate"], "suspend"),
    ],
)
def test_illegal_transitions_are_refused_and_change_nothing(setup: list[str], action: str) -> None:
    tenant = new_tenant()
    for step in setup:
        if step == "suspend":
            tenant.suspend("r", ACTOR, NOW)
        else:
            tenant.deactivate("r", ACTOR, NOW, RETENTION)
    before = tenant.model_dump()
    with pytest.raises(IllegalTransition) as refused:
        if action == "suspend":
            tenant.suspend("again", ACTOR, NOW)
        elif action == "reactivate":
            tenant.reactivate(ACTOR, NOW)
        else:
            tenant.deactivate("again", ACTOR, NOW, RETENTION)
    assert refused.value.status is TenantStatus(before["status"])
    assert tenant.model_dump() == before


def test_reactivation_after_the_retention_period_is_refused() -> None:
    tenant = new_tenant()
    tenant.deactivate("churned", ACTOR, NOW, RETENTION)
    with pytest.raises(IllegalTransition):
        tenant.reactivate(ACTOR, NOW + RETENTION + timedelta(seconds=1))
    tenant.reactivate(ACTOR, NOW + RETENTION - timedelta(seconds=1))
    assert tenant.status is TenantStatus.ACTIVE


def test_seat_pool_never_exceeds_the_limit() -> None:
    tenant = new_tenant("free")
    for _ in range(SEAT_LIMITS["free"]):
        tenant.take_seat(NOW)
    with pytest.raises(SeatLimitReached):
        tenant.take_seat(NOW)
    assert tenant.seats_used == SEAT_LIMITS["free"]
    tenant.free_seat(NOW)
    tenant.take_seat(NOW)
    assert tenant.seats_used == SEAT_LIMITS["free"]


def test_a_suspended_tenant_cannot_take_seats() -> None:
    tenant = new_tenant()
    tenant.suspend("r", ACTOR, NOW)
    with pytest.raises(IllegalTransition):
        tenant.take_seat(NOW)


def test_plan_downgrade_below_the_seats_in_use_is_refused() -> None:
    tenant = new_tenant("starter")
    for _ in range(SEAT_LIMITS["free"] + 1):
        tenant.take_seat(NOW)
    with pytest.raises(SeatsInUse):
        tenant.change_plan("free", NOW)
    assert tenant.plan == "starter"


def test_final_payment_failure_suspends_an_active_tenant_once() -> None:
    tenant = new_tenant()
    tenant.events.clear()
    tenant.payment_failed(final=False, at=NOW, now=NOW)
    assert tenant.billing.past_due
    assert tenant.status == TenantStatus.ACTIVE
    tenant.payment_failed(final=True, at=NOW, now=NOW)
    tenant.payment_failed(final=True, at=NOW, now=NOW)
    assert tenant.status.value == "suspended"
    assert [type(e) for e in tenant.events] == [TenantSuspended]


def test_an_older_plan_change_arriving_late_changes_nothing() -> None:
    tenant = new_tenant("free")
    assert tenant.plan_upgraded("growth", NOW + timedelta(days=2), NOW)
    assert not tenant.plan_upgraded("starter", NOW + timedelta(days=1), NOW)
    assert tenant.plan == "growth"
    assert tenant.seat_limit == SEAT_LIMITS["growth"]


def test_subscription_cancelled_deactivates_once() -> None:
    tenant = new_tenant()
    tenant.events.clear()
    tenant.subscription_cancelled(None, NOW, NOW, RETENTION)
    tenant.subscription_cancelled(None, NOW, NOW, RETENTION)
    assert tenant.status is TenantStatus.DEACTIVATED
    assert [type(e) for e in tenant.events] == [TenantDeactivated]
