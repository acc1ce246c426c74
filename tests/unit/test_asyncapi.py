"""The AsyncAPI 3.0 document of the event interface: valid against the official AsyncAPI JSON Schema
(npm @asyncapi/specs, pinned in tools/contracts/), checked in, and one-to-one with the catalog."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator

from shared.catalog import load_catalog, schemas_dir
from shared.contracts.asyncapi import ASYNCAPI_PATH, document
from shared.contracts.eventspage import EVENTS_PAGE_PATH, handler_tables, render_page
from shared.contracts.schemagen import render

TOOLS = Path(__file__).resolve().parents[2] / "tools" / "contracts"
SPEC = TOOLS / "node_modules" / "@asyncapi" / "specs" / "schemas" / "3.0.0.json"
CATALOG = load_catalog()
DOC = document(CATALOG)


def official_schema() -> dict[str, Any]:
    if not SPEC.is_file():
        if shutil.which("npm") is None:
            pytest.skip("npm is missing: install Node.js 20+ and npm to validate against @asyncapi/specs")
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=TOOLS, check=True, timeout=300
        )
    schema: dict[str, Any] = json.loads(SPEC.read_text(encoding="utf-8"))
    return schema


def test_the_document_is_valid_asyncapi_3() -> None:
    errors = sorted(Draft7Validator(official_schema()).iter_errors(DOC), key=lambda e: list(e.path))
    assert errors == [], [f"{list(e.path)}: {e.message}" for e in errors[:5]]


def test_the_checked_in_document_matches_the_catalog() -> None:
    path = schemas_dir() / ASYNCAPI_PATH
    assert path.read_text(encoding="utf-8") == render(DOC), (
        "schemas/asyncapi.json drifted: run `make schemas`"
    )


def test_the_official_schema_refuses_a_broken_document() -> None:
    broken = json.loads(json.dumps(DOC))
    next(iter(broken["operations"].values()))["action"] = "publish"  # AsyncAPI 2's word, not 3's
    assert not Draft7Validator(official_schema()).is_valid(broken)


def test_every_event_has_a_channel_and_every_edge_of_the_catalog_an_operation() -> None:
    assert {c["address"] for c in DOC["channels"].values()} == {e.topic for e in CATALOG.events}
    edges = set()
    for event in CATALOG.events:
        if not event.is_external:
            edges.add(("send", event.publisher, event.slug))
        edges |= {("receive", name, event.slug) for name in [*event.subscribers, *event.partner_subscribers]}
    found = {
        (op["action"], op.get("x-publisher") or op["x-subscriber"], op["channel"]["$ref"].rsplit("/", 1)[1])
        for op in DOC["operations"].values()
    }
    assert found == edges


def test_payloads_reference_the_checked_in_event_schemas() -> None:
    for message in DOC["components"]["messages"].values():
        data_ref = message["payload"]["allOf"][1]["properties"]["data"]["$ref"]
        assert (schemas_dir() / data_ref).is_file(), data_ref


def test_partner_pull_subscriptions_are_named() -> None:
    partners = {p.name for p in CATALOG.partners}
    pulls = {op["x-subscription"] for op in DOC["operations"].values() if op.get("x-subscriber") in partners}
    expected = {
        e.partner_subscription(p)
        for e in CATALOG.events
        for p in CATALOG.partners
        if p.name in e.partner_subscribers
    }
    assert pulls == expected
    assert expected, "the catalog has partner subscriptions"


def test_the_events_page_is_generated_and_every_subscriber_has_its_handler() -> None:
    page = (schemas_dir() / EVENTS_PAGE_PATH).read_text(encoding="utf-8")
    assert page == render_page(CATALOG), "schemas/EVENTS.md drifted: run `make schemas`"
    tables = handler_tables()
    missing = [(e.name, api) for e in CATALOG.events for api in e.subscribers if e.name not in tables[api]]
    assert missing == []
