"""Every event every served API consumes, delivered twice through the real push endpoint: the second
delivery is recognised and changes nothing."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import requests

from emulators.suite import Suite
from functions.manifest import discover
from shared.auth import sign_local_service_token
from shared.catalog import load_catalog, schemas_dir
from shared.contracts import PAYLOADS
from shared.events import new_event
from tests.conftest import dump_firestore, push_body, quiescent, store_tenant

CATALOG = load_catalog()
SERVED = {spec.name for spec in discover()}
EDGES = [
    (api, event)
    for api in CATALOG.apis
    if api.events_function in SERVED
    for event in CATALOG.consumed_by(api.name)
]


def example(event_name: str, tenant_id: str) -> dict[str, Any]:
    schema = json.loads((schemas_dir() / CATALOG.event(event_name).schema_path).read_text())
    payload: dict[str, Any] = dict(schema["examples"][0])
    if "tenant_id" in payload:
        payload["tenant_id"] = tenant_id
    return payload


SUBSCRIBERS = sorted({api.name: api for api, _ in EDGES}.values(), key=lambda api: api.slug)


@pytest.mark.usefixtures("paused_sealing")
@pytest.mark.parametrize("api", SUBSCRIBERS, ids=[api.slug for api in SUBSCRIBERS])
def test_a_second_delivery_changes_nothing(
    api: Any, db: Any, clean: Suite, subtests: pytest.Subtests
) -> None:
    """Every event the API consumes, each for a tenant of its own, is delivered once; once all of their
    consequences have settled, each is delivered again: every second delivery is recognised as a duplicate,
    and the database is exactly as it was."""
    token = sign_local_service_token(
        clean.signing_key, f"pubsub-push@{clean.project}.iam.gserviceaccount.com"
    )
    url = f"{clean.function_url(api.events_function)}?token={token}"
    bodies: dict[str, dict[str, Any]] = {}
    tenants: list[str] = []
    for event in CATALOG.consumed_by(api.name):
        tenant = store_tenant(f"dup-{event.slug}"[:63])
        tenants.append(tenant["id"])
        payload = PAYLOADS[event.name].model_validate(example(event.name, tenant["id"]))
        envelope = new_event(
            payload,
            tenant_id=tenant["id"],
            subject=tenant["id"],
            source_api_slug="test",
            source="//test.example/producer" if event.is_external else None,
        )
        body = push_body(
            envelope.model_dump_json(), str(uuid.uuid4()), f"projects/p/subscriptions/{event.topic}"
        )
        first = requests.post(url, json=body, timeout=30)
        assert first.status_code == 200 and first.json()["result"] == "processed", (event.name, first.text)
        bodies[event.slug] = body
    before = quiescent(db, tenant_id=tenants, timeout=90)
    for slug, body in bodies.items():
        with subtests.test(slug):
            # A republish by the outbox relay carries a new message id: dedupe must key on the CloudEvent.
            body["message"]["messageId"] = str(uuid.uuid4())
            second = requests.post(url, json=body, timeout=30)
            assert second.status_code == 200 and second.json()["result"] == "duplicate", second.text
    assert dump_firestore(db, tenants) == before
