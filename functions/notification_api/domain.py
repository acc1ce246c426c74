"""The Notification API's pure core: who is notified of what, through which channel, with which words.

No I/O and no imports from outside the standard library: the service resolves people (a tenant's admins,
a user's address and preferences) and stores what this module decides.

- `plan(event, payload)`: each consumed event's category and its targets (the tenant's admins, one user,
  a plain address), each with its channels and priority.
- `channels_for(...)`: a target's channels after the recipient's preferences; critical notifications
  ignore preferences, and a category made only of critical notifications cannot be switched off.
- `render(...)`: `{{variable}}` substitution from the event's payload, nothing else (no expressions,
  no attribute access), with tenant overrides and locale fallback to "en".
- `digest_groups(...)`: low-priority emails collected per recipient, sent as one mail per period.
- `normalize_delivery(...)`: an email provider's delivery report as delivered, soft bounce, hard bounce or
  complaint; the last two suppress the address.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from functions.notification_api.templates import DEFAULT_LOCALE, DIGEST, TEMPLATES, Template


class Channel(StrEnum):
    EMAIL = "email"
    IN_APP = "in_app"


class Priority(StrEnum):
    LOW = "low"  # email goes to the recipient's digest
    NORMAL = "normal"
    HIGH = "high"
    CRITICAL = "critical"  # delivered whatever the preferences say


BOTH = frozenset({Channel.EMAIL, Channel.IN_APP})
IN_APP = frozenset({Channel.IN_APP})
EMAIL = frozenset({Channel.EMAIL})


# --- who ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Admins:
    """The tenant's active admins and owners."""


@dataclass(frozen=True)
class User:
    """One user of the tenant (its address is looked up when not given)."""

    user_id: str
    email: str | None = None


@dataclass(frozen=True)
class Address:
    """An address that need not belong to a user (an invitee, a data subject)."""

    email: str
    user_id: str | None = None
    contact_id: str | None = None


Who = Admins | User | Address


@dataclass(frozen=True)
class Target:
    who: Who
    channels: frozenset[Channel]
    priority: Priority


@dataclass(frozen=True)
class Plan:
    category: str
    targets: tuple[Target, ...]


@dataclass(frozen=True)
class Recipient:
    """A resolved person: a user of the tenant (user_id), or only an address."""

    user_id: str | None
    email: str | None
    contact_id: str | None = None

    @property
    def key(self) -> str:
        return f"user:{self.user_id}" if self.user_id else f"email:{(self.email or '').lower()}"


def _actor_user(payload: Mapping[str, Any]) -> User | None:
    actor = payload.get("actor") or {}
    if actor.get("type") == "user" and actor.get("id"):
        return User(str(actor["id"]), actor.get("email"))
    return None


def _actor_or_admins(payload: Mapping[str, Any], priority: Priority) -> tuple[Target, ...]:
    actor = _actor_user(payload)
    return (Target(actor or Admins(), BOTH, priority),)


def _admins(priority: Priority, channels: frozenset[Channel] = BOTH) -> tuple[Target, ...]:
    return (Target(Admins(), channels, priority),)


def _severity(payload: Mapping[str, Any]) -> Priority:
    return Priority.HIGH if payload.get("severity") in ("high", "critical") else Priority.NORMAL


def _users(ids: Iterable[str], priority: Priority) -> tuple[Target, ...]:
    return tuple(Target(User(uid), BOTH, priority) for uid in dict.fromkeys(ids))


def _plan_new_user(p: Mapping[str, Any]) -> Plan:
    # An invitee or a provisioned user has not signed in yet: mail only. The admins see it in their inbox.
    return Plan(
        "account",
        (
            Target(Address(p["email"], user_id=p["user_id"]), EMAIL, Priority.HIGH),
            Target(Admins(), IN_APP, Priority.LOW),
        ),
    )


def invitation_to_link(event_name: str, payload: Mapping[str, Any], target: Target) -> str | None:
    """The invitation whose accept link the mail to the invitee carries (its token is minted at send
    time, so neither the event nor the stored mail ever holds one); None for every other mail."""
    if event_name == "User Invited" and isinstance(target.who, Address):
        return str(payload["invitation_id"])
    return None


