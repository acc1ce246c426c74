"""Access Control rules that need no I/O: ids, grant diffs, event ordering, the MFA lockout rule.

The decision itself is the kernel's (shared.access.decide): this module decides what a change *is*
(which grants it adds or removes, whether an event is stale, whether a principal gets locked).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.access import Binding, TenantAccess
from shared.contracts.payloads import AuditAlertTriggered

ROLE_ID = r"^[a-z][a-z0-9_]{1,63}$"  # the event contract's RoleName: custom role ids travel in events
OBJECT_ID = r"^[a-z0-9][a-z0-9_-]{0,62}$"  # group and policy ids (no ':' so "role:<id>" never collides)
# A principal's uid as tokens carry it: anything a Firestore document id can be (no '/', not '.' or '..',
# not __reserved__), without whitespace.
UID = r"^(?!\.{1,2}$)(?!__.*__$)[^/\s]{1,128}$"
MEMBER = r"^(?:user:(?!\.{1,2}$)(?!__.*__$)[^/\s]{1,128}|group:[a-z0-9][a-z0-9_-]{0,62})$"

MAX_ROLES = 100
MAX_GROUPS = 200
MAX_POLICIES = 200
MAX_MEMBERS = 500

ROLE_POLICY = "role:"  # policy_id of a custom role's own permission policy in Permission Policy Changed

# The Audit API's rule id for a role changed to admin or owner; a tenant may redefine it (same id) with
# severity critical to have the escalating actor locked.
ROLE_ESCALATION_RULES = frozenset({"role-escalation"})


# --------------------------------------------------------------------------------------------------------
# Grant diffs: what Permission Policy Changed carries
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyChange:
    policy_id: str
    role: str
    granted: frozenset[str]  # permissions this change gave to someone who did not hold them by it before
    revoked: frozenset[str]  # permissions this change took from someone who held them by it before


def role_definition_change(role_id: str, before: frozenset[str], after: frozenset[str]) -> PolicyChange:
    """A custom role's own permission policy (created, edited or deleted)."""
    return PolicyChange(ROLE_POLICY + role_id, role_id, after - before, before - after)


def _grants(access: TenantAccess, binding: Binding | None) -> dict[str, frozenset[str]]:
    if binding is None:
        return {}
    permissions = access.role_permissions(binding.role)
    return dict.fromkeys(access.users_of(binding), permissions)


def binding_changes(
    before: TenantAccess, after: TenantAccess, touched: Iterable[str] = ()
) -> list[PolicyChange]:
    """One change per policy whose stored binding was `touched` or whose effective grants (who gets which
    permissions through it, groups expanded) differ between the two configurations; by policy id."""
    touched = set(touched)
    changes: list[PolicyChange] = []
    for policy_id in sorted(set(before.policies) | set(after.policies)):
        old_binding, new_binding = before.policies.get(policy_id), after.policies.get(policy_id)
        old, new = _grants(before, old_binding), _grants(after, new_binding)
        granted = frozenset().union(*(perms - old.get(uid, frozenset()) for uid, perms in new.items()))
        revoked = frozenset().union(*(perms - new.get(uid, frozenset()) for uid, perms in old.items()))
        binding = new_binding or old_binding
        if binding is not None and (policy_id in touched or granted or revoked):
            changes.append(PolicyChange(policy_id, binding.role, granted, revoked))
    return changes


def without_user(access: TenantAccess, uid: str) -> TenantAccess:
    """The configuration with `uid` taken out of every policy and group (User Access Revoked)."""
    member = "user:" + uid
    return TenantAccess(
        tenant_id=access.tenant_id,
        version=access.version,
        roles=access.roles,
        groups={gid: members - {uid} for gid, members in access.groups.items()},
        policies={
            pid: Binding(b.id, b.role, b.members - {member}, b.description)
            for pid, b in access.policies.items()
        },
        block=access.block,
        principals=access.principals,
    )


# --------------------------------------------------------------------------------------------------------
# Event ordering: a stale event (older than one already applied for its aggregate) changes nothing
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stamp:
    """Where an event sits in its source aggregate's history: CloudEvents source + subject, the
    `aggregateversion` extension when the producer sets it, and the event time."""

    source: str
    subject: str
    version: int | None
    time: datetime

    @property
    def key(self) -> str:
        # Hashed: a source URI holds '/', '.' and ':', which a Firestore map key should not.
        return hashlib.sha256(f"{self.source}\n{self.subject}".encode()).hexdigest()[:24]

    def document(self) -> dict[str, Any]:
        return {"source": self.source, "subject": self.subject, "version": self.version, "time": self.time}

    def is_newer_than(self, stored: Mapping[str, Any] | None) -> bool:
        """Versions compare when both events carry one, else times; nothing stored: newer."""
        if not stored:
            return True
        version = stored.get("version")
        if self.version is not None and isinstance(version, int):
            return self.version > version
        at = stored.get("time")
        return not isinstance(at, datetime) or self.time > at


