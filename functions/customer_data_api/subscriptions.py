"""What the Customer Data API does with the events it consumes (each once per event: the intake's
transaction holds the handler's writes and the dedupe record).

- Tenant Created: the tenant's customer settings (lifecycle stages, custom field definitions).
- User Invited: a contact profile for the invited person (source "api", the inviter as actor), unless a
  contact with that email exists: that one is linked to the user instead, and nothing is published.
- Notification Bounced: the address is marked on the contact named (or, with none, every contact having
  it): a hard bounce marks it bounced and suppressed, a complaint suppressed, the third soft bounce counts
  as hard. The contact's `email_status` follows its primary address; Contact Updated says what changed.
- Health Score Changed: kept on the organization when the event names one (`organization_id`), else on
  the tenant's profile; an older score arriving late changes nothing (by `computed_at`).
- Bulk Import Completed (users): recorded only. Every imported user was invited, and each User Invited
  already made or linked its contact, so the summary adds no profile.
"""

from __future__ import annotations

from collections.abc import Mapping

from functions.customer_data_api.service import build_service
from shared.contracts.payloads import (
    BulkImportCompleted,
    HealthScoreChanged,
    NotificationBounced,
    TenantCreated,
    UserInvited,
)
from shared.intake import Delivered, EventHandler
from shared.platform import Platform
from shared.uow import Tx


def build_handlers(platform: Platform) -> Mapping[str, EventHandler]:
    service = build_service(platform)

    def tenant_created(event: Delivered, tx: Tx) -> None:
        assert isinstance(event.payload, TenantCreated)
        service.init_tenant(tx, event.tenant_id)

    def user_invited(event: Delivered, tx: Tx) -> None:
        payload = event.payload
        assert isinstance(payload, UserInvited)
        service.contact_for_user(
            tx, event.tenant_id, payload.email, payload.user_id, payload.actor.model_dump()
        )

    def bounced(event: Delivered, tx: Tx) -> None:
        payload = event.payload
        assert isinstance(payload, NotificationBounced)
        if payload.channel == "email":
            service.record_bounce(
                tx, event.tenant_id, payload.recipient, payload.contact_id, payload.bounce_type
            )

    def health(event: Delivered, tx: Tx) -> None:
        payload = event.payload
        assert isinstance(payload, HealthScoreChanged)
        summary = payload.model_dump(
            include={"score", "previous_score", "grade", "model_version", "computed_at"}
        )
        service.record_health(tx, event.tenant_id, payload.organization_id, summary)

    def user_import(event: Delivered, tx: Tx) -> None:
        payload = event.payload
        assert isinstance(payload, BulkImportCompleted)
        summary = payload.model_dump(
            include={"status", "total_rows", "created", "updated", "skipped", "failed", "completed_at"}
        )
        service.record_user_import(tx, event.tenant_id, payload.import_id, summary)

    return {
        "Tenant Created": tenant_created,
        "User Invited": user_invited,
        "Notification Bounced": bounced,
        "Health Score Changed": health,
        "Bulk Import Completed": user_import,
    }
