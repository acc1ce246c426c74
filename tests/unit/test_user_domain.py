"""Users, invitations, role rules and import rows of the User Management API, without any I/O."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from functions.user_management_api.adapters import IdentityProvider
from functions.user_management_api.domain import (
    IMPORT_CHUNK_ROWS,
    MAX_IMPORT_ROWS,
    AcceptInProgress,
    Grantor,
    IllegalTransition,
    ImportFileError,
    ImportJob,
    ImportRow,
    Invitation,
    InvitationGone,
    InvitationNotFound,
    InvitationStatus,
    InvitationUsed,
    RoleNotGrantable,
    SelfChange,
    TooManyRows,
    User,
    UserStatus,
    chunked,
    claims_for,
    hash_token,
    idp_display_name,
    import_outcome,
    make_token,
    parse_csv,
    parse_import,
    parse_ndjson,
    parse_token,
    plan_chunk,
    user_id_for,
)
from functions.user_management_api.service import RESYNC_PATH, UserService
from functions.user_management_api.subscriptions import build_handlers
from shared.catalog import load_catalog
from shared.config import Settings
from shared.contracts import Actor
from shared.contracts.payloads import BulkImportCompleted, UserDeactivated, UserInvited, UserRoleChanged
from shared.platform import Platform

NOW = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
ACTOR = Actor(type="user", id="adm-1", email="admin@acme.example")
ADMIN = Grantor(uid="adm-1", roles=frozenset({"admin"}))
OWNER = Grantor(uid="own-1", roles=frozenset({"owner"}))
OPERATOR = Grantor(uid="op-1", roles=frozenset(), is_operator=True)
TOKEN = make_token("t_1", "inv_1", "s3cret-value_1")
LEASE = timedelta(minutes=2)


def new_invitation(hours: int = 72, token: str | None = TOKEN, role: str = "member") -> Invitation:
    return Invitation.issue(
        "inv_1",
        "t_1",
        user_id_for("t_1", "jonas@acme.example"),
        "jonas@acme.example",
        role,  # type: ignore[arg-type]
        hours,
        hash_token(token) if token else None,
        "adm-1",
        NOW,
    )


def new_user(role: str = "member") -> User:
    user = User.invite(new_invitation(role=role), None, "idp-1", ACTOR, NOW)
    user.events.clear()
    return user


def active_user(role: str = "member") -> User:
    user = new_user(role)
    user.activate("Jonas", "idp-1", NOW)
    return user


# --- tokens ------------------------------------------------------------------------------------------
def test_a_token_names_its_tenant_and_invitation_and_only_its_hash_is_kept() -> None:
    assert TOKEN == "t_1.inv_1.s3cret-value_1"
    assert parse_token(TOKEN) == ("t_1", "inv_1")
    assert hash_token(TOKEN) == hashlib.sha256(TOKEN.encode()).hexdigest()
    assert TOKEN not in new_invitation().model_dump_json()


@pytest.mark.parametrize("token", ["", "a.b", "a.b.c.d", "t_1..secret", "t_1.inv/1.s", "t 1.inv.s", "ä.b.c"])
def test_a_malformed_token_is_unknown(token: str) -> None:
    with pytest.raises(InvitationNotFound):
        parse_token(token)


def test_make_token_refuses_parts_that_would_break_parsing() -> None:
    with pytest.raises(ValueError, match="token parts"):
        make_token("t.1", "inv_1", "s")


# --- invitations -------------------------------------------------------------------------------------
def test_issue_sets_the_expiry_and_counts_one_send() -> None:
    invitation = new_invitation(hours=5)
    assert invitation.status is InvitationStatus.PENDING
    assert invitation.expires_at == NOW + timedelta(hours=5)
    assert (invitation.sent_count, invitation.last_sent_at) == (1, NOW)
    imported = new_invitation(token=None)
    assert (imported.sent_count, imported.last_sent_at, imported.token_hash) == (0, None, None)


@pytest.mark.parametrize("hours", [0, 721, -1])
def test_an_invitation_lasts_one_to_720_hours(hours: int) -> None:
    with pytest.raises(ValueError, match="1 to 720 hours"):
        new_invitation(hours=hours)


def test_accepting_is_single_use() -> None:
    invitation = new_invitation()
    invitation.begin_accept(hash_token(TOKEN), NOW, LEASE)
    invitation.accept(NOW + timedelta(seconds=1))
    assert invitation.status is InvitationStatus.ACCEPTED and invitation.accepting_until is None
    with pytest.raises(InvitationUsed):
        invitation.check_acceptable(hash_token(TOKEN), NOW + timedelta(seconds=2))
    with pytest.raises(IllegalTransition):
        invitation.accept(NOW)


def test_an_unknown_token_is_not_found_and_an_unsent_invitation_accepts_nothing() -> None:
    with pytest.raises(InvitationNotFound):
        new_invitation().check_acceptable(hash_token("t_1.inv_1.other"), NOW)
    with pytest.raises(InvitationNotFound):
        new_invitation(token=None).check_acceptable(hash_token(TOKEN), NOW)


def test_expiry_is_gone_and_remembered_once() -> None:
    invitation = new_invitation(hours=1)
    later = NOW + timedelta(hours=1)
    invitation.check_acceptable(hash_token(TOKEN), later - timedelta(seconds=1))
    with pytest.raises(InvitationGone) as gone:
        invitation.check_acceptable(hash_token(TOKEN), later)
    assert gone.value.status is InvitationStatus.EXPIRED
    assert invitation.effective_status(later) is InvitationStatus.EXPIRED
    assert invitation.expire(later) is True and invitation.status is InvitationStatus.EXPIRED
    assert invitation.expire(later) is False


def test_resend_invalidates_the_old_token_and_revives_an_expired_invitation() -> None:
    invitation = new_invitation(hours=2)
    later = NOW + timedelta(hours=3)
    invitation.expire(later)
    new_token = make_token("t_1", "inv_1", "n3w")
    invitation.resend(hash_token(new_token), later)
    assert invitation.status is InvitationStatus.PENDING
    assert invitation.expires_at == later + timedelta(hours=2) and invitation.sent_count == 2
    with pytest.raises(InvitationNotFound):
        invitation.check_acceptable(hash_token(TOKEN), later)
    invitation.check_acceptable(hash_token(new_token), later)


def test_revoke_is_gone_and_final() -> None:
    invitation = new_invitation()
    invitation.revoke(NOW)
    with pytest.raises(InvitationGone) as gone:
        invitation.check_acceptable(hash_token(TOKEN), NOW)
    assert gone.value.status is InvitationStatus.REVOKED
    with pytest.raises(IllegalTransition) as illegal:
        invitation.revoke(NOW)
    assert illegal.value.status == "revoked"
    with pytest.raises(IllegalTransition):
        invitation.resend("h", NOW)


def test_an_acceptance_in_progress_holds_a_lease_and_abandoning_restores_the_invitation() -> None:
    invitation = new_invitation()
    before = invitation.model_dump()
    invitation.begin_accept(hash_token(TOKEN), NOW, LEASE)
    with pytest.raises(AcceptInProgress):
        invitation.check_acceptable(hash_token(TOKEN), NOW + timedelta(seconds=30))
    with pytest.raises(AcceptInProgress):
        invitation.revoke(NOW)
    with pytest.raises(AcceptInProgress):
        invitation.resend("h", NOW)
    invitation.check_acceptable(hash_token(TOKEN), NOW + LEASE)  # a lease left by a crash runs out
    invitation.abandon_accept()
    assert invitation.model_dump() == before


# --- roles -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("grantor", "grantable"),
    [
        (OPERATOR, {"owner", "admin", "member", "viewer"}),
        (OWNER, {"owner", "admin", "member", "viewer"}),
        (ADMIN, {"admin", "member", "viewer"}),
        (Grantor("m", frozenset({"member"})), {"member", "viewer"}),
        (Grantor("x", frozenset({"custom-role"})), set()),
    ],
)
def test_a_principal_grants_only_roles_up_to_its_own(grantor: Grantor, grantable: set[str]) -> None:
    for role in ("owner", "admin", "member", "viewer"):
        assert grantor.may_grant(role) is (role in grantable)
    if "owner" not in grantable:
        with pytest.raises(RoleNotGrantable):
            grantor.ensure_may_grant("owner")


def test_an_admin_cannot_manage_an_owner_and_nobody_manages_themselves() -> None:
    owner_user = new_user("owner")
    with pytest.raises(RoleNotGrantable):
        ADMIN.ensure_may_manage(owner_user, "deactivate")
    OWNER.ensure_may_manage(owner_user, "deactivate")
    with pytest.raises(SelfChange):
        Grantor(uid=owner_user.id, roles=frozenset({"owner"})).ensure_may_manage(owner_user, "deactivate")


def test_claims_carry_the_tenant_and_the_one_role() -> None:
    assert claims_for("t_1", "admin") == {"tenant_id": "t_1", "roles": ["admin"]}
    assert active_user("viewer").claims == {"tenant_id": "t_1", "roles": ["viewer"]}


def test_user_ids_are_one_per_email_and_tenant() -> None:
    assert user_id_for("t_1", "A@Acme.example") == user_id_for("t_1", "a@acme.example")
    assert user_id_for("t_1", "a@acme.example") != user_id_for("t_2", "a@acme.example")
    assert len(user_id_for("t_1", "a@acme.example")) <= 128


@pytest.mark.parametrize("tenant_id", ["t_0123456789abcdef0123", "t", "demo", "UPPER_case-1", "tnt_7Hc2kQ9x"])
def test_identity_tenant_display_names_follow_identity_platforms_rule(tenant_id: str) -> None:
    assert re.fullmatch(r"[a-zA-Z][a-zA-Z0-9-]{3,19}", idp_display_name(tenant_id))


# --- user state machine ------------------------------------------------------------------------------
def test_inviting_raises_user_invited_with_the_invitation() -> None:
    invitation = new_invitation()
    user = User.invite(invitation, "Jonas", "idp-1", ACTOR, NOW)
    assert user.status is UserStatus.INVITED and user.invitation_id == "inv_1" and user.version == 1
    assert user.events == [
        UserInvited(
            user_id=user.id,
            invitation_id="inv_1",
            email="jonas@acme.example",
            role="member",
            expires_at=invitation.expires_at,
            actor=ACTOR,
        )
    ]
    assert "events" not in user.model_dump()


def test_role_change_raises_an_event_with_both_roles_and_the_same_role_changes_nothing() -> None:
    user = active_user("viewer")
    assert user.change_role("admin", ACTOR, NOW) is True
    assert user.events == [
        UserRoleChanged(user_id=user.id, previous_role="viewer", new_role="admin", actor=ACTOR)
    ]
    version = user.version
    assert user.change_role("admin", ACTOR, NOW) is False
    assert user.version == version and len(user.events) == 1


def test_deactivate_and_reactivate() -> None:
    user = active_user()
    user.deactivate("offboarded", ACTOR, NOW)
    assert user.status is UserStatus.DEACTIVATED and user.deactivation_reason == "offboarded"
    assert user.events == [
        UserDeactivated(
            user_id=user.id, email=user.email, reason="offboarded", sessions_revoked=True, actor=ACTOR
        )
    ]
    with pytest.raises(IllegalTransition) as illegal:
        user.change_role("admin", ACTOR, NOW)
    assert illegal.value.status == "deactivated"
    user.reactivate(NOW)
    assert user.model_dump()["status"] == "active" and user.deactivation_reason is None


@pytest.mark.parametrize(
    ("setup", "action", "status"),
    [
        (new_user, lambda u: u.deactivate("admin_action", ACTOR, NOW), "invited"),
        (new_user, lambda u: u.reactivate(NOW), "invited"),
        (active_user, lambda u: u.reactivate(NOW), "active"),
        (active_user, lambda u: u.activate(None, "idp", NOW), "active"),
    ],
)
def test_illegal_user_transitions_say_the_current_status(setup: Any, action: Any, status: str) -> None:
    user = setup()
    with pytest.raises(IllegalTransition) as illegal:
        action(user)
    assert illegal.value.status == status


# --- import rows -------------------------------------------------------------------------------------
def test_csv_rows_are_validated_one_by_one() -> None:
    text = (
        "\ufeffRole, Email ,display_name\r\n"
        "member,Ann@Acme.example,Ann\r\n"
        "\r\n"
        'viewer,bob@acme.example,"Bob, Jr."\r\n'
        "admin,carl@acme.example,\r\n"
        "root,dan@acme.example,Dan\r\n"
        "member,not-an-email,X\r\n"
        "owner,eve@acme.example,Eve\r\n"
        "member,short@acme.example\r\n"
    )
    rows = parse_csv(text, ADMIN)
    assert [r.row for r in rows] == [1, 2, 3, 4, 5, 6, 7]
    assert rows[0] == ImportRow(row=1, email="ann@acme.example", role="member", display_name="Ann")
    assert rows[1].display_name == "Bob, Jr." and rows[2].display_name is None
    assert [r.status for r in rows] == ["pending"] * 3 + ["failed"] * 4
    assert rows[3].reason is not None and rows[3].reason.startswith("invalid role")
    assert rows[4].reason is not None and rows[4].reason.startswith("invalid email")
    assert rows[5].reason == "invalid role: your role cannot grant owner"
    assert rows[6].reason == "invalid row: 2 fields where the header has 3"
    assert parse_csv(text, OWNER)[5].status == "pending"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n\n",
        "email\na@b.example\n",
        "email,role,phone\n",
        "email,role,role\n",
        'email,role\n"a@b.example',
    ],
)
def test_a_csv_without_a_proper_header_is_refused_as_a_whole(text: str) -> None:
    with pytest.raises(ImportFileError):
        parse_import(text, "csv", ADMIN)


def test_ndjson_rows() -> None:
    lines = [
        json.dumps({"email": "a@acme.example", "role": "viewer"}),
        "",
        "{broken",
        json.dumps(["a list"]),
        json.dumps({"email": "b@acme.example", "role": "member", "phone": "1"}),
        json.dumps({"email": "c@acme.example", "role": "member", "display_name": "C"}),
    ]
    rows = parse_ndjson("\n".join(lines), ADMIN)
    assert [(r.row, r.status) for r in rows] == [
        (1, "pending"),
        (2, "failed"),
        (3, "failed"),
        (4, "failed"),
        (5, "pending"),
    ]
    assert rows[1].reason == "invalid row: not a JSON object"
    assert rows[3].reason is not None and "phone" in rows[3].reason
    assert rows[4].display_name == "C"


def test_a_repeated_email_is_a_duplicate_of_its_first_row() -> None:
    text = "email,role\na@x.example,viewer\nb@x.example,viewer\nA@X.example,admin\nbad,viewer\nbad,viewer\n"
    rows = parse_import(text, "csv", ADMIN)
    assert [(r.status, r.reason) for r in rows][2] == ("skipped", "duplicate of row 1")
    assert [r.status for r in rows] == ["pending", "pending", "skipped", "failed", "failed"]


def test_more_than_the_row_limit_is_refused() -> None:
    header = "email,role\n"
    parse_import(header + "a@x.example,viewer\n" * MAX_IMPORT_ROWS, "csv", ADMIN)
    with pytest.raises(TooManyRows):
        parse_import(header + "a@x.example,viewer\n" * (MAX_IMPORT_ROWS + 1), "csv", ADMIN)
    with pytest.raises(TooManyRows):
        parse_import('{"email": "a@x.example", "role": "viewer"}\n' * (MAX_IMPORT_ROWS + 1), "ndjson", ADMIN)


def test_plan_chunk_skips_existing_users_and_rows_beyond_the_free_seats() -> None:
    rows = [
        ImportRow(row=1, email="a@x.example", role="viewer"),
        ImportRow(row=2, email="b@x.example", role="viewer"),
        ImportRow(row=3, status="failed", reason="invalid row: not a JSON object"),
        ImportRow(row=4, email="c@x.example", role="viewer"),
        ImportRow(row=5, email="d@x.example", role="viewer"),
    ]
    decided = plan_chunk(rows, existing={"b@x.example"}, free_seats=2)
    assert [(r.status, r.reason) for r in decided] == [
        ("created", None),
        ("skipped", "exists"),
        ("failed", "invalid row: not a JSON object"),
        ("created", None),
        ("skipped", "no seat"),
    ]
    assert plan_chunk(rows, set(), 0)[0].reason == "no seat"


def test_chunks_keep_the_order() -> None:
    rows = [ImportRow(row=i) for i in range(1, 2 * IMPORT_CHUNK_ROWS + 2)]
    parts = chunked(rows)
    assert [len(p) for p in parts] == [IMPORT_CHUNK_ROWS, IMPORT_CHUNK_ROWS, 1]
    assert [r.row for p in parts for r in p] == [r.row for r in rows]


def test_an_import_job_counts_chunks_in_order_and_completes_with_its_event() -> None:
    job = ImportJob.start("imp_1", "t_1", "csv", IMPORT_CHUNK_ROWS + 2, ACTOR, NOW)
    assert job.chunk_count == 2 and job.status == "queued"
    first = [ImportRow(row=i, status="created") for i in range(1, IMPORT_CHUNK_ROWS + 1)]
    with pytest.raises(IllegalTransition):
        job.record_chunk(1, first, NOW, None)
    job.record_chunk(0, first, NOW, "https://x.example/report")
    assert (job.status, job.processed, job.created, job.events) == (
        "running",
        IMPORT_CHUNK_ROWS,
        IMPORT_CHUNK_ROWS,
        [],
    )
    later = NOW + timedelta(minutes=1)
    job.record_chunk(
        1,
        [ImportRow(row=101, status="skipped"), ImportRow(row=102, status="failed")],
        later,
        "https://x.example/r",
    )
    assert job.done and job.completed_at == later
    assert job.events == [
        BulkImportCompleted(
            import_id="imp_1",
            source="csv",
            mode="create_only",
            status="partially_failed",
            total_rows=IMPORT_CHUNK_ROWS + 2,
            created=IMPORT_CHUNK_ROWS,
            updated=0,
            skipped=1,
            failed=1,
            error_report_url="https://x.example/r",
            started_at=NOW,
            completed_at=later,
            actor=ACTOR,
        )
    ]
    with pytest.raises(IllegalTransition):
        job.record_chunk(2, [], later, None)
    with pytest.raises(IllegalTransition):
        job.resume(later)


def test_import_outcome() -> None:
    assert import_outcome(3, 1, 0) == "succeeded"
    assert import_outcome(0, 5, 0) == "succeeded"
    assert import_outcome(1, 0, 1) == "partially_failed"
    assert import_outcome(0, 0, 2) == "failed"


def test_resume_gives_the_next_tasks_fresh_names() -> None:
    job = ImportJob.start("imp_1", "t_1", "ndjson", 5, ACTOR, NOW)
    job.resume(NOW)
    assert job.generation == 1 and job.version == 2


# --- wiring, with small fakes ------------------------------------------------------------------------
CATALOG = load_catalog()


def test_the_handler_table_is_exactly_the_catalogs_subscriptions() -> None:
    platform = Platform(Settings())
    platform.__dict__["db"] = platform.__dict__["uow"] = None  # never touched while wiring
    handlers = build_handlers(platform)
    assert set(handlers) == {e.name for e in CATALOG.consumed_by("User Management API")}


class FakeIdentity(IdentityProvider):
    def __init__(self, claims: dict[str, Any] | None) -> None:
        super().__init__(Settings())
        self.current = claims
        self.log: list[str] = []

    def claims(self, idp_tenant_id: str, uid: str) -> dict[str, Any] | None:
        return self.current

    def set_claims(self, idp_tenant_id: str, uid: str, claims: dict[str, Any]) -> None:
        self.log.append("set")
        self.current = claims

    def revoke_sessions(self, idp_tenant_id: str, uid: str) -> None:
        self.log.append("revoke")


class FakeQueue:
    def __init__(self) -> None:
        self.tasks: list[tuple[str, dict[str, Any], str | None]] = []

    def enqueue(self, path: str, payload: dict[str, Any], *, name: str | None = None, **_: Any) -> bool:
        self.tasks.append((path, payload, name))
        return True


def offline_service(identity: IdentityProvider, queue: Any = None) -> UserService:
    return UserService(None, None, CATALOG, identity, None, queue, "http://x")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("current", "log"),
    [
        ({"tenant_id": "t_1", "roles": ["admin"]}, ["set", "revoke"]),
        ({}, ["set", "revoke"]),
        ({"tenant_id": "t_1", "roles": ["member"]}, []),
        (None, []),  # no identity (never accepted): nothing to sync
    ],
)
def test_claims_are_set_and_sessions_revoked_only_when_they_differ(
    current: dict[str, Any] | None, log: list[str]
) -> None:
    identity = FakeIdentity(current)
    assert offline_service(identity).sync_claims(active_user("member")) is bool(log)
    assert identity.log == log


def test_a_policy_change_schedules_one_named_resync_per_policy_version() -> None:
    queue = FakeQueue()
    service = offline_service(FakeIdentity(None), queue)
    service.schedule_resync("t_1", "member", "pol_1", 2)
    service.schedule_resync("t_1", "member", "pol_1", 3)
    assert [(path, payload) for path, payload, _ in queue.tasks] == [
        (RESYNC_PATH, {"tenant_id": "t_1", "role": "member"})
    ] * 2
    names = [name for _, _, name in queue.tasks]
    assert len(set(names)) == 2 and all(name and "pol_1" in name for name in names)
