"""Notification API over HTTP, for the Tenant Admin Portal.

Under /tenants/{tenant_id}/notifications:
- the caller's own inbox and preferences (notifications:read, every role; nobody reads another's inbox:
  the user is the token's, never a path parameter);
- templates, the email log and suppressions (notification-settings:manage, admins).
POST /notifications/provider-events is public: the email provider's delivery reports, authenticated by
an HMAC signature over the body (service.verify_report).
"""

from __future__ import annotations

import time
from typing import Any, Literal

from google.cloud import firestore
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pydantic_core import to_jsonable_python

from functions.notification_api import domain
from functions.notification_api.service import (
    API_NAME,
    BadSignature,
    NotificationService,
    ProviderReport,
    build_service,
    verify_report,
)
from functions.notification_api.templates import DEFAULT_LOCALE, TEMPLATES, Template
from shared.contracts import PAYLOADS
from shared.http import Reply, RequestContext, Router, Upload, validate_json
from shared.pagination import PageParams, paginate
from shared.platform import Platform
from shared.problems import Problem, not_found, validation_failed

MAX_REPORT_BYTES = 64 * 1024
INBOX_FIELDS = (
    "id",
    "event_name",
    "category",
    "priority",
    "subject",
    "body",
    "read",
    "read_at",
    "created_at",
)
EMAIL_FIELDS = (
    "id",
    "kind",
    "to",
    "user_id",
    "event_name",
    "category",
    "priority",
    "subject",
    "locale",
    "status",
    "attempts",
    "last_error",
    "digest_id",
    "items",
    "bounce",
    "created_at",
    "sent_at",
    "delivered_at",
)
CRITICAL_NOTE = (
    "Critical notifications (security alerts, incidents, a suspended workspace, your own account's "
    "deactivation) are delivered whatever these preferences say."
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class InboxQuery(PageParams):
    model_config = ConfigDict(extra="forbid")
    unread: bool = False


class EmailQuery(PageParams):
    model_config = ConfigDict(extra="forbid")
    status: (
        Literal["pending", "digest", "digested", "sent", "failed", "suppressed", "bounced", "complained"]
        | None
    ) = None


class PreferencesBody(_Strict):
    channels: dict[Literal["email", "in_app"], bool] = Field(default_factory=dict)
    categories: dict[str, dict[str, bool]] = Field(default_factory=dict, max_length=50)
    email_digest: bool = True
    locale: str = Field(default=DEFAULT_LOCALE, pattern=r"^[a-z]{2,3}(-[A-Za-z]{2})?$")


class TemplateBody(_Strict):
    subject: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=5000)


