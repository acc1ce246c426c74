"""The Account aggregate of the Customer Data API, pure: organizations, contacts, normalization and search
keys, duplicate scoring, merge (preview, apply, undo) and bulk-import row mapping. No I/O here.

Records are plain dicts as stored in Firestore: the service reads and writes them whole, so a merge or an
import can keep a record's exact before-image and put it back.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from difflib import SequenceMatcher
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.contracts import json_text

EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
PHONE = r"^\+?[0-9 ()./-]{3,32}$"
DOMAIN = r"^(?=.{3,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"

Kind = Literal["contact", "organization"]
Source = Literal["manual", "api", "import", "workflow"]
EmailStatus = Literal["valid", "bounced", "suppressed"]
Consent = Literal["unknown", "granted", "withdrawn"]
Size = Literal["1-10", "11-50", "51-200", "201-1000", "1001-5000", "5001+"]

DEFAULT_LIFECYCLE_STAGES = ("subscriber", "lead", "opportunity", "customer", "evangelist", "other")
MAX_EMAILS = 10
MAX_DOMAINS = 10
MAX_IMPORT_ROWS = 50_000
# Writes per row: the record, its row report, its event (contacts) or up to 2 x MAX_IMPORT_DOMAINS domain
# claims (organizations): both chunk sizes stay well within one transaction's 500 writes.
CHUNK_ROWS: dict[Kind, int] = {"contact": 100, "organization": 25}
MAX_IMPORT_DOMAINS = 5
# Mail providers shared by unrelated people: a shared one of these is no sign of a duplicate.
FREE_MAIL = frozenset(
    {"gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "yahoo.com", "icloud.com", "gmx.de",
     "web.de", "proton.me", "protonmail.com", "aol.com", "live.com", "mail.com", "example.com"}
)  # fmt: skip
DUPLICATE_THRESHOLD = 0.8


class DomainError(Exception):
    """A request the aggregate refuses: `kind` becomes the problem type, `status` its HTTP status."""

    def __init__(self, kind: str, detail: str, status: int = 409, **extensions: Any) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.status = status
        self.extensions = extensions


# --- normalization -----------------------------------------------------------------------------------
def fold(text: str) -> str:
    """Lowercased, accents removed, runs of anything but letters and digits made one space."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    return re.sub(r"[^0-9a-z]+", " ", plain).strip()


def normalize_email(email: str) -> str:
    return email.strip().lower()


def normalize_domain(domain: str) -> str:
    value = domain.strip().lower().removeprefix("https://").removeprefix("http://").split("/")[0]
    return value.removeprefix("www.").rstrip(".")


def email_domain(email: str) -> str:
    return email.rsplit("@", 1)[-1]


def prefix_end(prefix: str) -> str:
    """The smallest string above every string that starts with `prefix` (a range query's upper bound)."""
    return prefix + "\uf8ff"


def contact_keys(record: Mapping[str, Any]) -> dict[str, Any]:
    """The search keys stored on a contact: name prefix (range), emails and their domains (membership)."""
    emails = [normalize_email(e) for e in record.get("emails") or []]
    return {
        "name_key": fold(f"{record.get('first_name', '')} {record.get('last_name', '')}"),
        "last_name_key": fold(str(record.get("last_name") or "")),
        "email_keys": emails,
        "domain_keys": sorted({email_domain(e) for e in emails}),
    }


def organization_keys(record: Mapping[str, Any]) -> dict[str, Any]:
    return {"name_key": fold(str(record.get("name") or ""))}


