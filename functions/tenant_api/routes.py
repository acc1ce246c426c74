"""Tenant API over HTTP: request and response models, and the routes with their permissions."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from google.cloud import firestore
from pydantic import BaseModel, ConfigDict, Field

from functions.tenant_api import offboarding, tickets
from functions.tenant_api.domain import (
    IllegalTransition,
    Plan,
    SeatLimitReached,
    SeatsInUse,
    Tenant,
    TenantStatus,
)
from functions.tenant_api.jobs import TenantProcesses
from functions.tenant_api.service import TENANTS, build_service
from shared.authz import PUBLIC
from shared.contracts import Actor
from shared.http import Reply, RequestContext, Router
from shared.pagination import PageOf, PageParams, paginate
from shared.platform import Platform
from shared.problems import Problem, conflict, forbidden, not_found

SLUG = r"^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])$"
EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CreateTenant(_Strict):
    name: str = Field(min_length=1, max_length=200)
    slug: str = Field(pattern=SLUG, description="Unique, lowercase letters, digits and dashes (3-63).")
    plan: Plan
    admin_email: str = Field(pattern=EMAIL, max_length=320)


class UpdateTenant(_Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    plan: Plan | None = None


class Reason(_Strict):
    reason: str = Field(min_length=1, max_length=500)


class AssignSeat(_Strict):
    user_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.@-]+$")
    email: str | None = Field(default=None, pattern=EMAIL, max_length=320)


class ListTenants(PageParams):
    model_config = ConfigDict(extra="forbid")
    status: TenantStatus | None = None


class ListTickets(PageParams):
    model_config = ConfigDict(extra="forbid")
    status: tickets.TicketStatus | None = None
    tenant_id: str | None = Field(default=None, max_length=128, pattern=r"^[^/]+$")


class ResumeRun(_Strict):
    from_step: str | None = Field(default=None, min_length=1, max_length=200)


class UpdateTicket(_Strict):
    status: tickets.TicketStatus
    note: str | None = Field(default=None, min_length=1, max_length=2000)


EXPORT_FILE = re.compile(r"^[a-z0-9_.-]{1,200}\.ndjson$")
TICKET_ID = re.compile(r"^tk_[0-9a-f]{24}$")
RUN_ID = re.compile(r"^(offboard|ticket)-v[0-9]{1,9}$")


class TenantView(BaseModel):
    id: str
    name: str
    slug: str
    plan: Plan
    seat_limit: int
    seats_used: int
    status: TenantStatus
    status_reason: str | None
    admin_email: str
    created_at: datetime
    updated_at: datetime
    deactivated_at: datetime | None
    retention_until: datetime | None
    erasure: dict[str, Any] | None = None
    past_due: bool
    version: int

    @classmethod
    def of(cls, tenant: Tenant) -> TenantView:
        return cls(**tenant.model_dump(exclude={"billing", "events"}), past_due=tenant.billing.past_due)


class SeatView(BaseModel):
    user_id: str
    email: str | None
    assigned_at: datetime
    assigned_by: str


def _actor(ctx: RequestContext) -> Actor:
    return Actor.model_validate(ctx.principal.as_actor())


def _tenant_reply(tenant: Tenant, status: int = 200, location: bool = False) -> Reply:
    headers = {"ETag": f'"{tenant.version}"'}
    if location:
        headers["Location"] = f"/tenants/{tenant.id}"
    return Reply(TenantView.of(tenant), status=status, headers=headers)


def _if_match(ctx: RequestContext) -> int | None:
    value = ctx.request.headers.get("If-Match")
    if value is None:
        return None
    try:
        return int(value.strip().removeprefix("W/").strip('"'))
    except ValueError as exc:
        raise Problem(400, "bad-request", "If-Match must be an ETag returned by this API.") from exc


@contextmanager
def _domain_errors() -> Iterator[None]:
    """Turn the aggregate's refusals into 409 problems that say what the current state is."""
    try:
        yield
    except IllegalTransition as exc:
        raise conflict("illegal-transition", str(exc), current_status=exc.status.value) from exc
    except SeatLimitReached as exc:
        raise conflict("seat-limit-reached", str(exc), seat_limit=exc.limit) from exc
    except SeatsInUse as exc:
        raise conflict("seats-in-use", str(exc), seats_used=exc.used, seat_limit=exc.limit) from exc


