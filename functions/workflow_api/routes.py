"""Workflow API over HTTP: workflows, versions, activation, dry runs and runs.

Every route is under /tenants/{tenant_id}/workflows; reads need workflows:read, changes
workflows:manage. A workflow answers an ETag (its revision) and changes honour If-Match (412).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from functions.workflow_api import domain
from functions.workflow_api.service import API_NAME, PROCESS_PREFIX, WorkflowService, build_service
from functions.workflow_api.service import as_json as _json
from shared.http import Reply, RequestContext, Router
from shared.pagination import PageParams, paginate
from shared.platform import Platform
from shared.problems import Problem, not_found, validation_failed

PUBLIC_FIELDS = (
    "id",
    "name",
    "description",
    "builtin",
    "versions",
    "active_version",
    "created_at",
    "updated_at",
    "created_by",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Definition(_Strict):
    """The shape; domain.validate checks the rest (conditions, step kinds, branch targets)."""

    trigger: str = Field(min_length=1, max_length=100)
    conditions: dict[str, JsonValue] | None = None
    steps: list[dict[str, JsonValue]] = Field(min_length=1, max_length=domain.MAX_STEPS)


class CreateWorkflow(_Strict):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=1000)
    definition: Definition


class UpdateWorkflow(_Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=1000)
    definition: Definition | None = None


class Activate(_Strict):
    version: int | None = Field(default=None, ge=1)


class DryRunBody(_Strict):
    version: int | None = Field(default=None, ge=1)
    days: int = Field(default=7, ge=1, le=30)


def workflow_view(workflow: dict[str, Any]) -> dict[str, Any]:
    view = {key: _json(workflow.get(key)) for key in PUBLIC_FIELDS}
    active = workflow.get("active") or {}
    view["trigger"] = (active.get("definition") or {}).get("trigger")
    view["status"] = "active" if workflow.get("active_version") else "inactive"
    return view


def _etag(workflow: dict[str, Any]) -> dict[str, str]:
    return {"ETag": f'"{workflow["revision"]}"'}


def _if_match(ctx: RequestContext) -> int | None:
    value = ctx.request.headers.get("If-Match")
    if value is None:
        return None
    try:
        return int(value.strip().removeprefix("W/").strip('"'))
    except ValueError as exc:
        raise Problem(400, "bad-request", "If-Match must be an ETag returned by this API.") from exc


def _version_number(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 100_000:
        raise not_found(f"Version {raw}")
    return int(raw)


def build_router(platform: Platform) -> Router:
    service: WorkflowService = build_service(platform)
    router = Router(platform.catalog.api(API_NAME).slug)
    base = "/tenants/{tenant_id}/workflows"
    one = base + "/{workflow_id}"

    def full(ctx: RequestContext, workflow: dict[str, Any], status: int = 200) -> Reply:
        versions = service.version_list(ctx.tenant_id, workflow["id"])
        return Reply(
            {**workflow_view(workflow), "definitions": [_json(v) for v in versions]},
            status=status,
            headers=_etag(workflow),
        )

    @router.post(base, permission="workflows:manage", body=CreateWorkflow, status=201)
    def create(ctx: RequestContext) -> Reply:
        body = ctx.body(CreateWorkflow)
        workflow = service.create(
            ctx.tenant_id,
            body.name,
            body.description,
            body.definition.model_dump(),
            ctx.principal.as_actor(),
        )
        reply = full(ctx, workflow, 201)
        reply.headers["Location"] = f"/tenants/{ctx.tenant_id}/workflows/{workflow['id']}"
        return reply

    @router.get(base, permission="workflows:read", query=PageParams)
    def list_workflows(ctx: RequestContext) -> Reply:
        params = ctx.query(PageParams)
        collection = service.workflows(ctx.tenant_id)
        page = paginate(collection, collection, "created_at", params)
        items = [workflow_view(s.to_dict() or {}) for s in page.snapshots]
        return Reply({"items": items, "next_cursor": page.next_cursor})

    @router.post(base + "/webhook-secret", permission="workflows:manage", status=201)
    def rotate_secret(ctx: RequestContext) -> Reply:
        if "Idempotency-Key" in ctx.request.headers:
            # A replayable answer would be kept in Firestore, and this one carries the secret.
            raise Problem(
                400, "idempotency-not-supported", "This answer carries a secret: send no Idempotency-Key."
            )
        secret, version = service.rotate_webhook_secret(ctx.tenant_id)
        return Reply({"secret": secret, "version": version}, status=201)

    @router.get(one, permission="workflows:read")
    def get_workflow(ctx: RequestContext) -> Reply:
        return full(ctx, service.workflow(ctx.tenant_id, ctx.params["workflow_id"]))

    @router.patch(one, permission="workflows:manage", body=UpdateWorkflow)
    def update(ctx: RequestContext) -> Reply:
        workflow_id = ctx.params["workflow_id"]
        service.workflow(ctx.tenant_id, workflow_id)
        body = ctx.body(UpdateWorkflow)
        changes = body.model_dump(exclude_unset=True)
        for key in ("name", "definition"):
            if key in changes and changes[key] is None:
                raise validation_failed(
                    [{"pointer": f"#/{key}", "detail": "must not be null", "type": "null", "in": "body"}]
                )
        workflow = service.update(
            ctx.tenant_id, workflow_id, changes, ctx.principal.as_actor(), _if_match(ctx)
        )
        return full(ctx, workflow)

    @router.delete(one, permission="workflows:manage", status=204)
    def delete(ctx: RequestContext) -> Reply:
        service.delete(ctx.tenant_id, ctx.params["workflow_id"], _if_match(ctx))
        return Reply(status=204)

    @router.get(one + "/versions", permission="workflows:read")
    def list_versions(ctx: RequestContext) -> Reply:
        versions = service.version_list(ctx.tenant_id, ctx.params["workflow_id"])
        return Reply({"items": [_json(v) for v in versions]})

    @router.get(one + "/versions/{version}", permission="workflows:read")
    def get_version(ctx: RequestContext) -> Reply:
        number = _version_number(ctx.params["version"])
        return Reply(_json(service.version(ctx.tenant_id, ctx.params["workflow_id"], number)))

    @router.post(one + "/activate", permission="workflows:manage", body=Activate)
    def activate(ctx: RequestContext) -> Reply:
        workflow_id = ctx.params["workflow_id"]
        service.workflow(ctx.tenant_id, workflow_id)
        body = ctx.body(Activate)
        return full(ctx, service.activate(ctx.tenant_id, workflow_id, body.version, _if_match(ctx)))

    @router.post(one + "/archive", permission="workflows:manage")
    def archive(ctx: RequestContext) -> Reply:
        workflow_id = ctx.params["workflow_id"]
        service.workflow(ctx.tenant_id, workflow_id)
        return full(ctx, service.archive(ctx.tenant_id, workflow_id, _if_match(ctx)))

    @router.post(one + "/dry-run", permission="workflows:manage", body=DryRunBody)
    def dry_run(ctx: RequestContext) -> Reply:
        workflow_id = ctx.params["workflow_id"]
        service.workflow(ctx.tenant_id, workflow_id)
        body = ctx.body(DryRunBody)
        return Reply(service.dry_run(ctx.tenant_id, workflow_id, body.version, body.days))

    @router.get(one + "/runs", permission="workflows:read", query=PageParams)
    def list_runs(ctx: RequestContext) -> Reply:
        workflow_id = ctx.params["workflow_id"]
        service.workflow(ctx.tenant_id, workflow_id)
        params = ctx.query(PageParams)
        runs, cursor = service.engine.runs(
            tenant_id=ctx.tenant_id, process=PROCESS_PREFIX + workflow_id, page=params
        )
        return Reply({"items": runs, "next_cursor": cursor})

    def owned_run(ctx: RequestContext) -> dict[str, Any]:
        workflow_id, run_id = ctx.params["workflow_id"], ctx.params["run_id"]
        if "/" in run_id:
            raise not_found(f"The run {run_id}")
        run = service.engine.inspect(tenant_id=ctx.tenant_id, run_id=run_id)
        if run["process"] != PROCESS_PREFIX + workflow_id:
            raise not_found(f"The run {run_id}")
        return run

    @router.get(one + "/runs/{run_id}", permission="workflows:read")
    def get_run(ctx: RequestContext) -> Reply:
        return Reply(owned_run(ctx))

    @router.post(one + "/runs/{run_id}/resume", permission="workflows:manage")
    def resume(ctx: RequestContext) -> Reply:
        owned_run(ctx)
        return Reply(service.engine.resume(tenant_id=ctx.tenant_id, run_id=ctx.params["run_id"]))

    return router
