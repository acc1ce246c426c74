"""Customer health scoring. Pure: no I/O, no clients, so a score recomputed from the stored signals is
exactly the score that was stored.

- A **signal** is one consumed event, reduced to what scoring needs: the factor it feeds, an amount
  (count factors) or a state (state factors), its event time and the organization it concerns, if any.
- A **model** (one per tenant, versioned) lists weighted factors whose weights total exactly 100, the
  tiers of each factor (ascending `up_to` thresholds of the factor's measure -> points 0..100, the last
  tier open-ended), a window in days, the grade boundaries and the publishing delta.
- **Measures** are risk levels, higher is worse. Count factors (email deliverability, integration
  reliability, user churn) sum their signals' amounts inside the window (event time >= as_of - window).
  State factors (onboarding progress, account standing) take the latest signal by event time, whatever
  its age, since a state holds until the next one.
- **Not applicable**: a count factor with no signal in the window, or a state factor with no signal at
  all, has no data. It is left out and the weights of the factors that apply are renormalized to 100.
  When no factor applies the score is 100 (no evidence of risk).
- **Score** = round-half-up(sum(weight * points) / sum(weight)) over the applicable factors, 0..100.
  **Grade**: healthy >= grades.healthy, watch >= grades.watch, at_risk >= grades.at_risk, else critical.
- **Publishing**: Health Score Changed is raised for a scope's first score, when the grade differs from
  the last published grade, or when the score moved by publish_delta points or more since the last
  published score (compared with the last published score, so slow drift still publishes once).
- Signals are ordered by (event time, id), never by arrival, so duplicates and out-of-order delivery
  cannot change the result.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

EMAIL_DELIVERABILITY = "email_deliverability"
INTEGRATION_RELIABILITY = "integration_reliability"
ONBOARDING_PROGRESS = "onboarding_progress"
ACCOUNT_STANDING = "account_standing"
USER_CHURN = "user_churn"

COUNT_FACTORS = frozenset({EMAIL_DELIVERABILITY, INTEGRATION_RELIABILITY, USER_CHURN})
STATE_FACTORS = frozenset({ONBOARDING_PROGRESS, ACCOUNT_STANDING})
FACTORS = (EMAIL_DELIVERABILITY, INTEGRATION_RELIABILITY, ONBOARDING_PROGRESS, ACCOUNT_STANDING, USER_CHURN)

GRADES = ("healthy", "watch", "at_risk", "critical")
# State factors' measures: the risk of each state.
STANDING_RISK = {"active": 0.0, "suspended": 1.0, "deactivated": 2.0}
ONBOARDING_COMPLETED, ONBOARDING_IN_PROGRESS, ONBOARDING_OVERDUE = 0.0, 1.0, 2.0
# How many signal ids an explanation names per factor (the count is always complete).
EXPLAINED_SIGNALS = 20


@dataclass(frozen=True)
class Signal:
    id: str  # one signal per consumed event (derived from the event's source and id)
    event_id: str
    event_name: str
    occurred_at: datetime
    factor: str
    organization_id: str | None = None
    amount: float = 0.0  # count factors
    state: str | None = None  # state factors
    due_at: datetime | None = None  # onboarding: when it should be completed


@dataclass(frozen=True)
class Tier:
    up_to: float | None  # None: every measure above the previous tier
    points: int


@dataclass(frozen=True)
class Factor:
    factor: str
    weight: int
    tiers: tuple[Tier, ...]


@dataclass(frozen=True)
class Grades:
    healthy: int = 75
    watch: int = 50
    at_risk: int = 25


@dataclass(frozen=True)
class Model:
    version: int
    window_days: int
    factors: tuple[Factor, ...]
    grades: Grades = field(default_factory=Grades)
    publish_delta: int = 10

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "window_days": self.window_days,
            "factors": [
                {
                    "factor": f.factor,
                    "weight": f.weight,
                    "tiers": [{"up_to": t.up_to, "points": t.points} for t in f.tiers],
                }
                for f in self.factors
            ],
            "grades": {
                "healthy": self.grades.healthy,
                "watch": self.grades.watch,
                "at_risk": self.grades.at_risk,
            },
            "publish_delta": self.publish_delta,
        }

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> Model:
        return Model(
            version=int(data.get("version", 1)),
            window_days=int(data["window_days"]),
            factors=tuple(
                Factor(
                    str(f["factor"]),
                    int(f["weight"]),
                    tuple(
                        Tier(None if t.get("up_to") is None else float(t["up_to"]), int(t["points"]))
                        for t in f["tiers"]
                    ),
                )
                for f in data["factors"]
            ),
            grades=Grades(**{k: int(v) for k, v in dict(data.get("grades") or {}).items()}),
            publish_delta=int(data.get("publish_delta", 10)),
        )

    def with_version(self, version: int) -> Model:
        return replace(self, version=version)


def default_model() -> Model:
    """The model every tenant starts with (Tenant Created)."""

    def tiers(*pairs: tuple[float | None, int]) -> tuple[Tier, ...]:
        return tuple(Tier(up_to, points) for up_to, points in pairs)

    return Model(
        version=1,
        window_days=30,
        factors=(
            Factor(EMAIL_DELIVERABILITY, 25, tiers((0, 100), (2, 70), (5, 40), (None, 0))),
            Factor(INTEGRATION_RELIABILITY, 20, tiers((0, 100), (1, 75), (3, 40), (None, 0))),
            Factor(ONBOARDING_PROGRESS, 20, tiers((0, 100), (1, 60), (None, 20))),
            Factor(ACCOUNT_STANDING, 25, tiers((0, 100), (1, 30), (None, 0))),
            Factor(USER_CHURN, 10, tiers((0, 100), (2, 80), (5, 50), (None, 20))),
        ),
    )


def validate(model: Model) -> list[tuple[str, str]]:
    """Every rule a model breaks, as (JSON pointer, message); empty when it is valid."""
    errors: list[tuple[str, str]] = []
    if not 1 <= model.window_days <= 365:
        errors.append(("#/window_days", "must be between 1 and 365 days"))
    if not model.factors:
        errors.append(("#/factors", "at least one factor is needed"))
    seen: set[str] = set()
    for i, f in enumerate(model.factors):
        at = f"#/factors/{i}"
        if f.factor not in FACTORS:
            errors.append((f"{at}/factor", f"unknown factor; one of {', '.join(FACTORS)}"))
        if f.factor in seen:
            errors.append((f"{at}/factor", "a factor appears once"))
        seen.add(f.factor)
        if not 1 <= f.weight <= 100:
            errors.append((f"{at}/weight", "must be between 1 and 100 points"))
        if not f.tiers:
            errors.append((f"{at}/tiers", "at least one tier is needed"))
        previous: float | None = None
        for j, tier in enumerate(f.tiers):
            if not 0 <= tier.points <= 100:
                errors.append((f"{at}/tiers/{j}/points", "must be between 0 and 100"))
            last = j == len(f.tiers) - 1
            if tier.up_to is None and not last:
                errors.append((f"{at}/tiers/{j}/up_to", "only the last tier is open-ended"))
            if last and tier.up_to is not None:
                errors.append((f"{at}/tiers/{j}/up_to", "the last tier must be open-ended (null)"))
            if tier.up_to is not None:
                if previous is not None and tier.up_to <= previous:
                    errors.append((f"{at}/tiers/{j}/up_to", "thresholds must be strictly ascending"))
                previous = tier.up_to
    total = sum(f.weight for f in model.factors)
    if model.factors and total != 100:
        errors.append(("#/factors", f"weights must total exactly 100 points, not {total}"))
    g = model.grades
    if not 100 >= g.healthy > g.watch > g.at_risk >= 1:
        errors.append(("#/grades", "boundaries must satisfy 100 >= healthy > watch > at_risk >= 1"))
    if not 1 <= model.publish_delta <= 100:
        errors.append(("#/publish_delta", "must be between 1 and 100 points"))
    return errors


# --- events -> signals -------------------------------------------------------------------------------


def signal_for(
    signal_id: str,
    event_name: str,
    event_id: str,
    payload: Mapping[str, Any],
    event_time: datetime,
    organization_id: str | None = None,
) -> Signal:
    """The signal of one consumed event. The payload's own time (bounced_at, failed_at, completed_at)
    wins over the envelope's, which says when the producer published, not when it happened."""

    def at(key: str) -> datetime:
        value = payload.get(key)
        return value if isinstance(value, datetime) else event_time

    def signal(
        factor: str, occurred_at: datetime, amount: float = 0.0, state: str | None = None, due_at: Any = None
    ) -> Signal:
        due = due_at if isinstance(due_at, datetime) else None
        return Signal(
            signal_id, event_id, event_name, occurred_at, factor, organization_id, amount, state, due
        )

    if event_name == "Notification Bounced":
        return signal(
            EMAIL_DELIVERABILITY, at("bounced_at"), 0.5 if payload.get("bounce_type") == "soft" else 1.0
        )
    if event_name == "Webhook Failed":
        # A failed attempt that will be retried weighs a quarter of a message given up on.
        return signal(INTEGRATION_RELIABILITY, at("failed_at"), 1.0 if payload.get("final") else 0.25)
    if event_name == "User Deactivated":
        # Users deactivated because the whole tenant was are the standing's business, not churn.
        return signal(USER_CHURN, event_time, 0.0 if payload.get("reason") == "tenant_deactivated" else 1.0)
    if event_name == "Onboarding Started":
        return signal(ONBOARDING_PROGRESS, event_time, state="started", due_at=payload.get("due_at"))
    if event_name == "Onboarding Completed":
        return signal(ONBOARDING_PROGRESS, at("completed_at"), state="completed")
    states = {
        "Tenant Created": "active",
        "Tenant Reactivated": "active",
        "Tenant Suspended": "suspended",
        "Tenant Deactivated": "deactivated",
    }
    if event_name in states:
        return signal(ACCOUNT_STANDING, event_time, state=states[event_name])
    raise ValueError(f"no health signal for {event_name!r}")