def _plan_user_deactivated(p: Mapping[str, Any]) -> Plan:
    # The user can no longer sign in: mail only, and always (an unexpected deactivation is a security signal).
    return Plan(
        "account",
        (
            Target(Address(p["email"], user_id=p["user_id"]), EMAIL, Priority.CRITICAL),
            Target(Admins(), IN_APP, Priority.NORMAL),
        ),
    )


def _plan_privacy_request(p: Mapping[str, Any]) -> Plan:
    # The data subject gets an acknowledgement; the admins must answer before `due_at`.
    return Plan(
        "privacy",
        (
            Target(
                Address(p["data_subject_email"], user_id=p.get("user_id"), contact_id=p.get("contact_id")),
                EMAIL,
                Priority.HIGH,
            ),
            Target(Admins(), BOTH, Priority.HIGH),
        ),
    )


def _plan_final_only(category: str) -> Any:
    # Non-final attempts are retried by the sender: only the final failure is worth a notification.
    def plan_(p: Mapping[str, Any]) -> Plan:
        return Plan(category, _admins(Priority.HIGH) if p.get("final") else ())

    return plan_


def _plan_workflow(p: Mapping[str, Any]) -> Plan:
    if p.get("status") == "failed":
        return Plan("workflows", _actor_or_admins(p, Priority.HIGH))
    actor = _actor_user(p)
    return Plan("workflows", (Target(actor, IN_APP, Priority.LOW),) if actor else ())


def _plan_report(p: Mapping[str, Any]) -> Plan:
    if p.get("recipient_user_ids"):
        return Plan("reports", _users(p["recipient_user_ids"], Priority.NORMAL))
    return Plan("reports", _actor_or_admins(p, Priority.NORMAL))


def _plan_contact_created(p: Mapping[str, Any]) -> Plan:
    # An import creates up to 50,000 contacts: its importer follows the job, nobody wants a note per row.
    return Plan("customers", () if p.get("source") == "import" else _admins(Priority.LOW))


def _plan_health(p: Mapping[str, Any]) -> Plan:
    changed_grade = p.get("grade") != p.get("previous_grade")
    return Plan("customers", _admins(Priority.NORMAL if changed_grade else Priority.LOW))


RULES: dict[str, Any] = {
    "Anomaly Detected": lambda p: Plan("operations", _admins(_severity(p))),
    "Audit Alert Triggered": lambda p: Plan("security", _admins(Priority.CRITICAL)),
    "Bulk Import Completed": lambda p: Plan("data", _actor_or_admins(p, Priority.NORMAL)),
    "Capacity Limit Approaching": lambda p: Plan("billing", _admins(Priority.HIGH)),
    "Compliance Report Generated": lambda p: Plan("reports", _admins(Priority.NORMAL)),
    "Connector Error Detected": lambda p: Plan("integrations", _admins(Priority.HIGH)),
    "Contact Created": _plan_contact_created,
    "Data Erasure Completed": lambda p: Plan("privacy", _admins(Priority.NORMAL)),
    "Data Pipeline Failed": lambda p: Plan("operations", _admins(Priority.HIGH)),
    "Export Completed": lambda p: Plan("reports", _actor_or_admins(p, Priority.NORMAL)),
    "Health Score Changed": _plan_health,
    "Incident Declared": lambda p: Plan("incidents", _admins(Priority.CRITICAL)),
    "Insight Shared": lambda p: Plan(
        "collaboration", _users(p.get("shared_with_user_ids", []), Priority.NORMAL)
    ),
    "Onboarding Completed": lambda p: Plan("tenant", _admins(Priority.NORMAL)),
    "Onboarding Started": lambda p: Plan("tenant", _admins(Priority.LOW)),
    "Payment Method Updated": lambda p: Plan("billing", _admins(Priority.HIGH)),
    "Payment Refunded": lambda p: Plan("billing", _admins(Priority.NORMAL)),
    "Permission Policy Changed": lambda p: Plan("access", _admins(Priority.LOW)),
    "Privacy Request Received": _plan_privacy_request,
    "Report Generated": _plan_report,
    "SLO Breach Detected": lambda p: Plan("operations", _admins(Priority.HIGH)),
    "Subscription Cancelled": lambda p: Plan("billing", _admins(Priority.HIGH)),
    "Tenant Reactivated": lambda p: Plan("tenant", _admins(Priority.HIGH)),
    "Tenant Suspended": lambda p: Plan("tenant", _admins(Priority.CRITICAL)),
    "User Deactivated": _plan_user_deactivated,
    "User Invited": _plan_new_user,
    "User Provisioned": _plan_new_user,
    "User Role Changed": lambda p: Plan("account", (Target(User(p["user_id"]), BOTH, Priority.HIGH),)),
    "Webhook Delivery Failed": _plan_final_only("integrations"),
    "Webhook Failed": _plan_final_only("integrations"),
    "Workflow Executed": _plan_workflow,
}

