"""The payload (CloudEvent `data`) of every event in schemas/catalog.json, one class per event.

The JSON Schemas under schemas/events/ are generated from these classes (`make schemas`), so a field is
changed here and nowhere else. Conventions:

- The tenant travels in the envelope (`tenantid`); a payload repeats `tenant_id` only when the event is
  about the tenant itself (lifecycle, billing, the tenant's health).
- `actor` is carried by every event that a person or a service deliberately causes (a tenant admin, the
  SCIM client, the billing service). Detections and delivery outcomes observed by the platform (a bounce,
  an SLO breach, a failed MFA challenge whose author is by definition not authenticated) carry none.
- *Updated / *Changed events carry what changed as `changes: {field: {before, after}}`.
- Times are timezone-aware (RFC 3339); money is in integer cents with an ISO 4217 currency.
- Every class has one realistic, complete example (every field present), checked by
  tests/unit/test_schemas.py.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, WithJsonSchema

from shared.contracts.base import REGISTRY, Actor, EventPayload

# --------------------------------------------------------------------------------------------------------
# Shared field types
# --------------------------------------------------------------------------------------------------------

Id = Annotated[str, Field(min_length=1, max_length=128, description="An opaque identifier.")]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Text = Annotated[str, Field(min_length=1, max_length=2000)]
Reason = Annotated[str, Field(min_length=1, max_length=500)]
Email = Annotated[str, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
Url = Annotated[str, Field(max_length=2048, pattern=r"^https?://[^\s]+$")]
TenantSlug = Annotated[str, Field(min_length=3, max_length=63, pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$")]
RoleName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{1,63}$", description="e.g. admin, member, viewer")]
Permission = Annotated[
    str,
    Field(pattern=r"^[a-z][a-z_-]*:[a-z][a-z_*-]*$", description="resource:action, e.g. audit-alerts:read"),
]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. EUR")]
Cents = Annotated[int, Field(ge=0)]
Count = Annotated[int, Field(ge=0)]
Attempt = Annotated[int, Field(ge=1)]
Percent = Annotated[float, Field(ge=0, le=100)]

Timestamp = Annotated[
    AwareDatetime,
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
            r"(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$",
            "description": "RFC 3339 date-time with an offset, e.g. 2025-03-01T09:30:00Z",
        }
    ),
]

Plan = Literal["free", "starter", "growth", "enterprise"]
Severity = Literal["low", "medium", "high", "critical"]
RecordSource = Literal["manual", "api", "import", "workflow", "integration"]


def _config(example: dict[str, Any]) -> ConfigDict:
    """The base payload config (strict, immutable) plus one documented example."""
    return ConfigDict(extra="forbid", frozen=True, json_schema_extra={"examples": [example]})


class _Part(BaseModel):
    """A strict value object nested in a payload."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldChange(_Part):
    """One changed field: its value before and after the change (null when absent)."""

    before: JsonValue
    after: JsonValue


class HealthMeasure(_Part):
    """One weighted measure of a health score, so a consumer can explain the score."""

    measure: Annotated[str, Field(min_length=1, max_length=100)]
    weight: Percent  # share of the total score, the weights of a model sum to 100
    score: Percent | None  # this measure's score 0..100; null when the measure does not apply


_USER_ACTOR: dict[str, Any] = {"type": "user", "id": "usr_2Kq8ZbW1", "email": "maya.lopez@acme.example"}
_SYSTEM_ACTOR: dict[str, Any] = {"type": "system", "id": "cmp-platform", "email": None}


# --------------------------------------------------------------------------------------------------------
# Tenant API
# --------------------------------------------------------------------------------------------------------


class TenantCreated(EventPayload):
    """A new tenant (a customer organisation of the platform) was created with its plan and first admin."""

    EVENT_NAME: ClassVar[str] = "Tenant Created"
    model_config = _config(
        {
            "tenant_id": "tnt_7Hc2kQ9x",
            "name": "Acme Corporation",
            "slug": "acme",
            "plan": "growth",
            "seat_limit": 50,
            "admin_email": "maya.lopez@acme.example",
            "actor": {"type": "service", "id": "self-signup", "email": None},
        }
    )

    tenant_id: Id
    name: Name
    slug: TenantSlug
    plan: Plan
    seat_limit: int = Field(ge=1)
    admin_email: Email
    actor: Actor


class TenantSuspended(EventPayload):
    """A tenant was suspended: its users can no longer sign in until it is reactivated; no data is removed."""

    EVENT_NAME: ClassVar[str] = "Tenant Suspended"
    model_config = _config(
        {
            "tenant_id": "tnt_7Hc2kQ9x",
            "reason": "Payment overdue for 30 days",
            "actor": {"type": "service", "id": "tenant-api", "email": None},
        }
    )

    tenant_id: Id
    reason: Reason
    actor: Actor


class TenantReactivated(EventPayload):
    """A suspended or deactivated tenant was reactivated: sign-in and processing resume."""

    EVENT_NAME: ClassVar[str] = "Tenant Reactivated"
    model_config = _config({"tenant_id": "tnt_7Hc2kQ9x", "actor": _USER_ACTOR})

    tenant_id: Id
    actor: Actor


