"""Users, invitations, role rules and bulk-import rows of a tenant. Pure: no I/O, no clients, no clock.

- A user is `invited` (an invitation is outstanding), `active` (accepted: an identity exists in the
  tenant's Identity Platform tenant) or `deactivated` (sign-in disabled, seat released).
- An invitation is single use: `pending` until accepted, revoked or past `expires_at` (`expired`).
  Its token is "<tenant_id>.<invitation_id>.<secret>"; only the token's SHA-256 is kept.
- Roles are ranked owner > admin > member > viewer: a principal grants, and acts on users holding, only
  roles up to its own (so an admin cannot invite an owner or change an owner's role); a platform
  operator outranks every role.
- A user's id is derived from the tenant and the email, so one email is one user per tenant and a
  bulk import run twice finds the users it created.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.authz import ROLE_RANK, may_grant
from shared.contracts import Actor, EventPayload, json_text
from shared.contracts.payloads import BulkImportCompleted, UserDeactivated, UserInvited, UserRoleChanged

Role = Literal["owner", "admin", "member", "viewer"]
ROLES: tuple[str, ...] = get_args(Role)
OPERATOR_RANK = len(ROLE_RANK)

DeactivationReason = Literal[
    "admin_action", "offboarded", "tenant_deactivated", "scim_deprovisioned", "inactivity"
]

EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
DEFAULT_INVITATION_HOURS = 72
MAX_INVITATION_HOURS = 720
TOKEN_PART = re.compile(r"^[A-Za-z0-9_-]{1,128}$")

MAX_IMPORT_ROWS = 10_000
IMPORT_CHUNK_ROWS = 100  # 4 writes per created row + the job: within Firestore's 500 per transaction
EXISTS = "exists"
NO_SEAT = "no seat"


# --- errors ------------------------------------------------------------------------------------------
class IllegalTransition(Exception):
    def __init__(self, action: str, status: str) -> None:
        super().__init__(f"cannot {action} in status {status}")
        self.action = action
        self.status = status


class RoleNotGrantable(Exception):
    def __init__(self, role: str) -> None:
        super().__init__(
            f"only a principal holding {role} or a higher role may grant it or act on its holders"
        )
        self.role = role


class SelfChange(Exception):
    def __init__(self, action: str) -> None:
        super().__init__(f"you cannot {action} yourself: ask another administrator")
        self.action = action


class UserExists(Exception):
    def __init__(self, user_id: str, status: str) -> None:
        super().__init__(f"a user with this email already exists ({status})")
        self.user_id = user_id
        self.status = status


class InvitationNotFound(Exception):
    """Unknown, malformed or superseded (resent) token: indistinguishable on purpose."""


class InvitationUsed(Exception):
    pass


class InvitationGone(Exception):
    def __init__(self, status: InvitationStatus) -> None:
        super().__init__(f"the invitation is {status.value}")
        self.status = status


class AcceptInProgress(Exception):
    pass


class ImportFileError(Exception):
    """The file as a whole cannot be read (bad header, encoding, no rows)."""


class TooManyRows(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"an import holds at most {limit} rows")
        self.limit = limit


# --- roles -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Grantor:
    """Who grants roles or acts on users: a signed-in principal's uid, roles and operator flag."""

    uid: str
    roles: frozenset[str]
    is_operator: bool = False

    @property
    def rank(self) -> int:
        if self.is_operator:
            return OPERATOR_RANK
        return max((ROLE_RANK[r] for r in self.roles if r in ROLE_RANK), default=-1)

    def may_grant(self, role: str) -> bool:
        return may_grant(role, frozenset(), self.roles, unrestricted=self.is_operator)

    def ensure_may_grant(self, role: str) -> None:
        if not self.may_grant(role):
            raise RoleNotGrantable(role)

    def ensure_may_manage(self, user: User, action: str) -> None:
        if user.id == self.uid:
            raise SelfChange(action)
        self.ensure_may_grant(user.role)


def claims_for(tenant_id: str, role: str) -> dict[str, Any]:
    """The custom claims the kernel reads (shared.auth): the tenant and the user's one role."""
    return {"tenant_id": tenant_id, "roles": [role]}


def user_id_for(tenant_id: str, email: str) -> str:
    return "u_" + hashlib.sha256(f"{tenant_id}\n{email.lower()}".encode()).hexdigest()[:28]


