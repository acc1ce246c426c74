"""User Management API over HTTP: request and response models, and the routes with their permissions.

Invitation tokens are answered once, by the invitation and its resend (the invitee accepts with one at
the public POST /invitations/accept). The invitation mail carries its own token, minted when the mail is
sent: the Notification API's send task asks POST .../mail-token (a platform service permission) and puts
the portal's accept link in the mail it hands to the relay, so no event, stored mail or log line ever
holds a token. Tokens are never stored (only their hashes), so those routes refuse Idempotency-Key: the
kernel would keep the answer, token included, to replay it (and on the public route every anonymous
caller would share one key space). They need none: a repeated invitation or acceptance answers 409.

Imported users get invitations without a token (there is no answer to carry 10,000 of them): their
invitation mails carry one, and resending the invitation issues one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Literal

from google.cloud import firestore
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from functions.user_management_api.adapters import IdentityUnavailable
from functions.user_management_api.domain import (
    DEFAULT_INVITATION_HOURS,
    EMAIL,
    MAX_INVITATION_HOURS,
    AcceptInProgress,
    DeactivationReason,
    Grantor,
    IllegalTransition,
    ImportFileError,
    ImportFormat,
    ImportJob,
    ImportRow,
    Invitation,
    InvitationGone,
    InvitationNotFound,
    InvitationStatus,
    InvitationUsed,
    Role,
    RoleNotGrantable,
    RowStatus,
    SelfChange,
    TooManyRows,
    User,
    UserExists,
    UserStatus,
    parse_import,
)
from functions.user_management_api.service import API_NAME, UserService, build_service
from shared.authz import PUBLIC
from shared.contracts import Actor
from shared.http import Reply, RequestContext, Router
from shared.imports import IMPORT_UPLOAD, uploaded_file
from shared.pagination import PageOf, PageParams, paginate
from shared.platform import Platform
from shared.problems import Problem, bad_request, conflict, not_found

MAX_IMPORT_BYTES = 5 * 1024 * 1024
TENANT_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
IDS = {
    "user_id": (re.compile(r"^u_[0-9a-f]{28}$"), "User"),
    "invitation_id": (re.compile(r"^inv_[0-9a-f]{20}$"), "Invitation"),
    "job_id": (re.compile(r"^imp_[0-9a-f]{20}$"), "User import"),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Invite(_Strict):
    email: str = Field(pattern=EMAIL, max_length=254)
    role: Role
    expires_in_hours: int = Field(default=DEFAULT_INVITATION_HOURS, ge=1, le=MAX_INVITATION_HOURS)


class Accept(_Strict):
    token: SecretStr = Field(min_length=1, max_length=512)
    password: SecretStr = Field(min_length=10, max_length=128)
    display_name: str = Field(min_length=1, max_length=200)


class ChangeRole(_Strict):
    role: Role


class Deactivate(_Strict):
    reason: DeactivationReason = "admin_action"


class ListUsers(PageParams):
    model_config = ConfigDict(extra="forbid")
    status: UserStatus | None = None
    role: Role | None = None
    q: str | None = Field(default=None, min_length=1, max_length=254, description="An email prefix.")


class ListInvitations(PageParams):
    model_config = ConfigDict(extra="forbid")
    status: InvitationStatus | None = None


class ListRows(PageParams):
    model_config = ConfigDict(extra="forbid")
    status: RowStatus | None = None


class UserView(BaseModel):
    id: str
    email: str
    display_name: str | None
    role: Role
    status: UserStatus
    idp_tenant_id: str | None
    invited_by: str | None
    invitation_id: str | None
    created_at: datetime
    updated_at: datetime
    activated_at: datetime | None
    deactivated_at: datetime | None
    deactivation_reason: str | None
    version: int

    @classmethod
    def of(cls, user: User) -> UserView:
        return cls(**user.model_dump(exclude={"events", "tenant_id"}))


class InvitationView(BaseModel):
    """Never the token nor its hash."""

    id: str
    user_id: str
    email: str
    role: Role
    status: InvitationStatus
    expires_at: datetime
    sent_count: int
    invited_by: str
    created_at: datetime
    updated_at: datetime
    last_sent_at: datetime | None
    accepted_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, invitation: Invitation, now: datetime) -> InvitationView:
        data = invitation.model_dump(
            exclude={"token_hash", "mail_token_hash", "tenant_id", "expires_in_hours", "accepting_until"}
        )
        return cls(**{**data, "status": invitation.effective_status(now)})


class ImportView(BaseModel):
    id: str
    format: ImportFormat
    status: Literal["queued", "running", "completed"]
    total: int
    processed: int
    created: int
    skipped: int
    failed: int
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None

    @classmethod
    def of(cls, job: ImportJob) -> ImportView:
        return cls.model_validate(job.model_dump(exclude={"events"}))


def _actor(ctx: RequestContext) -> Actor:
    return Actor.model_validate(ctx.principal.as_actor())


def _grantor(ctx: RequestContext) -> Grantor:
    principal = ctx.principal
    # A platform service (onboarding inviting a tenant's first admin) acts for the platform, as an operator.
    return Grantor(
        uid=principal.uid, roles=principal.roles, is_operator=principal.is_operator or principal.is_service
    )


def _user_reply(user: User, status: int = 200) -> Reply:
    return Reply(UserView.of(user), status=status, headers={"ETag": f'"{user.version}"'})


def _if_match(ctx: RequestContext) -> int | None:
    value = ctx.request.headers.get("If-Match")
    if value is None:
        return None
    try:
        return int(value.strip().removeprefix("W/").strip('"'))
    except ValueError as exc:
        raise bad_request("If-Match must be an ETag returned by this API.") from exc


def _no_idempotency_key(ctx: RequestContext) -> None:
    if ctx.request.headers.get("Idempotency-Key") is not None:
        raise Problem(
            400,
            "idempotency-key-not-supported",
            "This request carries or answers a secret token that is never stored, so it is not replayed: "
            "send it without Idempotency-Key (a repeated invitation or acceptance answers 409).",
        )


@contextmanager
def _domain_errors() -> Iterator[None]:
    """Turn the domain's refusals into problems that say what the current state is."""
    try:
        yield
    except IllegalTransition as exc:
        raise conflict("illegal-transition", str(exc), current_status=exc.status) from exc
    except RoleNotGrantable as exc:
        raise Problem(403, "role-not-grantable", str(exc), role=exc.role) from exc
    except SelfChange as exc:
        raise conflict("self-change", str(exc)) from exc
    except UserExists as exc:
        raise conflict("user-exists", str(exc), user_id=exc.user_id, current_status=exc.status) from exc
    except InvitationNotFound as exc:
        raise not_found("The invitation") from exc
    except InvitationUsed as exc:
        raise conflict("invitation-used", "This invitation was already accepted: sign in instead.") from exc
    except InvitationGone as exc:
        raise Problem(
            410,
            f"invitation-{exc.status.value}",
            f"{exc}: ask for a new one.",
            current_status=exc.status.value,
        ) from exc
    except AcceptInProgress as exc:
        raise Problem(
            409,
            "acceptance-in-progress",
            "This invitation is being accepted right now: retry in a moment.",
            headers={"Retry-After": "5"},
        ) from exc
    except IdentityUnavailable as exc:
        raise Problem(
            503,
            "identity-unavailable",
            f"Identity Platform did not complete the change ({exc}); nothing was lost: retry.",
            headers={"Retry-After": "1"},
        ) from exc
    except ImportFileError as exc:
        raise Problem(422, "invalid-import", str(exc), title="Validation failed") from exc
    except TooManyRows as exc:
        raise Problem(413, "too-many-rows", str(exc), max_rows=exc.limit) from exc