class TenantDeactivated(EventPayload):
    """A tenant was deactivated (offboarded): access ends now, its data is kept until `retention_until`."""

    EVENT_NAME: ClassVar[str] = "Tenant Deactivated"
    model_config = _config(
        {
            "tenant_id": "tnt_7Hc2kQ9x",
            "reason": "Customer cancelled the contract",
            "retention_until": "2025-06-30T00:00:00Z",
            "actor": {"type": "user", "id": "usr_support_41", "email": "ops@cmp.example"},
        }
    )

    tenant_id: Id
    reason: Reason
    retention_until: Timestamp
    actor: Actor


# --------------------------------------------------------------------------------------------------------
# User Management API
# --------------------------------------------------------------------------------------------------------


class UserInvited(EventPayload):
    """A user was invited into the tenant with a role; the single-use invitation expires at `expires_at`."""

    EVENT_NAME: ClassVar[str] = "User Invited"
    model_config = _config(
        {
            "user_id": "usr_9Lm3Tq7R",
            "invitation_id": "inv_4Fz8Yp2N",
            "email": "jonas.berg@acme.example",
            "role": "member",
            "expires_at": "2025-03-08T09:30:00Z",
            "actor": _USER_ACTOR,
        }
    )

    user_id: Id
    invitation_id: Id
    email: Email
    role: RoleName
    expires_at: Timestamp
    actor: Actor


class UserRoleChanged(EventPayload):
    """A user's role in the tenant changed."""

    EVENT_NAME: ClassVar[str] = "User Role Changed"
    model_config = _config(
        {"user_id": "usr_9Lm3Tq7R", "previous_role": "member", "new_role": "admin", "actor": _USER_ACTOR}
    )

    user_id: Id
    previous_role: RoleName
    new_role: RoleName
    actor: Actor


class UserDeactivated(EventPayload):
    """A user was deactivated in the tenant: sign-in is blocked and, if `sessions_revoked`, tokens revoked."""

    EVENT_NAME: ClassVar[str] = "User Deactivated"
    model_config = _config(
        {
            "user_id": "usr_9Lm3Tq7R",
            "email": "jonas.berg@acme.example",
            "reason": "admin_action",
            "sessions_revoked": True,
            "actor": _USER_ACTOR,
        }
    )

    user_id: Id
    email: Email
    reason: Literal["admin_action", "offboarded", "tenant_deactivated", "scim_deprovisioned", "inactivity"]
    sessions_revoked: bool
    actor: Actor


class BulkImportCompleted(EventPayload):
    """A bulk import of users into the tenant finished (fully, partly or not at all) with per-row counts."""

    EVENT_NAME: ClassVar[str] = "Bulk Import Completed"
    model_config = _config(
        {
            "import_id": "imp_3Wd6Hs1K",
            "source": "csv",
            "mode": "create_and_update",
            "status": "partially_failed",
            "total_rows": 120,
            "created": 98,
            "updated": 15,
            "skipped": 4,
            "failed": 3,
            "error_report_url": "https://storage.cmp.example/imports/imp_3Wd6Hs1K/errors.csv",
            "started_at": "2025-03-01T09:30:00Z",
            "completed_at": "2025-03-01T09:31:12Z",
            "actor": _USER_ACTOR,
        }
    )

    import_id: Id
    source: Literal["csv", "scim", "api"]
    mode: Literal["create_only", "create_and_update", "update_only"]
    status: Literal["succeeded", "partially_failed", "failed"]
    total_rows: Count
    created: Count
    updated: Count
    skipped: Count
    failed: Count
    error_report_url: Url | None = None  # rows that failed and why; absent when nothing failed
    started_at: Timestamp
    completed_at: Timestamp
    actor: Actor


# --------------------------------------------------------------------------------------------------------
# Access Control API
# --------------------------------------------------------------------------------------------------------


class PermissionPolicyChanged(EventPayload):
    """The permissions granted to a role changed (a new version of the role's permission policy)."""

    EVENT_NAME: ClassVar[str] = "Permission Policy Changed"
    model_config = _config(
        {
            "policy_id": "pol_6Rt2Vn8C",
            "role": "member",
            "version": 4,
            "granted": ["contacts:export"],
            "revoked": ["workflows:write"],
            "actor": _USER_ACTOR,
        }
    )

    policy_id: Id
    role: RoleName
    version: int = Field(ge=1)
    granted: list[Permission]
    revoked: list[Permission]
    actor: Actor


# --------------------------------------------------------------------------------------------------------
# Customer Data API
# --------------------------------------------------------------------------------------------------------


class ContactCreated(EventPayload):
    """A contact (a person at a customer organisation) was created in the tenant's CRM."""

    EVENT_NAME: ClassVar[str] = "Contact Created"
    model_config = _config(
        {
            "contact_id": "con_5Pj1Xw4D",
            "organization_id": "org_8Gb2Mk6S",
            "first_name": "Lena",
            "last_name": "Fischer",
            "emails": ["lena.fischer@globex.example"],
            "phones": ["+49 30 1234567"],
            "job_title": "Head of Procurement",
            "source": "manual",
            "actor": _USER_ACTOR,
        }
    )

    contact_id: Id
    organization_id: Id | None = None
    first_name: Name
    last_name: Name
    emails: list[Email] = Field(max_length=10)
    phones: list[Annotated[str, Field(pattern=r"^\+?[0-9 ()./-]{3,32}$")]] = Field(max_length=10)
    job_title: Name | None = None
    source: RecordSource
    actor: Actor