def idp_display_name(tenant_id: str) -> str:
    """Identity Platform tenant display names: 4-20 letters, digits or hyphens, starting with a letter."""
    return ("cmp-" + re.sub(r"[^A-Za-z0-9]", "-", tenant_id))[:20]


# --- invitation tokens -------------------------------------------------------------------------------
def make_token(tenant_id: str, invitation_id: str, secret: str) -> str:
    for part in (tenant_id, invitation_id, secret):
        if TOKEN_PART.fullmatch(part) is None:
            raise ValueError("token parts are letters, digits, '-' and '_' only")
    return f"{tenant_id}.{invitation_id}.{secret}"


def parse_token(token: str) -> tuple[str, str]:
    """(tenant_id, invitation_id) of a token; InvitationNotFound when it is not shaped like one."""
    parts = token.split(".")
    if len(parts) != 3 or not all(TOKEN_PART.fullmatch(p) for p in parts):
        raise InvitationNotFound
    return parts[0], parts[1]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- invitations -------------------------------------------------------------------------------------
class InvitationStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REVOKED = "revoked"
    EXPIRED = "expired"


class Invitation(BaseModel):
    id: str
    tenant_id: str
    user_id: str
    email: str
    role: Role
    token_hash: str | None  # None: issued by an import, no token sent yet (resend issues one)
    # The token of the invitation mail's accept link, minted when the mail is sent (never published in
    # an event nor stored in the mail): the link works beside the token the inviting call answered.
    mail_token_hash: str | None = None
    expires_in_hours: int
    expires_at: datetime
    status: InvitationStatus = InvitationStatus.PENDING
    sent_count: int = 0
    invited_by: str
    created_at: datetime
    updated_at: datetime
    last_sent_at: datetime | None = None
    accepted_at: datetime | None = None
    revoked_at: datetime | None = None
    accepting_until: datetime | None = None  # a lease while one acceptance takes a seat and an identity

    @classmethod
    def issue(
        cls,
        invitation_id: str,
        tenant_id: str,
        user_id: str,
        email: str,
        role: Role,
        hours: int,
        token_hash: str | None,
        invited_by: str,
        now: datetime,
    ) -> Invitation:
        if not 1 <= hours <= MAX_INVITATION_HOURS:
            raise ValueError(f"an invitation lasts 1 to {MAX_INVITATION_HOURS} hours")
        return cls(
            id=invitation_id,
            tenant_id=tenant_id,
            user_id=user_id,
            email=email,
            role=role,
            token_hash=token_hash,
            expires_in_hours=hours,
            expires_at=now + timedelta(hours=hours),
            sent_count=1 if token_hash else 0,
            invited_by=invited_by,
            created_at=now,
            updated_at=now,
            last_sent_at=now if token_hash else None,
        )

    def effective_status(self, now: datetime) -> InvitationStatus:
        if self.status is InvitationStatus.PENDING and now >= self.expires_at:
            return InvitationStatus.EXPIRED
        return self.status

    def matches(self, token_hash: str) -> bool:
        return any(
            known is not None and hmac.compare_digest(known, token_hash)
            for known in (self.token_hash, self.mail_token_hash)
        )

    def check_acceptable(self, token_hash: str, now: datetime) -> None:
        """Raise why this token cannot be accepted now; a token that is not this invitation's current
        one is unknown (a resent invitation invalidates the old token)."""
        if not self.matches(token_hash):
            raise InvitationNotFound
        status = self.effective_status(now)
        if status is InvitationStatus.ACCEPTED:
            raise InvitationUsed
        if status is not InvitationStatus.PENDING:
            raise InvitationGone(status)
        if self.accepting_until is not None and now < self.accepting_until:
            raise AcceptInProgress

    def begin_accept(self, token_hash: str, now: datetime, lease: timedelta) -> None:
        self.check_acceptable(token_hash, now)
        self.accepting_until = now + lease

    def issue_mail_token(self, token_hash: str, now: datetime) -> None:
        """The invitation mail is being sent: its link's token replaces the previous mail's."""
        status = self.effective_status(now)
        if status is InvitationStatus.ACCEPTED:
            raise InvitationUsed
        if status is not InvitationStatus.PENDING:
            raise InvitationGone(status)
        self.mail_token_hash = token_hash
        self.last_sent_at = now
        self.updated_at = now

    def abandon_accept(self) -> None:
        """The acceptance failed (no seat, identity down): as if it never started."""
        self.accepting_until = None

    def accept(self, now: datetime) -> None:
        if self.status is not InvitationStatus.PENDING:
            raise IllegalTransition("accept an invitation", self.status.value)
        self.status = InvitationStatus.ACCEPTED
        self.accepted_at = now
        self.accepting_until = None
        self.updated_at = now

    def expire(self, now: datetime) -> bool:
        if self.effective_status(now) is InvitationStatus.EXPIRED and self.status is InvitationStatus.PENDING:
            self.status = InvitationStatus.EXPIRED
            self.updated_at = now
            return True
        return False

    def resend(self, token_hash: str, now: datetime) -> None:
        """A new token (the old one stops working) and a new expiry; also revives an expired one."""
        if self.status not in (InvitationStatus.PENDING, InvitationStatus.EXPIRED):
            raise IllegalTransition("resend an invitation", self.status.value)
        if self.accepting_until is not None and now < self.accepting_until:
            raise AcceptInProgress
        self.status = InvitationStatus.PENDING
        self.token_hash = token_hash
        self.mail_token_hash = None
        self.expires_at = now + timedelta(hours=self.expires_in_hours)
        self.sent_count += 1
        self.last_sent_at = now
        self.updated_at = now

    def revoke(self, now: datetime) -> None:
        if self.status not in (InvitationStatus.PENDING, InvitationStatus.EXPIRED):
            raise IllegalTransition("revoke an invitation", self.status.value)
        if self.accepting_until is not None and now < self.accepting_until:
            raise AcceptInProgress
        self.status = InvitationStatus.REVOKED
        self.revoked_at = now
        self.updated_at = now


