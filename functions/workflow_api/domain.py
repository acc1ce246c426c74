"""Workflow rules. Pure: no I/O, no clients, nothing imported from outside the standard library.

A workflow definition is plain JSON:

    {"trigger": "Contact Updated",
     "conditions": {"all": [{"op": "changed", "field": "lifecycle_stage", "to": "customer"},
                            {"path": "source", "op": "ne", "value": "import"}]},
     "steps": [{"name": "tag", "type": "update_contact", "changes": {"tags": ["customer"]}},
               {"name": "tell", "type": "notify", "message": "{{contact_id}} became a customer"},
               {"name": "hook", "type": "webhook", "url": "https://hooks.example/won"},
               {"name": "pause", "type": "wait", "seconds": 3600},
               {"name": "check", "type": "branch", "condition": {...}, "then": "hook", "else": "end"}]}

Conditions read the event's `data` by dotted path (`changes.lifecycle_stage.after`, `emails.0`); a path
starting with `$steps.` reads the outputs of earlier steps (branches only). `{{path}}` in a string
value is replaced by the value at that path (the whole value when the string is only the template).

Loops are impossible by construction:
- a workflow never fires on an event its own writes caused (the Customer Data API marks them with the
  actor `workflow:<workflow_id>`);
- a chain across workflows stops at MAX_DEPTH hops (each workflow-caused event is one hop deeper than
  the run whose write caused it);
- a branch may only jump forward, so a run's own steps cannot cycle.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

# The events a rule may be triggered by: what the Workflow API consumes (schemas/catalog.json).
TRIGGERS = (
    "Anomaly Detected",
    "Audit Alert Triggered",
    "Bulk Import Completed",
    "Contact Created",
    "Contact Updated",
    "Customer Profile Merged",
    "Health Score Changed",
    "Incident Declared",
    "Onboarding Started",
    "Privacy Request Received",
)
COMPARISONS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "contains", "exists")
STEP_TYPES = ("update_contact", "notify", "webhook", "wait", "branch")
BUILTIN_STEP_TYPES = ("privacy_request",)  # only built-in workflows carry these
END = "end"  # a branch target that finishes the run
MAX_DEPTH = 5  # hops of a chain of workflows triggering each other through their writes
MAX_STEPS = 20
MAX_CONDITION_DEPTH = 6
MAX_WAIT_SECONDS = 30 * 24 * 3600  # Cloud Tasks schedules at most 30 days ahead
WORKFLOW_ACTOR_PREFIX = "workflow:"
STEP_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_TEMPLATE = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")
_MISSING = object()


class VersionStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    ARCHIVED = "archived"


class Refused(Exception):
    """A change the workflow's state does not allow (answered 409 with `kind`)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class Invalid:
    pointer: str  # JSON pointer into the definition, as a URI fragment
    detail: str


# --- reading the event ---------------------------------------------------------------------------------
def lookup(document: Any, path: str) -> Any:
    """The value at a dotted path, or _MISSING. List items are addressed by their index."""
    value = document
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def exists(document: Any, path: str) -> bool:
    return lookup(document, path) is not _MISSING


def _compare(op: str, actual: Any, expected: Any) -> bool:
    if op == "exists":
        return (actual is not _MISSING) == (expected is not False)
    if actual is _MISSING:
        return op == "ne"
    if op == "eq":
        return bool(actual == expected)
    if op == "ne":
        return bool(actual != expected)
    if op == "in":
        return isinstance(expected, list) and actual in expected
    if op == "contains":
        if isinstance(actual, str) and isinstance(expected, str):
            return expected in actual
        return isinstance(actual, list) and expected in actual
    # Ordering only between numbers or between strings (ISO times compare as strings).
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (actual, expected))
    if not numbers and not (isinstance(actual, str) and isinstance(expected, str)):
        return False
    if op == "gt":
        return bool(actual > expected)
    if op == "gte":
        return bool(actual >= expected)
    if op == "lt":
        return bool(actual < expected)
    return bool(actual <= expected)


def _changed(condition: Mapping[str, Any], document: Any) -> bool:
    """Contact Updated's `changes` map: the field changed, optionally from and/or to given values."""
    change = lookup(document, f"changes.{condition['field']}")
    if not isinstance(change, Mapping):
        return False
    if "from" in condition and change.get("before") != condition["from"]:
        return False
    return not ("to" in condition and change.get("after") != condition["to"])


def evaluate(condition: Mapping[str, Any] | None, document: Any) -> bool:
    """Whether `condition` holds for `document`; no condition always holds."""
    if condition is None:
        return True
    if "all" in condition:
        return all(evaluate(c, document) for c in condition["all"])
    if "any" in condition:
        return any(evaluate(c, document) for c in condition["any"])
    if "not" in condition:
        return not evaluate(condition["not"], document)
    if condition.get("op") == "changed":
        return _changed(condition, document)
    return _compare(condition["op"], lookup(document, condition["path"]), condition.get("value"))