class ContactUpdated(EventPayload):
    """Fields of a contact changed; `changes` holds each changed field's value before and after."""

    EVENT_NAME: ClassVar[str] = "Contact Updated"
    model_config = _config(
        {
            "contact_id": "con_5Pj1Xw4D",
            "changes": {
                "job_title": {"before": "Head of Procurement", "after": "VP Procurement"},
                "phones": {"before": ["+49 30 1234567"], "after": []},
            },
            "source": "api",
            "actor": {"type": "service", "id": "integration:salesforce", "email": None},
        }
    )

    contact_id: Id
    changes: dict[str, FieldChange] = Field(min_length=1)
    source: RecordSource
    actor: Actor


class CustomerProfileMerged(EventPayload):
    """Duplicate customer profiles (organisations) were merged into one surviving organisation.

    The merged ids no longer exist: consumers re-point their references to `organization_id`.
    A merge of two contacts (`profile_type` "contact") names the surviving `contact_id` and the
    `merged_contact_ids`; its `organization_id` is the survivor's organisation (null when it has none)
    and `merged_organization_ids` is empty.
    """

    EVENT_NAME: ClassVar[str] = "Customer Profile Merged"
    model_config = _config(
        {
            "organization_id": "org_8Gb2Mk6S",
            "merged_organization_ids": ["org_1Qy7Lc3E"],
            "field_sources": {"name": "org_8Gb2Mk6S", "domain": "org_1Qy7Lc3E"},
            "moved_contact_count": 12,
            "actor": _USER_ACTOR,
            "profile_type": "organization",
            "contact_id": None,
            "merged_contact_ids": [],
            "merge_id": "mrg_2Tn5Vb8Q",
        }
    )

    organization_id: Id | None  # the surviving organisation
    merged_organization_ids: list[Id]
    field_sources: dict[str, Id]  # for each conflicting field, the profile whose value was kept
    moved_contact_count: Count
    actor: Actor
    profile_type: Literal["organization", "contact"] = "organization"
    contact_id: Id | None = None  # the surviving contact of a contact merge
    merged_contact_ids: list[Id] = Field(default_factory=list)
    merge_id: Id | None = None  # the merge record, which can undo it


# --------------------------------------------------------------------------------------------------------
# Customer Health API
# --------------------------------------------------------------------------------------------------------


class HealthScoreChanged(EventPayload):
    """A customer health score changed grade or moved by the model's publishing delta: the tenant's own
    score, or one customer organization's when `organization_id` is set."""

    EVENT_NAME: ClassVar[str] = "Health Score Changed"
    model_config = _config(
        {
            "tenant_id": "tnt_7Hc2kQ9x",
            "organization_id": "org_4Fd8Kp2M",
            "score": 58,
            "previous_score": 74,
            "grade": "at_risk",
            "previous_grade": "healthy",
            "model_version": 3,
            "measures": [
                {"measure": "active_seats", "weight": 40.0, "score": 45.0},
                {"measure": "onboarding_progress", "weight": 30.0, "score": 100.0},
                {"measure": "integration_errors", "weight": 30.0, "score": 35.0},
            ],
            "computed_at": "2025-03-01T06:00:00Z",
        }
    )

    tenant_id: Id
    organization_id: Id | None = None  # the customer organization scored; null for the tenant-level score
    score: int = Field(ge=0, le=100)
    previous_score: int | None = Field(default=None, ge=0, le=100)  # null for the first score
    grade: Literal["healthy", "watch", "at_risk", "critical"]
    previous_grade: Literal["healthy", "watch", "at_risk", "critical"] | None = None
    model_version: int = Field(ge=1)  # the scoring model (measures and weights) that produced the score
    measures: list[HealthMeasure] = Field(min_length=1)
    computed_at: Timestamp


# --------------------------------------------------------------------------------------------------------
# Integration API
# --------------------------------------------------------------------------------------------------------


class WebhookDelivered(EventPayload):
    """An outbound webhook message was accepted (2xx) by the tenant's endpoint."""

    EVENT_NAME: ClassVar[str] = "Webhook Delivered"
    model_config = _config(
        {
            "webhook_id": "whk_2Nc5Jt9B",
            "message_id": "msg_7Vx1Rq4Z",
            "event_id": "0f9c7a52-4f55-4d8e-9a51-6f4f1b2f0c11",
            "event_type": "com.cmp.contact.created.v1",
            "endpoint_url": "https://hooks.acme.example/cmp",
            "status_code": 200,
            "attempt": 1,
            "duration_ms": 184,
            "delivered_at": "2025-03-01T09:30:02Z",
        }
    )

    webhook_id: Id  # the tenant's webhook endpoint subscription
    message_id: Id  # the webhook-id header: receivers dedupe on it
    event_id: Id  # the CloudEvent delivered
    event_type: Name
    endpoint_url: Url
    status_code: int = Field(ge=200, le=299)
    attempt: Attempt
    duration_ms: Count
    delivered_at: Timestamp


