"""CloudEvents 1.0 extension attributes: accepted, kept through the Pub/Sub encoding, validated."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from shared.events import CloudEvent

BASE: dict[str, Any] = {
    "specversion": "1.0",
    "id": "e1",
    "source": "//billing.example/subscriptions",
    "type": "com.cmp.billing.plan.upgraded.v1",
    "subject": "t1",
    "time": "2026-03-01T10:00:00Z",
    "dataschema": "https://schemas.cmp.example/events/plan-upgraded/v1.json",
    "tenantid": "t1",
    "data": {"k": "v"},
}
STANDARD = {
    "tracestate": "rojo=00f067aa0ba902b7",
    "partitionkey": "tenant-1",
    "sequence": "000042",
    "dataref": "https://billing.example/data/1",
    "sampledrate": 10,
    "x1vendorflag": True,
}


def test_standard_and_vendor_extensions_are_accepted_and_kept() -> None:
    event = CloudEvent.model_validate({**BASE, **STANDARD})
    assert event.extensions == STANDARD
    data, _ = event.to_message()
    again = CloudEvent.from_message(data)
    assert again == event and again.extensions == STANDARD
    assert {k: v for k, v in json.loads(data).items() if k in STANDARD} == STANDARD


def test_our_own_attributes_are_not_extensions() -> None:
    event = CloudEvent.model_validate({**BASE, "traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"})
    assert event.extensions == {}


@pytest.mark.parametrize("name", ["Trace-State", "trace_state", "", "é", "data_base64", "a" * 65])
def test_an_invalid_attribute_name_is_refused(name: str) -> None:
    with pytest.raises(ValidationError):
        CloudEvent.model_validate({**BASE, name: "x"})


@pytest.mark.parametrize("value", [{"a": 1}, [1, 2], 1.5, None])
def test_an_extension_value_must_be_a_string_boolean_or_integer(value: Any) -> None:
    with pytest.raises(ValidationError):
        CloudEvent.model_validate({**BASE, "vendorthing": value})


def test_a_message_nested_thousands_of_levels_deep_is_malformed_not_a_crash() -> None:
    deep = ("[" * 5000 + "]" * 5000).encode()
    envelope = b'{"specversion": "1.0", "id": "x", "source": "/s", "type": "t", "data": ' + deep + b"}"
    with pytest.raises(ValueError, match="deep"):
        CloudEvent.from_message(envelope)