def build_router(platform: Platform) -> Router:
    service = build_service(platform)
    router = Router(platform.catalog.api("Tenant API").slug)

    @router.post(
        "/tenants", permission="tenants:create", body=CreateTenant, status=201, response=TenantView, etag=True
    )
    def create(ctx: RequestContext) -> Reply:
        body = ctx.body(CreateTenant)
        tenant = service.create(body.name, body.slug, body.plan, body.admin_email.lower(), _actor(ctx))
        return _tenant_reply(tenant, 201, location=True)

    @router.get("/tenants", permission="tenants:list", query=ListTenants, response=PageOf[TenantView])
    def list_tenants(ctx: RequestContext) -> Reply:
        params = ctx.query(ListTenants)
        collection = platform.db.collection(TENANTS)
        query: Any = collection
        if params.status is not None:
            query = query.where(filter=firestore.FieldFilter("status", "==", params.status.value))
        page = paginate(collection, query, "created_at", params)
        items = [
            TenantView.of(Tenant.model_validate(s.to_dict())).model_dump(mode="json") for s in page.snapshots
        ]
        return Reply({"items": items, "next_cursor": page.next_cursor})

    @router.get("/sign-in/{slug}", permission=PUBLIC)
    def sign_in_workspace(ctx: RequestContext) -> Reply:
        """Public: the tenant a workspace slug names, for a sign-in page (its id and name, nothing more)."""
        slug = ctx.params["slug"]
        tenant = service.by_slug(slug) if re.fullmatch(SLUG, slug) else None
        if tenant is None:
            raise not_found(f"The workspace {slug!r}")
        return Reply({"tenant_id": tenant.id, "name": tenant.name})

    @router.get("/tenants/{tenant_id}", permission="tenants:read", response=TenantView, etag=True)
    def get(ctx: RequestContext) -> Reply:
        return _tenant_reply(service.get(ctx.tenant_id))

    @router.patch(
        "/tenants/{tenant_id}", permission="tenants:update", body=UpdateTenant, response=TenantView, etag=True
    )
    def update(ctx: RequestContext) -> Reply:
        body = ctx.body(UpdateTenant)
        if body.plan is not None and not ctx.principal.can("platform:operate"):
            # Plans follow billing: tenant admins rename, operators (and billing events) change plans.
            raise forbidden("platform:operate")
        with _domain_errors():
            return _tenant_reply(service.update(ctx.tenant_id, body.name, body.plan, _if_match(ctx)))

    def transition(action: Callable[[RequestContext], Tenant]) -> Callable[[RequestContext], Reply]:
        def handler(ctx: RequestContext) -> Reply:
            with _domain_errors():
                return _tenant_reply(action(ctx))

        return handler

    router.post(
        "/tenants/{tenant_id}/suspend",
        permission="tenants:suspend",
        body=Reason,
        response=TenantView,
        etag=True,
    )(transition(lambda ctx: service.suspend(ctx.tenant_id, ctx.body(Reason).reason, _actor(ctx))))
    router.post(
        "/tenants/{tenant_id}/reactivate", permission="tenants:reactivate", response=TenantView, etag=True
    )(transition(lambda ctx: service.reactivate(ctx.tenant_id, _actor(ctx))))
    router.post(
        "/tenants/{tenant_id}/deactivate",
        permission="tenants:deactivate",
        body=Reason,
        response=TenantView,
        etag=True,
    )(transition(lambda ctx: service.deactivate(ctx.tenant_id, ctx.body(Reason).reason, _actor(ctx))))

    # --- offboarding: operators follow it, and fetch the export for the customer -------------------
    processes = TenantProcesses(platform)

    def _document(collection: str, doc_id: str) -> dict[str, Any] | None:
        snapshot = platform.db.collection(collection).document(doc_id).get()
        return snapshot.to_dict() if snapshot.exists else None

    @router.get("/tenants/{tenant_id}/offboarding", permission="platform:operate")
    def offboarding_status(ctx: RequestContext) -> Reply:
        runs, _ = processes.engine.runs(
            tenant_id=ctx.tenant_id, process=offboarding.PROCESS, page=PageParams(limit=10)
        )
        export = _document(offboarding.EXPORTS, ctx.tenant_id)
        proof = _document(offboarding.PROOFS, ctx.tenant_id)
        if not runs and proof is None:
            service.get(ctx.tenant_id)  # 404 for an unknown tenant
        return Reply(
            {
                "runs": runs,
                "export": offboarding.encode(
                    {k: export[k] for k in ("manifest_sha256", "created_at", "run_id")}
                )
                if export
                else None,
                "proof": offboarding.encode(proof) if proof else None,
            }
        )

    @router.post(
        "/tenants/{tenant_id}/offboarding/{run_id}/resume", permission="platform:operate", body=ResumeRun
    )
    def resume_offboarding(ctx: RequestContext) -> Reply:
        """A failed (or stalled) run goes on from its failed step, or from `from_step`."""
        body = ctx.body(ResumeRun)
        run_id = ctx.params["run_id"]
        if not RUN_ID.fullmatch(run_id):
            raise not_found(f"The run {run_id}")
        return Reply(
            processes.engine.resume(tenant_id=ctx.tenant_id, run_id=run_id, from_step=body.from_step)
        )

    def _export(tenant_id: str) -> dict[str, Any]:
        export = _document(offboarding.EXPORTS, tenant_id)
        if export is None:
            raise not_found(f"An export of tenant {tenant_id}")
        return export

    @router.get("/tenants/{tenant_id}/export", permission="platform:operate")
    def export_manifest(ctx: RequestContext) -> Reply:
        export = _export(ctx.tenant_id)
        return Reply(
            {"manifest": export["manifest"], "manifest_sha256": export["manifest_sha256"]},
            headers={"ETag": f'"{export["manifest_sha256"]}"'},
        )

    @router.get(
        "/tenants/{tenant_id}/export/files/{file_name}",
        permission="platform:operate",
        media_type="application/x-ndjson",
    )
    def export_file(ctx: RequestContext) -> Reply:
        name = ctx.params["file_name"]
        export = _export(ctx.tenant_id) if EXPORT_FILE.fullmatch(name) else {}
        entry = next((f for f in export.get("manifest", {}).get("files", []) if f["name"] == name), None)
        if entry is None:
            raise not_found(f"The export file {name}")
        chunks = (
            offboarding.FirestoreChunks(platform.db, ctx.tenant_id).file(name).collection(offboarding.CHUNKS)
        )

        def stream() -> Iterator[bytes]:
            # One chunk in memory at a time, in order; the manifest says how many belong to the file.
            for index in range(int(entry["chunks"])):
                snapshot = chunks.document(f"{index:06d}").get()
                yield bytes(snapshot.get("data"))

        digest = base64.b64encode(bytes.fromhex(entry["sha256"])).decode()
        return Reply(
            stream=stream(),
            content_type="application/x-ndjson",
            headers={
                "Repr-Digest": f"sha-256=:{digest}:",
                "ETag": f'"{entry["sha256"]}"',
                "Content-Disposition": f'attachment; filename="{name}"',
            },
        )

    @router.get("/tenants/{tenant_id}/erasure-proof", permission="platform:operate")
    def erasure_proof(ctx: RequestContext) -> Reply:
        proof = _document(offboarding.PROOFS, ctx.tenant_id)
        if proof is None:
            raise not_found(f"A proof of erasure of tenant {ctx.tenant_id}")
        return Reply(offboarding.encode(proof))

    # --- support tickets (Customer Support Service) -----------------------------------------------
    @router.get("/support-tickets", permission="platform:operate", query=ListTickets)
    def list_tickets(ctx: RequestContext) -> Reply:
        params = ctx.query(ListTickets)
        collection = platform.db.collection(tickets.TICKETS)
        query: Any = collection
        if params.status is not None:
            query = query.where(filter=firestore.FieldFilter("status", "==", params.status))
        if params.tenant_id is not None:
            query = query.where(filter=firestore.FieldFilter("tenant_id", "==", params.tenant_id))
        page = paginate(collection, query, "created_at", params, descending=True)
        items = [offboarding.encode(s.to_dict() or {}) for s in page.snapshots]
        return Reply({"items": items, "next_cursor": page.next_cursor})

    def _ticket(ticket_id: str) -> dict[str, Any]:
        ticket = _document(tickets.TICKETS, ticket_id) if TICKET_ID.fullmatch(ticket_id) else None
        if ticket is None:
            raise not_found(f"Support ticket {ticket_id}")
        return ticket

    @router.get("/support-tickets/{ticket_id}", permission="platform:operate")
    def get_ticket(ctx: RequestContext) -> Reply:
        return Reply(offboarding.encode(_ticket(ctx.params["ticket_id"])))

    @router.patch("/support-tickets/{ticket_id}", permission="platform:operate", body=UpdateTicket)
    def update_ticket(ctx: RequestContext) -> Reply:
        body = ctx.body(UpdateTicket)
        ticket_id = ctx.params["ticket_id"]
        _ticket(ticket_id)
        ref = platform.db.collection(tickets.TICKETS).document(ticket_id)
        by = ctx.principal.email or ctx.principal.uid

        def work(tx: Any) -> dict[str, Any]:
            current = tx.get(ref)
            if current is None:
                raise not_found(f"Support ticket {ticket_id}")
            changed = tickets.change_status(current, body.status, by, body.note, datetime.now(UTC))
            tx.set(ref, changed)
            return changed

        return Reply(offboarding.encode(platform.uow.run(work)))

    @router.get(
        "/tenants/{tenant_id}/seats", permission="seats:read", query=PageParams, response=PageOf[SeatView]
    )
    def list_seats(ctx: RequestContext) -> Reply:
        params = ctx.query(PageParams)
        service.get(ctx.tenant_id)
        seats = service.seats(ctx.tenant_id)
        page = paginate(seats, seats, "assigned_at", params)
        items = [SeatView.model_validate(s.to_dict()).model_dump(mode="json") for s in page.snapshots]
        return Reply({"items": items, "next_cursor": page.next_cursor})

    @router.post(
        "/tenants/{tenant_id}/seats",
        permission="seats:assign",
        body=AssignSeat,
        status=(200, 201),
        response=SeatView,
    )
    def assign_seat(ctx: RequestContext) -> Reply:
        body = ctx.body(AssignSeat)
        with _domain_errors():
            seat, created = service.assign_seat(ctx.tenant_id, body.user_id, body.email, _actor(ctx))
        return Reply(SeatView.model_validate(seat), status=201 if created else 200)

    @router.delete("/tenants/{tenant_id}/seats/{user_id}", permission="seats:release", status=204)
    def release_seat(ctx: RequestContext) -> Reply:
        service.release_seat(ctx.tenant_id, ctx.params["user_id"])
        return Reply(status=204)

    return router