# --- users -------------------------------------------------------------------------------------------
class UserStatus(StrEnum):
    INVITED = "invited"
    ACTIVE = "active"
    DEACTIVATED = "deactivated"


class User(BaseModel):
    id: str
    tenant_id: str
    email: str
    display_name: str | None = None
    role: Role
    status: UserStatus = UserStatus.INVITED
    idp_tenant_id: str | None = None
    invited_by: str | None = None
    invitation_id: str | None = None
    created_at: datetime
    updated_at: datetime
    activated_at: datetime | None = None
    deactivated_at: datetime | None = None
    deactivation_reason: DeactivationReason | None = None
    version: int = 1

    # Raised events, collected by the service and committed with the user (never persisted here).
    events: list[EventPayload] = Field(default_factory=list, exclude=True)

    @classmethod
    def invite(
        cls,
        invitation: Invitation,
        display_name: str | None,
        idp_tenant_id: str | None,
        actor: Actor,
        now: datetime,
    ) -> User:
        user = cls(
            id=invitation.user_id,
            tenant_id=invitation.tenant_id,
            email=invitation.email,
            display_name=display_name,
            role=invitation.role,
            idp_tenant_id=idp_tenant_id,
            invited_by=invitation.invited_by,
            invitation_id=invitation.id,
            created_at=now,
            updated_at=now,
        )
        user.events.append(
            UserInvited(
                user_id=user.id,
                invitation_id=invitation.id,
                email=user.email,
                role=user.role,
                expires_at=invitation.expires_at,
                actor=actor,
            )
        )
        return user

    @property
    def claims(self) -> dict[str, Any]:
        return claims_for(self.tenant_id, self.role)

    def _touch(self, now: datetime) -> None:
        self.updated_at = now
        self.version += 1

    def activate(self, display_name: str | None, idp_tenant_id: str, now: datetime) -> None:
        if self.status is not UserStatus.INVITED:
            raise IllegalTransition("activate a user", self.status.value)
        self.status = UserStatus.ACTIVE
        self.display_name = display_name or self.display_name
        self.idp_tenant_id = idp_tenant_id
        self.activated_at = now
        self._touch(now)

    def change_role(self, role: Role, actor: Actor, now: datetime) -> bool:
        """False when the user already holds the role (nothing changes, no event)."""
        if self.status is UserStatus.DEACTIVATED:
            raise IllegalTransition("change the role of a user", self.status.value)
        if role == self.role:
            return False
        previous, self.role = self.role, role
        self._touch(now)
        self.events.append(
            UserRoleChanged(user_id=self.id, previous_role=previous, new_role=role, actor=actor)
        )
        return True

    def deactivate(self, reason: DeactivationReason, actor: Actor, now: datetime) -> None:
        if self.status is not UserStatus.ACTIVE:
            raise IllegalTransition("deactivate a user", self.status.value)
        self.status = UserStatus.DEACTIVATED
        self.deactivated_at = now
        self.deactivation_reason = reason
        self._touch(now)
        self.events.append(
            UserDeactivated(
                user_id=self.id, email=self.email, reason=reason, sessions_revoked=True, actor=actor
            )
        )

    def check_reactivatable(self) -> None:
        if self.status is not UserStatus.DEACTIVATED:
            raise IllegalTransition("reactivate a user", self.status.value)

    def reactivate(self, now: datetime) -> None:
        self.check_reactivatable()
        self.status = UserStatus.ACTIVE
        self.deactivated_at = None
        self.deactivation_reason = None
        self._touch(now)


