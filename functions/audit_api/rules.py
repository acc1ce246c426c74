"""Alert rules over the audit stream, and their evaluation. Pure: no I/O, no clients.

The seal step evaluates the rules for exactly the entries it seals, so each entry is evaluated once
whatever the redeliveries, and an alert commits atomically with the seal that raised it.

- match: an entry of `action` (whose details satisfy `condition`, when given) raises an alert.
- threshold: `min_count` or more such entries within `window_seconds` ending at an entry (a sliding
  window over occurred_at) raise an alert; counted per actor when `per_actor`.

Alert ids are deterministic so an alert is raised once: match = tenant + rule + entry, threshold =
tenant + rule + actor + floor(time / window). A burst longer than a window raises one alert per
window it reaches, not one per entry. The tenant is in the id so ids are unique across tenants for
the consumers of Audit Alert Triggered.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    TypeAdapter,
    field_validator,
    model_serializer,
    model_validator,
)

from functions.audit_api.chain import sha256_hex
from functions.audit_api.entries import audited_actions
from shared.contracts.payloads import AuditAlertTriggered, Severity

RULE_ID = r"^[a-z0-9][a-z0-9_-]{0,62}$"
DETAILS_PATH = r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*){0,9}$"
MAX_ALERT_ENTRY_IDS = 100  # the newest entries of a threshold alert; its summary gives the full count
ANY_ACTOR = "*"

JsonScalar = str | int | float | bool | None


def _same(a: Any, b: Any) -> bool:
    # JSON equality: true is not 1 (Python says it is); 1 and 1.0 are the same number.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


class Condition(BaseModel):
    """A test on one value of the entry's details: `{"path": "new_role", "in": ["admin", "owner"]}`."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    path: str = Field(pattern=DETAILS_PATH, max_length=300, description="Dotted path into details.")
    equals: JsonScalar = None
    in_: tuple[JsonScalar, ...] | None = Field(default=None, alias="in", min_length=1, max_length=100)

    @model_validator(mode="after")
    def _exactly_one_test(self) -> Self:
        if len({"equals", "in_"} & self.model_fields_set) != 1:
            raise ValueError("give exactly one of `equals` or `in`")
        return self

    @model_serializer(mode="plain")
    def _dump(self) -> dict[str, Any]:
        # Only the test that was given: `equals: null` is a real test, not an absent one.
        if "equals" in self.model_fields_set:
            return {"path": self.path, "equals": self.equals}
        return {"path": self.path, "in": list(self.in_ or ())}

    def holds(self, details: Any) -> bool:
        value = details
        for part in self.path.split("."):
            if not isinstance(value, Mapping) or part not in value:
                return False
            value = value[part]
        if "equals" in self.model_fields_set:
            return _same(value, self.equals)
        return any(_same(value, candidate) for candidate in self.in_ or ())


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    severity: Severity
    action: str = Field(description="An audited action, e.g. user.role.changed")
    condition: Condition | None = None
    enabled: bool = True

    @field_validator("action")
    @classmethod
    def _audited(cls, value: str) -> str:
        if value not in audited_actions():
            raise ValueError(f"not an audited action; one of {', '.join(sorted(audited_actions()))}")
        return value

    def selects(self, entry: Mapping[str, Any]) -> bool:
        return (
            self.enabled
            and entry.get("action") == self.action
            and (self.condition is None or self.condition.holds(entry.get("details")))
        )


class MatchRule(_Rule):
    kind: Literal["match"]


class ThresholdRule(_Rule):
    kind: Literal["threshold"]
    min_count: int = Field(ge=1, le=1000)
    window_seconds: int = Field(ge=1, le=86_400)
    per_actor: bool = False


Rule = Annotated[MatchRule | ThresholdRule, Field(discriminator="kind")]
RULES: TypeAdapter[Rule] = TypeAdapter(Rule)


class RuleBody(RootModel[Rule]):
    """The body of PUT .../alert-rules/{rule_id}: a rule of either kind, strictly validated."""


# Used while a tenant has no rules of its own.
DEFAULT_RULES: dict[str, Rule] = {
    "role-escalation": MatchRule(
        kind="match",
        name="Role escalation to admin or owner",
        severity="high",
        action="user.role.changed",
        condition=Condition.model_validate({"path": "new_role", "in": ["admin", "owner"]}),
    ),
    "mass-user-deactivation": ThresholdRule(
        kind="threshold",
        name="Mass user deactivation",
        severity="high",
        action="user.deactivated",
        min_count=5,
        window_seconds=300,
    ),
}


@dataclass(frozen=True)
class Alert:
    id: str
    rule_id: str
    rule_name: str
    severity: Severity
    summary: str
    entry_ids: tuple[str, ...]
    actor_id: str | None
    trigger_entry_id: str  # the entry whose evaluation raised it
    occurred_at: datetime | None  # when that entry's event happened

    def payload(self) -> AuditAlertTriggered:
        return AuditAlertTriggered(
            alert_id=self.id,
            rule_id=self.rule_id,
            rule_name=self.rule_name,
            severity=self.severity,
            summary=self.summary,
            entry_ids=list(self.entry_ids),
            actor_id=self.actor_id,
        )

    def document(self, tenant_id: str, raised_at: datetime, block_seq: int) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": tenant_id,
            "rule_id": self.rule_id,
            "rule_name": self.rule_name,
            "severity": self.severity,
            "summary": self.summary,
            "entry_ids": list(self.entry_ids),
            "actor_id": self.actor_id,
            "trigger_entry_id": self.trigger_entry_id,
            "occurred_at": self.occurred_at,
            "raised_at": raised_at,
            "block_seq": block_seq,
        }


