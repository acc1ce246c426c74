"""Alert rules over the audit stream (functions/audit_api/rules.py): match and threshold rules, per-actor
counting, deterministic alert ids, the built-in defaults, and strict rule bodies."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from functions.audit_api.rules import (
    DEFAULT_RULES,
    RULES,
    Condition,
    MatchRule,
    Rule,
    RuleBody,
    ThresholdRule,
    evaluate,
)
from shared.contracts import AuditAlertTriggered

TENANT = "tnt_1"
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)  # on a 300 s boundary


def entry(
    n: int,
    action: str = "user.deactivated",
    at: float = 0,
    actor: str = "usr_admin",
    **details: Any,
) -> dict[str, Any]:
    return {
        "id": f"e{n:03d}",
        "action": action,
        "actor": {"type": "user", "id": actor, "email": None},
        "target": {"type": "User", "id": f"usr_{n}"},
        "occurred_at": T0 + timedelta(seconds=at),
        "details": details,
    }


def role_change(n: int, new_role: str, at: float = 0) -> dict[str, Any]:
    return entry(n, "user.role.changed", at, user_id=f"usr_{n}", previous_role="member", new_role=new_role)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def threshold(**fields: Any) -> ThresholdRule:
    base = {"kind": "threshold", "name": "Burst", "severity": "medium", "action": "user.deactivated"}
    return ThresholdRule.model_validate(base | fields)


# --------------------------------------------------------------------------------------------------------
# Match rules
# --------------------------------------------------------------------------------------------------------


def test_role_escalation_to_admin_or_owner_raises_one_alert_per_entry() -> None:
    batch = [role_change(1, "admin"), role_change(2, "owner"), role_change(3, "viewer")]
    alerts = evaluate(TENANT, DEFAULT_RULES, batch)
    assert [a.entry_ids for a in alerts] == [("e001",), ("e002",)]
    first = alerts[0]
    assert first.id == sha(f"match\n{TENANT}\nrole-escalation\ne001")
    assert (first.rule_id, first.severity, first.actor_id) == ("role-escalation", "high", "usr_admin")
    assert first.summary == "Role escalation to admin or owner: user.role.changed by usr_admin on User usr_1"


def test_a_rule_that_does_not_match_raises_nothing() -> None:
    demoted = role_change(1, "member")
    other_action = entry(2, "user.invited", role="admin", new_role="admin")
    assert evaluate(TENANT, DEFAULT_RULES, [demoted, other_action]) == []


def test_alert_ids_are_deterministic() -> None:
    batch = [role_change(1, "admin"), *(entry(10 + i, at=i) for i in range(5))]
    first, again = evaluate(TENANT, DEFAULT_RULES, batch), evaluate(TENANT, DEFAULT_RULES, batch)
    assert [a.id for a in first] == [a.id for a in again] and len(first) == 2
    # The tenant is part of the id: the same rule and entry in another tenant is another alert.
    assert evaluate("tnt_2", DEFAULT_RULES, batch)[0].id != first[0].id


@pytest.mark.parametrize(
    ("condition", "details", "expected"),
    [
        ({"path": "new_role", "equals": "admin"}, {"new_role": "admin"}, True),
        ({"path": "new_role", "equals": "admin"}, {"new_role": "owner"}, False),
        ({"path": "new_role", "in": ["admin", "owner"]}, {"new_role": "owner"}, True),
        ({"path": "changes.plan.after", "equals": "free"}, {"changes": {"plan": {"after": "free"}}}, True),
        ({"path": "changes.plan.after", "equals": "free"}, {"changes": {}}, False),
        ({"path": "new_role", "equals": None}, {"new_role": None}, True),
        ({"path": "new_role", "equals": None}, {}, False),  # absent is not null
        ({"path": "sessions_revoked", "equals": True}, {"sessions_revoked": 1}, False),  # JSON: true is not 1
        ({"path": "failed", "in": [3, 4]}, {"failed": 3.0}, True),
    ],
)
def test_conditions(condition: dict[str, Any], details: dict[str, Any], expected: bool) -> None:
    assert Condition.model_validate(condition).holds(details) is expected


def test_a_disabled_rule_raises_nothing() -> None:
    rule = MatchRule.model_validate(
        {"kind": "match", "name": "Any invite", "severity": "low", "action": "user.invited", "enabled": False}
    )
    assert evaluate(TENANT, {"invites": rule}, [entry(1, "user.invited")]) == []


# --------------------------------------------------------------------------------------------------------
# Threshold rules
# --------------------------------------------------------------------------------------------------------


def test_mass_user_deactivation_needs_five_within_five_minutes() -> None:
    four = [entry(i, at=i * 10) for i in range(4)]
    assert evaluate(TENANT, DEFAULT_RULES, four) == []
    five = [*four, entry(4, at=40)]
    [alert] = evaluate(TENANT, DEFAULT_RULES, five)
    assert alert.id == sha(
        f"threshold\n{TENANT}\nmass-user-deactivation\n*\n{int(T0.timestamp() + 40) // 300}"
    )
    assert alert.entry_ids == ("e000", "e001", "e002", "e003", "e004")
    assert alert.actor_id == "usr_admin"  # counted across actors, but one actor did them all
    assert alert.trigger_entry_id == "e004"
    assert alert.summary == "Mass user deactivation: 5 user.deactivated entries by usr_admin within 300 s"


def test_a_threshold_counted_across_several_actors_names_none() -> None:
    mixed = [entry(i, at=i, actor=f"usr_admin_{i % 2}") for i in range(5)]
    [alert] = evaluate(TENANT, DEFAULT_RULES, mixed)
    assert alert.actor_id is None
    assert alert.summary == "Mass user deactivation: 5 user.deactivated entries within 300 s"


def test_entries_outside_the_window_do_not_count() -> None:
    spread = [entry(i, at=i * 100) for i in range(6)]  # never more than 3 within 300 s
    assert evaluate(TENANT, DEFAULT_RULES, spread) == []


def test_a_burst_raises_once_per_window() -> None:
    burst = [entry(i, at=i) for i in range(12)]
    alerts = evaluate(TENANT, DEFAULT_RULES, burst)
    assert len(alerts) == 1 and alerts[0].trigger_entry_id == "e004"
    # Continuing into the next window raises the next window's alert, once.
    later = [entry(100 + i, at=300 + i) for i in range(3)]
    assert len(evaluate(TENANT, DEFAULT_RULES, [*burst, *later])) == 2


def test_history_counts_and_is_not_counted_twice() -> None:
    history = [entry(i, at=i) for i in range(4)]
    [alert] = evaluate(TENANT, DEFAULT_RULES, [entry(4, at=10)], history=history)
    assert alert.entry_ids == ("e000", "e001", "e002", "e003", "e004")
    # The history query also returns the batch's own entries: each is counted once.
    batch = [entry(3, at=3)]
    assert evaluate(TENANT, DEFAULT_RULES, batch, history=[*history[:3], *batch]) == []


def test_per_actor_thresholds_count_each_actor_alone() -> None:
    batch = [entry(i, at=i, actor="usr_a" if i % 2 else "usr_b") for i in range(6)]  # 3 each
    per_actor = {"burst": threshold(min_count=3, window_seconds=60, per_actor=True)}
    alerts = evaluate(TENANT, per_actor, batch)
    assert sorted((a.actor_id, a.entry_ids) for a in alerts) == [
        ("usr_a", ("e001", "e003", "e005")),
        ("usr_b", ("e000", "e002", "e004")),
    ]
    bucket = int(T0.timestamp() + 5) // 60
    assert {a.id for a in alerts} >= {sha(f"threshold\n{TENANT}\nburst\nusr_a\n{bucket}")}
    # Four per actor are never reached; four across actors are.
    assert evaluate(TENANT, {"burst": threshold(min_count=4, window_seconds=60, per_actor=True)}, batch) == []
    assert len(evaluate(TENANT, {"burst": threshold(min_count=4, window_seconds=60)}, batch)) == 1


def test_a_threshold_condition_filters_what_is_counted() -> None:
    rule = threshold(min_count=2, window_seconds=60, condition={"path": "reason", "equals": "admin_action"})
    batch = [
        entry(1, reason="admin_action"),
        entry(2, at=1, reason="inactivity"),
        entry(3, at=2, reason="admin_action"),
    ]
    [alert] = evaluate(TENANT, {"r": rule}, batch)
    assert alert.entry_ids == ("e001", "e003")


def test_an_actor_id_the_event_cannot_carry_is_left_out() -> None:
    long_actor = "/" + "x" * 200  # e.g. a long source URI as the system actor
    [alert] = evaluate(
        TENANT, DEFAULT_RULES, [role_change(1, "admin") | {"actor": {"type": "system", "id": long_actor}}]
    )
    assert alert.actor_id is None
    AuditAlertTriggered.model_validate(alert.payload().model_dump())


def test_alerts_become_valid_event_payloads() -> None:
    alerts = evaluate(
        TENANT, DEFAULT_RULES, [role_change(1, "owner"), *(entry(i, at=i) for i in range(10, 15))]
    )
    for alert in alerts:
        payload = alert.payload()
        assert isinstance(payload, AuditAlertTriggered)
        assert payload.alert_id == alert.id and payload.entry_ids == list(alert.entry_ids)


# --------------------------------------------------------------------------------------------------------
# Rule bodies
# --------------------------------------------------------------------------------------------------------


def test_rules_round_trip_through_storage() -> None:
    for rule in [
        *DEFAULT_RULES.values(),
        threshold(min_count=2, window_seconds=5, condition={"path": "x", "equals": None}),
    ]:
        stored = rule.model_dump(mode="json")
        loaded: Rule = RULES.validate_python(stored)
        assert loaded == rule and loaded.model_dump(mode="json") == stored
    assert DEFAULT_RULES["role-escalation"].model_dump(mode="json")["condition"] == {
        "path": "new_role",
        "in": ["admin", "owner"],
    }


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "match", "name": "x", "severity": "high", "action": "user.role.changed", "extra": 1},
        {"kind": "match", "name": "x", "severity": "high", "action": "no.such.action"},
        {"kind": "match", "name": "x", "severity": "urgent", "action": "user.role.changed"},
        {"kind": "match", "name": "", "severity": "high", "action": "user.role.changed"},
        {"kind": "sometimes", "name": "x", "severity": "high", "action": "user.role.changed"},
        {
            "kind": "threshold",
            "name": "x",
            "severity": "high",
            "action": "user.deactivated",
            "window_seconds": 60,
        },
        {
            "kind": "threshold",
            "name": "x",
            "severity": "high",
            "action": "user.deactivated",
            "min_count": 0,
            "window_seconds": 60,
        },
        {
            "kind": "match",
            "name": "x",
            "severity": "high",
            "action": "user.role.changed",
            "condition": {"path": "a"},
        },
        {
            "kind": "match",
            "name": "x",
            "severity": "high",
            "action": "user.role.changed",
            "condition": {"path": "a", "equals": 1, "in": [1]},
        },
        {
            "kind": "match",
            "name": "x",
            "severity": "high",
            "action": "user.role.changed",
            "condition": {"path": "a..b", "equals": 1},
        },
    ],
)
def test_bad_rule_bodies_are_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RuleBody.model_validate(body)


def test_a_good_rule_body() -> None:
    body = RuleBody.model_validate(
        {
            "kind": "threshold",
            "name": "Failed webhooks",
            "severity": "medium",
            "action": "webhook.failed",
            "min_count": 10,
            "window_seconds": 600,
            "per_actor": True,
            "condition": {"path": "final", "equals": True},
        }
    )
    assert isinstance(body.root, ThresholdRule) and body.root.per_actor