# --- bulk import -------------------------------------------------------------------------------------
RowStatus = Literal["pending", "created", "skipped", "failed"]
ImportFormat = Literal["csv", "ndjson"]


class ImportRowFields(BaseModel):
    """One row as a client writes it (a CSV record or an NDJSON object)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    email: str = Field(max_length=254, pattern=EMAIL)
    role: Role
    display_name: str | None = Field(default=None, max_length=200)


class ImportRow(BaseModel):
    """A row of an import and what became of it; `row` counts data rows from 1 (the header is 0)."""

    row: int
    email: str | None = None
    role: Role | None = None
    display_name: str | None = None
    status: RowStatus = "pending"
    reason: str | None = None
    user_id: str | None = None
    invitation_id: str | None = None


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in error["loc"]) or "row"
        parts.append(f"{where}: {error['msg']}")
    return "invalid " + "; ".join(parts)


def _row(number: int, fields: dict[str, Any], grantor: Grantor) -> ImportRow:
    try:
        valid = ImportRowFields.model_validate(fields)
    except ValidationError as exc:
        email = fields.get("email")
        return ImportRow(
            row=number,
            email=email.strip().lower()[:254] if isinstance(email, str) else None,
            status="failed",
            reason=_describe(exc),
        )
    if not grantor.may_grant(valid.role):
        return ImportRow(
            row=number,
            email=valid.email.lower(),
            status="failed",
            reason=f"invalid role: your role cannot grant {valid.role}",
        )
    return ImportRow(
        row=number, email=valid.email.lower(), role=valid.role, display_name=valid.display_name or None
    )


def _counted(rows: list[ImportRow]) -> None:
    if len(rows) > MAX_IMPORT_ROWS:
        raise TooManyRows(MAX_IMPORT_ROWS)


def parse_csv(text: str, grantor: Grantor) -> list[ImportRow]:
    """A header row (email, role and optionally display_name, in any order), then one user per row."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")), strict=True)
    try:
        header = next((r for r in reader if any(cell.strip() for cell in r)), None)
        if header is None:
            raise ImportFileError("the file is empty: send a header row (email,role,display_name) and rows")
        columns = [c.strip().lower() for c in header]
        unknown = sorted(set(columns) - {"email", "role", "display_name"})
        if unknown or not {"email", "role"} <= set(columns) or len(set(columns)) != len(columns):
            raise ImportFileError(
                "the header row must name the columns email, role and display_name (each once)"
                + (f"; unknown: {', '.join(unknown)}" if unknown else "")
            )
        rows: list[ImportRow] = []
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue
            number = len(rows) + 1
            if len(record) != len(columns):
                rows.append(
                    ImportRow(
                        row=number,
                        status="failed",
                        reason=f"invalid row: {len(record)} fields where the header has {len(columns)}",
                    )
                )
            else:
                fields: dict[str, Any] = dict(zip(columns, record, strict=True))
                if not (fields.get("display_name") or "").strip():
                    fields.pop("display_name", None)
                rows.append(_row(number, fields, grantor))
            _counted(rows)
    except csv.Error as exc:
        raise ImportFileError(f"the file is not valid CSV: {exc}") from exc
    return rows


def parse_ndjson(text: str, grantor: Grantor) -> list[ImportRow]:
    """One JSON object per line: {"email", "role", "display_name"?}."""
    rows: list[ImportRow] = []
    for line in text.removeprefix("\ufeff").splitlines():
        if not line.strip():
            continue
        number = len(rows) + 1
        try:
            value = json_text.loads(line)
        except ValueError:
            rows.append(ImportRow(row=number, status="failed", reason="invalid row: not a JSON object"))
        else:
            if isinstance(value, dict):
                rows.append(_row(number, value, grantor))
            else:
                rows.append(ImportRow(row=number, status="failed", reason="invalid row: not a JSON object"))
        _counted(rows)
    return rows


