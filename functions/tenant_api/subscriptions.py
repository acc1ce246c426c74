"""What the Tenant API does with the billing domain's events.

- Payment Failed: the tenant is marked past due; when billing says it will not retry (`final`), an
  active tenant is suspended (Tenant Suspended follows, with the reason "payment failed").
- Plan Upgraded: the plan and its seat limit apply; an older plan change arriving after a newer one
  changes nothing (ordered by the change's effective time). Past due is cleared.
- Subscription Cancelled: billing sends it when the cancellation takes effect; the tenant is
  deactivated (Tenant Deactivated follows) and its data kept for the retention period.
"""

from __future__ import annotations

from collections.abc import Mapping

from functions.tenant_api.service import build_service
from shared.contracts.payloads import PaymentFailed, PlanUpgraded, SubscriptionCancelled
from shared.intake import Delivered, EventHandler
from shared.platform import Platform
from shared.uow import Tx


def build_handlers(platform: Platform) -> Mapping[str, EventHandler]:
    service = build_service(platform)

    def payment_failed(event: Delivered, tx: Tx) -> None:
        payload = event.payload
        assert isinstance(payload, PaymentFailed)
        at = event.envelope.time
        service.apply_in(tx, payload.tenant_id, lambda t, now: t.payment_failed(payload.final, at, now))

    def plan_upgraded(event: Delivered, tx: Tx) -> None:
        payload = event.payload
        assert isinstance(payload, PlanUpgraded)
        service.apply_in(
            tx, payload.tenant_id, lambda t, now: t.plan_upgraded(payload.new_plan, payload.effective_at, now)
        )

    def subscription_cancelled(event: Delivered, tx: Tx) -> None:
        payload = event.payload
        assert isinstance(payload, SubscriptionCancelled)
        service.apply_in(
            tx,
            payload.tenant_id,
            lambda t, now: t.subscription_cancelled(
                payload.reason, payload.effective_at, now, service.retention
            ),
        )

    return {
        "Payment Failed": payment_failed,
        "Plan Upgraded": plan_upgraded,
        "Subscription Cancelled": subscription_cancelled,
    }
