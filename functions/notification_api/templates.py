"""Built-in notification templates: one per consumed event in "en", German ("de") for the ones a person
outside the admin console reads first (account, security, privacy). A missing locale falls back to "en".

Placeholders are `{{field}}` or `{{field.inner}}` over the event's payload, plus `{{tenant_id}}`; nothing
else is evaluated. A tenant may override any of them per event and locale (PUT .../templates).
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_LOCALE = "en"


@dataclass(frozen=True)
class Template:
    subject: str
    body: str


def _t(subject: str, body: str) -> Template:
    return Template(subject, body)


TEMPLATES: dict[str, dict[str, Template]] = {
    "Anomaly Detected": {
        "en": _t(
            "Anomaly detected in {{metric}} ({{severity}})",
            "{{description}}\n\nObserved {{observed_value}}, expected about {{expected_value}}, "
            "between {{window_start}} and {{window_end}}.",
        ),
    },
    "Audit Alert Triggered": {
        "en": _t(
            "Security alert: {{rule_name}} ({{severity}})",
            "{{summary}}\n\nReview the audit entries of alert {{alert_id}} in the admin console.",
        ),
        "de": _t(
            "Sicherheitswarnung: {{rule_name}} ({{severity}})",
            "{{summary}}\n\nPrüfen Sie die Audit-Einträge der Warnung {{alert_id}} "
            "in der Verwaltungskonsole.",
        ),
    },
    "Bulk Import Completed": {
        "en": _t(
            "Import {{import_id}} finished: {{status}}",
            "{{total_rows}} rows: {{created}} created, {{updated}} updated, {{skipped}} skipped, "
            "{{failed}} failed.",
        ),
    },
    "Capacity Limit Approaching": {
        "en": _t(
            "{{resource}} at {{threshold_percent}}% of your plan",
            "You have used {{used}} of {{limit}} {{resource}}. The period ends {{period_ends_at}}.",
        ),
    },
    "Compliance Report Generated": {
        "en": _t(
            "{{framework}} compliance report ready",
            "The report for {{period_start}} to {{period_end}} is ready until {{expires_at}}: "
            "{{download_url}}",
        ),
    },
    "Connector Error Detected": {
        "en": _t(
            "Connector {{connector_type}} failing: {{error_code}}",
            "{{message}}\n\n{{occurrences}} occurrences since {{first_seen_at}}. Paused: {{auto_paused}}.",
        ),
    },
    "Contact Created": {
        "en": _t("New contact: {{first_name}} {{last_name}}", "{{first_name}} {{last_name}} ({{emails}})."),
    },
    "Data Erasure Completed": {
        "en": _t(
            "Data erasure {{request_id}} completed",
            "{{records_erased}} records of {{subject_type}} {{subject_id}} erased from {{systems}}.",
        ),
    },
    "Data Pipeline Failed": {
        "en": _t(
            "Data pipeline {{pipeline_id}} failed at {{stage}}",
            "{{error}}\n\nRun {{run_id}} failed at {{failed_at}}. Retryable: {{retryable}}.",
        ),
    },
    "Export Completed": {
        "en": _t(
            "Your {{record_type}} export is ready",
            "{{row_count}} rows ({{format}}), available until {{expires_at}}: {{download_url}}",
        ),
    },
    "Health Score Changed": {
        "en": _t(
            "Health score now {{score}} ({{grade}})",
            "The customer health score changed from {{previous_score}} ({{previous_grade}}) to {{score}} "
            "({{grade}}).",
        ),
    },
    "Incident Declared": {
        "en": _t(
            "Incident: {{title}} ({{severity}})",
            "Affected: {{affected_services}}. Follow it on {{status_page_url}}.",
        ),
        "de": _t(
            "Störung: {{title}} ({{severity}})",
            "Betroffen: {{affected_services}}. Aktuelle Informationen: {{status_page_url}}.",
        ),
    },
    "Insight Shared": {
        "en": _t("Insight shared with you: {{title}}", "{{message}}\n\n{{summary}}\n\n{{url}}"),
    },
    "Onboarding Completed": {
        "en": _t(
            "Onboarding completed",
            "The {{playbook}} onboarding finished at {{completed_at}} ({{completed_steps}}).",
        ),
    },
    "Onboarding Started": {
        "en": _t("Onboarding started", "The {{playbook}} onboarding started; it is due {{due_at}}."),
    },
    "Payment Method Updated": {
        "en": _t(
            "Payment method updated",
            "The payment method is now a {{kind}} {{card_brand}} ending in {{last4}}, changed by "
            "{{actor.email}}. If you did not expect this, contact support.",
        ),
    },
    "Payment Refunded": {
        "en": _t(
            "Refund issued",
            "A refund of {{amount_cents}} cents ({{currency}}) for invoice {{invoice_id}}: {{reason}}.",
        ),
    },
    "Permission Policy Changed": {
        "en": _t(
            "Permissions of role {{role}} changed",
            "Policy {{policy_id}} (version {{version}}) changed, by {{actor.email}}.",
        ),
    },
    "Privacy Request Received": {
        "en": _t(
            "We received your {{request_type}} request",
            "Your {{request_type}} request {{request_id}} was received on {{received_at}}. "
            "We will answer by {{due_at}}.",
        ),
        "de": _t(
            "Wir haben Ihre Anfrage ({{request_type}}) erhalten",
            "Ihre Anfrage {{request_id}} ({{request_type}}) ist am {{received_at}} eingegangen. "
            "Wir antworten bis {{due_at}}.",
        ),
    },
    "Report Generated": {
        "en": _t(
            "Report ready: {{title}}", "{{report_type}} ({{format}}), until {{expires_at}}: {{download_url}}"
        ),
    },
    "SLO Breach Detected": {
        "en": _t(
            "SLO breach: {{service}}",
            "{{actual_percent}}% against an objective of {{objective_percent}}% over {{window_days}} days; "
            "{{error_budget_remaining_percent}}% of the error budget left (burn rate {{burn_rate}}).",
        ),
    },
    "Subscription Cancelled": {
        "en": _t(
            "Subscription cancelled",
            "The subscription {{subscription_id}} ends {{effective_at}} ({{reason}}).",
        ),
    },
    "Tenant Reactivated": {
        "en": _t("Your workspace is active again", "Your workspace {{tenant_id}} was reactivated."),
        "de": _t(
            "Ihr Arbeitsbereich ist wieder aktiv", "Ihr Arbeitsbereich {{tenant_id}} wurde reaktiviert."
        ),
    },
    "Tenant Suspended": {
        "en": _t(
            "Your workspace was suspended",
            "Your workspace {{tenant_id}} was suspended: {{reason}}. Sign-in is blocked until it is "
            "reactivated.",
        ),
        "de": _t(
            "Ihr Arbeitsbereich wurde gesperrt",
            "Ihr Arbeitsbereich {{tenant_id}} wurde gesperrt: {{reason}}. Die Anmeldung ist bis zur "
            "Reaktivierung nicht möglich.",
        ),
    },
    "User Deactivated": {
        "en": _t(
            "Your account was deactivated",
            "The account {{email}} was deactivated ({{reason}}). If you did not expect this, contact your "
            "administrator.",
        ),
        "de": _t(
            "Ihr Konto wurde deaktiviert",
            "Das Konto {{email}} wurde deaktiviert ({{reason}}). Falls Sie das nicht erwartet haben, wenden "
            "Sie sich an Ihre Administration.",
        ),
    },
    "User Invited": {
        "en": _t(
            "You are invited to join as {{role}}",
            "{{actor.email}} invited {{email}} to join as {{role}}. The invitation expires at "
            "{{expires_at}}.",
        ),
        "de": _t(
            "Sie wurden als {{role}} eingeladen",
            "{{actor.email}} hat {{email}} als {{role}} eingeladen. Die Einladung gilt bis {{expires_at}}.",
        ),
    },
    "User Provisioned": {
        "en": _t(
            "Welcome, {{display_name}}",
            "Your account {{email}} was created as {{role}} (by {{provisioning_source}}).",
        ),
        "de": _t(
            "Willkommen, {{display_name}}",
            "Ihr Konto {{email}} wurde mit der Rolle {{role}} angelegt ({{provisioning_source}}).",
        ),
    },
    "User Role Changed": {
        "en": _t(
            "Your role is now {{new_role}}",
            "Your role changed from {{previous_role}} to {{new_role}}, by {{actor.email}}. Sign in again to "
            "use it.",
        ),
        "de": _t(
            "Ihre Rolle ist jetzt {{new_role}}",
            "Ihre Rolle wurde von {{previous_role}} zu {{new_role}} geändert ({{actor.email}}). "
            "Melden Sie sich erneut an, um sie zu nutzen.",
        ),
    },
    "Webhook Delivery Failed": {
        "en": _t(
            "Webhook delivery to {{endpoint_url}} failed",
            "{{source_system}} gave up after attempt {{attempt}}: {{error}} (status {{status_code}}).",
        ),
    },
    "Webhook Failed": {
        "en": _t(
            "Webhook to {{endpoint_url}} failed",
            "Message {{message_id}} ({{event_type}}) failed after attempt {{attempt}}: {{error}}. "
            "Endpoint disabled: {{endpoint_disabled}}.",
        ),
    },
    "Workflow Executed": {
        "en": _t(
            "Workflow {{workflow_id}} {{status}}",
            "Run {{run_id}}: {{steps_succeeded}} of {{steps_total}} steps succeeded, "
            "{{steps_failed}} failed. {{error}}",
        ),
    },
}

DIGEST: dict[str, Template] = {
    "en": _t("Your digest: {{count}} notifications", "Since the last digest:\n\n{{items}}"),
    "de": _t(
        "Ihre Zusammenfassung: {{count}} Benachrichtigungen", "Seit der letzten Zusammenfassung:\n\n{{items}}"
    ),
}


# The accept link of an invitation mail, added as the mail is sent (its token is minted then and never
# stored): by locale, with the default locale's as fallback.
ACCEPT_LINK = {
    "en": "Accept the invitation and choose your password:\n{link}",
    "de": "Einladung annehmen und Passwort festlegen:\n{link}",
}