def newer(stamp: Stamp, markers: Any) -> bool:
    stored = markers.get(stamp.key) if isinstance(markers, Mapping) else None
    return stamp.is_newer_than(stored if isinstance(stored, Mapping) else None)


def with_marker(markers: Any, stamp: Stamp) -> dict[str, Any]:
    return {**(dict(markers) if isinstance(markers, Mapping) else {}), stamp.key: stamp.document()}


# --------------------------------------------------------------------------------------------------------
# Security settings (Security Policy Updated) and the MFA lockout rule
# --------------------------------------------------------------------------------------------------------


def _bounded_int(value: Any, default: int, low: int, high: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return value
    return default


@dataclass(frozen=True)
class SecuritySettings:
    """The settings of the tenant's security policy this API uses, with their defaults."""

    mfa_lockout_threshold: int = 5  # failed MFA challenges ...
    mfa_lockout_window_minutes: int = 15  # ... within this many minutes ...
    mfa_lockout_minutes: int = 30  # ... lock the principal this long
    alert_lockout_minutes: int = 1440  # a critical role-escalation alert locks its actor this long

    @classmethod
    def of(cls, settings: Any) -> SecuritySettings:
        """From the stored settings; a missing or out-of-range value keeps its default."""
        values = settings if isinstance(settings, Mapping) else {}
        return cls(
            _bounded_int(values.get("mfa_lockout_threshold"), cls.mfa_lockout_threshold, 1, 100),
            _bounded_int(values.get("mfa_lockout_window_minutes"), cls.mfa_lockout_window_minutes, 1, 1440),
            _bounded_int(values.get("mfa_lockout_minutes"), cls.mfa_lockout_minutes, 1, 10_080),
            _bounded_int(values.get("alert_lockout_minutes"), cls.alert_lockout_minutes, 1, 43_200),
        )


def _storable(value: Any, in_list: bool = False) -> bool:
    if isinstance(value, list):
        return not in_list and all(_storable(v, True) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _storable(v) for k, v in value.items())
    return value is None or isinstance(value, str | int | float | bool)


def applied_settings(settings: Any, changes: Mapping[str, Any]) -> dict[str, Any]:
    """The settings after `changes` ({field: FieldChange}): each field takes its `after`; a null `after`
    removes it. A value Firestore cannot hold (a list in a list) is kept as JSON text."""
    result = dict(settings) if isinstance(settings, Mapping) else {}
    for name, change in changes.items():
        after = change.after
        if after is None:
            result.pop(name, None)
        else:
            result[name] = after if _storable(after) else json.dumps(after, sort_keys=True)
    return result


MAX_KEPT_FAILURES = 100


def mfa_failure(
    failures: Any, at: datetime, settings: SecuritySettings
) -> tuple[list[datetime], datetime | None]:
    """Record a failed MFA challenge at `at`: the failures kept (those inside the window of the newest),
    and the lock's end when `mfa_lockout_threshold` failures fall within the window ending at `at`."""
    window = timedelta(minutes=settings.mfa_lockout_window_minutes)
    known = [f for f in failures if isinstance(f, datetime)] if isinstance(failures, list) else []
    everything = sorted([*known, at])
    newest = everything[-1]
    kept = [f for f in everything if f > newest - window][-MAX_KEPT_FAILURES:]
    in_window = [f for f in everything if at - window < f <= at]
    if len(in_window) >= settings.mfa_lockout_threshold:
        return kept, at + timedelta(minutes=settings.mfa_lockout_minutes)
    return kept, None


def later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def locks_actor(alert: AuditAlertTriggered) -> bool:
    """A critical role-escalation alert with a named actor locks that actor."""
    return alert.severity == "critical" and alert.rule_id in ROLE_ESCALATION_RULES and bool(alert.actor_id)


def restricted(state: Mapping[str, Any], now: datetime) -> bool:
    """Whether a principal's state can deny it (the kernel's loader reads only those principals)."""
    locked_until = state.get("locked_until")
    return (
        state.get("deactivated") is True
        or state.get("revoked") is True
        or (isinstance(locked_until, datetime) and locked_until > now)
    )