def match_alert_id(tenant_id: str, rule_id: str, entry_id: str) -> str:
    return sha256_hex(f"match\n{tenant_id}\n{rule_id}\n{entry_id}")[:32]


def threshold_alert_id(tenant_id: str, rule_id: str, actor: str, bucket: int) -> str:
    return sha256_hex(f"threshold\n{tenant_id}\n{rule_id}\n{actor}\n{bucket}")[:32]


def _actor_id(entry: Mapping[str, Any]) -> str | None:
    actor = entry.get("actor")
    value = actor.get("id") if isinstance(actor, Mapping) else None
    # The event payload's Id type: an id it cannot carry is left out rather than failing the seal.
    return value if isinstance(value, str) and 1 <= len(value) <= 128 else None


def _time(entry: Mapping[str, Any]) -> datetime | None:
    value = entry.get("occurred_at")
    return value if isinstance(value, datetime) else None


def _match(tenant_id: str, rule_id: str, rule: MatchRule, entry: Mapping[str, Any]) -> Alert:
    target = entry.get("target") if isinstance(entry.get("target"), Mapping) else {}
    actor = _actor_id(entry)
    summary = f"{rule.name}: {entry.get('action')} by {actor or 'an unknown actor'}"
    if target:
        summary += f" on {target.get('type')} {target.get('id')}"
    entry_id = str(entry.get("id"))
    return Alert(
        id=match_alert_id(tenant_id, rule_id, entry_id),
        rule_id=rule_id,
        rule_name=rule.name,
        severity=rule.severity,
        summary=summary[:2000],
        entry_ids=(entry_id,),
        actor_id=actor,
        trigger_entry_id=entry_id,
        occurred_at=_time(entry),
    )


class _Windows:
    """The entries a threshold rule counts, grouped by actor key and sorted by time."""

    def __init__(self, rule: ThresholdRule, pool: Iterable[Mapping[str, Any]]) -> None:
        self.rule = rule
        grouped: dict[str, list[tuple[float, str, str]]] = defaultdict(list)
        for entry in pool:
            at = _time(entry)
            if at is not None and rule.selects(entry):
                grouped[self.key(entry)].append(
                    (at.timestamp(), str(entry.get("id")), _actor_id(entry) or "")
                )
        self.items = {key: sorted(items) for key, items in grouped.items()}
        self.stamps = {key: [stamp for stamp, _, _ in items] for key, items in self.items.items()}

    def key(self, entry: Mapping[str, Any]) -> str:
        return (_actor_id(entry) or ANY_ACTOR) if self.rule.per_actor else ANY_ACTOR

    def alert(self, tenant_id: str, rule_id: str, entry: Mapping[str, Any]) -> Alert | None:
        at = _time(entry)
        if at is None:
            return None
        key = self.key(entry)
        items, stamps = self.items.get(key, []), self.stamps.get(key, [])
        now = at.timestamp()
        window = self.rule.window_seconds
        first, last = bisect_right(stamps, now - window), bisect_right(stamps, now)
        count = last - first
        if count < self.rule.min_count:
            return None
        # One actor behind every counted entry is named even when the rule does not count per actor.
        actors = {actor for _, _, actor in items[first:last]}
        actor_id = key if key != ANY_ACTOR else (actors.pop() or None) if len(actors) == 1 else None
        by = f" by {actor_id}" if actor_id else ""
        return Alert(
            id=threshold_alert_id(tenant_id, rule_id, key, int(now // window)),
            rule_id=rule_id,
            rule_name=self.rule.name,
            severity=self.rule.severity,
            summary=f"{self.rule.name}: {count} {self.rule.action} entries{by} within {window} s"[:2000],
            entry_ids=tuple(
                entry_id for _, entry_id, _ in items[max(first, last - MAX_ALERT_ENTRY_IDS) : last]
            ),
            actor_id=actor_id,
            trigger_entry_id=str(entry.get("id")),
            occurred_at=at,
        )


def evaluate(
    tenant_id: str,
    rules: Mapping[str, Rule],
    batch: Sequence[Mapping[str, Any]],
    history: Iterable[Mapping[str, Any]] = (),
) -> list[Alert]:
    """The alerts `batch` raises, in batch order, each id once.

    `history` holds other stored entries threshold windows may reach back to (sealed or not); entries in
    both are counted once.
    """
    pool = list({str(e.get("id")): e for e in (*history, *batch)}.values())
    windows = {rid: _Windows(rule, pool) for rid, rule in rules.items() if isinstance(rule, ThresholdRule)}
    alerts: dict[str, Alert] = {}
    for entry in batch:
        for rule_id in sorted(rules):
            rule = rules[rule_id]
            if not rule.selects(entry):
                continue
            if isinstance(rule, MatchRule):
                alert: Alert | None = _match(tenant_id, rule_id, rule, entry)
            else:
                alert = windows[rule_id].alert(tenant_id, rule_id, entry)
            if alert is not None:
                alerts.setdefault(alert.id, alert)
    return list(alerts.values())