class WebhookFailed(EventPayload):
    """An outbound webhook delivery attempt failed; `final` means no retry is left for this message."""

    EVENT_NAME: ClassVar[str] = "Webhook Failed"
    model_config = _config(
        {
            "webhook_id": "whk_2Nc5Jt9B",
            "message_id": "msg_7Vx1Rq4Z",
            "event_id": "0f9c7a52-4f55-4d8e-9a51-6f4f1b2f0c11",
            "event_type": "com.cmp.contact.created.v1",
            "endpoint_url": "https://hooks.acme.example/cmp",
            "status_code": 503,
            "error": "Service Unavailable",
            "attempt": 3,
            "final": False,
            "next_attempt_at": "2025-03-01T10:05:00Z",
            "endpoint_disabled": False,
            "failed_at": "2025-03-01T09:35:00Z",
        }
    )

    webhook_id: Id
    message_id: Id
    event_id: Id
    event_type: Name
    endpoint_url: Url
    status_code: int | None = Field(default=None, ge=100, le=599)  # null: no response (timeout, DNS, TLS)
    error: Text
    attempt: Attempt
    final: bool
    next_attempt_at: Timestamp | None = None  # null when final
    endpoint_disabled: bool  # the endpoint was disabled (410 Gone, or failing for too long)
    failed_at: Timestamp


# --------------------------------------------------------------------------------------------------------
# Notification API
# --------------------------------------------------------------------------------------------------------


class NotificationBounced(EventPayload):
    """A notification could not be delivered to its recipient (hard or soft bounce, or spam complaint)."""

    EVENT_NAME: ClassVar[str] = "Notification Bounced"
    model_config = _config(
        {
            "notification_id": "ntf_3Hk8Wd2P",
            "channel": "email",
            "recipient": "lena.fischer@globex.example",
            "user_id": None,
            "contact_id": "con_5Pj1Xw4D",
            "bounce_type": "hard",
            "provider": "sendgrid",
            "provider_message_id": "sg-4c1d2e3f",
            "diagnostic": "550 5.1.1 The email account does not exist",
            "bounced_at": "2025-03-01T09:32:10Z",
        }
    )

    notification_id: Id
    channel: Literal["email", "sms", "push"]
    recipient: Annotated[str, Field(min_length=1, max_length=254)]  # an address, a phone number or a device
    user_id: Id | None = None  # the recipient when they are a user of the tenant
    contact_id: Id | None = None  # the recipient when they are a CRM contact
    bounce_type: Literal["hard", "soft", "complaint"]
    provider: Name
    provider_message_id: Id | None = None
    diagnostic: Text | None = None
    bounced_at: Timestamp


# --------------------------------------------------------------------------------------------------------
# Onboarding API
# --------------------------------------------------------------------------------------------------------


class OnboardingStarted(EventPayload):
    """An onboarding run (a playbook of steps) started for the tenant."""

    EVENT_NAME: ClassVar[str] = "Onboarding Started"
    model_config = _config(
        {
            "onboarding_id": "onb_6Ty3Gm1Q",
            "playbook": "growth-standard",
            "trigger": "tenant_created",
            "steps": ["invite_team", "import_contacts", "connect_integration", "first_workflow"],
            "due_at": "2025-03-15T00:00:00Z",
            "actor": _SYSTEM_ACTOR,
        }
    )

    onboarding_id: Id
    playbook: Name
    trigger: Literal["tenant_created", "tenant_reactivated", "manual"]
    steps: list[Name] = Field(min_length=1)
    due_at: Timestamp | None = None
    actor: Actor


class OnboardingCompleted(EventPayload):
    """An onboarding run finished: every step is completed or skipped."""

    EVENT_NAME: ClassVar[str] = "Onboarding Completed"
    model_config = _config(
        {
            "onboarding_id": "onb_6Ty3Gm1Q",
            "playbook": "growth-standard",
            "completed_steps": ["invite_team", "import_contacts", "first_workflow"],
            "skipped_steps": ["connect_integration"],
            "started_at": "2025-03-01T09:30:00Z",
            "completed_at": "2025-03-06T14:12:00Z",
            "actor": _USER_ACTOR,
        }
    )

    onboarding_id: Id
    playbook: Name
    completed_steps: list[Name]
    skipped_steps: list[Name]
    started_at: Timestamp
    completed_at: Timestamp
    actor: Actor  # who completed the last step


# --------------------------------------------------------------------------------------------------------
# Workflow API
# --------------------------------------------------------------------------------------------------------