# --- input models ------------------------------------------------------------------------------------
Email = Annotated[str, Field(max_length=254, pattern=EMAIL)]
Phone = Annotated[str, Field(pattern=PHONE)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Tag = Annotated[str, Field(min_length=1, max_length=64)]
CustomValue = str | int | float | bool | None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Address(_Strict):
    street: str | None = Field(default=None, max_length=200)
    city: str | None = Field(default=None, max_length=100)
    postal_code: str | None = Field(default=None, max_length=20)
    region: str | None = Field(default=None, max_length=100)
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")


def _custom(value: dict[str, CustomValue]) -> dict[str, CustomValue]:
    if len(value) > 50:
        raise ValueError("at most 50 custom fields")
    for key, item in value.items():
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", key):
            raise ValueError(f"custom field name {key!r}: lowercase letters, digits and _ (max 40)")
        if isinstance(item, str) and len(item) > 1000:
            raise ValueError(f"custom field {key!r}: at most 1000 characters")
    return value


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


class OrganizationFields(_Strict):
    """Every field a client may set on an organization (PATCH sends any subset)."""

    name: Name
    domains: list[str] = Field(default_factory=list, max_length=MAX_DOMAINS)
    industry: str | None = Field(default=None, max_length=100)
    size: Size | None = None
    address: Address | None = None
    owner_id: str | None = Field(default=None, max_length=128)
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    custom_fields: dict[str, CustomValue] = Field(default_factory=dict)

    @field_validator("domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        out = _unique(normalize_domain(d) for d in value)
        for domain in out:
            if not re.fullmatch(DOMAIN, domain):
                raise ValueError(f"{domain!r} is not a domain name")
        return out

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        return _unique(value)

    _custom_fields = field_validator("custom_fields")(_custom)


class ContactFields(_Strict):
    first_name: Name
    last_name: Name
    emails: list[Email] = Field(default_factory=list, max_length=MAX_EMAILS)
    phones: list[Phone] = Field(default_factory=list, max_length=10)
    job_title: str | None = Field(default=None, min_length=1, max_length=200)
    organization_id: str | None = Field(default=None, pattern=r"^org_[0-9a-f]{20}$")
    lifecycle_stage: str | None = Field(default=None, max_length=40)
    consent: Consent = "unknown"
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    custom_fields: dict[str, CustomValue] = Field(default_factory=dict)

    @field_validator("emails")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        return _unique(normalize_email(e) for e in value)

    @field_validator("phones", "tags")
    @classmethod
    def _lists(cls, value: list[str]) -> list[str]:
        return _unique(value)

    _custom_fields = field_validator("custom_fields")(_custom)


FIELDS: dict[Kind, type[_Strict]] = {"contact": ContactFields, "organization": OrganizationFields}
# Fields a merge unions instead of choosing one side: both profiles' values are kept.
UNION_FIELDS: dict[Kind, tuple[str, ...]] = {
    "contact": ("emails", "phones", "tags"),
    "organization": ("domains", "tags"),
}


def field_names(kind: Kind) -> tuple[str, ...]:
    return tuple(FIELDS[kind].model_fields)


def validate_fields(kind: Kind, data: Mapping[str, Any]) -> dict[str, Any]:
    """A complete, valid field set (raises pydantic's ValidationError)."""
    return FIELDS[kind].model_validate(dict(data)).model_dump(mode="json")


def merge_patch(kind: Kind, record: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7396 on the editable fields: null removes (back to the default), objects merge."""
    unknown = sorted(set(patch) - set(field_names(kind)))
    if unknown:
        raise DomainError("validation-error", f"unknown or read-only fields: {', '.join(unknown)}", 422)
    current: dict[str, Any] = {n: record[n] for n in field_names(kind) if record.get(n) is not None}
    for key, value in patch.items():
        held = current.get(key)
        if value is None:
            current.pop(key, None)
        elif isinstance(value, dict) and isinstance(held, dict):
            merged = {**held, **value}
            current[key] = {k: v for k, v in merged.items() if v is not None}
        else:
            current[key] = value
    return validate_fields(kind, current)


def changes(before: Mapping[str, Any], after: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """{field: {before, after}} for each field whose value differs."""
    return {
        name: {"before": before.get(name), "after": after.get(name)}
        for name in names
        if before.get(name) != after.get(name)
    }


def stamp(actor: Mapping[str, Any], source: Source, now: datetime) -> dict[str, Any]:
    return {"actor": dict(actor), "source": source, "at": now}


def email_status(record: Mapping[str, Any]) -> EmailStatus:
    """The primary (first) email's status: what a sender of mail to this contact needs to know."""
    emails = record.get("emails") or []
    if not emails:
        return "valid"
    primary = emails[0]
    if primary in (record.get("bounced_emails") or []):
        return "bounced"
    if primary in (record.get("suppressed_emails") or []):
        return "suppressed"
    return "valid"


def new_record(
    kind: Kind,
    record_id: str,
    fields: Mapping[str, Any],
    actor: Mapping[str, Any],
    source: Source,
    now: datetime,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": record_id,
        **fields,
        "created": stamp(actor, source, now),
        "updated": stamp(actor, source, now),
        "created_at": now,
        "updated_at": now,
        "deleted": False,
        "deleted_at": None,
        "version": 1,
    }
    if kind == "contact":
        record.update({"bounced_emails": [], "suppressed_emails": [], "soft_bounces": {}})
    return refresh(kind, record)


def refresh(kind: Kind, record: dict[str, Any]) -> dict[str, Any]:
    """Recompute what is derived from the fields: search keys, and a contact's email status."""
    if kind == "contact":
        record.update(contact_keys(record))
        emails = set(record.get("emails") or [])
        record["bounced_emails"] = [e for e in record.get("bounced_emails") or [] if e in emails]
        record["suppressed_emails"] = [e for e in record.get("suppressed_emails") or [] if e in emails]
        record["email_status"] = email_status(record)
    else:
        record.update(organization_keys(record))
    return record


def apply_fields(
    kind: Kind,
    record: Mapping[str, Any],
    fields: Mapping[str, Any],
    actor: Mapping[str, Any],
    source: Source,
    now: datetime,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The record with new field values, and what changed (nothing changed: the record as it was)."""
    after = {**record}
    for name in field_names(kind):
        if name in fields:
            after[name] = fields[name]
        else:
            after.pop(name, None)
    diff = changes(record, after, field_names(kind))
    if not diff:
        return dict(record), {}
    after.update(
        {"updated": stamp(actor, source, now), "updated_at": now, "version": int(record["version"]) + 1}
    )
    return refresh(kind, after), diff


def _deleted(
    record: Mapping[str, Any], deleted: bool, actor: Mapping[str, Any], source: Source, now: datetime
) -> dict[str, Any]:
    return {
        **record,
        "deleted": deleted,
        "deleted_at": now if deleted else None,
        "updated": stamp(actor, source, now),
        "updated_at": now,
        "version": int(record["version"]) + 1,
    }


def soft_delete(
    record: Mapping[str, Any], actor: Mapping[str, Any], source: Source, now: datetime
) -> dict[str, Any]:
    if record.get("deleted"):
        raise DomainError("already-deleted", "The record is already deleted.")
    return _deleted(record, True, actor, source, now)


def restore(
    record: Mapping[str, Any], actor: Mapping[str, Any], source: Source, now: datetime
) -> dict[str, Any]:
    if not record.get("deleted"):
        raise DomainError("not-deleted", "The record is not deleted.")
    if record.get("merged_into"):
        raise DomainError("merged", "The record was merged: undo the merge instead.")
    return _deleted(record, False, actor, source, now)


BounceType = Literal["hard", "soft", "complaint"]
SOFT_BOUNCES_TO_SUPPRESS = 3


def record_bounce(
    record: Mapping[str, Any], email: str, bounce: BounceType, now: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A hard bounce marks the address bounced and suppressed; a complaint suppresses it; soft bounces
    count, and the third in a row counts as a hard one. Returns the record and its changes."""
    email = normalize_email(email)
    if email not in (record.get("emails") or []):
        return dict(record), {}
    after = {**record}
    bounced = list(record.get("bounced_emails") or [])
    suppressed = list(record.get("suppressed_emails") or [])
    soft = dict(record.get("soft_bounces") or {})
    if bounce == "soft":
        soft[email] = int(soft.get(email, 0)) + 1
        after["soft_bounces"] = soft
        if soft[email] < SOFT_BOUNCES_TO_SUPPRESS:
            return after, {}
        bounce = "hard"
    if bounce == "hard" and email not in bounced:
        bounced.append(email)
    if email not in suppressed:
        suppressed.append(email)
    after.update({"bounced_emails": bounced, "suppressed_emails": suppressed})
    after["email_status"] = email_status(after)
    diff = changes(record, after, ("bounced_emails", "suppressed_emails", "email_status"))
    if not diff:
        return after, {}
    after.update({"updated_at": now, "version": int(record["version"]) + 1})
    return after, diff


def name_from_email(email: str) -> tuple[str, str]:
    """A first and last name guessed from an address's local part ("jonas.berg" → Jonas, Berg)."""
    local = email.split("@", 1)[0].split("+", 1)[0]
    parts = [p for p in re.split(r"[._-]+", local) if p]
    if len(parts) >= 2:
        return parts[0].capitalize()[:200], " ".join(parts[1:]).title()[:200]
    return (parts[0] if parts else local).capitalize()[:200] or "Unknown", "Unknown"


# --- duplicates --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    id: str
    score: float
    reasons: tuple[str, ...]


def similarity(a: str, b: str) -> float:
    """difflib's ratio over folded names: 1.0 for the same name, ~0.9 for one typo in a short name."""
    if not a or not b:
        return 0.0
    return SequenceMatcher(None, a, b).ratio()


def duplicate_score(kind: Kind, a: Mapping[str, Any], b: Mapping[str, Any]) -> Candidate:
    """How likely two records are the same profile, and why: a shared email (contacts) or domain
    (organizations) is near certain; otherwise similar names, helped by a shared company domain."""
    reasons: list[str] = []
    name = similarity(str(a.get("name_key") or ""), str(b.get("name_key") or ""))
    if kind == "contact":
        shared = set(a.get("email_keys") or []) & set(b.get("email_keys") or [])
        domains = (set(a.get("domain_keys") or []) & set(b.get("domain_keys") or [])) - FREE_MAIL
        if a.get("organization_id") and a.get("organization_id") == b.get("organization_id"):
            domains.add("organization")
    else:
        shared = set()
        domains = set(a.get("domains") or []) & set(b.get("domains") or [])
    if shared:
        reasons.append("same email")
        score = 1.0
    elif kind == "organization" and domains:
        reasons.append("same domain")
        score = 1.0
    else:
        score = name * 0.9 + (0.1 if domains else 0.0)
        score = min(score, 0.99)
        if domains:
            reasons.append("same company domain")
    if name >= 0.85:
        reasons.append("similar name" if name < 1.0 else "same name")
    return Candidate(str(b["id"]), round(score, 3), tuple(reasons))


def rank_duplicates(
    kind: Kind,
    record: Mapping[str, Any],
    others: Iterable[Mapping[str, Any]],
    threshold: float = DUPLICATE_THRESHOLD,
) -> list[Candidate]:
    seen: set[str] = set()
    found: list[Candidate] = []
    for other in others:
        if other["id"] == record["id"] or other["id"] in seen or other.get("deleted"):
            continue
        seen.add(str(other["id"]))
        candidate = duplicate_score(kind, record, other)
        if candidate.score >= threshold:
            found.append(candidate)
    return sorted(found, key=lambda c: (-c.score, c.id))


# --- merge -------------------------------------------------------------------------------------------
Side = Literal["winner", "loser"]


@dataclass
class MergePlan:
    kind: Kind
    result: dict[str, Any]  # the winner's fields after the merge
    conflicts: dict[str, dict[str, Any]]  # field: {winner, loser} for each field both set differently
    field_sources: dict[str, str]  # for each conflicting or filled field, the id whose value is kept
    changes: dict[str, Any] = field(default_factory=dict)  # the winner's changes


def plan_merge(
    kind: Kind, winner: Mapping[str, Any], loser: Mapping[str, Any], choices: Mapping[str, Side]
) -> MergePlan:
    """The merged field values. A field only one side has is kept; a union field is the union of both;
    a conflicting field keeps the winner's value unless `choices` picks the loser's for it."""
    if winner["id"] == loser["id"]:
        raise DomainError("invalid-merge", "A profile cannot be merged into itself.", 422)
    for record in (winner, loser):
        if record.get("deleted"):
            raise DomainError("invalid-merge", f"{record['id']} is deleted: restore it first.", 409)
    unknown = sorted(set(choices) - set(field_names(kind)))
    if unknown:
        raise DomainError("invalid-merge", f"unknown fields in choices: {', '.join(unknown)}", 422)
    unions = UNION_FIELDS[kind]
    result: dict[str, Any] = {}
    conflicts: dict[str, dict[str, Any]] = {}
    sources: dict[str, str] = {}
    for name in field_names(kind):
        mine, theirs = winner.get(name), loser.get(name)
        if name in unions:
            merged = _unique([*(mine or []), *(theirs or [])])
            if name == "emails":
                merged = merged[:MAX_EMAILS]
            result[name] = merged
            continue
        if name == "custom_fields":
            keep_loser = choices.get(name) == "loser"
            base, over = (mine or {}, theirs or {}) if keep_loser else (theirs or {}, mine or {})
            result[name] = {**base, **over}
            if set(mine or {}) & set(theirs or {}) and (mine or {}) != (theirs or {}):
                conflicts[name] = {"winner": mine, "loser": theirs}
                sources[name] = str(loser["id"] if keep_loser else winner["id"])
            continue
        empty_mine, empty_theirs = mine in (None, "", [], {}), theirs in (None, "", [], {})
        if empty_mine and not empty_theirs:
            result[name] = theirs
            sources[name] = str(loser["id"])
        elif not empty_theirs and mine != theirs:
            conflicts[name] = {"winner": mine, "loser": theirs}
            keep_loser = choices.get(name) == "loser"
            result[name] = theirs if keep_loser else mine
            sources[name] = str(loser["id"] if keep_loser else winner["id"])
        elif not empty_mine:
            result[name] = mine
    result = {k: v for k, v in result.items() if v is not None}
    validated = validate_fields(kind, result)
    return MergePlan(kind, validated, conflicts, sources, changes(winner, validated, field_names(kind)))


def apply_merge(
    plan: MergePlan,
    winner: Mapping[str, Any],
    loser: Mapping[str, Any],
    merge_id: str,
    actor: Mapping[str, Any],
    now: datetime,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The winner with the merged fields (and the loser's bounce history for the emails it brings), and
    the loser tombstoned with `merged_into` (soft-deleted, so the merge can be undone)."""
    merged, _ = apply_fields(plan.kind, winner, plan.result, actor, "manual", now)
    if plan.kind == "contact":
        for key in ("bounced_emails", "suppressed_emails"):
            merged[key] = _unique([*(winner.get(key) or []), *(loser.get(key) or [])])
        merged = refresh("contact", merged)
    merged.update(
        {
            "merged_from": _unique([*(winner.get("merged_from") or []), str(loser["id"])]),
            "updated_at": now,
            "version": int(winner["version"]) + 1,
        }
    )
    tomb = soft_delete(loser, actor, "manual", now)
    tomb.update({"merged_into": str(winner["id"]), "merge_id": merge_id})
    return merged, tomb


def check_undo(merge: Mapping[str, Any], current: Mapping[str, Mapping[str, Any] | None]) -> None:
    """An undo puts the before-images back only if nothing changed the records since the merge."""
    if merge.get("status") == "undone":
        raise DomainError("already-undone", "This merge was already undone.")
    for record_id, version in (merge.get("after_versions") or {}).items():
        now_version = (current.get(record_id) or {}).get("version")
        if now_version != version:
            raise DomainError(
                "changed-since-merge",
                f"{record_id} changed after the merge (version {now_version}, merged at {version}): "
                "undo would lose that change.",
                record_id=record_id,
            )


# --- bulk import -------------------------------------------------------------------------------------
ImportMode = Literal["create_only", "create_or_update", "update_only"]
ImportFormat = Literal["csv", "ndjson"]
RowStatus = Literal["pending", "created", "updated", "unchanged", "skipped", "failed", "reverted"]
MATCH_FIELDS: dict[Kind, tuple[str, ...]] = {"contact": ("email", "id"), "organization": ("domain", "id")}
LIST_COLUMNS = {"emails", "phones", "tags", "domains"}
COLUMN_ALIASES = {"email": "emails", "phone": "phones", "domain": "domains", "tag": "tags"}


class ImportFileError(Exception):
    pass


def _cell_value(column: str, cell: str) -> Any:
    """A list column holds several values separated by ; or |."""
    if column in LIST_COLUMNS:
        return [part.strip() for part in re.split(r"[;|]", cell) if part.strip()]
    return cell


def _from_columns(kind: Kind, raw: Mapping[str, Any]) -> dict[str, Any]:
    """A row's cells as fields: `email`/`emails` etc. (lists split on ; or |), `address.city`,
    `custom.<name>`; empty cells are absent."""
    fields: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None or value == "" or value == []:
            continue
        column = COLUMN_ALIASES.get(key, key)
        if isinstance(value, str):
            value = _cell_value(column, value.strip())
        if column.startswith("custom."):
            fields.setdefault("custom_fields", {})[column.removeprefix("custom.")] = value
        elif column.startswith("address."):
            fields.setdefault("address", {})[column.removeprefix("address.")] = value
        elif column in LIST_COLUMNS and isinstance(value, str):
            fields[column] = [value]
        else:
            fields[column] = value
    return fields


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in error["loc"]) or "row"
        parts.append(f"{where}: {error['msg']}")
    return "invalid " + "; ".join(parts)


def map_row(kind: Kind, number: int, raw: Mapping[str, Any], mode: ImportMode, match: str) -> dict[str, Any]:
    """One source row as a row report: `fields` (validated) and `key` (its match value), or failed.

    An update-only row needs only its match column; the others need a complete record."""
    fields = _from_columns(kind, raw)
    record_id = fields.pop("id", None)
    row: dict[str, Any] = {"row": number, "status": "pending", "reason": None, "record_id": None}
    try:
        if mode == "update_only":
            partial = {name: value for name, value in fields.items() if name in field_names(kind)}
            unknown = sorted(set(fields) - set(field_names(kind)))
            if unknown:
                raise DomainError("invalid", f"unknown columns: {', '.join(unknown)}", 422)
            validated = (
                FIELDS[kind].model_validate({**_placeholders(kind), **partial}).model_dump(mode="json")
            )
            row["fields"] = {name: validated[name] for name in partial}
        else:
            row["fields"] = validate_fields(kind, fields)
    except ValidationError as exc:
        return {**row, "status": "failed", "reason": _describe(exc), "fields": None, "key": None}
    except DomainError as exc:
        return {**row, "status": "failed", "reason": exc.detail, "fields": None, "key": None}
    key = _match_key(kind, match, row["fields"], record_id)
    if key is None:
        return {**row, "status": "failed", "reason": f"missing match value: {match}", "key": None}
    if kind == "organization" and len(row["fields"].get("domains") or []) > MAX_IMPORT_DOMAINS:
        return {
            **row,
            "status": "failed",
            "reason": f"at most {MAX_IMPORT_DOMAINS} domains per row",
            "key": None,
        }
    return {**row, "key": key}


def _placeholders(kind: Kind) -> dict[str, Any]:
    # The required fields an update-only row may leave out (they are not applied).
    return {"first_name": "x", "last_name": "x"} if kind == "contact" else {"name": "x"}


def _match_key(kind: Kind, match: str, fields: Mapping[str, Any], record_id: Any) -> str | None:
    if match == "id":
        return str(record_id) if isinstance(record_id, str) and record_id else None
    values = fields.get("emails" if kind == "contact" else "domains") or []
    return str(values[0]) if values else None


def _counted(rows: list[dict[str, Any]]) -> None:
    if len(rows) > MAX_IMPORT_ROWS:
        raise DomainError("too-many-rows", f"An import is at most {MAX_IMPORT_ROWS} rows.", 413)


def read_rows(text: str, fmt: ImportFormat) -> Iterable[tuple[int, dict[str, Any] | str]]:
    """(row number, cells) for each data row, or (number, reason) for a row that cannot be read."""
    text = text.removeprefix("\ufeff")
    if fmt == "ndjson":
        number = 0
        for line in text.splitlines():
            if not line.strip():
                continue
            number += 1
            try:
                value = json_text.loads(line)
            except ValueError:
                value = None
            yield number, value if isinstance(value, dict) else "invalid row: not a JSON object"
        return
    reader = csv.reader(io.StringIO(text), strict=True)
    try:
        header = next((r for r in reader if any(cell.strip() for cell in r)), None)
        if header is None:
            raise ImportFileError("the file is empty: send a header row and rows")
        columns = [c.strip().lower() for c in header]
        if len(set(columns)) != len(columns) or "" in columns:
            raise ImportFileError("the header row must name each column once")
        number = 0
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue
            number += 1
            if len(record) != len(columns):
                yield number, f"invalid row: {len(record)} fields where the header has {len(columns)}"
            else:
                yield number, dict(zip(columns, record, strict=True))
    except csv.Error as exc:
        raise ImportFileError(f"the file is not valid CSV: {exc}") from exc


def parse_import(
    kind: Kind, text: str, fmt: ImportFormat, mode: ImportMode, match: str
) -> list[dict[str, Any]]:
    """Every row mapped and validated; a match value repeated in the file is skipped as a duplicate of
    its first row, and (organizations) a domain two rows claim fails on the second."""
    if match not in MATCH_FIELDS[kind]:
        raise DomainError("invalid-import", f"match must be one of {', '.join(MATCH_FIELDS[kind])}", 422)
    rows: list[dict[str, Any]] = []
    for number, cells in read_rows(text, fmt):
        if isinstance(cells, str):
            rows.append({"row": number, "status": "failed", "reason": cells, "fields": None, "key": None})
        else:
            rows.append(map_row(kind, number, cells, mode, match))
        _counted(rows)
    if not rows:
        raise ImportFileError("the file has no rows")
    first: dict[str, int] = {}
    claimed: dict[str, int] = {}
    for row in rows:
        if row["status"] != "pending":
            continue
        if row["key"] in first:
            row.update(status="skipped", reason=f"duplicate of row {first[row['key']]}")
            continue
        first[row["key"]] = row["row"]
        taken = (
            [d for d in (row["fields"].get("domains") or []) if d in claimed]
            if kind == "organization"
            else []
        )
        if taken:
            row.update(status="failed", reason=f"domain {taken[0]} is also in row {claimed[taken[0]]}")
            continue
        for domain in row["fields"].get("domains") or [] if kind == "organization" else []:
            claimed[domain] = row["row"]
    return rows


def chunked(rows: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


Decision = Literal["create", "update", "skip"]


def decide_row(mode: ImportMode, existing: Mapping[str, Any] | None) -> tuple[Decision, str | None]:
    """What a valid row does, given the record its match value found (or None)."""
    if existing is not None and existing.get("deleted"):
        return "skip", "matches a deleted record"
    if existing is None:
        return ("skip", "no record matches") if mode == "update_only" else ("create", None)
    if mode == "create_only":
        return "skip", f"exists: {existing['id']}"
    return "update", None


def import_outcome(
    created: int, updated: int, skipped: int, failed: int
) -> Literal["succeeded", "partially_failed", "failed"]:
    if failed == 0:
        return "succeeded"
    return "partially_failed" if created or updated or skipped else "failed"


def count_rows(rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    counts = {"processed": 0, "created": 0, "updated": 0, "unchanged": 0, "skipped": 0, "failed": 0}
    for row in rows:
        counts["processed"] += 1
        status = str(row["status"])
        if status in counts:
            counts[status] += 1
    return counts
