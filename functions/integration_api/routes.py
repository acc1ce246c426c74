"""Integration API over HTTP: webhook endpoints, their secrets, the delivery log and replay.

Every route is under /tenants/{tenant_id}/webhooks; reads need webhooks:read, changes webhooks:manage.
A signing secret is answered twice only: when the endpoint is created and when it is rotated.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.cloud import firestore
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from functions.integration_api.domain import MessageStatus
from functions.integration_api.service import API_NAME, WebhookService, build_service
from shared import outbound
from shared.catalog import load_catalog
from shared.http import Reply, RequestContext, Router
from shared.pagination import PageParams, paginate
from shared.platform import Platform
from shared.problems import validation_failed

PUBLIC_ENDPOINT_FIELDS = (
    "id",
    "url",
    "description",
    "event_types",
    "enabled",
    "ordered",
    "status",
    "disabled_reason",
    "failing_since",
    "previous_secret_valid_until",
    "created_at",
    "updated_at",
)
PUBLIC_MESSAGE_FIELDS = (
    "id",
    "endpoint_id",
    "event_id",
    "event_type",
    "event_name",
    "subject",
    "event_time",
    "status",
    "attempt",
    "attempts_total",
    "next_attempt_at",
    "last_status_code",
    "last_error",
    "delivered_at",
    "failed_at",
    "replayed_at",
    "created_at",
    "updated_at",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _event_types(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    known = {e.name for e in load_catalog().consumed_by(API_NAME)}
    unknown = [v for v in value if v not in known]
    if unknown:
        raise ValueError(f"unknown event types {unknown}; one of {', '.join(sorted(known))}")
    if len(set(value)) != len(value):
        raise ValueError("event types must not repeat")
    return value


class CreateEndpoint(_Strict):
    url: str = Field(min_length=1, max_length=2048)
    description: str | None = Field(default=None, max_length=500)
    event_types: list[str] = Field(min_length=1, max_length=50)
    enabled: bool = True
    ordered: bool = False

    _types = field_validator("event_types")(_event_types)


class UpdateEndpoint(_Strict):
    url: str | None = Field(default=None, min_length=1, max_length=2048)
    description: str | None = Field(default=None, max_length=500)
    event_types: list[str] | None = Field(default=None, min_length=1, max_length=50)
    enabled: bool | None = None
    ordered: bool | None = None

    _types = field_validator("event_types")(_event_types)


class MessageQuery(PageParams):
    model_config = ConfigDict(extra="forbid")
    status: MessageStatus | None = None


class ReplaySince(_Strict):
    since: AwareDatetime


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json(v) for v in value]
    return value


def endpoint_view(document: dict[str, Any]) -> dict[str, Any]:
    return {key: _json(document.get(key)) for key in PUBLIC_ENDPOINT_FIELDS}


def message_view(document: dict[str, Any]) -> dict[str, Any]:
    return {key: _json(document.get(key)) for key in PUBLIC_MESSAGE_FIELDS}


def build_router(platform: Platform) -> Router:
    service: WebhookService = build_service(platform)
    router = Router(platform.catalog.api(API_NAME).slug)
    base = "/tenants/{tenant_id}/webhooks"

    def safe_url(url: str) -> None:
        try:
            service.check_url(url)
        except outbound.UnsafeUrl as exc:
            raise validation_failed(
                [{"pointer": "#/url", "detail": str(exc), "type": "unsafe_url", "in": "body"}]
            ) from exc

    @router.post(base + "/endpoints", permission="webhooks:manage", body=CreateEndpoint, status=201)
    def create(ctx: RequestContext) -> Reply:
        body = ctx.body(CreateEndpoint)
        safe_url(body.url)
        document, secret = service.create_endpoint(
            ctx.tenant_id, body.url, body.description, body.event_types, body.enabled, body.ordered
        )
        return Reply(
            {**endpoint_view(document), "secret": secret},
            status=201,
            headers={"Location": f"/tenants/{ctx.tenant_id}/webhooks/endpoints/{document['id']}"},
        )

    @router.get(base + "/endpoints", permission="webhooks:read", query=PageParams)
    def list_endpoints(ctx: RequestContext) -> Reply:
        params = ctx.query(PageParams)
        collection = service.endpoints(ctx.tenant_id)
        page = paginate(collection, collection, "created_at", params)
        items = [endpoint_view(s.to_dict() or {}) for s in page.snapshots]
        return Reply({"items": items, "next_cursor": page.next_cursor})

    @router.get(base + "/endpoints/{endpoint_id}", permission="webhooks:read")
    def get_endpoint(ctx: RequestContext) -> Reply:
        return Reply(endpoint_view(service.endpoint(ctx.tenant_id, ctx.params["endpoint_id"])))

    @router.patch(base + "/endpoints/{endpoint_id}", permission="webhooks:manage", body=UpdateEndpoint)
    def update(ctx: RequestContext) -> Reply:
        service.endpoint(ctx.tenant_id, ctx.params["endpoint_id"])
        body = ctx.body(UpdateEndpoint)
        changes = body.model_dump(exclude_unset=True)
        for key in ("url", "event_types", "enabled", "ordered"):
            if key in changes and changes[key] is None:
                raise validation_failed(
                    [{"pointer": f"#/{key}", "detail": "must not be null", "type": "null", "in": "body"}]
                )
        if "url" in changes:
            safe_url(changes["url"])
        return Reply(
            endpoint_view(service.update_endpoint(ctx.tenant_id, ctx.params["endpoint_id"], changes))
        )

    @router.delete(base + "/endpoints/{endpoint_id}", permission="webhooks:manage", status=204)
    def delete(ctx: RequestContext) -> Reply:
        service.delete_endpoint(ctx.tenant_id, ctx.params["endpoint_id"])
        return Reply(status=204)

    @router.post(base + "/erase-secrets", permission="webhooks:erase")
    def erase_secrets(ctx: RequestContext) -> Reply:
        return Reply({"secrets_deleted": service.erase_secrets(ctx.tenant_id)})

    @router.post(base + "/endpoints/{endpoint_id}/rotate-secret", permission="webhooks:manage")
    def rotate(ctx: RequestContext) -> Reply:
        document, secret = service.rotate_secret(ctx.tenant_id, ctx.params["endpoint_id"])
        return Reply({**endpoint_view(document), "secret": secret})

    @router.get(base + "/endpoints/{endpoint_id}/messages", permission="webhooks:read", query=MessageQuery)
    def list_messages(ctx: RequestContext) -> Reply:
        endpoint_id = ctx.params["endpoint_id"]
        params = ctx.query(MessageQuery)
        service.endpoint(ctx.tenant_id, endpoint_id)
        collection = service.messages(ctx.tenant_id)
        query: Any = collection.where(filter=firestore.FieldFilter("endpoint_id", "==", endpoint_id))
        if params.status is not None:
            query = query.where(filter=firestore.FieldFilter("status", "==", params.status.value))
        page = paginate(collection, query, "created_at", params, descending=True)
        items = [message_view(s.to_dict() or {}) for s in page.snapshots]
        return Reply({"items": items, "next_cursor": page.next_cursor})

    @router.post(
        base + "/endpoints/{endpoint_id}/replay", permission="webhooks:manage", body=ReplaySince, status=202
    )
    def replay_endpoint(ctx: RequestContext) -> Reply:
        body = ctx.body(ReplaySince)
        ids = service.replay_endpoint(ctx.tenant_id, ctx.params["endpoint_id"], body.since)
        return Reply({"replayed": ids}, status=202)

    @router.get(base + "/messages/{msg_id}", permission="webhooks:read")
    def get_message(ctx: RequestContext) -> Reply:
        message, attempts = service.message(ctx.tenant_id, ctx.params["msg_id"])
        return Reply({**message_view(message), "attempts": [_json(a) for a in attempts]})

    @router.post(base + "/messages/{msg_id}/replay", permission="webhooks:manage", status=202)
    def replay(ctx: RequestContext) -> Reply:
        service.message(ctx.tenant_id, ctx.params["msg_id"])
        return Reply(message_view(service.replay(ctx.tenant_id, ctx.params["msg_id"])), status=202)

    return router