class WorkflowExecuted(EventPayload):
    """A workflow run finished (succeeded, failed or was cancelled) with its step counts."""

    EVENT_NAME: ClassVar[str] = "Workflow Executed"
    model_config = _config(
        {
            "workflow_id": "wfl_1Dm7Ks4U",
            "workflow_version": 2,
            "run_id": "run_8Ea3Pz6W",
            "trigger": "record_created",
            "status": "failed",
            "steps_total": 4,
            "steps_succeeded": 2,
            "steps_failed": 1,
            "started_at": "2025-03-01T09:30:05Z",
            "finished_at": "2025-03-01T09:30:09Z",
            "error": "Step 'send_email': template 'welcome' not found",
            "actor": _SYSTEM_ACTOR,
        }
    )

    workflow_id: Id
    workflow_version: int = Field(ge=1)
    run_id: Id
    trigger: Literal[
        "record_created", "record_updated", "record_deleted", "event", "schedule", "webhook", "manual"
    ]
    status: Literal["succeeded", "failed", "cancelled"]
    steps_total: Count
    steps_succeeded: Count
    steps_failed: Count
    started_at: Timestamp
    finished_at: Timestamp
    error: Text | None = None  # the first error, when the run failed
    actor: Actor  # who triggered it: a user (manual), a service (webhook) or the system (records, schedule)


# --------------------------------------------------------------------------------------------------------
# Audit API
# --------------------------------------------------------------------------------------------------------


class AuditAlertTriggered(EventPayload):
    """An audit rule matched one or more audit entries (e.g. a burst of failed sign-ins or mass exports)."""

    EVENT_NAME: ClassVar[str] = "Audit Alert Triggered"
    model_config = _config(
        {
            "alert_id": "alr_4Bw9Nf2H",
            "rule_id": "rul_mass_export",
            "rule_name": "Mass contact export",
            "severity": "high",
            "summary": "5 contact exports of more than 10,000 rows in 10 minutes",
            "entry_ids": ["aud_7Kp1", "aud_7Kp2", "aud_7Kp5", "aud_7Kp9", "aud_7Kq3"],
            "actor_id": "usr_2Kq8ZbW1",
        }
    )

    alert_id: Id
    rule_id: Id
    rule_name: Name
    severity: Severity
    summary: Text
    entry_ids: list[Id] = Field(min_length=1)  # the audit entries that matched
    actor_id: Id | None = None  # the actor whose actions triggered the rule, when there is one


# --------------------------------------------------------------------------------------------------------
# External events: published by other domains (billing, identity, privacy, analytics, operations)
# --------------------------------------------------------------------------------------------------------


class PaymentFailed(EventPayload):
    """Billing could not collect an invoice of the tenant; `final` means billing will not retry."""

    EVENT_NAME: ClassVar[str] = "Payment Failed"
    model_config = _config(
        {
            "tenant_id": "tnt_7Hc2kQ9x",
            "invoice_id": "inv_2025_000311",
            "amount_cents": 49900,
            "currency": "EUR",
            "attempt": 4,
            "final": True,
        }
    )

    tenant_id: Id
    invoice_id: Id
    amount_cents: Cents
    currency: Currency
    attempt: Attempt
    final: bool


class PlanUpgraded(EventPayload):
    """The tenant's subscription moved to a higher plan from `effective_at`."""

    EVENT_NAME: ClassVar[str] = "Plan Upgraded"
    model_config = _config(
        {
            "tenant_id": "tnt_7Hc2kQ9x",
            "previous_plan": "starter",
            "new_plan": "growth",
            "effective_at": "2025-03-01T00:00:00Z",
        }
    )

    tenant_id: Id
    previous_plan: Plan
    new_plan: Plan
    effective_at: Timestamp


class SubscriptionCancelled(EventPayload):
    """The tenant's subscription was cancelled; it ends at `effective_at`."""

    EVENT_NAME: ClassVar[str] = "Subscription Cancelled"
    model_config = _config(
        {
            "tenant_id": "tnt_7Hc2kQ9x",
            "subscription_id": "sub_5Lr8Ct3M",
            "reason": "Switching to another vendor",
            "effective_at": "2025-03-31T23:59:59Z",
        }
    )

    tenant_id: Id
    subscription_id: Id
    reason: Reason | None = None
    effective_at: Timestamp


