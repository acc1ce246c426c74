"""What the Onboarding API does with events: Tenant Created starts the tenant's onboarding run, Tenant
Reactivated a re-onboarding check; each in the intake's transaction, with Onboarding Started."""

from __future__ import annotations

from collections.abc import Mapping

from functions.onboarding_api.service import build_service
from shared.intake import EventHandler
from shared.platform import Platform


def build_handlers(platform: Platform) -> Mapping[str, EventHandler]:
    service = build_service(platform)
    return {
        "Tenant Created": service.on_tenant_created,
        "Tenant Reactivated": service.on_tenant_reactivated,
    }