def _import_body(ctx: RequestContext) -> tuple[ImportFormat, str]:
    return uploaded_file(ctx.request, MAX_IMPORT_BYTES)


def _id(ctx: RequestContext, name: str) -> str:
    """A path id of ours, or 404 before any lookup (never a Firestore error for a malformed id)."""
    value = ctx.params[name]
    pattern, what = IDS[name]
    if pattern.fullmatch(value) is None:
        raise not_found(f"{what} {value}")
    return value


def _page(items: list[Any], next_cursor: str | None) -> Reply:
    return Reply({"items": items, "next_cursor": next_cursor})


def build_router(platform: Platform) -> Router:
    service: UserService = build_service(platform)
    router = Router(platform.catalog.api(API_NAME).slug)

    # --- identity tenant ---------------------------------------------------------------------------
    @router.post("/tenants/{tenant_id}/identity", permission="users:manage", status=(200, 201))
    def create_identity(ctx: RequestContext) -> Reply:
        with _domain_errors():
            config, created = service.ensure_identity_tenant(ctx.tenant_id)
        body = {"tenant_id": ctx.tenant_id, "idp_tenant_id": config["idp_tenant_id"]}
        return Reply({**body, "display_name": config.get("display_name")}, status=201 if created else 200)

    @router.get("/tenants/{tenant_id}/identity", permission="users:read")
    def get_identity(ctx: RequestContext) -> Reply:
        config = service.identity_config(ctx.tenant_id)
        if config is None:
            raise not_found(f"The identity tenant of {ctx.tenant_id}")
        body = {"tenant_id": ctx.tenant_id, "idp_tenant_id": config["idp_tenant_id"]}
        return Reply({**body, "display_name": config.get("display_name")})

    # --- invitations -------------------------------------------------------------------------------
    @router.post("/tenants/{tenant_id}/invitations", permission="users:invite", body=Invite, status=201)
    def invite(ctx: RequestContext) -> Reply:
        _no_idempotency_key(ctx)
        body = ctx.body(Invite)
        with _domain_errors():
            invitation, token = service.invite(
                ctx.tenant_id, body.email, body.role, body.expires_in_hours, _grantor(ctx), _actor(ctx)
            )
        view = InvitationView.of(invitation, service.clock())
        location = f"/tenants/{ctx.tenant_id}/invitations/{invitation.id}"
        return Reply(
            {"invitation": view.model_dump(mode="json"), "token": token},
            status=201,
            headers={"Location": location, "Cache-Control": "no-store"},
        )

    @router.get("/tenants/{tenant_id}/invitations", permission="users:invite", query=ListInvitations)
    def list_invitations(ctx: RequestContext) -> Reply:
        params = ctx.query(ListInvitations)
        collection = service.invitations(ctx.tenant_id)
        now = service.clock()
        query: Any = collection
        order, descending = "created_at", True
        # `expired` is also a pending invitation past its expiry (marked when someone tries it).
        if params.status is InvitationStatus.PENDING:
            query = query.where(filter=firestore.FieldFilter("status", "==", "pending"))
            query = query.where(filter=firestore.FieldFilter("expires_at", ">", now))
            order, descending = "expires_at", False
        elif params.status is InvitationStatus.EXPIRED:
            query = query.where(filter=firestore.FieldFilter("status", "in", ["pending", "expired"]))
            query = query.where(filter=firestore.FieldFilter("expires_at", "<=", now))
            order, descending = "expires_at", False
        elif params.status is not None:
            query = query.where(filter=firestore.FieldFilter("status", "==", params.status.value))
        page = paginate(collection, query, order, params, descending=descending)
        items = [
            InvitationView.of(Invitation.model_validate(s.to_dict()), now).model_dump(mode="json")
            for s in page.snapshots
        ]
        return _page(items, page.next_cursor)

    @router.get(
        "/tenants/{tenant_id}/invitations/{invitation_id}", permission="users:invite", response=InvitationView
    )
    def get_invitation(ctx: RequestContext) -> Reply:
        invitation = service.get_invitation(ctx.tenant_id, _id(ctx, "invitation_id"))
        return Reply(InvitationView.of(invitation, service.clock()))

    @router.post("/tenants/{tenant_id}/invitations/{invitation_id}/resend", permission="users:invite")
    def resend(ctx: RequestContext) -> Reply:
        _no_idempotency_key(ctx)
        with _domain_errors():
            invitation, token = service.resend(ctx.tenant_id, _id(ctx, "invitation_id"), _grantor(ctx))
        view = InvitationView.of(invitation, service.clock())
        return Reply(
            {"invitation": view.model_dump(mode="json"), "token": token},
            headers={"Cache-Control": "no-store"},
        )

    @router.post("/tenants/{tenant_id}/invitations/{invitation_id}/revoke", permission="users:invite")
    def revoke(ctx: RequestContext) -> Reply:
        with _domain_errors():
            invitation = service.revoke(ctx.tenant_id, _id(ctx, "invitation_id"), _grantor(ctx))
        return Reply(InvitationView.of(invitation, service.clock()))

    @router.post("/tenants/{tenant_id}/invitations/{invitation_id}/mail-token", permission="invitations:mail")
    def mail_token(ctx: RequestContext) -> Reply:
        """The Notification API's send task, as it sends the invitation mail: the accept link's token."""
        _no_idempotency_key(ctx)
        with _domain_errors():
            token = service.mail_token(ctx.tenant_id, _id(ctx, "invitation_id"))
        return Reply({"token": token}, headers={"Cache-Control": "no-store"})

    @router.get("/tenants/{tenant_id}/sign-in", permission=PUBLIC)
    def sign_in_options(ctx: RequestContext) -> Reply:
        """Public: the Identity Platform tenant a sign-in page signs this tenant's users in to."""
        tenant_id = ctx.params["tenant_id"]
        config = service.identity_config(tenant_id) if TENANT_ID.fullmatch(tenant_id) else None
        if config is None:
            raise not_found(f"Sign-in for tenant {tenant_id}")
        return Reply({"tenant_id": tenant_id, "idp_tenant_id": config["idp_tenant_id"]})

    @router.post("/invitations/accept", permission=PUBLIC, body=Accept)
    def accept(ctx: RequestContext) -> Reply:
        """Public: the token is the credential. Answers the active user and the IdP tenant to sign in to."""
        _no_idempotency_key(ctx)
        body = ctx.body(Accept)
        with _domain_errors():
            user = service.accept(body.token.get_secret_value(), body.password, body.display_name)
        return _user_reply(user)

    # --- users -------------------------------------------------------------------------------------
    @router.get(
        "/tenants/{tenant_id}/users", permission="users:read", query=ListUsers, response=PageOf[UserView]
    )
    def list_users(ctx: RequestContext) -> Reply:
        params = ctx.query(ListUsers)
        collection = service.users(ctx.tenant_id)
        query: Any = collection
        if params.status is not None:
            query = query.where(filter=firestore.FieldFilter("status", "==", params.status.value))
        if params.role is not None:
            query = query.where(filter=firestore.FieldFilter("role", "==", params.role))
        if params.q is not None:
            prefix = params.q.lower()
            query = query.where(filter=firestore.FieldFilter("email", ">=", prefix))
            query = query.where(filter=firestore.FieldFilter("email", "<", prefix + "\uf8ff"))
        page = paginate(collection, query, "email", params)
        items = [
            UserView.of(User.model_validate(s.to_dict())).model_dump(mode="json") for s in page.snapshots
        ]
        return _page(items, page.next_cursor)

    @router.get("/tenants/{tenant_id}/users/{user_id}", permission="users:read", response=UserView, etag=True)
    def get_user(ctx: RequestContext) -> Reply:
        return _user_reply(service.get_user(ctx.tenant_id, _id(ctx, "user_id")))

    @router.patch(
        "/tenants/{tenant_id}/users/{user_id}",
        permission="users:manage",
        body=ChangeRole,
        response=UserView,
        etag=True,
    )
    def change_role(ctx: RequestContext) -> Reply:
        body = ctx.body(ChangeRole)
        if_match = _if_match(ctx)
        with _domain_errors():
            user = service.change_role(
                ctx.tenant_id, _id(ctx, "user_id"), body.role, if_match, _grantor(ctx), _actor(ctx)
            )
        return _user_reply(user)

    @router.post(
        "/tenants/{tenant_id}/users/{user_id}/deactivate",
        permission="users:manage",
        body=Deactivate,
        response=UserView,
        etag=True,
    )
    def deactivate(ctx: RequestContext) -> Reply:
        body = ctx.body(Deactivate)
        with _domain_errors():
            user = service.deactivate(
                ctx.tenant_id, _id(ctx, "user_id"), body.reason, _grantor(ctx), _actor(ctx)
            )
        return _user_reply(user)

    @router.post(
        "/tenants/{tenant_id}/users/{user_id}/reactivate",
        permission="users:manage",
        response=UserView,
        etag=True,
    )
    def reactivate(ctx: RequestContext) -> Reply:
        with _domain_errors():
            user = service.reactivate(ctx.tenant_id, _id(ctx, "user_id"), _grantor(ctx))
        return _user_reply(user)

    # --- bulk import -------------------------------------------------------------------------------
    @router.post(
        "/tenants/{tenant_id}/user-imports",
        permission="user-imports:manage",
        body=IMPORT_UPLOAD,
        status=202,
        response=ImportView,
    )
    def submit_import(ctx: RequestContext) -> Reply:
        fmt, text = _import_body(ctx)
        with _domain_errors():
            rows = parse_import(text, fmt, _grantor(ctx))
        job = service.submit_import(ctx.tenant_id, fmt, rows, _actor(ctx))
        location = f"/tenants/{ctx.tenant_id}/user-imports/{job.id}"
        return Reply(ImportView.of(job), status=202, headers={"Location": location})

    @router.get(
        "/tenants/{tenant_id}/user-imports",
        permission="user-imports:manage",
        query=PageParams,
        response=PageOf[ImportView],
    )
    def list_imports(ctx: RequestContext) -> Reply:
        params = ctx.query(PageParams)
        collection = service.imports(ctx.tenant_id)
        page = paginate(collection, collection, "created_at", params, descending=True)
        items = [
            ImportView.of(ImportJob.model_validate(s.to_dict())).model_dump(mode="json")
            for s in page.snapshots
        ]
        return _page(items, page.next_cursor)

    @router.get(
        "/tenants/{tenant_id}/user-imports/{job_id}", permission="user-imports:manage", response=ImportView
    )
    def get_import(ctx: RequestContext) -> Reply:
        return Reply(ImportView.of(service.get_job(ctx.tenant_id, _id(ctx, "job_id"))))

    @router.get(
        "/tenants/{tenant_id}/user-imports/{job_id}/rows", permission="user-imports:manage", query=ListRows
    )
    def import_rows(ctx: RequestContext) -> Reply:
        params = ctx.query(ListRows)
        service.get_job(ctx.tenant_id, _id(ctx, "job_id"))
        collection = service.rows(ctx.tenant_id, _id(ctx, "job_id"))
        query: Any = collection
        if params.status is not None:
            query = query.where(filter=firestore.FieldFilter("status", "==", params.status))
        page = paginate(collection, query, "row", params)
        items = [ImportRow.model_validate(s.to_dict()).model_dump(mode="json") for s in page.snapshots]
        return _page(items, page.next_cursor)

    @router.post(
        "/tenants/{tenant_id}/user-imports/{job_id}/resume",
        permission="user-imports:manage",
        status=202,
        response=ImportView,
    )
    def resume_import(ctx: RequestContext) -> Reply:
        with _domain_errors():
            job = service.resume(ctx.tenant_id, _id(ctx, "job_id"))
        return Reply(ImportView.of(job), status=202)

    return router