# --- validating a definition ---------------------------------------------------------------------------
def _check_condition(condition: Any, pointer: str, depth: int = 0) -> list[Invalid]:
    if not isinstance(condition, Mapping):
        return [Invalid(pointer, "a condition is an object")]
    if depth > MAX_CONDITION_DEPTH:
        return [Invalid(pointer, f"conditions nest at most {MAX_CONDITION_DEPTH} levels")]
    for group in ("all", "any"):
        if group in condition:
            items = condition[group]
            if len(condition) != 1 or not isinstance(items, list) or not items:
                return [Invalid(pointer, f"'{group}' is the only key, with a non-empty list")]
            return [
                e
                for i, c in enumerate(items)
                for e in _check_condition(c, f"{pointer}/{group}/{i}", depth + 1)
            ]
    if "not" in condition:
        if len(condition) != 1:
            return [Invalid(pointer, "'not' is the only key")]
        return _check_condition(condition["not"], f"{pointer}/not", depth + 1)
    op = condition.get("op")
    if op == "changed":
        extra = set(condition) - {"op", "field", "from", "to"}
        if extra:
            return [Invalid(pointer, f"unknown keys {sorted(extra)}")]
        name = condition.get("field")
        if not isinstance(name, str) or not name or "." in name:
            return [Invalid(f"{pointer}/field", "the changed field's name (no dots)")]
        return []
    if op not in COMPARISONS:
        return [Invalid(f"{pointer}/op", f"one of {', '.join((*COMPARISONS, 'changed'))}, or all/any/not")]
    extra = set(condition) - {"op", "path", "value"}
    if extra:
        return [Invalid(pointer, f"unknown keys {sorted(extra)}")]
    path = condition.get("path")
    if not isinstance(path, str) or not path or any(not p for p in path.split(".")):
        return [Invalid(f"{pointer}/path", "a dotted path into the event data")]
    if op == "in" and not isinstance(condition.get("value"), list):
        return [Invalid(f"{pointer}/value", "'in' compares with a list")]
    if op != "exists" and "value" not in condition:
        return [Invalid(f"{pointer}/value", "a value to compare with")]
    return []


def _check_step(step: Any, index: int, names: list[str], builtin: bool) -> list[Invalid]:
    pointer = f"#/steps/{index}"
    if not isinstance(step, Mapping):
        return [Invalid(pointer, "a step is an object")]
    kind = step.get("type")
    allowed = STEP_TYPES + (BUILTIN_STEP_TYPES if builtin else ())
    if kind not in allowed:
        return [Invalid(f"{pointer}/type", f"one of {', '.join(allowed)}")]
    keys = {
        "update_contact": {"contact", "changes"},
        "notify": {"message", "channel", "to"},
        "webhook": {"url"},
        "wait": {"seconds"},
        "branch": {"condition", "then", "else"},
        "privacy_request": set(),
    }[kind]
    extra = set(step) - keys - {"name", "type"}
    if extra:
        return [Invalid(pointer, f"unknown keys for {kind}: {sorted(extra)}")]
    errors: list[Invalid] = []
    if kind == "update_contact":
        changes = step.get("changes")
        if not isinstance(changes, Mapping) or not changes:
            errors.append(Invalid(f"{pointer}/changes", "a non-empty JSON merge of the contact's fields"))
        if not isinstance(step.get("contact", "contact_id"), str):
            errors.append(Invalid(f"{pointer}/contact", "the path of the contact id in the event data"))
    elif kind == "notify":
        message = step.get("message")
        if not isinstance(message, str) or not 0 < len(message) <= 2000:
            errors.append(Invalid(f"{pointer}/message", "a message of 1 to 2000 characters"))
        if step.get("channel", "in_app") not in ("in_app", "email"):
            errors.append(Invalid(f"{pointer}/channel", "in_app or email"))
    elif kind == "webhook":
        url = step.get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")) or len(url) > 2048:
            errors.append(Invalid(f"{pointer}/url", "an https URL"))
    elif kind == "wait":
        seconds = step.get("seconds")
        if not isinstance(seconds, int) or isinstance(seconds, bool) or not 1 <= seconds <= MAX_WAIT_SECONDS:
            errors.append(Invalid(f"{pointer}/seconds", f"whole seconds from 1 to {MAX_WAIT_SECONDS}"))
    elif kind == "branch":
        errors.extend(_check_condition(step.get("condition"), f"{pointer}/condition"))
        for target in ("then", "else"):
            name = step.get(target, None)
            if name is None or name == END:
                continue
            # Forward only: a run's steps can never cycle.
            if name not in names[index + 1 :]:
                errors.append(Invalid(f"{pointer}/{target}", f"a later step's name, or '{END}'"))
    return errors