CATEGORIES = (
    "access",
    "account",
    "billing",
    "collaboration",
    "customers",
    "data",
    "incidents",
    "integrations",
    "operations",
    "privacy",
    "reports",
    "security",
    "tenant",
    "workflows",
)
# Categories holding only critical notifications: switching one off is refused, not silently ignored.
ALWAYS_ON = frozenset({"security", "incidents"})


class UnknownEvent(KeyError):
    pass


def plan(event_name: str, payload: Mapping[str, Any]) -> Plan:
    try:
        rule = RULES[event_name]
    except KeyError as exc:
        raise UnknownEvent(event_name) from exc
    result: Plan = rule(payload)
    return result


# --- preferences ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Preferences:
    """A user's choices; anything not set is on. `email_digest` off sends low-priority mail at once."""

    channels: Mapping[str, bool] = field(default_factory=dict)
    categories: Mapping[str, Mapping[str, bool]] = field(default_factory=dict)
    email_digest: bool = True
    locale: str = DEFAULT_LOCALE

    @classmethod
    def from_document(cls, document: Mapping[str, Any] | None) -> Preferences:
        if not document:
            return cls()
        return cls(
            channels=dict(document.get("channels") or {}),
            categories={k: dict(v) for k, v in (document.get("categories") or {}).items()},
            email_digest=bool(document.get("email_digest", True)),
            locale=str(document.get("locale") or DEFAULT_LOCALE),
        )

    def to_document(self) -> dict[str, Any]:
        return {
            "channels": dict(self.channels),
            "categories": {k: dict(v) for k, v in self.categories.items()},
            "email_digest": self.email_digest,
            "locale": self.locale,
        }

    def allows(self, category: str, channel: Channel) -> bool:
        if not self.channels.get(channel.value, True):
            return False
        return bool(self.categories.get(category, {}).get(channel.value, True))


def preference_errors(preferences: Preferences) -> list[dict[str, str]]:
    """What a user may not switch off: the categories made only of critical notifications."""
    errors = []
    for category, channels in preferences.categories.items():
        if category not in CATEGORIES:
            errors.append({"pointer": f"#/categories/{category}", "detail": f"unknown category {category}"})
            continue
        for channel, enabled in channels.items():
            if channel not in (Channel.EMAIL.value, Channel.IN_APP.value):
                errors.append(
                    {"pointer": f"#/categories/{category}/{channel}", "detail": f"unknown channel {channel}"}
                )
            elif category in ALWAYS_ON and not enabled:
                errors.append(
                    {
                        "pointer": f"#/categories/{category}/{channel}",
                        "detail": f"{category} notifications are critical and cannot be switched off",
                    }
                )
    return errors


@dataclass(frozen=True)
class Delivery:
    """What one target gets: in-app, an email now, or an email in the next digest."""

    in_app: bool
    email: bool
    digest: bool


def channels_for(target: Target, category: str, preferences: Preferences, recipient: Recipient) -> Delivery:
    wanted = target.channels
    critical = target.priority is Priority.CRITICAL
    in_app = (
        Channel.IN_APP in wanted
        and recipient.user_id is not None
        and (critical or preferences.allows(category, Channel.IN_APP))
    )
    email = (
        Channel.EMAIL in wanted
        and bool(recipient.email)
        and (critical or preferences.allows(category, Channel.EMAIL))
    )
    digest = email and target.priority is Priority.LOW and preferences.email_digest
    return Delivery(in_app, email, digest)


