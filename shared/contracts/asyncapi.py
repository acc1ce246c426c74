"""The AsyncAPI 3.0 document of the event interface, generated from schemas/catalog.json.

One channel per topic (one topic per event), its message a CloudEvents 1.0 structured envelope whose
`data` is the event's payload schema (by $ref to schemas/events/), the CloudEvents attributes copied onto
the Pub/Sub message as headers, and an operation per publisher (send) and per subscriber (receive): our
APIs' push subscriptions and the partner teams' pull subscriptions, with their names, ordering key and
dead-letter behaviour. `make schemas` writes it to schemas/asyncapi.json; a test fails when it drifts
and validates it against the official AsyncAPI 3.0 JSON Schema.
"""

from __future__ import annotations

from typing import Any

from shared.catalog import Catalog, Event, load_catalog
from shared.contracts.schemagen import CLOUDEVENT_SCHEMA_PATH

ASYNCAPI_PATH = "asyncapi.json"
ORDERING_KEY = (
    "`<tenant id>/<shard>`: one of 16 shards by a stable hash of the aggregate id (the `subject`), so one "
    "aggregate's events keep commit order while a tenant's events spread over 16 keys."
)
MAX_DELIVERY_ATTEMPTS = 5  # counted by the event intake (CMP_MAX_DELIVERY_ATTEMPTS)
BACKSTOP_ATTEMPTS = 10  # the subscriptions' own Pub/Sub dead-letter policy


def _message_name(event: Event) -> str:
    return "".join(word.capitalize() for word in event.slug.split("-"))


def _headers(event: Event) -> dict[str, Any]:
    return {
        "type": "object",
        "description": "Pub/Sub message attributes: CloudEvents attributes copied from the envelope.",
        "required": ["ce-type", "ce-id", "ce-tenantid", "ce-subject"],
        "properties": {
            "ce-type": {"type": "string", "const": event.type, "description": "CloudEvents `type`."},
            "ce-id": {"type": "string", "description": "CloudEvents `id`: consumers dedupe on it."},
            "ce-tenantid": {"type": "string", "description": "CloudEvents extension `tenantid`."},
            "ce-subject": {
                "type": "string",
                "description": f"CloudEvents `subject`: the id of the {event.aggregate or 'aggregate'}.",
            },
        },
    }


def _message(catalog: Catalog, event: Event) -> dict[str, Any]:
    publisher = "another domain" if event.is_external else f"the {event.publisher}"
    return {
        "name": _message_name(event),
        "title": event.name,
        "summary": f"{event.name}, published by {publisher}.",
        "contentType": "application/cloudevents+json",
        "headers": _headers(event),
        "correlationId": {"location": "$message.header#/ce-id"},
        "payload": {
            "description": "A CloudEvents 1.0 structured envelope; `data` follows `dataschema`.",
            "allOf": [
                {"$ref": CLOUDEVENT_SCHEMA_PATH},
                {
                    "type": "object",
                    "properties": {
                        "type": {"const": event.type},
                        "dataschema": {"const": catalog.schema_uri(event)},
                        "data": {"$ref": event.schema_path},
                    },
                },
            ],
        },
        "bindings": {
            "googlepubsub": {"bindingVersion": "0.2.0", "orderingKey": ORDERING_KEY},
        },
        "x-cloudevents-type": event.type,
    }


def _receive(event: Event, subscriber: str, subscription: str, description: str) -> dict[str, Any]:
    return {
        "action": "receive",
        "channel": {"$ref": f"#/channels/{event.slug}"},
        "messages": [{"$ref": f"#/channels/{event.slug}/messages/{_message_name(event)}"}],
        "summary": f"The {subscriber} receives {event.name}.",
        "description": description,
        "x-subscriber": subscriber,
        "x-subscription": subscription,
        "x-ordering-key": True,
    }


def _operations(catalog: Catalog, event: Event) -> dict[str, Any]:
    channel, message = event.slug, _message_name(event)
    ref = [{"$ref": f"#/channels/{channel}/messages/{message}"}]
    operations: dict[str, Any] = {}
    if not event.is_external:
        api = catalog.api(event.publisher)
        operations[f"{api.slug}.publish.{event.slug}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel}"},
            "messages": ref,
            "summary": f"The {api.name} publishes {event.name}.",
            "description": "Written to the transactional outbox with the aggregate's change and published "
            "after the commit; the outbox relay republishes what a crash left, so delivery is at least "
            "once: dedupe on `ce-id` (with `source`).",
            "x-publisher": api.name,
        }
    for name in event.subscribers:
        api = catalog.api(name)
        subscription = event.push_subscription(api)
        operations[f"{api.slug}.receive.{event.slug}"] = _receive(
            event,
            api.name,
            subscription,
            f"Push subscription `{subscription}` to the `{api.events_function}` function. A handler "
            f"that fails is retried; after {MAX_DELIVERY_ATTEMPTS} attempts the event is parked on "
            f"`{api.dead_letter_topic}` (and acknowledged). A malformed message is quarantined. The "
            f"subscription's own dead-letter policy ({BACKSTOP_ATTEMPTS} attempts) is a backstop.",
        ) | {"x-dead-letter-topic": api.dead_letter_topic}
    partners = {partner.name: partner for partner in catalog.partners}
    for name in event.partner_subscribers:
        partner = partners[name]
        subscription = event.partner_subscription(partner)
        operations[f"{partner.slug}.pull.{event.slug}"] = _receive(
            event,
            partner.name,
            subscription,
            f"Pull subscription `{subscription}`, with message ordering on the ordering key, and a "
            f"dead-letter policy of {BACKSTOP_ATTEMPTS} delivery attempts. Delivery is at least once: "
            "dedupe on `ce-id`.",
        )
    return operations


def document(catalog: Catalog | None = None) -> dict[str, Any]:
    catalog = catalog or load_catalog()
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for event in sorted(catalog.events, key=lambda e: e.slug):
        name = _message_name(event)
        channels[event.slug] = {
            "address": event.topic,
            "title": event.name,
            "description": f"The Pub/Sub topic of {event.name} (`{event.type}`), one topic per event type.",
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        }
        operations.update(_operations(catalog, event))
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Customer Management platform events",
            "version": str(catalog.version),
            "description": "Every domain event on Pub/Sub, generated from schemas/catalog.json. Payloads "
            "are the JSON Schemas under schemas/events/; publishers are `send` operations, our APIs' push "
            "subscriptions and the partner teams' pull subscriptions `receive` operations.",
        },
        "defaultContentType": "application/cloudevents+json",
        "servers": {
            "production": {
                "host": "pubsub.googleapis.com",
                "protocol": "googlepubsub",
                "description": "Google Cloud Pub/Sub of the deployment's project.",
            }
        },
        "channels": channels,
        "operations": dict(sorted(operations.items())),
        "components": {
            "messages": {
                _message_name(event): _message(catalog, event)
                for event in sorted(catalog.events, key=lambda e: e.slug)
            }
        },
    }