class PaymentMethodUpdated(EventPayload):
    """The tenant's default payment method was added or replaced."""

    EVENT_NAME: ClassVar[str] = "Payment Method Updated"
    model_config = _config(
        {
            "tenant_id": "tnt_7Hc2kQ9x",
            "payment_method_id": "pm_9Xs2Fd7L",
            "kind": "card",
            "card_brand": "visa",
            "last4": "4242",
            "expires": "2027-08",
            "actor": _USER_ACTOR,
        }
    )

    tenant_id: Id
    payment_method_id: Id
    kind: Literal["card", "sepa_debit", "ach_debit", "invoice"]
    card_brand: Name | None = None
    last4: Annotated[str, Field(pattern=r"^[0-9]{4}$")] | None = None
    expires: Annotated[str, Field(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$")] | None = None  # YYYY-MM
    actor: Actor


class PaymentRefunded(EventPayload):
    """A payment of the tenant was refunded, fully or in part."""

    EVENT_NAME: ClassVar[str] = "Payment Refunded"
    model_config = _config(
        {
            "tenant_id": "tnt_7Hc2kQ9x",
            "refund_id": "re_3Jv6Bn1T",
            "payment_id": "pay_8Qm4Hx2R",
            "invoice_id": "inv_2025_000287",
            "amount_cents": 9900,
            "currency": "EUR",
            "reason": "service_credit",
            "actor": {"type": "user", "id": "usr_billing_7", "email": "billing@cmp.example"},
        }
    )

    tenant_id: Id
    refund_id: Id
    payment_id: Id
    invoice_id: Id | None = None
    amount_cents: Cents
    currency: Currency
    reason: Literal["duplicate", "requested_by_customer", "service_credit", "fraudulent"]
    actor: Actor


class MfaChallengeFailed(EventPayload):
    """A user failed a multi-factor challenge at sign-in; `locked_out` when the failure locked the account."""

    EVENT_NAME: ClassVar[str] = "MFA Challenge Failed"
    model_config = _config(
        {
            "user_id": "usr_9Lm3Tq7R",
            "method": "totp",
            "consecutive_failures": 3,
            "locked_out": False,
            "ip_address": "203.0.113.24",
            "user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_3) AppleWebKit/605.1.15",
            "occurred_at": "2025-03-01T09:29:41Z",
        }
    )

    user_id: Id
    method: Literal["totp", "sms", "email", "webauthn", "push"]
    consecutive_failures: Attempt
    locked_out: bool
    ip_address: Annotated[str, Field(min_length=2, max_length=45)]  # IPv4 or IPv6
    user_agent: Annotated[str, Field(max_length=512)] | None = None
    occurred_at: Timestamp


class SecurityPolicyUpdated(EventPayload):
    """The tenant's security policy (MFA, session lifetime, IP allow list, password rules) changed."""

    EVENT_NAME: ClassVar[str] = "Security Policy Updated"
    model_config = _config(
        {
            "policy_id": "sec_1Zt5Wk8F",
            "version": 7,
            "changes": {
                "mfa_required": {"before": False, "after": True},
                "session_max_age_minutes": {"before": 720, "after": 480},
            },
            "effective_at": "2025-03-01T10:00:00Z",
            "actor": _USER_ACTOR,
        }
    )

    policy_id: Id
    version: int = Field(ge=1)
    changes: dict[str, FieldChange] = Field(min_length=1)
    effective_at: Timestamp
    actor: Actor


class UserAccessRevoked(EventPayload):
    """A user's sessions and/or API tokens were revoked by the identity platform: cached grants must go."""

    EVENT_NAME: ClassVar[str] = "User Access Revoked"
    model_config = _config(
        {
            "user_id": "usr_9Lm3Tq7R",
            "scope": "all",
            "reason": "Credentials reported as compromised",
            "revoked_at": "2025-03-01T09:40:00Z",
            "actor": {"type": "user", "id": "usr_sec_3", "email": "security@acme.example"},
        }
    )

    user_id: Id
    scope: Literal["sessions", "api_tokens", "all"]
    reason: Reason
    revoked_at: Timestamp
    actor: Actor


class UserProvisioned(EventPayload):
    """A user was provisioned into the tenant by its identity provider (SCIM, SSO just-in-time) or admin."""

    EVENT_NAME: ClassVar[str] = "User Provisioned"
    model_config = _config(
        {
            "user_id": "usr_6Cw2Yh9J",
            "email": "ari.tanaka@acme.example",
            "display_name": "Ari Tanaka",
            "role": "member",
            "provisioning_source": "scim",
            "external_id": "00u1a2b3c4d5e6f7g8h9",
            "actor": {"type": "service", "id": "scim:okta", "email": None},
        }
    )

    user_id: Id
    email: Email
    display_name: Name | None = None
    role: RoleName
    provisioning_source: Literal["scim", "sso_jit", "admin"]
    external_id: Id | None = None  # the identity provider's id of the user
    actor: Actor


class PrivacyRequestReceived(EventPayload):
    """A data subject's privacy request (GDPR/CCPA access, erasure, ...) was received and must be answered."""

    EVENT_NAME: ClassVar[str] = "Privacy Request Received"
    model_config = _config(
        {
            "request_id": "prq_2Gd9Lx5V",
            "request_type": "erasure",
            "data_subject_email": "lena.fischer@globex.example",
            "contact_id": "con_5Pj1Xw4D",
            "user_id": None,
            "channel": "web_form",
            "received_at": "2025-03-01T08:00:00Z",
            "due_at": "2025-03-31T08:00:00Z",
        }
    )

    request_id: Id
    request_type: Literal["access", "erasure", "rectification", "portability", "restriction", "objection"]
    data_subject_email: Email
    contact_id: Id | None = None  # the matching CRM contact, when one was found
    user_id: Id | None = None  # the matching user, when one was found
    channel: Literal["web_form", "email", "support_ticket", "api"]
    received_at: Timestamp
    due_at: Timestamp  # the legal deadline for the answer


class DataErasureCompleted(EventPayload):
    """The personal data named by a privacy request was erased from every listed system."""

    EVENT_NAME: ClassVar[str] = "Data Erasure Completed"
    model_config = _config(
        {
            "request_id": "prq_2Gd9Lx5V",
            "subject_type": "contact",
            "subject_id": "con_5Pj1Xw4D",
            "systems": ["crm", "analytics", "email-provider"],
            "records_erased": 37,
            "completed_at": "2025-03-04T16:20:00Z",
        }
    )

    request_id: Id
    subject_type: Literal["contact", "user", "tenant"]
    subject_id: Id  # the erased record's former id (no personal data is repeated here)
    systems: list[Name] = Field(min_length=1)
    records_erased: Count
    completed_at: Timestamp


class ComplianceReportGenerated(EventPayload):
    """A compliance report (SOC 2, ISO 27001, GDPR ...) for a period can be downloaded until `expires_at`."""

    EVENT_NAME: ClassVar[str] = "Compliance Report Generated"
    model_config = _config(
        {
            "report_id": "crp_7Nh4Qs1B",
            "framework": "soc2",
            "period_start": "2025-01-01T00:00:00Z",
            "period_end": "2025-03-31T23:59:59Z",
            "download_url": "https://storage.cmp.example/reports/crp_7Nh4Qs1B.pdf",
            "expires_at": "2025-04-07T00:00:00Z",
            "actor": _SYSTEM_ACTOR,
        }
    )

    report_id: Id
    framework: Literal["soc2", "iso27001", "gdpr", "hipaa"]
    period_start: Timestamp
    period_end: Timestamp
    download_url: Url
    expires_at: Timestamp
    actor: Actor  # who requested it, or the system for a scheduled report


class ReportGenerated(EventPayload):
    """An analytics report was generated and is ready for its recipients to download until `expires_at`."""

    EVENT_NAME: ClassVar[str] = "Report Generated"
    model_config = _config(
        {
            "report_id": "rpt_5Kc8Vw3D",
            "report_type": "pipeline_weekly",
            "title": "Weekly pipeline review",
            "format": "pdf",
            "download_url": "https://storage.cmp.example/reports/rpt_5Kc8Vw3D.pdf",
            "expires_at": "2025-03-08T07:00:00Z",
            "recipient_user_ids": ["usr_2Kq8ZbW1", "usr_9Lm3Tq7R"],
            "actor": _SYSTEM_ACTOR,
        }
    )

    report_id: Id
    report_type: Name
    title: Name
    format: Literal["pdf", "csv", "xlsx"]
    download_url: Url
    expires_at: Timestamp
    recipient_user_ids: list[Id] = Field(min_length=1)
    actor: Actor  # who requested it, or the system for a scheduled report


class ExportCompleted(EventPayload):
    """A data export finished and its file can be downloaded until `expires_at`."""

    EVENT_NAME: ClassVar[str] = "Export Completed"
    model_config = _config(
        {
            "export_id": "exp_9Pf2Rt6K",
            "record_type": "contacts",
            "format": "csv",
            "row_count": 18234,
            "size_bytes": 4718592,
            "download_url": "https://storage.cmp.example/exports/exp_9Pf2Rt6K.csv",
            "expires_at": "2025-03-02T09:30:00Z",
            "actor": _USER_ACTOR,
        }
    )

    export_id: Id
    record_type: Literal["contacts", "organizations", "users", "audit_log", "tenant"]
    format: Literal["csv", "json", "parquet"]
    row_count: Count
    size_bytes: Count
    download_url: Url
    expires_at: Timestamp
    actor: Actor


class InsightShared(EventPayload):
    """A user shared an analytics insight with other users of the tenant."""

    EVENT_NAME: ClassVar[str] = "Insight Shared"
    model_config = _config(
        {
            "insight_id": "ins_4Mv7Jz2C",
            "title": "Churn risk up 12% among SMB accounts",
            "summary": "Accounts with fewer than 5 active seats show a 12% higher churn risk this month.",
            "url": "https://app.cmp.example/insights/ins_4Mv7Jz2C",
            "shared_with_user_ids": ["usr_9Lm3Tq7R"],
            "message": "Worth a look before Monday's review.",
            "actor": _USER_ACTOR,
        }
    )

    insight_id: Id
    title: Name
    summary: Text
    url: Url
    shared_with_user_ids: list[Id] = Field(min_length=1)
    message: Text | None = None
    actor: Actor


class AnomalyDetected(EventPayload):
    """Analytics detected a metric outside its expected range over a time window."""

    EVENT_NAME: ClassVar[str] = "Anomaly Detected"
    model_config = _config(
        {
            "anomaly_id": "anm_8Sb3Ye6N",
            "metric": "contacts_deleted_per_hour",
            "detector": "seasonal-zscore",
            "severity": "high",
            "observed_value": 1450.0,
            "expected_value": 35.5,
            "window_start": "2025-03-01T08:00:00Z",
            "window_end": "2025-03-01T09:00:00Z",
            "description": "Contact deletions are 40x the expected hourly volume.",
        }
    )

    anomaly_id: Id
    metric: Name
    detector: Name
    severity: Severity
    observed_value: float
    expected_value: float
    window_start: Timestamp
    window_end: Timestamp
    description: Text


class CapacityLimitApproaching(EventPayload):
    """The tenant's usage of a plan limit crossed a warning threshold (e.g. 80% of its seats)."""

    EVENT_NAME: ClassVar[str] = "Capacity Limit Approaching"
    model_config = _config(
        {
            "tenant_id": "tnt_7Hc2kQ9x",
            "resource": "seats",
            "used": 45,
            "limit": 50,
            "threshold_percent": 90,
            "period_ends_at": None,
        }
    )

    tenant_id: Id
    resource: Literal["seats", "contacts", "storage_bytes", "api_calls", "workflow_runs"]
    used: Count
    limit: int = Field(ge=1)
    threshold_percent: int = Field(ge=1, le=100)  # the threshold that was crossed
    period_ends_at: Timestamp | None = None  # when a periodic limit (API calls per month) resets


class ConnectorErrorDetected(EventPayload):
    """An integration connector (Salesforce, HubSpot, ...) keeps failing; it may have been paused."""

    EVENT_NAME: ClassVar[str] = "Connector Error Detected"
    model_config = _config(
        {
            "connector_id": "cnx_6Wq1Dp9G",
            "connector_type": "salesforce",
            "error_code": "invalid_grant",
            "message": "OAuth refresh token expired or revoked",
            "occurrences": 14,
            "first_seen_at": "2025-03-01T07:12:00Z",
            "auto_paused": True,
        }
    )

    connector_id: Id
    connector_type: Name
    error_code: Name
    message: Text
    occurrences: Attempt
    first_seen_at: Timestamp
    auto_paused: bool


class DataPipelineFailed(EventPayload):
    """A run of a data pipeline (sync, enrichment, analytics load) failed at a stage."""

    EVENT_NAME: ClassVar[str] = "Data Pipeline Failed"
    model_config = _config(
        {
            "pipeline_id": "pln_contacts_to_warehouse",
            "run_id": "prn_3Tg7Mc5X",
            "stage": "load",
            "error": "BigQuery quota exceeded: too many table update operations",
            "retryable": True,
            "failed_at": "2025-03-01T03:14:00Z",
        }
    )

    pipeline_id: Id
    run_id: Id
    stage: Name
    error: Text
    retryable: bool
    failed_at: Timestamp


class IncidentDeclared(EventPayload):
    """An operational incident affecting the platform was declared."""

    EVENT_NAME: ClassVar[str] = "Incident Declared"
    model_config = _config(
        {
            "incident_id": "inc_2025_0042",
            "title": "Elevated error rate on contact search",
            "severity": "sev2",
            "affected_services": ["customer-data-api"],
            "status_page_url": "https://status.cmp.example/incidents/inc_2025_0042",
            "declared_at": "2025-03-01T09:45:00Z",
            "actor": {"type": "user", "id": "usr_oncall_2", "email": "oncall@cmp.example"},
        }
    )

    incident_id: Id
    title: Name
    severity: Literal["sev1", "sev2", "sev3", "sev4"]
    affected_services: list[Name] = Field(min_length=1)
    status_page_url: Url | None = None
    declared_at: Timestamp
    actor: Actor


class SloBreachDetected(EventPayload):
    """A service level objective was breached: the measured ratio fell below the objective over its window."""

    EVENT_NAME: ClassVar[str] = "SLO Breach Detected"
    model_config = _config(
        {
            "slo_id": "slo_webhook_delivery",
            "service": "integration-api",
            "objective_percent": 99.5,
            "actual_percent": 98.7,
            "window_days": 30,
            "error_budget_remaining_percent": -60.0,
            "burn_rate": 2.6,
            "detected_at": "2025-03-01T09:50:00Z",
        }
    )

    slo_id: Id
    service: Name
    objective_percent: Percent
    actual_percent: Percent
    window_days: int = Field(ge=1, le=90)
    error_budget_remaining_percent: float = Field(le=100)  # negative once the budget is overspent
    burn_rate: float = Field(ge=0)
    detected_at: Timestamp


class WebhookDeliveryFailed(EventPayload):
    """Another domain's delivery service could not deliver a webhook to a tenant endpoint.

    Not to be confused with Webhook Failed, published by our Integration API for its own deliveries.
    """

    EVENT_NAME: ClassVar[str] = "Webhook Delivery Failed"
    model_config = _config(
        {
            "delivery_id": "dlv_7Rk2Sx4A",
            "source_system": "billing",
            "endpoint_url": "https://hooks.acme.example/billing",
            "status_code": None,
            "error": "Connection timed out after 15 s",
            "attempt": 5,
            "final": True,
            "failed_at": "2025-03-01T09:55:00Z",
        }
    )

    delivery_id: Id
    source_system: Name  # the domain that tried to deliver (billing, analytics, ...)
    endpoint_url: Url
    status_code: int | None = Field(default=None, ge=100, le=599)  # null: no response
    error: Text
    attempt: Attempt
    final: bool
    failed_at: Timestamp


# --------------------------------------------------------------------------------------------------------

PAYLOADS: dict[str, type[EventPayload]] = dict(REGISTRY)
"""Every payload model keyed by its event name, exactly as schemas/catalog.json writes it."""
