"""The event contracts: payload models, the checked-in JSON Schemas generated from them, and the envelope.

A consumer in another team validates with the JSON Schema, a function of ours with the pydantic model:
both must accept the documented examples and reject the same broken payloads.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from shared.catalog import Event, load_catalog, schemas_dir
from shared.contracts import PAYLOADS, Actor, EventPayload
from shared.contracts.schemagen import (
    CLOUDEVENT_SCHEMA_PATH,
    GENERATED_DIRS,
    JSON_SCHEMA_DIALECT,
    generate,
    render,
)
from shared.events import CloudEvent, new_event, parse_payload

SCHEMAS = schemas_dir()
CATALOG = load_catalog()
EVENTS = {event.name: event for event in CATALOG.events}
TENANT_ID = "tnt_7Hc2kQ9x"


def load_schema(relative: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / relative).read_text(encoding="utf-8"))
    return schema


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def examples(event: Event) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = load_schema(event.schema_path).get("examples", [])
    return found


def camel_case(name: str) -> str:
    return "".join(word.capitalize() for word in name.split())


# --------------------------------------------------------------------------------------------------------
# Generated files
# --------------------------------------------------------------------------------------------------------


GENERATED = generate()


@pytest.mark.parametrize("relative", sorted(GENERATED))
def test_checked_in_schema_matches_the_models(relative: str) -> None:
    schema = GENERATED[relative]
    path = SCHEMAS / relative
    assert path.is_file(), f"{relative} is missing: run `make schemas`"
    assert path.read_text(encoding="utf-8") == render(schema), (
        f"{relative} drifted from the models: run `make schemas`"
    )


def test_no_stray_schema_files() -> None:
    generated = {SCHEMAS / relative for relative in GENERATED}
    on_disk = {p for folder in GENERATED_DIRS for p in (SCHEMAS / folder).rglob("*.json")}
    assert on_disk - generated == set(), "schema files that no catalog event owns: run `make schemas`"


def test_catalog_events_models_and_schema_files_are_one_to_one() -> None:
    assert set(PAYLOADS) == set(EVENTS)
    on_disk = {p.relative_to(SCHEMAS).as_posix() for p in (SCHEMAS / "events").glob("*/v*.json")}
    assert on_disk == {event.schema_path for event in CATALOG.events}
    for name, model in PAYLOADS.items():
        assert issubclass(model, EventPayload)
        assert name == model.EVENT_NAME
        assert model.__name__ == camel_case(name), f"{model.__name__} should be named {camel_case(name)}"
        assert model.__doc__, f"{model.__name__} needs a docstring saying what happened"
        assert model.model_config.get("extra") == "forbid"
        assert model.model_config.get("frozen") is True


@pytest.mark.parametrize("event", CATALOG.events, ids=lambda e: e.slug)
def test_schema_headers(event: Event) -> None:
    schema = load_schema(event.schema_path)
    assert schema["$schema"] == JSON_SCHEMA_DIALECT
    assert schema["$id"] == CATALOG.schema_uri(event)
    assert schema["title"] == event.name
    assert schema["x-cloudevents-type"] == event.type
    assert schema["additionalProperties"] is False
    assert schema["description"]


def test_cloudevent_schema_header() -> None:
    schema = load_schema(CLOUDEVENT_SCHEMA_PATH)
    assert schema["$schema"] == JSON_SCHEMA_DIALECT
    assert schema["$id"] == f"{CATALOG.schema_base_uri}/{CLOUDEVENT_SCHEMA_PATH}"
    validator(schema)


# --------------------------------------------------------------------------------------------------------
# Examples: valid for the schema and for the model, and complete
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("event", CATALOG.events, ids=lambda e: e.slug)
def test_examples_validate_and_round_trip(event: Event) -> None:
    check = validator(load_schema(event.schema_path))
    model = PAYLOADS[event.name]
    assert examples(event), f"{event.name} has no example"
    for example in examples(event):
        check.validate(example)
        payload = model.model_validate(example)
        assert payload.model_dump(mode="json") == example, "examples list every field, as the model dumps it"
        assert model.model_validate_json(payload.model_dump_json()) == payload


@pytest.mark.parametrize("event", CATALOG.events, ids=lambda e: e.slug)
def test_unknown_field_is_rejected_by_schema_and_model(event: Event) -> None:
    check = validator(load_schema(event.schema_path))
    broken = {**examples(event)[0], "unexpected": "x"}
    assert not check.is_valid(broken)
    with pytest.raises(ValidationError, match=r"extra_forbidden|Extra inputs"):
        PAYLOADS[event.name].model_validate(broken)


@pytest.mark.parametrize("event", CATALOG.events, ids=lambda e: e.slug)
def test_missing_required_field_is_rejected_by_schema_and_model(event: Event) -> None:
    schema = load_schema(event.schema_path)
    check = validator(schema)
    model = PAYLOADS[event.name]
    required = schema["required"]
    assert required == [name for name, field in model.model_fields.items() if field.is_required()]
    example = examples(event)[0]
    for field in required:
        broken = {k: v for k, v in example.items() if k != field}
        assert not check.is_valid(broken), field
        with pytest.raises(ValidationError, match="missing"):
            model.model_validate(broken)


@pytest.mark.parametrize("event", CATALOG.events, ids=lambda e: e.slug)
def test_payloads_are_immutable(event: Event) -> None:
    payload = PAYLOADS[event.name].model_validate(examples(event)[0])
    field = next(iter(PAYLOADS[event.name].model_fields))
    with pytest.raises(ValidationError, match="frozen"):
        setattr(payload, field, None)


def test_some_constraints_hold_in_both() -> None:
    cases: list[tuple[str, dict[str, Any]]] = [
        ("Tenant Created", {"plan": "platinum"}),
        ("Tenant Created", {"seat_limit": 0}),
        ("Tenant Created", {"admin_email": "not-an-email"}),
        ("Tenant Created", {"slug": "Acme Corp"}),
        ("Tenant Suspended", {"reason": ""}),
        ("Tenant Suspended", {"reason": "x" * 501}),
        ("Tenant Deactivated", {"retention_until": "2025-06-30T00:00:00"}),  # no offset
        ("Tenant Deactivated", {"retention_until": "30/06/2025"}),
        ("Payment Failed", {"currency": "eur"}),
        ("Payment Failed", {"amount_cents": -1}),
        ("Payment Failed", {"attempt": 0}),
        ("Audit Alert Triggered", {"severity": "urgent"}),
        ("Health Score Changed", {"score": 101}),
        ("Contact Updated", {"changes": {}}),
        ("Tenant Created", {"actor": {"type": "robot", "id": "x", "email": None}}),
    ]
    for name, change in cases:
        event = EVENTS[name]
        broken = {**examples(event)[0], **change}
        with pytest.raises(ValidationError):
            PAYLOADS[name].model_validate(broken)
        assert not validator(load_schema(event.schema_path)).is_valid(broken), (name, change)


# --------------------------------------------------------------------------------------------------------
# The contract other teams code against now
# --------------------------------------------------------------------------------------------------------


FIXED_FIELDS = {
    "Tenant Created": ["tenant_id", "name", "slug", "plan", "seat_limit", "admin_email", "actor"],
    "Tenant Suspended": ["tenant_id", "reason", "actor"],
    "Tenant Reactivated": ["tenant_id", "actor"],
    "Tenant Deactivated": ["tenant_id", "reason", "retention_until", "actor"],
    "Audit Alert Triggered": [
        "alert_id",
        "rule_id",
        "rule_name",
        "severity",
        "summary",
        "entry_ids",
        "actor_id",
    ],
    "Payment Failed": ["tenant_id", "invoice_id", "amount_cents", "currency", "attempt", "final"],
    "Plan Upgraded": ["tenant_id", "previous_plan", "new_plan", "effective_at"],
    "Subscription Cancelled": ["tenant_id", "subscription_id", "reason", "effective_at"],
}


@pytest.mark.parametrize(("name", "fields"), FIXED_FIELDS.items())
def test_agreed_fields(name: str, fields: list[str]) -> None:
    assert list(PAYLOADS[name].model_fields) == fields


def test_events_caused_by_a_person_or_service_carry_an_actor() -> None:
    for name in ("Tenant Created", "Tenant Suspended", "Tenant Reactivated", "Tenant Deactivated"):
        assert PAYLOADS[name].model_fields["actor"].annotation is Actor
    internal_without_actor = sorted(
        e.name for e in CATALOG.events if not e.is_external and "actor" not in PAYLOADS[e.name].model_fields
    )
    # Observed by the platform, not caused: an alert rule, a computed score, delivery outcomes.
    assert internal_without_actor == [
        "Audit Alert Triggered",
        "Health Score Changed",
        "Notification Bounced",
        "Webhook Delivered",
        "Webhook Failed",
    ]


# --------------------------------------------------------------------------------------------------------
# The envelope
# --------------------------------------------------------------------------------------------------------


def subject_of(event: Event, example: dict[str, Any]) -> str:
    """The aggregate id: the first `<aggregate>_id`-like field of the example, else its first id field."""
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", event.aggregate or "").lower()
    for key in (f"{snake}_id", "tenant_id" if event.aggregate == "Tenant" else ""):
        if key in example:
            return str(example[key])
    return str(next(v for k, v in example.items() if k.endswith("_id") and isinstance(v, str)))


@pytest.mark.parametrize("event", CATALOG.events, ids=lambda e: e.slug)
def test_envelope_of_each_example_validates(event: Event) -> None:
    envelope_check = validator(load_schema(CLOUDEVENT_SCHEMA_PATH))
    example = examples(event)[0]
    payload = PAYLOADS[event.name].model_validate(example)
    source = "external" if event.is_external else CATALOG.api(event.publisher).slug
    envelope = new_event(
        payload,
        tenant_id=TENANT_ID,
        subject=subject_of(event, example),
        source_api_slug=source,
        aggregate_version=3,
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )
    document = json.loads(envelope.to_message()[0])
    envelope_check.validate(document)
    assert document["type"] == event.type
    assert document["dataschema"] == load_schema(event.schema_path)["$id"]
    assert document["data"] == example
    validator(load_schema(event.schema_path)).validate(document["data"])

    received = CloudEvent.from_message(json.dumps(document).encode())
    assert received == envelope
    assert parse_payload(received, event) == payload


def test_envelope_schema_rejects_a_broken_envelope() -> None:
    check = validator(load_schema(CLOUDEVENT_SCHEMA_PATH))
    event = EVENTS["Tenant Created"]
    good = json.loads(
        new_event(
            PAYLOADS[event.name].model_validate(examples(event)[0]),
            tenant_id=TENANT_ID,
            subject=TENANT_ID,
            source_api_slug="tenant-api",
        ).to_message()[0]
    )
    check.validate(good)
    for field in ("id", "type", "source", "tenantid", "data"):
        assert not check.is_valid({k: v for k, v in good.items() if k != field}), field
    assert not check.is_valid({**good, "specversion": "0.3"})
    assert not check.is_valid({**good, "Not-An-Attribute": 1})
    assert not check.is_valid({**good, "vendorthing": {"nested": 1}})
    # CloudEvents extensions are part of a valid envelope.
    check.validate({**good, "tracestate": "a=b", "sampledrate": 10, "vendorflag": True})


def test_schemas_dir_is_beside_shared() -> None:
    assert Path(__file__).resolve().parents[2] / "schemas" == SCHEMAS
