"""What the Integration API does with events: each consumed event fans out to the tenant's enabled
webhook endpoints subscribed to its type (one message and one named delivery task per endpoint)."""

from __future__ import annotations

from collections.abc import Mapping

from functions.integration_api.service import API_NAME, build_service
from shared.intake import EventHandler
from shared.platform import Platform


def build_handlers(platform: Platform) -> Mapping[str, EventHandler]:
    fan_out = build_service(platform).fan_out
    return {event.name: fan_out for event in platform.catalog.consumed_by(API_NAME)}