def merge_targets(resolved: Sequence[tuple[Recipient, Target]]) -> list[tuple[Recipient, Target]]:
    """One target per recipient (an admin who is also the subject): the union of the channels, at the
    highest priority."""
    order = list(Priority)
    merged: dict[str, tuple[Recipient, Target]] = {}
    for recipient, target in resolved:
        known = merged.get(recipient.key)
        if known is None:
            merged[recipient.key] = (recipient, target)
            continue
        kept, previous = known
        priority = max(previous.priority, target.priority, key=order.index)
        merged[recipient.key] = (
            Recipient(
                kept.user_id or recipient.user_id,
                kept.email or recipient.email,
                kept.contact_id or recipient.contact_id,
            ),
            Target(previous.who, previous.channels | target.channels, priority),
        )
    return list(merged.values())


def notification_id(event_id: str, recipient_key: str, channel: Channel) -> str:
    """Deterministic: one notification per event, recipient and channel, whatever the redeliveries."""
    digest = hashlib.sha256(f"{event_id}\n{recipient_key}\n{channel.value}".encode()).hexdigest()
    return f"ntf_{digest[:32]}"


def address_key(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:40]


# --- templates ------------------------------------------------------------------------------------------
_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)?)\s*\}\}")
MAX_VALUE = 500


def normalize_locale(locale: str | None) -> str:
    base = (locale or DEFAULT_LOCALE).replace("_", "-").split("-")[0].lower()
    return base if re.fullmatch(r"[a-z]{2,3}", base) else DEFAULT_LOCALE


def variables(payload: Mapping[str, Any]) -> dict[str, str]:
    """The values a template may use: the payload's fields (one level of nesting as `a.b`), as text."""

    def text(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, list | tuple):
            return ", ".join(text(v) for v in value if not isinstance(v, dict))
        return str(value)[:MAX_VALUE]

    found: dict[str, str] = {}
    for key, value in payload.items():
        if isinstance(value, dict):
            for inner, nested in value.items():
                if not isinstance(nested, dict | list):
                    found[f"{key}.{inner}"] = text(nested)
        else:
            found[key] = text(value)
    return found


def placeholders(text: str) -> set[str]:
    return set(_PLACEHOLDER.findall(text))


def substitute(text: str, values: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), text)


def template_errors(template: Template, allowed: Iterable[str]) -> list[dict[str, str]]:
    """A tenant's override may only name the event's variables (a typo would render as nothing)."""
    known = set(allowed)
    errors = []
    for part in ("subject", "body"):
        unknown = sorted(placeholders(getattr(template, part)) - known)
        if unknown:
            errors.append(
                {
                    "pointer": f"#/{part}",
                    "detail": f"unknown variables {unknown}; available: {sorted(known)}",
                }
            )
    if "\n" in template.subject or "\r" in template.subject:
        errors.append({"pointer": "#/subject", "detail": "a subject is one line"})
    return errors


def choose_template(
    event_name: str, locale: str, overrides: Mapping[tuple[str, str], Template]
) -> tuple[Template, str]:
    """The tenant's override in the locale, the built-in one in the locale, then the same in "en"."""
    for candidate in dict.fromkeys((normalize_locale(locale), DEFAULT_LOCALE)):
        if (event_name, candidate) in overrides:
            return overrides[(event_name, candidate)], candidate
        built_in = TEMPLATES.get(event_name, {}).get(candidate)
        if built_in is not None:
            return built_in, candidate
    raise UnknownEvent(event_name)


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str
    locale: str


def render(
    event_name: str,
    payload: Mapping[str, Any],
    locale: str,
    overrides: Mapping[tuple[str, str], Template] | None = None,
    extra: Mapping[str, str] | None = None,
) -> Rendered:
    template, chosen = choose_template(event_name, locale, overrides or {})
    values = {**variables(payload), **(extra or {})}
    subject = " ".join(substitute(template.subject, values).split())[:200]
    return Rendered(subject, substitute(template.body, values).strip(), chosen)


# --- digest ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DigestItem:
    notification_id: str
    to: str
    user_id: str | None
    subject: str
    locale: str
    created_at: datetime


