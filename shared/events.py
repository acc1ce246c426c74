"""One CloudEvents 1.0 envelope for every domain event, and its Pub/Sub encoding.

Structured content mode: the message data is the whole envelope as JSON (so partner teams reading a
pull subscription get one self-describing document); a few envelope fields are copied to message
attributes with the `ce-` prefix so subscriptions can filter on them in production.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from shared.catalog import Catalog, Event, load_catalog
from shared.contracts import PAYLOADS, EventPayload, json_text
from shared.logs import current_traceparent

CONTENT_TYPE = "application/cloudevents+json"
# The envelope, its data and the deepest payload of the catalog fit well within it.
EVENT_MAX_DEPTH = 32
# Ordering keys per tenant: one aggregate always maps to the same key, so its events keep commit order,
# while a tenant's events spread over this many keys (Pub/Sub allows 1 MB/s per key, and a message held
# back on a key holds only that key's share of aggregates). The number of keys stays bounded: Pub/Sub
# keeps state per subscription and key (the emulator a thread each, never released).
ORDERING_SHARDS = 16


def ordering_key(tenant_id: str, subject: str) -> str:
    """`<tenant>/<shard>`: the shard is a stable hash of the aggregate id (Python's hash() is salted)."""
    shard = int.from_bytes(hashlib.blake2b(subject.encode(), digest_size=2).digest(), "big") % ORDERING_SHARDS
    return f"{tenant_id}/{shard:02d}"


# CloudEvents 1.0: an attribute name is lower-case ASCII letters and digits; an extension's value is a
# string, a boolean or an integer in the JSON format (binary, URI and timestamp values are strings).
_ATTRIBUTE_NAME = re.compile(r"^[a-z0-9]{1,64}$")
_STRUCTURED_MEMBERS = frozenset({"data_base64"})  # JSON format members that are not attributes


class CloudEvent(BaseModel):
    """The envelope. Extension attributes beyond ours (`tracestate`, `partitionkey`, `sequence`,
    `dataref`, `sampledrate`, anything else) are accepted, kept and passed on, as CloudEvents 1.0
    requires of consumers: `extensions` lists them."""

    model_config = ConfigDict(
        extra="allow",
        frozen=True,
        json_schema_extra={
            "propertyNames": {"pattern": _ATTRIBUTE_NAME.pattern},
            "additionalProperties": {"type": ["string", "boolean", "integer"]},
        },
    )

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(min_length=1, max_length=128)
    source: str = Field(min_length=1)  # "/apis/<api-slug>" for ours, the other domain's URI for external
    type: str = Field(min_length=1)  # reverse-DNS and versioned, from the catalog
    subject: str = Field(min_length=1)  # the aggregate id
    time: AwareDatetime
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str
    tenantid: str = Field(min_length=1)  # extension: the tenant the event belongs to
    traceparent: str | None = None  # extension (W3C trace context), carried from the request
    aggregateversion: int | None = Field(default=None, ge=0)  # extension: orders events of one aggregate
    data: dict[str, Any]

    @model_validator(mode="after")
    def _valid_extensions(self) -> CloudEvent:
        for name, value in (self.model_extra or {}).items():
            if name in _STRUCTURED_MEMBERS or not _ATTRIBUTE_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid CloudEvents attribute name")
            if not isinstance(value, str | bool | int) or isinstance(value, float):
                raise ValueError(f"extension {name!r} must be a string, boolean or integer")
        return self

    @property
    def extensions(self) -> dict[str, str | bool | int]:
        """Extension attributes other than the ones this platform defines, as received."""
        return dict(self.model_extra or {})

    @property
    def ordering_key(self) -> str:
        return ordering_key(self.tenantid, self.subject)

    def to_message(self) -> tuple[bytes, dict[str, str]]:
        attributes = {
            "content-type": CONTENT_TYPE,
            "ce-id": self.id,
            "ce-type": self.type,
            "ce-tenantid": self.tenantid,
            "ce-subject": self.subject,
        }
        return self.model_dump_json().encode("utf-8"), attributes

    @classmethod
    def from_message(cls, data: bytes) -> CloudEvent:
        # Bounded nesting: a message nested thousands of levels deep is malformed (ValueError, quarantined),
        # never a RecursionError that would be retried until it is dead-lettered.
        return cls.model_validate(json_text.loads(data, max_depth=EVENT_MAX_DEPTH))


def catalog_event_for(payload: EventPayload, catalog: Catalog | None = None) -> Event:
    return (catalog or load_catalog()).event(payload.EVENT_NAME)


def new_event(
    payload: EventPayload,
    *,
    tenant_id: str,
    subject: str,
    source_api_slug: str,
    aggregate_version: int | None = None,
    traceparent: str | None = None,
    event_id: str | None = None,
    time: datetime | None = None,
    source: str | None = None,
) -> CloudEvent:
    """Build the envelope of one event; `source` overrides "/apis/<slug>" for other domains' events."""
    catalog = load_catalog()
    entry = catalog.event(payload.EVENT_NAME)
    return CloudEvent(
        id=event_id or str(uuid.uuid4()),
        source=source or f"/apis/{source_api_slug}",
        type=entry.type,
        subject=subject,
        time=time or datetime.now(UTC),
        dataschema=catalog.schema_uri(entry),
        tenantid=tenant_id,
        # The request's or delivery's trace, so every event it raises joins the same trace.
        traceparent=traceparent if traceparent is not None else current_traceparent(),
        aggregateversion=aggregate_version,
        data=payload.model_dump(mode="json"),
    )


def parse_payload(event: CloudEvent, entry: Event) -> EventPayload:
    """Validate the event's data against its payload model (the schema is generated from it)."""
    return PAYLOADS[entry.name].model_validate(event.data)
