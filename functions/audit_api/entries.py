"""One audit entry per audited event, by ONE generic mapping. Pure: no I/O, no clients.

The catalog says what happened to which aggregate (the event's slug and aggregate, the envelope's
subject); the payload says who did it (`actor`, when a person or service caused it) and the details.
Only the outcome needs a table: the events that record a failure.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from functions.audit_api.chain import DETAILS_DIGEST, details_digest, entry_hash, entry_id
from shared.catalog import Event as CatalogEvent
from shared.catalog import load_catalog
from shared.contracts import Actor, EventPayload
from shared.events import CloudEvent

API_NAME = "Audit API"

# The platform's own trail (tenants/_platform/audit_*, chained and sealed like a tenant's): what must
# outlive a tenant, such as the proof that its data was erased. No tenant id starts with "_".
PLATFORM_SCOPE = "_platform"

# Events that record something that did not succeed; every other audited event is a success.
FAILURE_EVENTS = frozenset({"Webhook Failed", "Notification Bounced"})


def action_of(event: CatalogEvent) -> str:
    return event.slug.replace("-", ".")


@cache
def audited_actions() -> frozenset[str]:
    return frozenset(action_of(e) for e in load_catalog().consumed_by(API_NAME))


def actor_of(envelope: CloudEvent, payload: EventPayload) -> dict[str, Any]:
    actor = getattr(payload, "actor", None)
    if isinstance(actor, Actor):
        return actor.model_dump(mode="json")
    # Nobody deliberately caused it (a detection, a delivery outcome): the publishing system did.
    return {"type": "system", "id": envelope.source}


def audit_entry(
    envelope: CloudEvent, event: CatalogEvent, payload: EventPayload, recorded_at: datetime
) -> dict[str, Any]:
    """The stored entry, hashed and unsealed. Times are UTC so a stored entry re-hashes identically."""
    entry: dict[str, Any] = {
        "id": entry_id(envelope.source, envelope.id),
        "tenant_id": envelope.tenantid,
        "action": action_of(event),
        "actor": actor_of(envelope, payload),
        "target": {"type": event.aggregate, "id": envelope.subject},
        "outcome": "failure" if event.name in FAILURE_EVENTS else "success",
        "occurred_at": envelope.time.astimezone(UTC),
        "recorded_at": recorded_at.astimezone(UTC),
        "source_event": {"id": envelope.id, "type": envelope.type, "source": envelope.source},
        "details": payload.model_dump(mode="json", exclude={"actor"}),
    }
    return _unsealed(entry)


def _unsealed(entry: dict[str, Any]) -> dict[str, Any]:
    """The entry with its details' digest and its hash, waiting for the next sealed block."""
    entry[DETAILS_DIGEST] = details_digest(entry["details"])
    entry["hash"] = entry_hash(entry)
    entry["sealed"] = False
    entry["block_seq"] = None
    return entry


def platform_entry(
    key: str,
    action: str,
    actor: dict[str, Any],
    target: dict[str, str],
    details: dict[str, Any],
    occurred_at: datetime,
    recorded_at: datetime,
) -> dict[str, Any]:
    """An entry of the platform trail, recorded by a platform service rather than from an event; the
    caller's key makes a repeated record the same entry."""
    entry: dict[str, Any] = {
        "id": entry_id("platform", key),
        "tenant_id": None,
        "action": action,
        "actor": actor,
        "target": target,
        "outcome": "success",
        "occurred_at": occurred_at.astimezone(UTC),
        "recorded_at": recorded_at.astimezone(UTC),
        # What identifies it, as an event's source and id do (verification re-derives the id from it).
        "source_event": {"id": key, "type": action, "source": "platform"},
        "details": details,
    }
    return _unsealed(entry)