def digest_groups(items: Iterable[DigestItem]) -> dict[str, list[DigestItem]]:
    """One group per address (so per user), oldest first."""
    groups: dict[str, list[DigestItem]] = {}
    for item in sorted(items, key=lambda i: (i.created_at, i.notification_id)):
        groups.setdefault(item.to.lower(), []).append(item)
    return groups


def digest_id(address: str, items: Sequence[DigestItem]) -> str:
    """The digest mail's id, from what it holds: a rerun of the same period sends nothing new."""
    joined = "\n".join(sorted(i.notification_id for i in items))
    return "dig_" + hashlib.sha256(f"{address.lower()}\n{joined}".encode()).hexdigest()[:32]


def render_digest(items: Sequence[DigestItem]) -> Rendered:
    locale = normalize_locale(items[0].locale) if items else DEFAULT_LOCALE
    template = DIGEST.get(locale) or DIGEST[DEFAULT_LOCALE]
    lines = "\n".join(f"- {i.subject}" for i in items)
    values = {"count": str(len(items)), "items": lines}
    return Rendered(substitute(template.subject, values), substitute(template.body, values).strip(), locale)


# --- delivery reports (bounces, complaints) -------------------------------------------------------------
class DeliveryKind(StrEnum):
    DELIVERED = "delivered"
    SOFT_BOUNCE = "soft_bounce"
    HARD_BOUNCE = "hard_bounce"
    COMPLAINT = "complaint"


class UnsupportedReport(ValueError):
    pass


_DELIVERED = {"delivered", "delivery"}
_BOUNCE = {"bounce", "bounced"}
_HARD = {"hard", "permanent", "hard_bounce", "hardbounce"}
_SOFT = {"soft", "transient", "temporary", "soft_bounce", "softbounce", "undetermined"}
_COMPLAINT = {"complaint", "complained", "spamreport", "spam_report", "abuse"}


def normalize_delivery(kind: str, bounce_type: str | None) -> DeliveryKind:
    """A provider's vocabulary (SES: Bounce/Permanent, SendGrid: bounce/spamreport, Postmark:
    HardBounce/SpamComplaint, ...) as one of ours."""
    k = kind.strip().lower().replace("-", "_")
    b = (bounce_type or "").strip().lower().replace("-", "_")
    if k in _DELIVERED:
        return DeliveryKind.DELIVERED
    if k in _COMPLAINT or k == "spamcomplaint":
        return DeliveryKind.COMPLAINT
    if k in _HARD:
        return DeliveryKind.HARD_BOUNCE
    if k in _SOFT:
        return DeliveryKind.SOFT_BOUNCE
    if k in _BOUNCE:
        if b in _HARD:
            return DeliveryKind.HARD_BOUNCE
        if b in _SOFT or not b:
            return DeliveryKind.SOFT_BOUNCE
    raise UnsupportedReport(f"unsupported delivery report {kind!r} / {bounce_type!r}")


def suppresses(kind: DeliveryKind) -> bool:
    """A hard bounce or a complaint: no more email to that address (in-app is unaffected)."""
    return kind in (DeliveryKind.HARD_BOUNCE, DeliveryKind.COMPLAINT)


def bounce_type(kind: DeliveryKind) -> str | None:
    return {
        DeliveryKind.HARD_BOUNCE: "hard",
        DeliveryKind.SOFT_BOUNCE: "soft",
        DeliveryKind.COMPLAINT: "complaint",
    }.get(kind)


MESSAGE_ID_DOMAIN = "notifications.cmp.example"


def message_id(tenant_id: str, notification_id: str) -> str:
    """The Message-ID header of a mail; providers report deliveries with it."""
    return f"<{notification_id}.{tenant_id}@{MESSAGE_ID_DOMAIN}>"


def parse_message_id(value: str) -> tuple[str, str] | None:
    """(tenant_id, notification_id) from one of our Message-IDs, or None."""
    found = re.fullmatch(
        r"<?((?:ntf|dig)_[0-9a-f]{32})\.([A-Za-z0-9_-]{1,128})@" + re.escape(MESSAGE_ID_DOMAIN) + ">?",
        value.strip(),
    )
    return (found.group(2), found.group(1)) if found else None
