"""What the Customer Health API does with events: every consumed event becomes a health signal, and the
scores it concerns (the tenant's, and its organization's when a bounce can be attributed) are
recomputed from the stored signals in the same transaction (see service.HealthService.handle)."""

from __future__ import annotations

from collections.abc import Mapping

from functions.customer_health_api.service import API_NAME, build_service
from shared.intake import EventHandler
from shared.platform import Platform


def build_handlers(platform: Platform) -> Mapping[str, EventHandler]:
    handle = build_service(platform).handle
    return {event.name: handle for event in platform.catalog.consumed_by(API_NAME)}