def validate(definition: Mapping[str, Any], builtin: bool = False) -> list[Invalid]:
    """Every problem of a definition, each with its JSON pointer (empty: valid)."""
    errors: list[Invalid] = []
    if definition.get("trigger") not in TRIGGERS:
        errors.append(Invalid("#/trigger", f"one of {', '.join(TRIGGERS)}"))
    if definition.get("conditions") is not None:
        errors.extend(_check_condition(definition["conditions"], "#/conditions"))
    steps = definition.get("steps")
    if not isinstance(steps, list) or not 1 <= len(steps) <= MAX_STEPS:
        return [*errors, Invalid("#/steps", f"a list of 1 to {MAX_STEPS} steps")]
    names = [s.get("name") if isinstance(s, Mapping) else None for s in steps]
    for index, name in enumerate(names):
        if not isinstance(name, str) or not STEP_NAME.match(name) or name == END:
            errors.append(
                Invalid(f"#/steps/{index}/name", "lowercase letters, digits, '-' and '_'; not 'end'")
            )
        elif names.index(name) != index:
            errors.append(Invalid(f"#/steps/{index}/name", "step names must be unique"))
    for index, step in enumerate(steps):
        errors.extend(_check_step(step, index, [n if isinstance(n, str) else "" for n in names], builtin))
    return errors


# --- templates -------------------------------------------------------------------------------------------
def render(value: Any, document: Any) -> Any:
    """Replace `{{path}}` templates in strings (recursively through lists and objects)."""
    if isinstance(value, str):
        whole = _TEMPLATE.fullmatch(value.strip())
        if whole:
            found = lookup(document, whole.group(1))
            return None if found is _MISSING else found

        def one(match: re.Match[str]) -> str:
            found = lookup(document, match.group(1))
            return "" if found is _MISSING or found is None else str(found)

        return _TEMPLATE.sub(one, value)
    if isinstance(value, list):
        return [render(v, document) for v in value]
    if isinstance(value, Mapping):
        return {k: render(v, document) for k, v in value.items()}
    return value


# --- firing ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EventView:
    """What a rule sees of an event."""

    id: str
    name: str
    subject: str
    data: Mapping[str, Any]
    source: str = ""  # the CloudEvent source

    @property
    def actor_id(self) -> str | None:
        actor = self.data.get("actor")
        value = actor.get("id") if isinstance(actor, Mapping) else None
        return value if isinstance(value, str) else None

    @property
    def workflow_caused(self) -> str | None:
        """The workflow whose write caused this event, if one did."""
        actor = self.actor_id
        if actor is not None and actor.startswith(WORKFLOW_ACTOR_PREFIX):
            return actor[len(WORKFLOW_ACTOR_PREFIX) :]
        return None


def workflow_actor(workflow_id: str) -> str:
    return WORKFLOW_ACTOR_PREFIX + workflow_id


@dataclass(frozen=True)
class Verdict:
    fires: bool
    reason: str  # matched | other trigger | conditions not met | caused by itself | hop limit


def judge(workflow_id: str, definition: Mapping[str, Any], event: EventView, depth: int = 1) -> Verdict:
    """Whether the workflow fires on the event. `depth` is the run's place in a chain of workflows."""
    if definition.get("trigger") != event.name:
        return Verdict(False, "other trigger")
    if event.workflow_caused == workflow_id:
        return Verdict(False, "caused by itself")
    if depth > MAX_DEPTH:
        return Verdict(False, "hop limit")
    if not evaluate(definition.get("conditions"), event.data):
        return Verdict(False, "conditions not met")
    return Verdict(True, "matched")


def depth_of(event: EventView, causing_run_depth: int | None) -> int:
    """A run's depth: 1 for an event nobody's workflow caused; one more than the causing run's."""
    if event.workflow_caused is None:
        return 1
    return (causing_run_depth or 1) + 1


def run_id(workflow_id: str, event_source: str, event_id: str) -> str:
    """One run per workflow and event, whatever the number of deliveries."""
    return "run_" + hashlib.sha256(f"{workflow_id}\n{event_source}\n{event_id}".encode()).hexdigest()[:24]


def run_trigger(event_name: str) -> str:
    """Workflow Executed's `trigger`: record events by kind, anything else `event`."""
    return {
        "Contact Created": "record_created",
        "Contact Updated": "record_updated",
        "Customer Profile Merged": "record_updated",
    }.get(event_name, "event")


