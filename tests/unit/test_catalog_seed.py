"""schemas/catalog.json against the seed domain model: every edge of the seed is in the catalog and no more.

The seed is a markdown export whose multi-valued cells concatenate names without a separator
("Tenant CreatedTenant Deactivated"). `split_names` cuts them by greedy matching against the names of the
first column of every table; names that no table defines (other domains' events, partner APIs) are cut at a
word boundary instead: a lowercase letter, a digit or "API" directly followed by an uppercase letter.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from shared.catalog import EXTERNAL, Catalog, load_catalog

# The domain model export the catalog is derived from, kept beside it so any clone can check it.
SEED = Path(__file__).parents[2] / "schemas" / "domain-model.md"
NONE = "—"
NAME = re.compile(r"[A-Z0-9][A-Za-z0-9]*(?: [A-Z0-9][A-Za-z0-9]*)*")
FALLBACK_CUT = re.compile(r".+?(?:API|[a-z0-9])(?=[A-Z]|$)")
PUBSUB_NAME = re.compile(r"[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}")
FUNCTION_NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}")

Edge = tuple[str, str]


# --------------------------------------------------------------------------------------------------------
# Seed parser
# --------------------------------------------------------------------------------------------------------


def seed_path() -> Path:
    configured = os.environ.get("CMP_SEED_PATH")
    return Path(configured) if configured else SEED


def parse_tables(text: str) -> dict[str, list[list[str]]]:
    """Every markdown table of the seed, keyed by its title ("API Endpoint" from "API Endpoint 10 items")."""
    tables: dict[str, list[list[str]]] = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        title = re.fullmatch(r"(.+?) \d+ items?", line.strip())
        if not title or i + 1 >= len(lines) or not lines[i + 1].startswith("|"):
            continue
        rows = []
        for row in lines[i + 3 :]:  # skip the header and the |---| separator
            if not row.startswith("|"):
                break
            rows.append([cell.strip() for cell in row.strip().strip("|").split("|")])
        tables[title.group(1)] = rows
    return tables


def split_names(cell: str, known: frozenset[str]) -> list[str]:
    """Cut a concatenated cell into names: the longest known name first, else the word-boundary rule."""
    if cell in ("", NONE):
        return []
    names, i = [], 0
    while i < len(cell):
        candidates = [
            name
            for name in known
            if cell.startswith(name, i) and (i + len(name) == len(cell) or cell[i + len(name)].isupper())
        ]
        if candidates:
            name = max(candidates, key=len)
        else:
            cut = FALLBACK_CUT.match(cell, i)
            assert cut, f"cannot split {cell[i:]!r}"
            name = cut.group(0)
        names.append(name)
        i += len(name)
    return names


@dataclass(frozen=True)
class Seed:
    apis: dict[str, list[str]]  # API Endpoint rows: name -> cells
    events: dict[str, list[str]]  # Domain Event rows: name -> cells
    consumes: dict[str, list[str]]  # API Endpoint col 5: api -> events it consumes
    publishes: dict[str, list[str]]  # API Endpoint col 6: api -> events it publishes
    event_publisher: dict[str, str]  # Domain Event col 3
    event_subscribers: dict[str, list[str]]  # Domain Event col 4: APIs and partners, in the seed's order

    @property
    def partners(self) -> list[str]:
        found = {s for subs in self.event_subscribers.values() for s in subs if s not in self.apis}
        return sorted(found)

    @property
    def external_events(self) -> set[str]:
        return {e for events in self.consumes.values() for e in events} - set(self.event_publisher)

    # Edges as (publisher, event) and (event, subscriber), one set per table.
    def api_table_publish_edges(self) -> set[Edge]:
        return {(api, event) for api, events in self.publishes.items() for event in events}

    def event_table_publish_edges(self) -> set[Edge]:
        return {(api, event) for event, api in self.event_publisher.items() if api not in ("", NONE)}

    def api_table_subscribe_edges(self) -> set[Edge]:
        return {(event, api) for api, events in self.consumes.items() for event in events}

    def event_table_subscribe_edges(self) -> set[Edge]:
        return {(event, sub) for event, subs in self.event_subscribers.items() for sub in subs}


@cache
def load_seed() -> Seed:
    path = seed_path()
    if not path.is_file():
        pytest.fail(f"seed not found at {path}: set CMP_SEED_PATH to the domain model export")
    tables = parse_tables(path.read_text(encoding="utf-8"))
    known = frozenset(row[0] for rows in tables.values() for row in rows)
    apis = {row[0]: row for row in tables["API Endpoint"]}
    events = {row[0]: row for row in tables["Domain Event"]}
    return Seed(
        apis=apis,
        events=events,
        consumes={name: split_names(row[4], known) for name, row in apis.items()},
        publishes={name: split_names(row[5], known) for name, row in apis.items()},
        event_publisher={name: row[2] for name, row in events.items()},
        event_subscribers={name: split_names(row[3], known) for name, row in events.items()},
    )


@pytest.fixture(scope="module")
def seed() -> Seed:
    return load_seed()


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def catalog_publish_edges(catalog: Catalog) -> set[Edge]:
    return {(e.publisher, e.name) for e in catalog.events if not e.is_external}


def catalog_subscribe_edges(catalog: Catalog) -> set[Edge]:
    return {(e.name, s) for e in catalog.events for s in (*e.subscribers, *e.partner_subscribers)}


def duplicates(names: Iterable[str]) -> list[str]:
    return sorted(name for name, count in Counter(names).items() if count > 1)


# --------------------------------------------------------------------------------------------------------
# The parser itself
# --------------------------------------------------------------------------------------------------------


def test_split_names_prefers_the_longest_known_name_and_falls_back_to_word_boundaries() -> None:
    known = frozenset({"Webhook Failed", "Webhook Delivered", "Notification API", "Access Control API"})
    assert split_names("Webhook Delivery FailedWebhook Failed", known) == [
        "Webhook Delivery Failed",
        "Webhook Failed",
    ]
    assert split_names("SLO Breach DetectedWebhook Delivered", known) == [
        "SLO Breach Detected",
        "Webhook Delivered",
    ]
    assert split_names("Subscription APIAnalytics Query APIAccess Control API", known) == [
        "Subscription API",
        "Analytics Query API",
        "Access Control API",
    ]
    assert split_names(NONE, known) == []


def test_every_seed_name_is_well_formed(seed: Seed) -> None:
    cells = [*seed.consumes.values(), *seed.publishes.values(), *seed.event_subscribers.values()]
    malformed = sorted({name for names in cells for name in names if not NAME.fullmatch(name)})
    assert not malformed, f"the splitter produced malformed names: {malformed}"
    assert len(seed.apis) == 10
    assert len(seed.events) == 20


# --------------------------------------------------------------------------------------------------------
# Catalog == seed
# --------------------------------------------------------------------------------------------------------


def test_every_publisher_edge_of_both_tables_and_no_other(seed: Seed, catalog: Catalog) -> None:
    ours = catalog_publish_edges(catalog)
    assert seed.api_table_publish_edges() - ours == set(), "API Endpoint table: published events missing"
    assert seed.event_table_publish_edges() - ours == set(), "Domain Event table: publishers missing"
    assert ours - (seed.api_table_publish_edges() | seed.event_table_publish_edges()) == set()


def test_every_subscriber_edge_of_both_tables_and_no_other(seed: Seed, catalog: Catalog) -> None:
    ours = catalog_subscribe_edges(catalog)
    assert seed.api_table_subscribe_edges() - ours == set(), "API Endpoint table: consumed events missing"
    assert seed.event_table_subscribe_edges() - ours == set(), "Domain Event table: subscribers missing"
    assert ours - (seed.api_table_subscribe_edges() | seed.event_table_subscribe_edges()) == set()


def test_both_tables_agree(seed: Seed) -> None:
    """Not required by the catalog (it holds the union) but reported: a disagreement is a seed question."""
    internal_subscriptions = {
        (event, sub) for event, sub in seed.event_table_subscribe_edges() if sub in seed.apis
    }
    assert seed.api_table_publish_edges() == seed.event_table_publish_edges()
    assert {
        edge for edge in seed.api_table_subscribe_edges() if edge[0] in seed.events
    } == internal_subscriptions


def test_internal_and_external_events(seed: Seed, catalog: Catalog) -> None:
    internal = {e.name for e in catalog.events if not e.is_external}
    external = {e.name for e in catalog.events if e.is_external}
    assert internal == set(seed.events)
    assert external == seed.external_events
    assert (len(internal), len(external)) == (20, 22)
    for event in catalog.events:
        if event.is_external:
            assert event.publisher == EXTERNAL
            assert event.partner_subscribers == ()
        else:
            assert event.publisher == seed.event_publisher[event.name]


def test_subscribers_are_in_the_seed_order(seed: Seed, catalog: Catalog) -> None:
    for event in catalog.events:
        consumers = [api for api in seed.apis if event.name in seed.consumes[api]]  # API table order
        listed = seed.event_subscribers.get(event.name, [])
        expected = [s for s in listed if s in seed.apis]
        expected += [api for api in consumers if api not in expected]
        assert list(event.subscribers) == expected, event.name
        assert list(event.partner_subscribers) == [s for s in listed if s not in seed.apis], event.name


def test_apis_and_partners_match_the_seed(seed: Seed, catalog: Catalog) -> None:
    assert [api.name for api in catalog.apis] == sorted(seed.apis)
    for api in catalog.apis:
        row = seed.apis[api.name]
        assert api.status == row[1], api.name
        assert api.subsystem == row[2], api.name
        assert api.slug == api.name.lower().replace(" ", "-")
        assert api.module == api.slug.replace("-", "_")
    assert [p.name for p in catalog.partners] == seed.partners == ["Analytics Query API", "Subscription API"]
    assert [p.slug for p in catalog.partners] == ["analytics-query-api", "subscription-api"]


def test_event_fields_follow_the_naming_rules(catalog: Catalog) -> None:
    names = [e.name for e in catalog.events]
    assert names == sorted(names), "events are sorted by name"
    for event in catalog.events:
        slug = event.name.lower().replace(" ", "-")
        assert event.slug == slug
        assert event.topic == slug
        assert event.version == 1
        assert event.type == f"{catalog.type_prefix}.{slug.replace('-', '.')}.v{event.version}"
        assert event.schema_path == f"events/{slug}/v{event.version}.json"
        assert event.aggregate is not None, event.name
        assert re.fullmatch(r"[A-Z][A-Za-z]+", event.aggregate), event.name
        assert len(set(event.subscribers)) == len(event.subscribers), event.name
        assert len(set(event.partner_subscribers)) == len(event.partner_subscribers), event.name


# --------------------------------------------------------------------------------------------------------
# Derived resource names
# --------------------------------------------------------------------------------------------------------


def test_derived_names_are_unique_and_valid(catalog: Catalog) -> None:
    topics = [e.topic for e in catalog.events] + [api.dead_letter_topic for api in catalog.apis]
    subscriptions = [e.push_subscription(catalog.api(name)) for e in catalog.events for name in e.subscribers]
    subscriptions += [
        e.partner_subscription(p)
        for e in catalog.events
        for p in catalog.partners
        if p.name in e.partner_subscribers
    ]
    subscriptions += [api.dead_letter_subscription for api in catalog.apis]
    functions = [api.http_function for api in catalog.apis] + [api.events_function for api in catalog.apis]
    types = [e.type for e in catalog.events]
    schema_paths = [e.schema_path for e in catalog.events]

    for kind, names in {
        "topics": topics,
        "subscriptions": subscriptions,
        "functions": functions,
        "types": types,
        "schema paths": schema_paths,
    }.items():
        assert duplicates(names) == [], f"duplicate {kind}"
    assert [n for n in topics + subscriptions if not PUBSUB_NAME.fullmatch(n) or n.startswith("goog")] == []
    assert [n for n in functions if not FUNCTION_NAME.fullmatch(n)] == []
    assert (
        len(subscriptions)
        == sum(len(e.subscribers) + len(e.partner_subscribers) for e in catalog.events) + 10
    )


def test_catalog_lookups(catalog: Catalog) -> None:
    tenant_api = catalog.api("Tenant API")
    assert catalog.api_by_module("tenant_api") == tenant_api
    assert [e.name for e in catalog.published_by("Tenant API")] == [
        "Tenant Created",
        "Tenant Deactivated",
        "Tenant Reactivated",
        "Tenant Suspended",
    ]
    assert [e.name for e in catalog.consumed_by("Tenant API")] == [
        "Payment Failed",
        "Plan Upgraded",
        "Subscription Cancelled",
    ]
    created = catalog.event("Tenant Created")
    assert catalog.event_by_type("com.cmp.tenant.created.v1") == created
    assert catalog.schema_uri(created) == "https://schemas.cmp.example/events/tenant-created/v1.json"