# --- scoring -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FactorResult:
    factor: str
    weight: int  # as configured
    applicable: bool
    measure: float | None
    points: int | None  # the tier's points, None when not applicable
    effective_weight: float  # renormalized over the applicable factors (0 when not applicable)
    contribution: float  # points this factor adds to the score
    signal_count: int
    signal_ids: tuple[str, ...]  # the most recent that moved it, newest first (EXPLAINED_SIGNALS at most)
    event_ids: tuple[str, ...]  # the same signals' event ids

    def to_dict(self) -> dict[str, Any]:
        return {
            "factor": self.factor,
            "weight": self.weight,
            "applicable": self.applicable,
            "measure": self.measure,
            "points": self.points,
            "effective_weight": self.effective_weight,
            "contribution": self.contribution,
            "signal_count": self.signal_count,
            "signal_ids": list(self.signal_ids),
            "event_ids": list(self.event_ids),
        }


@dataclass(frozen=True)
class Score:
    score: int
    grade: str
    as_of: datetime
    model_version: int
    factors: tuple[FactorResult, ...]

    def explanation(self) -> list[dict[str, Any]]:
        return [f.to_dict() for f in self.factors]


def points_for(tiers: Sequence[Tier], measure: float) -> int:
    for tier in tiers:
        if tier.up_to is None or measure <= tier.up_to:
            return tier.points
    return tiers[-1].points  # unreachable for a valid model (the last tier is open-ended)


