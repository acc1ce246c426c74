"""What the Workflow API does with events: each consumed event is stored (for dry runs) and starts a
run of every active workflow it fires; Onboarding Started also installs the built-in workflows."""

from __future__ import annotations

from collections.abc import Mapping

from functions.workflow_api.service import API_NAME, build_service
from shared.intake import EventHandler
from shared.platform import Platform


def build_handlers(platform: Platform) -> Mapping[str, EventHandler]:
    on_event = build_service(platform).on_event
    return {event.name: on_event for event in platform.catalog.consumed_by(API_NAME)}
