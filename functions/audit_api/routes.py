"""Audit API over HTTP: the trail (read, export, verify), alert rules and alerts, each with its permission;
and the platform's own trail, where platform services record what must outlive a tenant."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from functions.audit_api.chain import json_safe
from functions.audit_api.entries import API_NAME, PLATFORM_SCOPE, platform_entry
from functions.audit_api.rules import RULE_ID, RuleBody
from functions.audit_api.service import AuditService, EntryFilters, build_service
from shared.contracts.json_text import StorableMap
from shared.http import Reply, RequestContext, Router
from shared.pagination import PageParams, paginate
from shared.platform import Platform
from shared.problems import not_found, validation_failed

ENTRY_ID = re.compile(r"^[0-9a-f]{32}$")
ALERT_ID = ENTRY_ID


class EntryQuery(EntryFilters, PageParams):
    model_config = ConfigDict(extra="forbid")


class AlertQuery(PageParams):
    model_config = ConfigDict(extra="forbid")


class Target(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=64)
    id: str = Field(min_length=1, max_length=256)


class PlatformRecord(BaseModel):
    """An entry of the platform trail. `key` identifies it for the caller: recording it again answers
    the entry already stored (200) instead of a second one."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=256)
    action: str = Field(pattern=r"^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+$", max_length=64)
    target: Target
    occurred_at: AwareDatetime
    details: StorableMap = Field(default_factory=dict)

    @field_validator("details")
    @classmethod
    def _bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(value, default=str)) > 64 * 1024:
            raise ValueError("details must stay under 64 KiB as JSON")
        return value