def grade_for(score: int, grades: Grades) -> str:
    if score >= grades.healthy:
        return "healthy"
    if score >= grades.watch:
        return "watch"
    if score >= grades.at_risk:
        return "at_risk"
    return "critical"


def _round(value: float) -> int:
    return math.floor(value + 0.5)


def _measure(
    factor: str, signals: Sequence[Signal], since: datetime, as_of: datetime
) -> tuple[float, list[Signal]] | None:
    """The factor's measure and the signals behind it, or None when it has no data."""
    if factor in COUNT_FACTORS:
        counted = [s for s in signals if s.occurred_at >= since]
        if not counted:
            return None
        return round(sum(s.amount for s in counted), 6), counted
    if not signals:
        return None
    latest = signals[-1]  # ordered by (event time, id)
    if factor == ACCOUNT_STANDING:
        return STANDING_RISK.get(latest.state or "", 0.0), [latest]
    if latest.state == "completed":
        return ONBOARDING_COMPLETED, [latest]
    if latest.due_at is not None and as_of > latest.due_at:
        return ONBOARDING_OVERDUE, [latest]
    return ONBOARDING_IN_PROGRESS, [latest]


def compute(signals: Iterable[Signal], model: Model, as_of: datetime) -> Score:
    """The score of one scope (an organization, or the whole tenant) from its signals."""
    by_factor: dict[str, list[Signal]] = {f.factor: [] for f in model.factors}
    for signal in signals:
        bucket = by_factor.get(signal.factor)
        if bucket is not None:
            bucket.append(signal)
    since = as_of - timedelta(days=model.window_days)
    measured: dict[str, tuple[float, list[Signal]] | None] = {}
    for f in model.factors:
        ordered = sorted(by_factor[f.factor], key=lambda s: (s.occurred_at, s.id))
        measured[f.factor] = _measure(f.factor, ordered, since, as_of)
    applicable_weight = sum(f.weight for f in model.factors if measured[f.factor] is not None)
    results: list[FactorResult] = []
    total = 0.0
    for f in model.factors:
        found = measured[f.factor]
        if found is None or applicable_weight == 0:
            results.append(FactorResult(f.factor, f.weight, False, None, None, 0.0, 0.0, 0, (), ()))
            continue
        measure, behind = found
        points = points_for(f.tiers, measure)
        share = f.weight * 100 / applicable_weight
        contribution = f.weight * points / applicable_weight
        total += contribution
        named = list(reversed(behind[-EXPLAINED_SIGNALS:]))
        results.append(
            FactorResult(
                f.factor,
                f.weight,
                True,
                measure,
                points,
                round(share, 4),
                round(contribution, 4),
                len(behind),
                tuple(s.id for s in named),
                tuple(s.event_id for s in named),
            )
        )
    score = 100 if applicable_weight == 0 else max(0, min(100, _round(total)))
    return Score(score, grade_for(score, model.grades), as_of, model.version, tuple(results))


def should_publish(
    last_published_score: int | None, last_published_grade: str | None, score: int, grade: str, delta: int
) -> bool:
    if last_published_score is None or last_published_grade is None:
        return True
    return grade != last_published_grade or abs(score - last_published_score) >= delta


def trend(previous: int | None, score: int) -> str:
    if previous is None or previous == score:
        return "flat"
    return "up" if score > previous else "down"
