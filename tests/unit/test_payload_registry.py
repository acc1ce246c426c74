"""Payload models register themselves by declaring EVENT_NAME: there is no list to keep in step."""

from __future__ import annotations

import pytest

from shared.catalog import load_catalog
from shared.contracts import PAYLOADS, EventPayload, TenantCreated


def test_every_catalog_event_has_exactly_its_model() -> None:
    assert set(PAYLOADS) == {event.name for event in load_catalog().events}
    assert all(name == model.EVENT_NAME for name, model in PAYLOADS.items())
    assert PAYLOADS["Tenant Created"] is TenantCreated


def test_a_second_model_for_the_same_event_is_refused() -> None:
    with pytest.raises(TypeError, match="both declare 'Tenant Created'"):

        class Impostor(EventPayload):
            EVENT_NAME = "Tenant Created"