class ProviderEventBody(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    id: str = Field(min_length=1, max_length=200)
    type: str = Field(min_length=1, max_length=50)
    message_id: str = Field(min_length=1, max_length=300)
    recipient: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    bounce_type: str | None = Field(default=None, max_length=50)
    diagnostic: str | None = Field(default=None, max_length=2000)
    provider: str = Field(default="smtp", min_length=1, max_length=50, pattern=r"^[a-z0-9_-]+$")
    occurred_at: AwareDatetime


REPORT_UPLOAD = Upload(
    ("application/json",),
    ProviderEventBody,
    "A delivery report, signed in the Notification-Signature header; read once the signature holds.",
)


def _json(value: Any) -> Any:
    """Firestore values as JSON: timestamps in RFC 3339."""
    return to_jsonable_python(value)


def view(document: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    return {key: _json(document.get(key)) for key in fields}


EVENTS_BY_SLUG = {name.lower().replace(" ", "-"): name for name in TEMPLATES}


def example_payload(event_name: str) -> dict[str, Any]:
    """The payload model's documented example (complete: every field present)."""
    extra = PAYLOADS[event_name].model_config.get("json_schema_extra") or {}
    examples = extra.get("examples") if isinstance(extra, dict) else None
    return dict(examples[0]) if isinstance(examples, list) and examples else {}  # type: ignore[arg-type]


def template_variables(event_name: str) -> list[str]:
    return sorted({*domain.variables(example_payload(event_name)), "tenant_id"})


def build_router(platform: Platform) -> Router:
    service: NotificationService = build_service(platform)
    router = Router(platform.catalog.api(API_NAME).slug)
    base = "/tenants/{tenant_id}/notifications"

    def event_of(slug: str) -> str:
        name = EVENTS_BY_SLUG.get(slug)
        if name is None:
            raise not_found(f"Event {slug}")
        return name

    def locale_of(value: str) -> str:
        locale = domain.normalize_locale(value)
        if locale != value:
            raise not_found(f"Locale {value}")
        return locale

    # --- the caller's inbox ------------------------------------------------------------------------
    @router.get(base + "/inbox", permission="notifications:read", query=InboxQuery)
    def inbox(ctx: RequestContext) -> Reply:
        params = ctx.query(InboxQuery)
        collection = service.inbox(ctx.tenant_id, ctx.principal.uid)
        # Unread items carry `unread_since` (removed when read): ordering by it lists only them, with no
        # composite index.
        order = "unread_since" if params.unread else "created_at"
        page = paginate(collection, collection, order, params, descending=True)
        items = [view(s.to_dict() or {}, INBOX_FIELDS) for s in page.snapshots]
        return Reply({"items": items, "next_cursor": page.next_cursor})

    @router.get(base + "/inbox/unread-count", permission="notifications:read")
    def unread_count(ctx: RequestContext) -> Reply:
        return Reply({"unread": service.unread_count(ctx.tenant_id, ctx.principal.uid)})

    @router.post(base + "/inbox/{notification_id}/read", permission="notifications:read")
    def mark_read(ctx: RequestContext) -> Reply:
        ntf_id = ctx.params["notification_id"]
        if not ntf_id.startswith("ntf_"):
            raise not_found(f"Notification {ntf_id}")
        return Reply(view(service.mark_read(ctx.tenant_id, ctx.principal.uid, ntf_id), INBOX_FIELDS))

    @router.post(base + "/inbox/read-all", permission="notifications:read")
    def mark_all_read(ctx: RequestContext) -> Reply:
        return Reply({"marked": service.mark_all_read(ctx.tenant_id, ctx.principal.uid)})

    # --- the caller's preferences ------------------------------------------------------------------
    def preferences_view(preferences: domain.Preferences) -> dict[str, Any]:
        return {
            **preferences.to_document(),
            "categories_available": list(domain.CATEGORIES),
            "always_on_categories": sorted(domain.ALWAYS_ON),
            "note": CRITICAL_NOTE,
        }

    @router.get(base + "/preferences", permission="notifications:read")
    def get_preferences(ctx: RequestContext) -> Reply:
        return Reply(preferences_view(service.preferences(ctx.tenant_id, ctx.principal.uid)))

    @router.put(base + "/preferences", permission="notifications:read", body=PreferencesBody)
    def put_preferences(ctx: RequestContext) -> Reply:
        body = ctx.body(PreferencesBody)
        preferences = domain.Preferences(
            channels={str(k): v for k, v in body.channels.items()},
            categories=body.categories,
            email_digest=body.email_digest,
            locale=domain.normalize_locale(body.locale),
        )
        errors = domain.preference_errors(preferences)
        if errors:
            raise validation_failed([{**e, "type": "preference", "in": "body"} for e in errors])
        saved = service.save_preferences(ctx.tenant_id, ctx.principal.uid, preferences)
        return Reply(preferences_view(saved))

    # --- templates ---------------------------------------------------------------------------------
    @router.get(base + "/templates", permission="notification-settings:manage")
    def list_templates(ctx: RequestContext) -> Reply:
        overrides = service.template_overrides(ctx.tenant_id)
        items = [
            {
                "event": slug,
                "event_name": name,
                "built_in_locales": sorted(TEMPLATES[name]),
                "overridden_locales": sorted(o["locale"] for o in overrides if o.get("event_name") == name),
            }
            for slug, name in sorted(EVENTS_BY_SLUG.items())
        ]
        return Reply({"items": items})

    @router.get(base + "/templates/{event}/{locale}", permission="notification-settings:manage")
    def get_template(ctx: RequestContext) -> Reply:
        name, locale = event_of(ctx.params["event"]), locale_of(ctx.params["locale"])
        snapshot = service.template_ref(ctx.tenant_id, name, locale).get()
        overrides = {}
        if snapshot.exists:
            doc = snapshot.to_dict() or {}
            overrides[(name, locale)] = Template(doc["subject"], doc["body"])
        template, chosen = domain.choose_template(name, locale, overrides)
        preview = domain.render(name, example_payload(name), locale, overrides, {"tenant_id": ctx.tenant_id})
        return Reply(
            {
                "event_name": name,
                "locale": chosen,
                "overridden": snapshot.exists,
                "subject": template.subject,
                "body": template.body,
                "variables": template_variables(name),
                "preview": {"subject": preview.subject, "body": preview.body},
            }
        )

    @router.put(
        base + "/templates/{event}/{locale}",
        permission="notification-settings:manage",
        body=TemplateBody,
        status=(200, 201),
    )
    def put_template(ctx: RequestContext) -> Reply:
        name, locale = event_of(ctx.params["event"]), locale_of(ctx.params["locale"])
        body = ctx.body(TemplateBody)
        template = Template(body.subject, body.body)
        errors = domain.template_errors(template, template_variables(name))
        if errors:
            raise validation_failed([{**e, "type": "template", "in": "body"} for e in errors])
        document, created = service.put_template(ctx.tenant_id, name, locale, template, ctx.principal.uid)
        return Reply(_json(document), status=201 if created else 200)

    @router.delete(
        base + "/templates/{event}/{locale}", permission="notification-settings:manage", status=204
    )
    def delete_template(ctx: RequestContext) -> Reply:
        name, locale = event_of(ctx.params["event"]), locale_of(ctx.params["locale"])
        service.delete_template(ctx.tenant_id, name, locale)
        return Reply(status=204)

    # --- the email log and suppressions ------------------------------------------------------------
    @router.get(base + "/emails", permission="notification-settings:manage", query=EmailQuery)
    def emails(ctx: RequestContext) -> Reply:
        params = ctx.query(EmailQuery)
        collection = service.emails(ctx.tenant_id)
        query: Any = collection
        if params.status is not None:
            query = collection.where(filter=firestore.FieldFilter("status", "==", params.status))
        # Ordered by id when filtered: an equality filter and the id need no composite index.
        page = paginate(collection, query, "id", params)
        return Reply(
            {
                "items": [view(s.to_dict() or {}, EMAIL_FIELDS) for s in page.snapshots],
                "next_cursor": page.next_cursor,
            }
        )

    @router.get(base + "/suppressions", permission="notification-settings:manage", query=PageParams)
    def suppressions(ctx: RequestContext) -> Reply:
        params = ctx.query(PageParams)
        collection = service.suppressions(ctx.tenant_id)
        page = paginate(collection, collection, "created_at", params)
        items = [_json(s.to_dict() or {}) for s in page.snapshots]
        return Reply({"items": items, "next_cursor": page.next_cursor})

    @router.delete(base + "/suppressions/{address}", permission="notification-settings:manage", status=204)
    def lift_suppression(ctx: RequestContext) -> Reply:
        service.lift_suppression(ctx.tenant_id, ctx.params["address"])
        return Reply(status=204)

    # --- the provider's delivery reports (public, signed) ------------------------------------------
    @router.post("/notifications/provider-events", permission="public", body=REPORT_UPLOAD)
    def provider_event(ctx: RequestContext) -> Reply:
        raw = ctx.request.get_data()
        if len(raw) > MAX_REPORT_BYTES:
            raise Problem(413, "payload-too-large", f"A delivery report is at most {MAX_REPORT_BYTES} bytes.")
        try:
            verify_report(
                service.provider_secret(), ctx.request.headers.get("Notification-Signature"), raw, time.time()
            )
        except BadSignature as exc:
            raise Problem(401, "bad-signature", f"The delivery report is not authentic: {exc}.") from exc
        body = validate_json(raw, ProviderEventBody)
        report = ProviderReport(
            body.id,
            body.type,
            body.message_id,
            body.recipient,
            body.bounce_type,
            body.diagnostic,
            body.provider,
            body.occurred_at,
        )
        try:
            result = service.apply_report(report)
        except domain.UnsupportedReport as exc:
            raise validation_failed(
                [{"pointer": "#/type", "detail": str(exc), "type": "unsupported", "in": "body"}]
            ) from exc
        return Reply({"result": result})

    return router