def parse_import(text: str, fmt: ImportFormat, grantor: Grantor) -> list[ImportRow]:
    """Every row validated; a repeated email is skipped as a duplicate of its first row."""
    rows = parse_csv(text, grantor) if fmt == "csv" else parse_ndjson(text, grantor)
    if not rows:
        raise ImportFileError("the file has no rows")
    first: dict[str, int] = {}
    for i, row in enumerate(rows):
        if row.status != "pending" or row.email is None:
            continue
        if row.email in first:
            rows[i] = row.model_copy(
                update={"status": "skipped", "reason": f"duplicate of row {first[row.email]}"}
            )
        else:
            first[row.email] = row.row
    return rows


def chunked(rows: list[ImportRow], size: int = IMPORT_CHUNK_ROWS) -> list[list[ImportRow]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def plan_chunk(rows: list[ImportRow], existing: set[str], free_seats: int) -> list[ImportRow]:
    """Decide each pending row: `existing` holds the emails that already have a user; rows beyond the
    free seats are skipped. Rows decided at parse time (invalid, duplicate) pass through."""
    decided: list[ImportRow] = []
    for row in rows:
        if row.status != "pending" or row.email is None:
            decided.append(row)
        elif row.email in existing:
            decided.append(row.model_copy(update={"status": "skipped", "reason": EXISTS}))
        elif free_seats <= 0:
            decided.append(row.model_copy(update={"status": "skipped", "reason": NO_SEAT}))
        else:
            free_seats -= 1
            decided.append(row.model_copy(update={"status": "created"}))
    return decided


ImportOutcome = Literal["succeeded", "partially_failed", "failed"]


def import_outcome(created: int, skipped: int, failed: int) -> ImportOutcome:
    if failed == 0:
        return "succeeded"
    return "partially_failed" if created or skipped else "failed"


class ImportJob(BaseModel):
    id: str
    tenant_id: str
    format: ImportFormat
    status: Literal["queued", "running", "completed"] = "queued"
    total: int
    processed: int = 0
    created: int = 0
    skipped: int = 0
    failed: int = 0
    chunk_count: int
    next_chunk: int = 0
    generation: int = 0  # bumped by a resume, so its tasks get fresh names
    actor: Actor
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    version: int = 1

    events: list[EventPayload] = Field(default_factory=list, exclude=True)

    @classmethod
    def start(
        cls, job_id: str, tenant_id: str, fmt: ImportFormat, total: int, actor: Actor, now: datetime
    ) -> ImportJob:
        chunks = -(-total // IMPORT_CHUNK_ROWS)
        return cls(
            id=job_id,
            tenant_id=tenant_id,
            format=fmt,
            total=total,
            chunk_count=chunks,
            actor=actor,
            created_at=now,
            updated_at=now,
        )

    @property
    def done(self) -> bool:
        return self.status == "completed"

    def record_chunk(self, chunk: int, rows: list[ImportRow], now: datetime, report_url: str | None) -> None:
        """Count one decided chunk; the last one completes the job and raises Bulk Import Completed."""
        if self.done or chunk != self.next_chunk:
            raise IllegalTransition(
                f"record chunk {chunk} of an import at chunk {self.next_chunk}", self.status
            )
        self.processed += len(rows)
        self.created += sum(r.status == "created" for r in rows)
        self.skipped += sum(r.status == "skipped" for r in rows)
        self.failed += sum(r.status == "failed" for r in rows)
        self.next_chunk += 1
        self.status = "running"
        self.updated_at = now
        self.version += 1
        if self.next_chunk < self.chunk_count:
            return
        self.status = "completed"
        self.completed_at = now
        self.events.append(
            BulkImportCompleted(
                import_id=self.id,
                source="csv" if self.format == "csv" else "api",
                mode="create_only",
                status=import_outcome(self.created, self.skipped, self.failed),
                total_rows=self.total,
                created=self.created,
                updated=0,
                skipped=self.skipped,
                failed=self.failed,
                error_report_url=report_url if self.failed else None,
                started_at=self.created_at,
                completed_at=now,
                actor=self.actor,
            )
        )

    def resume(self, now: datetime) -> None:
        if self.done:
            raise IllegalTransition("resume an import", self.status)
        self.generation += 1
        self.updated_at = now
        self.version += 1