def _ndjson(documents: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    for document in documents:
        yield json.dumps(json_safe(document), separators=(",", ":")).encode() + b"\n"


def _rule_id(ctx: RequestContext, *, for_write: bool = False) -> str:
    rule_id = ctx.params["rule_id"]
    if re.fullmatch(RULE_ID, rule_id) is None:
        if for_write:
            error = {
                "pointer": "#/rule_id",
                "detail": f"must match {RULE_ID}",
                "type": "string_pattern_mismatch",
            }
            raise validation_failed([{**error, "in": "path"}])
        raise not_found(f"Alert rule {rule_id}")
    return rule_id


def build_router(platform: Platform) -> Router:
    service: AuditService = build_service(platform)
    router = Router(platform.catalog.api(API_NAME).slug)

    # --- the trail ---------------------------------------------------------------------------------
    def entries_page(scope: str, params: EntryQuery) -> Reply:
        page = paginate(
            service.entries(scope), service.filtered(scope, params), "occurred_at", params, descending=True
        )
        items = [json_safe(s.to_dict() or {}) for s in page.snapshots]
        return Reply({"items": items, "next_cursor": page.next_cursor})

    @router.get("/tenants/{tenant_id}/audit/entries", permission="audit:read", query=EntryQuery)
    def list_entries(ctx: RequestContext) -> Reply:
        return entries_page(ctx.tenant_id, ctx.query(EntryQuery))

    @router.get("/tenants/{tenant_id}/audit/entries/{entry_id}", permission="audit:read")
    def get_entry(ctx: RequestContext) -> Reply:
        entry_id = ctx.params["entry_id"]
        entry = service.entry(ctx.tenant_id, entry_id) if ENTRY_ID.fullmatch(entry_id) else None
        if entry is None:
            raise not_found(f"Audit entry {entry_id}")
        return Reply(json_safe(entry))

    @router.get(
        "/tenants/{tenant_id}/audit/export",
        permission="audit:export",
        query=EntryFilters,
        media_type="application/x-ndjson",
    )
    def export(ctx: RequestContext) -> Reply:
        filters = ctx.query(EntryFilters)  # validated now: a stream cannot turn into a problem later
        filename = re.sub(r"[^A-Za-z0-9_.-]", "_", ctx.tenant_id)
        return Reply(
            stream=_ndjson(service.export(ctx.tenant_id, filters)),
            content_type="application/x-ndjson",
            headers={"Content-Disposition": f'attachment; filename="audit-{filename}.ndjson"'},
        )

    @router.get("/tenants/{tenant_id}/audit/verify", permission="audit:verify")
    def verify(ctx: RequestContext) -> Reply:
        return Reply(service.verify(ctx.tenant_id).to_dict())

    # --- alert rules and alerts --------------------------------------------------------------------
    @router.get("/tenants/{tenant_id}/audit/alert-rules", permission="audit-alerts:read")
    def list_rules(ctx: RequestContext) -> Reply:
        rules, defaults = service.effective_rules(ctx.tenant_id)
        return Reply({"items": [json_safe(r) for r in rules], "defaults": defaults})

    @router.get("/tenants/{tenant_id}/audit/alert-rules/{rule_id}", permission="audit-alerts:read")
    def get_rule(ctx: RequestContext) -> Reply:
        rule = service.rule(ctx.tenant_id, _rule_id(ctx))
        if rule is None:
            raise not_found(f"Alert rule {ctx.params['rule_id']}")
        return Reply(json_safe(rule))

    @router.put(
        "/tenants/{tenant_id}/audit/alert-rules/{rule_id}",
        permission="audit-alerts:manage",
        body=RuleBody,
        status=(200, 201),
    )
    def put_rule(ctx: RequestContext) -> Reply:
        rule_id = _rule_id(ctx, for_write=True)
        body = ctx.body(RuleBody)
        document, created = service.put_rule(ctx.tenant_id, rule_id, body.root, ctx.principal.uid)
        headers = {"Location": f"/tenants/{ctx.tenant_id}/audit/alert-rules/{rule_id}"} if created else {}
        return Reply(json_safe(document), status=201 if created else 200, headers=headers)

    @router.delete(
        "/tenants/{tenant_id}/audit/alert-rules/{rule_id}", permission="audit-alerts:manage", status=204
    )
    def delete_rule(ctx: RequestContext) -> Reply:
        if not service.delete_rule(ctx.tenant_id, _rule_id(ctx)):
            raise not_found(f"Alert rule {ctx.params['rule_id']}")
        return Reply(status=204)

    @router.get("/tenants/{tenant_id}/audit/alerts", permission="audit-alerts:read", query=AlertQuery)
    def list_alerts(ctx: RequestContext) -> Reply:
        params = ctx.query(AlertQuery)
        alerts = service.alerts(ctx.tenant_id)
        page = paginate(alerts, alerts, "raised_at", params, descending=True)
        return Reply(
            {"items": [json_safe(s.to_dict() or {}) for s in page.snapshots], "next_cursor": page.next_cursor}
        )

    @router.get("/tenants/{tenant_id}/audit/alerts/{alert_id}", permission="audit-alerts:read")
    def get_alert(ctx: RequestContext) -> Reply:
        alert_id = ctx.params["alert_id"]
        snapshot = (
            service.alerts(ctx.tenant_id).document(alert_id).get() if ALERT_ID.fullmatch(alert_id) else None
        )
        if snapshot is None or not snapshot.exists:
            raise not_found(f"Audit alert {alert_id}")
        return Reply(json_safe(snapshot.to_dict() or {}))

    # --- the platform trail (services record, operators read) ---------------------------------------
    @router.post("/audit/platform/entries", permission="audit:record", body=PlatformRecord, status=(200, 201))
    def record_platform(ctx: RequestContext) -> Reply:
        body = ctx.body(PlatformRecord)
        actor = {k: v for k, v in ctx.principal.as_actor().items() if v is not None}
        entry = platform_entry(
            body.key,
            body.action,
            actor,
            body.target.model_dump(),
            json_safe(body.details),
            body.occurred_at,
            datetime.now(UTC),
        )
        stored, created = service.record_platform(entry)
        return Reply(json_safe(stored), status=201 if created else 200)

    @router.get("/audit/platform/entries", permission="platform:operate", query=EntryQuery)
    def list_platform_entries(ctx: RequestContext) -> Reply:
        return entries_page(PLATFORM_SCOPE, ctx.query(EntryQuery))

    @router.get("/audit/platform/verify", permission="platform:operate")
    def verify_platform(ctx: RequestContext) -> Reply:
        return Reply(service.verify(PLATFORM_SCOPE).to_dict())

    return router
