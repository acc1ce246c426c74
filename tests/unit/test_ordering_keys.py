"""Pub/Sub ordering keys: one aggregate keeps one key (its events stay in commit order), and a tenant's
keys are few and spread evenly."""

from __future__ import annotations

from collections import Counter

from shared.events import ORDERING_SHARDS, ordering_key


def test_an_aggregate_always_has_the_same_key_and_it_names_its_tenant() -> None:
    assert ordering_key("t_1", "con_abc") == ordering_key("t_1", "con_abc")
    assert ordering_key("t_1", "con_abc").startswith("t_1/")
    assert ordering_key("t_2", "con_abc").startswith("t_2/")


def test_a_tenants_aggregates_spread_over_a_bounded_number_of_keys() -> None:
    keys = Counter(ordering_key("t_1", f"con_{i:06d}") for i in range(16_000))
    assert len(keys) == ORDERING_SHARDS
    assert max(keys.values()) < 2 * min(keys.values())
