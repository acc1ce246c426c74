"""Onboarding API over HTTP: a tenant's onboarding progress, its checklist, its runs, and resuming a failed
run. Reads need onboarding:read, resuming onboarding:manage (admins; operators hold every permission)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from functions.onboarding_api import domain
from functions.onboarding_api.service import API_NAME, OnboardingService, build_service
from shared.http import Reply, RequestContext, Router
from shared.pagination import PageParams
from shared.platform import Platform
from shared.problems import not_found

RUN_ID = re.compile(r"^(onb|reo)_[0-9a-f]{20}$")
BASE = "/tenants/{tenant_id}/onboarding"
CHECKLIST_FIELDS = (
    "name",
    "status",
    "attempts",
    "started_at",
    "finished_at",
    "duration_ms",
    "not_before",
    "error",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunsQuery(PageParams):
    model_config = ConfigDict(extra="forbid")

    process: Literal["onboard-tenant", "reonboard-tenant"] | None = None


class ChecklistQuery(_Strict):
    run_id: str | None = Field(default=None, pattern=RUN_ID.pattern)


class Resume(_Strict):
    from_step: str | None = Field(default=None, min_length=1, max_length=100, pattern=r"^[a-z_]+$")


def _run_id(ctx: RequestContext) -> str:
    value = ctx.params["run_id"]
    if RUN_ID.fullmatch(value) is None:
        raise not_found(f"The onboarding run {value}")
    return value


def _summary(run: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    progress = domain.progress(run)
    ready_at = state.get("ready_at")
    return {
        "run_id": run["run_id"],
        "process": run["process"],
        "status": progress.status,
        "percent": progress.percent,
        "current_step": progress.current_step,
        "steps_done": progress.done,
        "steps_total": progress.total,
        "ready": bool(state.get("ready")),
        "ready_at": ready_at.isoformat() if ready_at is not None else None,
        "started_at": run.get("started_at"),
        "finished_at": run.get("finished_at"),
        "error": run.get("error"),
        "failed_step": run.get("failed_step"),
    }


def _checklist(run: dict[str, Any]) -> dict[str, Any]:
    items = []
    for step in run["steps"]:
        item = {key: step.get(key) for key in CHECKLIST_FIELDS}
        output = step.get("output") or {}
        # Why a step was skipped, or what a check found, is part of the checklist.
        item["note"] = output.get("reason") or output.get("finding")
        items.append(item)
    return {"run_id": run["run_id"], "process": run["process"], "status": run["status"], "items": items}


def build_router(platform: Platform) -> Router:
    service: OnboardingService = build_service(platform)
    router = Router(platform.catalog.api(API_NAME).slug)

    @router.get(BASE, permission="onboarding:read")
    def progress(ctx: RequestContext) -> Reply:
        return Reply(_summary(service.latest(ctx.tenant_id), service.state(ctx.tenant_id)))

    @router.get(BASE + "/checklist", permission="onboarding:read", query=ChecklistQuery)
    def checklist(ctx: RequestContext) -> Reply:
        query = ctx.query(ChecklistQuery)
        if query.run_id is None:
            return Reply(_checklist(service.latest(ctx.tenant_id)))
        return Reply(_checklist(service.run(ctx.tenant_id, query.run_id)))

    @router.get(BASE + "/runs", permission="onboarding:read", query=RunsQuery)
    def runs(ctx: RequestContext) -> Reply:
        query = ctx.query(RunsQuery)
        items, next_cursor = service.runs(ctx.tenant_id, query.process, query)
        return Reply({"items": items, "next_cursor": next_cursor})

    @router.get(BASE + "/runs/{run_id}", permission="onboarding:read")
    def run(ctx: RequestContext) -> Reply:
        return Reply(service.run(ctx.tenant_id, _run_id(ctx)))

    @router.post(BASE + "/runs/{run_id}/resume", permission="onboarding:manage", body=Resume, status=202)
    def resume(ctx: RequestContext) -> Reply:
        run_id = _run_id(ctx)
        body = ctx.body(Resume)
        return Reply(service.resume(ctx.tenant_id, run_id, body.from_step), status=202)

    return router
