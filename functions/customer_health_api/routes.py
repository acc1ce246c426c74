"""Customer Health API over HTTP, under /tenants/{tenant_id}/health: the tenant's score, its
organizations' scores, their explanations and history, the scoring model, preview and recompute.

Reads need health:read (every role, and platform services: the Onboarding API checks the model);
changing the model, previewing one and recomputing need health:manage.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_jsonable_python

from functions.customer_health_api import domain
from functions.customer_health_api.service import API_NAME, HealthService, build_service
from shared.http import Reply, RequestContext, Router
from shared.pagination import PageParams, paginate
from shared.platform import Platform
from shared.problems import Problem, not_found, validation_failed

# Firestore document ids: no "/", not "." or "..", not __reserved__.
_ORG_ID = re.compile(r"^(?!__.*__$)(?!\.\.?$)[^/]{1,128}$")

PUBLIC_SCORE_FIELDS = (
    "scope",
    "organization_id",
    "score",
    "grade",
    "previous_score",
    "previous_grade",
    "trend",
    "model_version",
    "window_days",
    "as_of",
    "computed_at",
    "factors",
    "signal_count",
    "last_signal_id",
    "last_event_id",
    "published_score",
    "published_grade",
    "published_at",
)
PUBLIC_HISTORY_FIELDS = (
    "seq",
    "score",
    "grade",
    "previous_score",
    "previous_grade",
    "model_version",
    "as_of",
    "computed_at",
    "factors",
    "cause_signal_id",
    "cause_event_id",
    "cause_event_name",
    "published",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TierBody(_Strict):
    up_to: float | None = Field(default=None, ge=0, le=1_000_000)
    points: int = Field(ge=0, le=100)


class FactorBody(_Strict):
    factor: Literal[
        "email_deliverability",
        "integration_reliability",
        "onboarding_progress",
        "account_standing",
        "user_churn",
    ]
    weight: int = Field(ge=1, le=100)
    tiers: list[TierBody] = Field(min_length=1, max_length=10)


class GradesBody(_Strict):
    healthy: int = Field(ge=1, le=100)
    watch: int = Field(ge=1, le=100)
    at_risk: int = Field(ge=1, le=100)


class ModelBody(_Strict):
    window_days: int = Field(ge=1, le=365)
    factors: list[FactorBody] = Field(min_length=1, max_length=len(domain.FACTORS))
    grades: GradesBody = Field(default_factory=lambda: GradesBody(healthy=75, watch=50, at_risk=25))
    publish_delta: int = Field(default=10, ge=1, le=100)

    def to_model(self) -> domain.Model:
        model = domain.Model(
            version=1,
            window_days=self.window_days,
            factors=tuple(
                domain.Factor(f.factor, f.weight, tuple(domain.Tier(t.up_to, t.points) for t in f.tiers))
                for f in self.factors
            ),
            grades=domain.Grades(self.grades.healthy, self.grades.watch, self.grades.at_risk),
            publish_delta=self.publish_delta,
        )
        errors = domain.validate(model)
        if errors:
            raise validation_failed(
                [
                    {"pointer": pointer, "detail": detail, "type": "model_rule", "in": "body"}
                    for pointer, detail in errors
                ]
            )
        return model


class OrganizationQuery(PageParams):
    model_config = ConfigDict(extra="forbid")
    grade: Literal["healthy", "watch", "at_risk", "critical"] | None = None
    order: Literal["asc", "desc"] = "asc"


class HistoryQuery(PageParams):
    model_config = ConfigDict(extra="forbid")


def _json(value: Any) -> Any:
    """Firestore values as JSON: timestamps in RFC 3339."""
    return to_jsonable_python(value)


def score_view(document: dict[str, Any]) -> dict[str, Any]:
    return {key: _json(document.get(key)) for key in PUBLIC_SCORE_FIELDS}


def history_view(document: dict[str, Any]) -> dict[str, Any]:
    return {key: _json(document.get(key)) for key in PUBLIC_HISTORY_FIELDS}


def model_view(document: dict[str, Any]) -> Reply:
    body = {
        key: _json(document.get(key))
        for key in ("version", "window_days", "factors", "grades", "publish_delta", "updated_at")
    }
    return Reply(body, headers={"ETag": f'"{document["version"]}"'})


def _if_match(ctx: RequestContext) -> int | None:
    value = ctx.request.headers.get("If-Match")
    if value is None:
        return None
    try:
        return int(value.strip().removeprefix("W/").strip('"'))
    except ValueError as exc:
        raise Problem(400, "bad-request", "If-Match must be an ETag returned by this API.") from exc


def _organization(ctx: RequestContext) -> str:
    organization_id = ctx.params["organization_id"]
    if not _ORG_ID.match(organization_id):
        raise not_found(f"Organization {organization_id}'s health score")
    return organization_id


def build_router(platform: Platform) -> Router:
    service: HealthService = build_service(platform)
    router = Router(platform.catalog.api(API_NAME).slug)
    base = "/tenants/{tenant_id}/health"

    def history(ctx: RequestContext, organization_id: str | None) -> Reply:
        params = ctx.query(HistoryQuery)
        service.score(ctx.tenant_id, organization_id)
        collection = service.history(ctx.tenant_id, organization_id)
        page = paginate(collection, collection, "seq", params, descending=True)
        return Reply(
            {
                "items": [history_view(s.to_dict() or {}) for s in page.snapshots],
                "next_cursor": page.next_cursor,
            }
        )

    def recomputed(document: dict[str, Any], changed: bool) -> Reply:
        return Reply({**score_view(document), "changed": changed})

    @router.get(base, permission="health:read")
    def tenant_score(ctx: RequestContext) -> Reply:
        return Reply(score_view(service.score(ctx.tenant_id, None)))

    @router.get(base + "/history", permission="health:read", query=HistoryQuery)
    def tenant_history(ctx: RequestContext) -> Reply:
        return history(ctx, None)

    @router.post(base + "/recompute", permission="health:manage")
    def tenant_recompute(ctx: RequestContext) -> Reply:
        return recomputed(*service.recompute(ctx.tenant_id, None))

    @router.get(base + "/organizations", permission="health:read", query=OrganizationQuery)
    def organizations(ctx: RequestContext) -> Reply:
        from google.cloud import firestore

        params = ctx.query(OrganizationQuery)
        collection = service.organizations(ctx.tenant_id)
        query: Any = collection
        if params.grade is not None:
            query = query.where(filter=firestore.FieldFilter("grade", "==", params.grade))
        page = paginate(collection, query, "score", params, descending=params.order == "desc")
        return Reply(
            {
                "items": [score_view(s.to_dict() or {}) for s in page.snapshots],
                "next_cursor": page.next_cursor,
            }
        )

    @router.get(base + "/organizations/{organization_id}", permission="health:read")
    def organization_score(ctx: RequestContext) -> Reply:
        return Reply(score_view(service.score(ctx.tenant_id, _organization(ctx))))

    @router.get(
        base + "/organizations/{organization_id}/history", permission="health:read", query=HistoryQuery
    )
    def organization_history(ctx: RequestContext) -> Reply:
        return history(ctx, _organization(ctx))

    @router.post(base + "/organizations/{organization_id}/recompute", permission="health:manage")
    def organization_recompute(ctx: RequestContext) -> Reply:
        organization_id = _organization(ctx)
        return recomputed(*service.recompute(ctx.tenant_id, organization_id))

    @router.get(base + "/model", permission="health:read")
    def get_model(ctx: RequestContext) -> Reply:
        document = service.model_document(ctx.tenant_id)
        if document is None:
            raise not_found("The tenant's health model")
        return model_view(document)

    @router.put(base + "/model", permission="health:manage", body=ModelBody)
    def put_model(ctx: RequestContext) -> Reply:
        expected = _if_match(ctx)
        model = ctx.body(ModelBody).to_model()
        return model_view(service.save_model(ctx.tenant_id, model, expected))

    @router.post(base + "/model:preview", permission="health:manage", body=ModelBody)
    def preview(ctx: RequestContext) -> Reply:
        model = ctx.body(ModelBody).to_model()
        return Reply(_json(service.preview(ctx.tenant_id, model)))

    return router
