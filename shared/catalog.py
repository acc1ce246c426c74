"""The event catalog (schemas/catalog.json): the seed's publisher/subscriber topology as data.

Everything that names a topic, a subscription, a dead-letter topic or a function derives the name here,
so the local suite, the tests and Terraform read one list.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict

EXTERNAL = "external"


def schemas_dir() -> Path:
    """schemas/ beside shared/: true in the repository and in every built function artifact."""
    return Path(__file__).resolve().parent.parent / "schemas"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Api(_Frozen):
    name: str  # exactly as the seed writes it, e.g. "Tenant API"
    slug: str  # e.g. "tenant-api"
    module: str  # Python package under functions/, e.g. "tenant_api"
    subsystem: str
    status: str

    @property
    def http_function(self) -> str:
        return self.module

    @property
    def events_function(self) -> str:
        return f"{self.module}_events"

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.slug}--dead-letter"

    @property
    def dead_letter_subscription(self) -> str:
        return f"{self.slug}--dead-letter--inspect"


class Partner(_Frozen):
    name: str  # e.g. "Analytics Query API": another team's consumer, served by a pull subscription
    slug: str


class Event(_Frozen):
    name: str  # exactly as the seed writes it, e.g. "Tenant Created"
    slug: str  # e.g. "tenant-created"
    topic: str
    type: str  # CloudEvents type, reverse-DNS and versioned: "com.cmp.tenant.created.v1"
    version: int
    publisher: str  # an Api name, or "external" for other domains' events we consume
    subscribers: tuple[str, ...]  # our Api names
    partner_subscribers: tuple[str, ...]  # Partner names
    schema_path: str  # relative to schemas/, e.g. "events/tenant-created/v1.json"
    aggregate: str | None = None

    @property
    def is_external(self) -> bool:
        return self.publisher == EXTERNAL

    def push_subscription(self, api: Api) -> str:
        return f"{self.topic}--{api.slug}"

    def partner_subscription(self, partner: Partner) -> str:
        return f"{self.topic}--{partner.slug}"


class Queue(_Frozen):
    """A Cloud Tasks queue and the function its tasks call; retry and rate settings as deployed."""

    name: str
    target_function: str
    max_attempts: int
    min_backoff_seconds: float
    max_backoff_seconds: float
    max_doublings: int
    max_dispatches_per_second: float
    max_concurrent_dispatches: int


class Catalog(_Frozen):
    version: int
    type_prefix: str
    schema_base_uri: str
    apis: tuple[Api, ...]
    partners: tuple[Partner, ...]
    events: tuple[Event, ...]
    queues: tuple[Queue, ...] = ()

    def api(self, name: str) -> Api:
        for api in self.apis:
            if api.name == name:
                return api
        raise KeyError(f"no API named {name!r} in the catalog")

    def api_by_module(self, module: str) -> Api:
        for api in self.apis:
            if api.module == module:
                return api
        raise KeyError(f"no API with module {module!r} in the catalog")

    def event(self, name: str) -> Event:
        for event in self.events:
            if event.name == name:
                return event
        raise KeyError(f"no event named {name!r} in the catalog")

    def event_by_type(self, ce_type: str) -> Event | None:
        return next((e for e in self.events if e.type == ce_type), None)

    def published_by(self, api_name: str) -> tuple[Event, ...]:
        return tuple(e for e in self.events if e.publisher == api_name)

    def consumed_by(self, api_name: str) -> tuple[Event, ...]:
        return tuple(e for e in self.events if api_name in e.subscribers)

    def queue(self, name: str) -> Queue:
        for queue in self.queues:
            if queue.name == name:
                return queue
        raise KeyError(f"no queue named {name!r} in the catalog")

    def schema_uri(self, event: Event) -> str:
        return f"{self.schema_base_uri}/{event.schema_path}"


@cache
def load_catalog(path: str | None = None) -> Catalog:
    source = Path(path) if path else schemas_dir() / "catalog.json"
    return Catalog.model_validate(json.loads(source.read_text(encoding="utf-8")))
