"""What the Audit API does with events: every audited event becomes one audit entry, by one mapping."""

from __future__ import annotations

from collections.abc import Mapping

from functions.audit_api.entries import API_NAME
from functions.audit_api.service import build_service
from shared.intake import EventHandler
from shared.platform import Platform


def build_handlers(platform: Platform) -> Mapping[str, EventHandler]:
    record = build_service(platform).record
    return {event.name: record for event in platform.catalog.consumed_by(API_NAME)}
