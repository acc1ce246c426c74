"""Customer Data API over HTTP: organizations, contacts, search, duplicates, merges, bulk imports, GDPR.

Reads need customers:read; changes customers:write; merges customers:merge; imports customers:import;
export and erasure customers:privacy. A platform service (the Workflow API) may read, write and serve
privacy requests; it names the workflow it acts for with `X-Workflow-Id`, which records the change with
the source "workflow" (the header is ignored from anyone else).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from functions.customer_data_api import domain
from functions.customer_data_api.domain import (
    EMAIL,
    DomainError,
    EmailStatus,
    ImportFileError,
    Kind,
    Side,
    Source,
)
from functions.customer_data_api.service import ROWS, CustomerService, Search, build_service
from shared.http import Reply, RequestContext, Router, validation_errors
from shared.imports import IMPORT_UPLOAD, uploaded_file
from shared.pagination import PageParams, paginate
from shared.platform import Platform
from shared.problems import Problem, bad_request, not_found, validation_failed

MAX_IMPORT_BYTES = 20 * 1024 * 1024
IDS = {
    "contact": re.compile(r"^con_[0-9a-f]{20}$"),
    "organization": re.compile(r"^org_[0-9a-f]{20}$"),
    "merge": re.compile(r"^mrg_[0-9a-f]{20}$"),
    "import": re.compile(r"^cim_[0-9a-f]{20}$"),
}
WORKFLOW_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
# What a client sees of a record: the stored document less internal keys.
HIDDEN = {"name_key", "last_name_key", "email_keys", "domain_keys", "soft_bounces"}


class ListParams(PageParams):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(default=None, min_length=1, max_length=200, description="A name prefix.")
    email: str | None = Field(default=None, max_length=254, pattern=EMAIL)
    domain: str | None = Field(default=None, min_length=3, max_length=253)
    organization_id: str | None = Field(default=None, pattern=r"^org_[0-9a-f]{20}$")
    lifecycle_stage: str | None = Field(default=None, max_length=40)
    email_status: EmailStatus | None = None
    owner_id: str | None = Field(default=None, max_length=128)
    tag: str | None = Field(default=None, max_length=64)
    include_deleted: bool = False


class MergeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Kind
    winner_id: str = Field(pattern=r"^(con|org)_[0-9a-f]{20}$")
    loser_id: str = Field(pattern=r"^(con|org)_[0-9a-f]{20}$")
    choices: dict[str, Side] = Field(default_factory=dict, description="field: winner | loser")


class ImportParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Kind = "contact"
    mode: domain.ImportMode = "create_only"
    match: Literal["email", "domain", "id"] | None = None


class RowParams(PageParams):
    model_config = ConfigDict(extra="forbid")
    status: (
        Literal["created", "updated", "unchanged", "skipped", "failed", "reverted", "revert_skipped"] | None
    ) = None


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


def view(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in HIDDEN}


def _record_reply(record: dict[str, Any], status: int = 200, location: str | None = None) -> Reply:
    headers = {"ETag": f'"{record["version"]}"'}
    if location:
        headers["Location"] = location
    return Reply(view(record), status=status, headers=headers)


def _if_match(ctx: RequestContext) -> int | None:
    value = ctx.request.headers.get("If-Match")
    if value is None or value.strip() == "*":
        return None
    try:
        return int(value.strip().removeprefix("W/").strip('"'))
    except ValueError as exc:
        raise bad_request("If-Match must be an ETag returned by this API.") from exc


def _id(ctx: RequestContext, param: str, kind: str) -> str:
    value = ctx.params[param]
    if not IDS[kind].match(value):
        raise not_found(f"The resource {ctx.request.path}")
    return value


def _json_object(ctx: RequestContext) -> dict[str, Any]:
    body = ctx.body(_AnyObject)
    return body.model_dump()


class _AnyObject(BaseModel):
    model_config = ConfigDict(extra="allow")


def _fields(ctx: RequestContext, kind: Kind) -> dict[str, Any]:
    data = _json_object(ctx)
    try:
        return domain.validate_fields(kind, data)
    except ValidationError as exc:
        raise validation_failed(validation_errors(exc, "body")) from exc


def _who(ctx: RequestContext, default: Source) -> tuple[dict[str, Any], Source]:
    """The actor and source of a change: a platform service acting for a workflow says which one."""
    principal = ctx.principal
    workflow = ctx.request.headers.get("X-Workflow-Id")
    if workflow is not None and principal.is_service:
        if not WORKFLOW_ID.match(workflow):
            raise bad_request("X-Workflow-Id is not a workflow id.")
        return {"type": "service", "id": f"workflow:{workflow}", "email": None}, "workflow"
    source: Source = "api" if principal.is_service else default
    return dict(principal.as_actor()), source


def _search(params: ListParams) -> Search:
    keys = [k for k in ("name", "email", "domain") if getattr(params, k)]
    if len(keys) > 1:
        raise Problem(
            422,
            "validation-error",
            "Search by one of name, email or domain at a time.",
            title="Validation failed",
        )
    return Search(**params.model_dump(exclude={"limit", "cursor"}))


def _job_view(job: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in job.items() if k not in ("generation",)}


def build_router(platform: Platform) -> Router:
    service: CustomerService = build_service(platform)
    router = Router("customer-data-api")

    def crud(kind: Kind, plural: str, param: str) -> None:
        base = f"/tenants/{{tenant_id}}/{plural}"
        item = f"{base}/{{{param}}}"

        @router.post(base, permission="customers:write", body=_AnyObject, status=201)
        def create(ctx: RequestContext) -> Reply:
            fields = _fields(ctx, kind)
            actor, source = _who(ctx, "manual")
            record = service.create(kind, ctx.tenant_id, fields, actor, source)
            return _record_reply(record, 201, f"/tenants/{ctx.tenant_id}/{plural}/{record['id']}")

        @router.get(base, permission="customers:read", query=ListParams)
        def list_records(ctx: RequestContext) -> Reply:
            params = ctx.query(ListParams)
            query, order = service.search_query(kind, ctx.tenant_id, _search(params))
            page = paginate(service.records(kind, ctx.tenant_id), query, order, params)
            items = [view(s.to_dict() or {}) for s in page.snapshots]
            return Reply({"items": items, "next_cursor": page.next_cursor})

        @router.get(item, permission="customers:read", query=_IncludeDeleted)
        def get_record(ctx: RequestContext) -> Reply:
            ctx.query(_IncludeDeleted)
            include = ctx.request.args.get("include_deleted") == "true"
            return _record_reply(service.get(kind, ctx.tenant_id, _id(ctx, param, kind), include))

        @router.patch(item, permission="customers:write", body=_AnyObject)
        def update(ctx: RequestContext) -> Reply:
            record_id = _id(ctx, param, kind)
            patch = _json_object(ctx)
            actor, source = _who(ctx, "manual")
            try:
                record = service.update(kind, ctx.tenant_id, record_id, patch, _if_match(ctx), actor, source)
            except ValidationError as exc:
                raise validation_failed(validation_errors(exc, "body")) from exc
            return _record_reply(record)

        @router.delete(item, permission="customers:write")
        def delete(ctx: RequestContext) -> Reply:
            record_id = _id(ctx, param, kind)
            actor, source = _who(ctx, "manual")
            record = service.set_deleted(kind, ctx.tenant_id, record_id, True, _if_match(ctx), actor, source)
            return _record_reply(record)

        @router.post(f"{item}/restore", permission="customers:write")
        def restore(ctx: RequestContext) -> Reply:
            record_id = _id(ctx, param, kind)
            actor, source = _who(ctx, "manual")
            record = service.set_deleted(kind, ctx.tenant_id, record_id, False, _if_match(ctx), actor, source)
            return _record_reply(record)

        @router.get(f"{item}/duplicates", permission="customers:read")
        def duplicates(ctx: RequestContext) -> Reply:
            record_id = _id(ctx, param, kind)
            return Reply({"items": service.duplicates(kind, ctx.tenant_id, record_id)})

    crud("organization", "organizations", "organization_id")
    crud("contact", "contacts", "contact_id")

    # --- merges ------------------------------------------------------------------------------------
    def _merge_body(ctx: RequestContext) -> MergeBody:
        body = ctx.body(MergeBody)
        prefix = domain_prefix(body.kind)
        if not (body.winner_id.startswith(prefix) and body.loser_id.startswith(prefix)):
            raise Problem(422, "invalid-merge", f"Both ids must be {body.kind} ids ({prefix}...).")
        return body

    @router.post("/tenants/{tenant_id}/merges/preview", permission="customers:merge", body=MergeBody)
    def preview(ctx: RequestContext) -> Reply:
        body = _merge_body(ctx)
        return Reply(
            service.preview_merge(body.kind, ctx.tenant_id, body.winner_id, body.loser_id, body.choices)
        )

    @router.post("/tenants/{tenant_id}/merges", permission="customers:merge", body=MergeBody, status=201)
    def merge(ctx: RequestContext) -> Reply:
        body = _merge_body(ctx)
        actor, _ = _who(ctx, "manual")
        record = service.merge(body.kind, ctx.tenant_id, body.winner_id, body.loser_id, body.choices, actor)
        return Reply(
            _merge_view(record),
            status=201,
            headers={"Location": f"/tenants/{ctx.tenant_id}/merges/{record['id']}"},
        )

    @router.get("/tenants/{tenant_id}/merges/{merge_id}", permission="customers:merge")
    def get_merge(ctx: RequestContext) -> Reply:
        return Reply(_merge_view(service.get_merge(ctx.tenant_id, _id(ctx, "merge_id", "merge"))))

    @router.post("/tenants/{tenant_id}/merges/{merge_id}/undo", permission="customers:merge")
    def undo(ctx: RequestContext) -> Reply:
        merge_id = _id(ctx, "merge_id", "merge")
        actor, _ = _who(ctx, "manual")
        return Reply(_merge_view(service.undo_merge(ctx.tenant_id, merge_id, actor)))

    # --- bulk import -------------------------------------------------------------------------------
    @router.post(
        "/tenants/{tenant_id}/customer-imports",
        permission="customers:import",
        body=IMPORT_UPLOAD,
        query=ImportParams,
        status=202,
    )
    def submit_import(ctx: RequestContext) -> Reply:
        params = ctx.query(ImportParams)
        fmt, text = uploaded_file(ctx.request, MAX_IMPORT_BYTES)
        match = params.match or ("email" if params.kind == "contact" else "domain")
        try:
            rows = domain.parse_import(params.kind, text, fmt, params.mode, match)
        except ImportFileError as exc:
            raise Problem(422, "invalid-import", str(exc), title="Validation failed") from exc
        except DomainError as exc:
            raise Problem(exc.status, exc.kind, exc.detail) from exc
        actor, _ = _who(ctx, "import")
        job = service.submit_import(ctx.tenant_id, params.kind, fmt, params.mode, match, rows, actor)
        location = f"/tenants/{ctx.tenant_id}/customer-imports/{job['id']}"
        return Reply(_job_view(job), status=202, headers={"Location": location})

    @router.get("/tenants/{tenant_id}/customer-imports", permission="customers:import", query=_Page)
    def list_imports(ctx: RequestContext) -> Reply:
        params = ctx.query(_Page)
        collection = service.imports(ctx.tenant_id)
        page = paginate(collection, collection, "created_at", params, descending=True)
        return Reply(
            {"items": [_job_view(s.to_dict() or {}) for s in page.snapshots], "next_cursor": page.next_cursor}
        )

    @router.get("/tenants/{tenant_id}/customer-imports/{job_id}", permission="customers:import")
    def get_import(ctx: RequestContext) -> Reply:
        return Reply(_job_view(service.get_job(ctx.tenant_id, _id(ctx, "job_id", "import"))))

    @router.get(
        "/tenants/{tenant_id}/customer-imports/{job_id}/rows", permission="customers:import", query=RowParams
    )
    def import_rows(ctx: RequestContext) -> Reply:
        job_id = _id(ctx, "job_id", "import")
        params = ctx.query(RowParams)
        service.get_job(ctx.tenant_id, job_id)
        collection = service.collection(ctx.tenant_id, ROWS)
        from google.cloud import firestore

        query = collection.where(filter=firestore.FieldFilter("job_id", "==", job_id))
        if params.status:
            query = query.where(filter=firestore.FieldFilter("status", "==", params.status))
        page = paginate(collection, query, "row", params)
        items = [
            {k: v for k, v in (s.to_dict() or {}).items() if k not in ("before", "tenant_id")}
            for s in page.snapshots
        ]
        return Reply({"items": items, "next_cursor": page.next_cursor})

    @router.post(
        "/tenants/{tenant_id}/customer-imports/{job_id}/resume", permission="customers:import", status=202
    )
    def resume(ctx: RequestContext) -> Reply:
        return Reply(_job_view(service.resume(ctx.tenant_id, _id(ctx, "job_id", "import"))), status=202)

    @router.post(
        "/tenants/{tenant_id}/customer-imports/{job_id}/revert", permission="customers:import", status=202
    )
    def revert(ctx: RequestContext) -> Reply:
        return Reply(_job_view(service.revert(ctx.tenant_id, _id(ctx, "job_id", "import"))), status=202)

    # --- GDPR and settings ---------------------------------------------------------------------------
    @router.get("/tenants/{tenant_id}/contacts/{contact_id}/export", permission="customers:privacy")
    def export(ctx: RequestContext) -> Reply:
        return Reply(service.export_contact(ctx.tenant_id, _id(ctx, "contact_id", "contact")))

    @router.post("/tenants/{tenant_id}/contacts/{contact_id}/erasure", permission="customers:privacy")
    def erase(ctx: RequestContext) -> Reply:
        contact_id = _id(ctx, "contact_id", "contact")
        actor, _ = _who(ctx, "manual")
        return Reply(service.erase_contact(ctx.tenant_id, contact_id, actor))

    @router.get("/tenants/{tenant_id}/customer-settings", permission="customers:read")
    def settings(ctx: RequestContext) -> Reply:
        return Reply(service.settings(ctx.tenant_id))

    return router


class _IncludeDeleted(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_deleted: bool = False


class _Page(PageParams):
    model_config = ConfigDict(extra="forbid")


def domain_prefix(kind: Kind) -> str:
    return "con_" if kind == "contact" else "org_"


def _merge_view(record: dict[str, Any]) -> dict[str, Any]:
    """A merge without its before-images: they hold whole profiles, which a merge reader needs not."""
    return {k: v for k, v in record.items() if k != "before"}
