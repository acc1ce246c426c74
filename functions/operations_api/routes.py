"""Operations API over HTTP: platform operators only (`platform:operate`)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from functions.operations_api.service import KINDS, OperationsService, Operator
from shared.http import Reply, RequestContext, Router
from shared.pagination import PageParams
from shared.platform import Platform
from shared.problems import not_found

PERMISSION = "platform:operate"
RECORD_ID = r"^[A-Za-z0-9_.:-]{1,200}$"


class ListQuery(PageParams):
    model_config = ConfigDict(extra="forbid")
    api: str | None = Field(default=None, max_length=100)


class ApiFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    api: str | None = Field(default=None, max_length=100)


class RunQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: Literal["failed", "stuck"] = "failed"
    limit: int = Field(default=50, ge=1, le=200)


class Resume(BaseModel):
    model_config = ConfigDict(extra="forbid")
    from_step: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]{1,100}$")


class Discard(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=3, max_length=1000)


def build_router(platform: Platform) -> Router:
    router = Router("operations-api")
    service = OperationsService(platform)

    @router.get("/operations/summary", permission=PERMISSION)
    def summary(ctx: RequestContext) -> Reply:
        return Reply(service.counts())

    for kind in KINDS:

        def lister(ctx: RequestContext, kind: str = kind) -> Reply:
            query = ctx.query(ListQuery)
            items, cursor = service.page(kind, query.api, query)
            return Reply({"items": items, "next_cursor": cursor})

        def discarder(ctx: RequestContext, kind: str = kind) -> Reply:
            body = ctx.body(Discard)
            return Reply(service.discard(kind, _record_id(ctx), body.reason, ctx.principal.uid))

        discard_path = f"/operations/{kind}/{{record_id}}/discard"
        router.get(f"/operations/{kind}", permission=PERMISSION, query=ListQuery)(lister)
        router.post(discard_path, permission=PERMISSION, body=Discard)(discarder)

    @router.get("/operations/runs", permission=PERMISSION, query=RunQuery)
    def runs(ctx: RequestContext) -> Reply:
        query = ctx.query(RunQuery)
        return Reply({"items": service.runs(query.state, query.limit)})

    @router.post(
        "/operations/runs/{collection}/{tenant_id}/{run_id}/resume", permission=PERMISSION, body=Resume
    )
    def resume(ctx: RequestContext) -> Reply:
        body = ctx.body(Resume) if ctx.request.get_data() else Resume()
        params = ctx.params
        operator = Operator(ctx.principal.uid, ctx.request.headers.get("Authorization", ""))
        resumed = service.resume(
            params["collection"], ctx.tenant_id, params["run_id"], body.from_step, operator
        )
        return Reply(resumed, status=202)

    @router.post("/operations/dead-letters/{record_id}/redrive", permission=PERMISSION)
    def redrive(ctx: RequestContext) -> Reply:
        return Reply(service.redrive(_record_id(ctx)))

    @router.post("/operations/dead-letters/redrive", permission=PERMISSION, body=ApiFilter)
    def redrive_all(ctx: RequestContext) -> Reply:
        return Reply(service.redrive_all(ctx.body(ApiFilter).api))

    return router


def _record_id(ctx: RequestContext) -> str:
    value = ctx.params["record_id"]
    if re.fullmatch(RECORD_ID, value) is None:
        raise not_found(f"Record {value}")
    return value