# --- actions ---------------------------------------------------------------------------------------------
def step_document(data: Mapping[str, Any], outputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What conditions and templates of a step read: the event data and `$steps` (earlier outputs)."""
    return {**data, "$steps": dict(outputs or {})}


def action(step: Mapping[str, Any], document: Any) -> dict[str, Any]:
    """The concrete action a (non-branch) step takes for this event: templates rendered."""
    kind = step["type"]
    if kind == "update_contact":
        contact = lookup(document, step.get("contact", "contact_id"))
        return {
            "type": kind,
            "contact_id": contact if isinstance(contact, str) else None,
            "changes": render(step["changes"], document),
        }
    if kind == "notify":
        return {
            "type": kind,
            "channel": step.get("channel", "in_app"),
            "to": render(step.get("to"), document),
            "message": str(render(step["message"], document))[:2000],
        }
    if kind == "webhook":
        return {"type": kind, "url": step["url"]}
    if kind == "wait":
        return {"type": kind, "seconds": step["seconds"]}
    return {"type": kind}


def branch_target(step: Mapping[str, Any], document: Any) -> str | None:
    """The step a branch continues with; None for the following step; END to finish."""
    target = step.get("then") if evaluate(step["condition"], document) else step.get("else")
    return target if isinstance(target, str) else None


@dataclass(frozen=True)
class Planned:
    step: str
    action: dict[str, Any]


def plan(definition: Mapping[str, Any], data: Mapping[str, Any]) -> list[Planned]:
    """What a run would do for this event, without doing it (branches see no step outputs)."""
    steps: Sequence[Mapping[str, Any]] = definition["steps"]
    index = {s["name"]: i for i, s in enumerate(steps)}
    document = step_document(data)
    out: list[Planned] = []
    i = 0
    while i < len(steps):
        step = steps[i]
        if step["type"] == "branch":
            target = branch_target(step, document)
            out.append(Planned(step["name"], {"type": "branch", "next": target or "following"}))
            if target == END:
                break
            i = index[target] if target is not None else i + 1
            continue
        out.append(Planned(step["name"], action(step, document)))
        i += 1
    return out


@dataclass(frozen=True)
class DryRunMatch:
    event_id: str
    event_time: str
    subject: str
    actions: list[Planned] = field(default_factory=list)


@dataclass(frozen=True)
class DryRun:
    examined: int
    matched: list[DryRunMatch]
    skipped: dict[str, int]  # events of the trigger that would not fire, by reason


def dry_run(
    workflow_id: str, definition: Mapping[str, Any], events: Sequence[tuple[EventView, str]]
) -> DryRun:
    """Evaluate a definition against stored (event, event time) pairs: what would have fired."""
    matched: list[DryRunMatch] = []
    skipped: dict[str, int] = {}
    for event, when in events:
        verdict = judge(workflow_id, definition, event)
        if verdict.fires:
            matched.append(DryRunMatch(event.id, when, event.subject, plan(definition, event.data)))
        elif verdict.reason != "other trigger":
            skipped[verdict.reason] = skipped.get(verdict.reason, 0) + 1
    return DryRun(len(events), matched, skipped)


# --- versions --------------------------------------------------------------------------------------------
def edit_target(statuses: Mapping[int, str]) -> tuple[int, bool]:
    """Which version an edit of the definition goes to: (version, is new). The draft if there is one;
    else a new draft after the latest, so an active version is never changed under running rules."""
    drafts = [v for v, s in statuses.items() if s == VersionStatus.DRAFT]
    if drafts:
        return max(drafts), False
    return max(statuses, default=0) + 1, True


def activation(statuses: Mapping[int, str], version: int | None) -> dict[int, str]:
    """The status changes that activate `version` (default: the draft): the previous active one is
    archived. An archived version may be activated again (a rollback)."""
    if version is None:
        drafts = [v for v, s in statuses.items() if s == VersionStatus.DRAFT]
        if not drafts:
            raise Refused("no-draft", "There is no draft version to activate.")
        version = max(drafts)
    if version not in statuses:
        raise Refused("unknown-version", f"Version {version} does not exist.")
    if statuses[version] == VersionStatus.ACTIVE:
        raise Refused("already-active", f"Version {version} is already active.")
    changes = {v: VersionStatus.ARCHIVED.value for v, s in statuses.items() if s == VersionStatus.ACTIVE}
    changes[version] = VersionStatus.ACTIVE.value
    return changes


def archival(statuses: Mapping[int, str]) -> dict[int, str]:
    """The status changes that archive the active version (the workflow stops firing)."""
    active = [v for v, s in statuses.items() if s == VersionStatus.ACTIVE]
    if not active:
        raise Refused("not-active", "The workflow has no active version.")
    return dict.fromkeys(active, VersionStatus.ARCHIVED.value)
