"""What the Notification API does with events: each consumed event becomes notifications for its
recipients (see domain.RULES), created in the intake's transaction, at most one per recipient and channel."""

from __future__ import annotations

from collections.abc import Mapping

from functions.notification_api.service import API_NAME, build_service
from shared.intake import EventHandler
from shared.platform import Platform


def build_handlers(platform: Platform) -> Mapping[str, EventHandler]:
    notify = build_service(platform).notify
    return {event.name: notify for event in platform.catalog.consumed_by(API_NAME)}
