"""The pure health scoring: weights, tiers, not-applicable renormalization, the window, grades, the
publishing rule, and determinism whatever the order of the signals."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from functions.customer_health_api import domain
from functions.customer_health_api.domain import Factor, Grades, Model, Signal, Tier

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def sig(
    n: int, factor: str, days_ago: float = 1, amount: float = 1.0, state: str | None = None, **kw: Any
) -> Signal:
    return Signal(
        id=f"sig_{n:05d}",
        event_id=f"evt_{n:05d}",
        event_name="x",
        occurred_at=NOW - timedelta(days=days_ago),
        factor=factor,
        amount=amount,
        state=state,
        **kw,
    )


def bounces(count: int, start: int = 0, days_ago: float = 1) -> list[Signal]:
    return [sig(start + i, domain.EMAIL_DELIVERABILITY, days_ago) for i in range(count)]


def test_the_default_model_is_valid_and_its_weights_total_100() -> None:
    model = domain.default_model()
    assert domain.validate(model) == []
    assert sum(f.weight for f in model.factors) == 100


def test_no_signal_at_all_is_healthy_with_every_factor_not_applicable() -> None:
    score = domain.compute([], domain.default_model(), NOW)
    assert (score.score, score.grade) == (100, "healthy")
    assert not any(f.applicable for f in score.factors)


@pytest.mark.parametrize(("count", "points"), [(1, 70), (2, 70), (3, 40), (5, 40), (6, 0)])
def test_tiers_map_the_measure_to_points(count: int, points: int) -> None:
    score = domain.compute(bounces(count), domain.default_model(), NOW)
    factor = next(f for f in score.factors if f.factor == domain.EMAIL_DELIVERABILITY)
    assert factor.measure == count and factor.points == points
    # The only applicable factor carries the whole weight: the score is its points.
    assert factor.effective_weight == 100 and score.score == points


def test_weights_are_renormalized_over_the_applicable_factors() -> None:
    signals = [*bounces(3), sig(100, domain.ACCOUNT_STANDING, 10, state="active")]
    score = domain.compute(signals, domain.default_model(), NOW)
    # deliverability 25 points x 40 and standing 25 points x 100, over 50 applicable points.
    assert score.score == 70
    applicable = {f.factor: f for f in score.factors if f.applicable}
    assert set(applicable) == {domain.EMAIL_DELIVERABILITY, domain.ACCOUNT_STANDING}
    assert applicable[domain.EMAIL_DELIVERABILITY].effective_weight == 50
    assert applicable[domain.EMAIL_DELIVERABILITY].contribution == 20
    assert applicable[domain.ACCOUNT_STANDING].contribution == 50
    assert sum(f.contribution for f in score.factors) == 70


def test_count_factors_only_count_inside_the_window_and_state_factors_keep_their_latest_state() -> None:
    model = domain.default_model()
    old = [*bounces(6, days_ago=31), sig(50, domain.ACCOUNT_STANDING, 200, state="suspended")]
    score = domain.compute(old, model, NOW)
    deliverability = next(f for f in score.factors if f.factor == domain.EMAIL_DELIVERABILITY)
    assert not deliverability.applicable  # nothing in the 30-day window
    assert score.score == 30  # the suspension, however old, still holds
    wider = replace(model, window_days=90)
    assert domain.compute(old, wider, NOW).score < 30


def test_the_latest_state_wins_by_event_time_not_by_list_order() -> None:
    suspended = sig(1, domain.ACCOUNT_STANDING, 5, state="suspended")
    reactivated = sig(2, domain.ACCOUNT_STANDING, 2, state="active")
    assert domain.compute([reactivated, suspended], domain.default_model(), NOW).score == 100
    assert domain.compute([suspended, reactivated], domain.default_model(), NOW).score == 100


def test_onboarding_in_progress_overdue_and_completed() -> None:
    model = domain.default_model()
    started = sig(1, domain.ONBOARDING_PROGRESS, 10, state="started", due_at=NOW + timedelta(days=1))
    assert domain.compute([started], model, NOW).score == 60
    overdue = replace(started, due_at=NOW - timedelta(days=1))
    assert domain.compute([overdue], model, NOW).score == 20
    completed = sig(2, domain.ONBOARDING_PROGRESS, 3, state="completed")
    assert domain.compute([overdue, completed], model, NOW).score == 100


def test_grades_follow_the_model_boundaries() -> None:
    grades = Grades(healthy=80, watch=60, at_risk=40)
    assert [domain.grade_for(s, grades) for s in (80, 79, 60, 59, 40, 39, 0)] == [
        "healthy",
        "watch",
        "watch",
        "at_risk",
        "at_risk",
        "critical",
        "critical",
    ]


def test_the_explanation_names_the_signals_that_moved_a_factor_newest_first() -> None:
    signals = bounces(3)
    score = domain.compute(signals, domain.default_model(), NOW)
    factor = next(f for f in score.factors if f.factor == domain.EMAIL_DELIVERABILITY)
    assert factor.signal_count == 3
    # Same event time: ordered by id, newest (largest) first.
    assert factor.event_ids == ("evt_00002", "evt_00001", "evt_00000")


def test_the_score_is_the_same_whatever_the_order_and_duplicates_of_the_signals() -> None:
    rng = random.Random(7)
    factors = list(domain.FACTORS)
    signals = [
        sig(
            i,
            factor := rng.choice(factors),
            rng.uniform(0, 60),
            amount=rng.choice([0.25, 0.5, 1.0]),
            state=rng.choice(["active", "suspended"]) if factor == domain.ACCOUNT_STANDING else "started",
        )
        for i in range(500)
    ]
    first = domain.compute(signals, domain.default_model(), NOW)
    shuffled = signals[:]
    rng.shuffle(shuffled)
    again = domain.compute(shuffled + shuffled[:50], domain.default_model(), NOW)
    # A duplicate signal (same id) would double-count in a raw list: the service dedupes by id first.
    deduped = list({s.id: s for s in shuffled + shuffled[:50]}.values())
    assert domain.compute(deduped, domain.default_model(), NOW) == first
    assert again.score <= first.score


def test_signals_of_the_consumed_events() -> None:
    at = NOW - timedelta(hours=1)
    hard = domain.signal_for(
        "s1", "Notification Bounced", "e1", {"bounce_type": "hard", "bounced_at": at}, NOW
    )
    soft = domain.signal_for("s2", "Notification Bounced", "e2", {"bounce_type": "soft"}, NOW, "org_1")
    assert (hard.factor, hard.amount, hard.occurred_at) == (domain.EMAIL_DELIVERABILITY, 1.0, at)
    assert (soft.amount, soft.occurred_at, soft.organization_id) == (0.5, NOW, "org_1")
    final = domain.signal_for("s3", "Webhook Failed", "e3", {"final": True}, NOW)
    retried = domain.signal_for("s4", "Webhook Failed", "e4", {"final": False}, NOW)
    assert (final.amount, retried.amount) == (1.0, 0.25)
    churn = domain.signal_for("s5", "User Deactivated", "e5", {"reason": "tenant_deactivated"}, NOW)
    assert churn.amount == 0.0
    states = {
        name: domain.signal_for("s", name, "e", {}, NOW).state
        for name in ("Tenant Created", "Tenant Suspended", "Tenant Reactivated", "Tenant Deactivated")
    }
    assert states == {
        "Tenant Created": "active",
        "Tenant Suspended": "suspended",
        "Tenant Reactivated": "active",
        "Tenant Deactivated": "deactivated",
    }
    with pytest.raises(ValueError, match="no health signal"):
        domain.signal_for("s", "Contact Created", "e", {}, NOW)


@pytest.mark.parametrize(
    ("last_score", "last_grade", "score", "grade", "expected"),
    [
        (None, None, 100, "healthy", True),  # the first score of a scope
        (80, "healthy", 76, "healthy", False),  # a small move inside a grade
        (80, "healthy", 74, "watch", True),  # crosses a grade boundary by 6 points
        (90, "healthy", 80, "healthy", True),  # moves by the delta (10) inside a grade
        (90, "healthy", 81, "healthy", False),
    ],
)
def test_publishing_only_on_crossings(
    last_score: int | None, last_grade: str | None, score: int, grade: str, expected: bool
) -> None:
    assert domain.should_publish(last_score, last_grade, score, grade, 10) is expected


def test_a_model_is_refused_for_every_rule_it_breaks() -> None:
    bad = Model(
        version=1,
        window_days=0,
        factors=(
            Factor("email_deliverability", 60, (Tier(5, 100), Tier(2, 50), Tier(None, 0))),
            Factor("email_deliverability", 30, (Tier(1, 120), Tier(3, 0))),
            Factor("karma", 0, ()),
        ),
        grades=Grades(healthy=50, watch=60, at_risk=10),
        publish_delta=0,
    )
    pointers = {pointer for pointer, _ in domain.validate(bad)}
    assert pointers == {
        "#/window_days",
        "#/factors",  # 90 points, not 100
        "#/factors/0/tiers/1/up_to",  # not ascending
        "#/factors/1/factor",  # repeated
        "#/factors/1/tiers/0/points",
        "#/factors/1/tiers/1/up_to",  # the last tier is not open-ended
        "#/factors/2/factor",
        "#/factors/2/weight",
        "#/factors/2/tiers",
        "#/grades",
        "#/publish_delta",
    }


def test_a_model_round_trips_through_its_stored_form() -> None:
    model = domain.default_model().with_version(4)
    assert Model.from_dict(model.to_dict()) == model


def test_ten_thousand_signals_of_one_organization_score_deterministically() -> None:
    signals = bounces(10_000, days_ago=2)
    first = domain.compute(signals, domain.default_model(), NOW)
    assert first == domain.compute(list(reversed(signals)), domain.default_model(), NOW)
    assert first.score == 0 and first.factors[0].signal_count == 10_000
    assert len(first.factors[0].signal_ids) == domain.EXPLAINED_SIGNALS
