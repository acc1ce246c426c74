"""The Notification API's pure core: rules, recipients, preferences, critical notifications, templates,
the digest and delivery reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from functions.notification_api import domain
from functions.notification_api.domain import (
    Address,
    Admins,
    Channel,
    DeliveryKind,
    DigestItem,
    Preferences,
    Priority,
    Recipient,
    Target,
    User,
)
from functions.notification_api.routes import example_payload, template_variables
from functions.notification_api.service import BadSignature, sign_report, verify_report
from functions.notification_api.templates import TEMPLATES, Template
from shared.catalog import load_catalog

CONSUMED = [e.name for e in load_catalog().consumed_by("Notification API")]


def test_every_consumed_event_has_a_rule_and_an_english_template() -> None:
    assert len(CONSUMED) == 31
    assert set(domain.RULES) == set(CONSUMED)
    assert set(TEMPLATES) == set(CONSUMED)
    for name in CONSUMED:
        assert "en" in TEMPLATES[name]
        plan = domain.plan(name, example_payload(name))
        assert plan.category in domain.CATEGORIES


def test_every_template_names_only_its_events_variables() -> None:
    for name, locales in TEMPLATES.items():
        for locale, template in locales.items():
            assert domain.template_errors(template, template_variables(name)) == [], (name, locale)


def test_user_invited_mails_the_invitee_and_tells_the_admins_in_app() -> None:
    payload = example_payload("User Invited")
    plan = domain.plan("User Invited", payload)
    assert plan.targets == (
        Target(Address(payload["email"], user_id=payload["user_id"]), domain.EMAIL, Priority.HIGH),
        Target(Admins(), domain.IN_APP, Priority.LOW),
    )


def test_role_change_goes_to_the_user_and_reports_to_named_users() -> None:
    payload = example_payload("User Role Changed")
    assert domain.plan("User Role Changed", payload).targets[0].who == User(payload["user_id"])
    report = {**example_payload("Report Generated"), "recipient_user_ids": ["u1", "u2", "u1"]}
    assert [t.who for t in domain.plan("Report Generated", report).targets] == [User("u1"), User("u2")]


def test_only_the_final_webhook_failure_notifies() -> None:
    payload = example_payload("Webhook Failed")
    assert domain.plan("Webhook Failed", {**payload, "final": False}).targets == ()
    assert domain.plan("Webhook Failed", {**payload, "final": True}).targets[0].who == Admins()


def test_contacts_an_import_creates_notify_nobody_but_a_contact_created_by_hand_does() -> None:
    payload = example_payload("Contact Created")
    assert domain.plan("Contact Created", {**payload, "source": "import"}).targets == ()
    assert domain.plan("Contact Created", {**payload, "source": "manual"}).targets != ()


def test_a_privacy_request_acknowledges_the_data_subject_with_its_contact() -> None:
    payload = {**example_payload("Privacy Request Received"), "contact_id": "con_1", "user_id": None}
    first = domain.plan("Privacy Request Received", payload).targets[0]
    assert first.who == Address(payload["data_subject_email"], contact_id="con_1")
    assert first.channels == domain.EMAIL


def test_unknown_event_is_refused() -> None:
    with pytest.raises(domain.UnknownEvent):
        domain.plan("Coffee Brewed", {})


ADMIN = Recipient("u_admin", "admin@acme.example")
ADDRESS_ONLY = Recipient(None, "owner@acme.example")


def test_preferences_switch_channels_and_categories_off() -> None:
    target = Target(Admins(), domain.BOTH, Priority.NORMAL)
    off = Preferences(channels={"email": False}, categories={"billing": {"in_app": False}})
    assert domain.channels_for(target, "tenant", off, ADMIN) == domain.Delivery(True, False, False)
    assert domain.channels_for(target, "billing", off, ADMIN) == domain.Delivery(False, False, False)
    assert domain.channels_for(target, "billing", Preferences(), ADMIN) == domain.Delivery(True, True, False)


def test_critical_notifications_ignore_preferences() -> None:
    target = Target(Admins(), domain.BOTH, Priority.CRITICAL)
    everything_off = Preferences(channels={"email": False, "in_app": False})
    assert domain.channels_for(target, "tenant", everything_off, ADMIN) == domain.Delivery(True, True, False)


def test_low_priority_email_goes_to_the_digest_unless_the_user_opts_out() -> None:
    target = Target(Admins(), domain.BOTH, Priority.LOW)
    assert domain.channels_for(target, "customers", Preferences(), ADMIN).digest
    assert not domain.channels_for(target, "customers", Preferences(email_digest=False), ADMIN).digest


def test_an_address_without_a_user_gets_no_in_app_notification() -> None:
    target = Target(Admins(), domain.BOTH, Priority.HIGH)
    assert domain.channels_for(target, "tenant", Preferences(), ADDRESS_ONLY) == domain.Delivery(
        False, True, False
    )


def test_always_on_categories_cannot_be_switched_off() -> None:
    errors = domain.preference_errors(Preferences(categories={"security": {"email": False}}))
    assert [e["pointer"] for e in errors] == ["#/categories/security/email"]
    assert domain.preference_errors(Preferences(categories={"security": {"email": True}})) == []
    unknown = domain.preference_errors(
        Preferences(categories={"nope": {"email": False}, "billing": {"sms": False}})
    )
    assert [e["pointer"] for e in unknown] == ["#/categories/nope", "#/categories/billing/sms"]
    # Every event of an always-on category is critical, so refusing is the honest answer.
    for name in CONSUMED:
        plan = domain.plan(name, example_payload(name))
        if plan.category in domain.ALWAYS_ON:
            assert all(t.priority is Priority.CRITICAL for t in plan.targets), name


def test_one_target_per_recipient_with_the_union_of_channels_at_the_highest_priority() -> None:
    merged = domain.merge_targets(
        [
            (ADMIN, Target(Admins(), domain.IN_APP, Priority.LOW)),
            (Recipient("u_admin", None), Target(User("u_admin"), domain.EMAIL, Priority.HIGH)),
            (ADDRESS_ONLY, Target(Admins(), domain.IN_APP, Priority.LOW)),
        ]
    )
    assert len(merged) == 2
    recipient, target = merged[0]
    assert recipient == ADMIN
    assert target.channels == domain.BOTH and target.priority is Priority.HIGH


def test_notification_ids_are_deterministic_per_event_recipient_and_channel() -> None:
    a = domain.notification_id("ev1", "user:u1", Channel.EMAIL)
    assert a == domain.notification_id("ev1", "user:u1", Channel.EMAIL)
    assert a != domain.notification_id("ev1", "user:u1", Channel.IN_APP)
    assert a != domain.notification_id("ev2", "user:u1", Channel.EMAIL)
    assert Recipient(None, "A@X.example").key == Recipient(None, "a@x.example").key


def test_rendering_substitutes_payload_values_and_nothing_else() -> None:
    payload = {"email": "jo@acme.example", "role": "member", "actor": {"email": "boss@acme.example"}}
    tricky = Template(
        "Hi {{email}} {{__class__}} {{ role }}", "{{actor.email}} {0.__globals__} {{missing}} ${role}"
    )
    rendered = domain.render("User Invited", payload, "en", {("User Invited", "en"): tricky})
    assert rendered.subject == "Hi jo@acme.example member"
    assert rendered.body == "boss@acme.example {0.__globals__}  ${role}"


def test_locale_falls_back_to_english_and_overrides_win() -> None:
    payload = example_payload("User Invited")
    assert domain.render("User Invited", payload, "de-DE").subject.startswith("Sie wurden")
    fallback = domain.render("Contact Created", example_payload("Contact Created"), "de")
    assert fallback.locale == "en" and fallback.subject.startswith("New contact")
    own = {("User Invited", "de"): Template("Willkommen {{email}}", "x")}
    assert domain.render("User Invited", payload, "de", own).subject == f"Willkommen {payload['email']}"
    assert domain.render("User Invited", payload, "fr", own).locale == "en"
    assert domain.normalize_locale("pt_BR") == "pt" and domain.normalize_locale("../etc") == "en"


def test_an_override_naming_an_unknown_variable_or_two_lines_is_refused() -> None:
    allowed = template_variables("User Invited")
    errors = domain.template_errors(Template("Hi {{emial}}", "{{role}}"), allowed)
    assert errors[0]["pointer"] == "#/subject" and "emial" in errors[0]["detail"]
    assert (
        domain.template_errors(Template("a\nBcc: x@y.z", "b"), allowed)[0]["detail"]
        == "a subject is one line"
    )


def test_subjects_are_one_line_whatever_the_values() -> None:
    payload = {**example_payload("Tenant Suspended"), "reason": "x"}
    own = {("Tenant Suspended", "en"): Template("Suspended: {{reason}}", "b")}
    rendered = domain.render("Tenant Suspended", {**payload, "reason": "a\r\nBcc: evil@x.example"}, "en", own)
    assert "\n" not in rendered.subject and "\r" not in rendered.subject


def item(ntf: str, to: str, minutes: int) -> DigestItem:
    at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    return DigestItem(ntf, to, None, f"subject {ntf}", "en", at)


def test_digest_groups_per_address_oldest_first_and_renders_one_mail() -> None:
    groups = domain.digest_groups(
        [item("b", "x@a.example", 2), item("a", "X@a.example", 1), item("c", "y@a.example", 0)]
    )
    assert {k: [i.notification_id for i in v] for k, v in groups.items()} == {
        "x@a.example": ["a", "b"],
        "y@a.example": ["c"],
    }
    rendered = domain.render_digest(groups["x@a.example"])
    assert rendered.subject == "Your digest: 2 notifications"
    assert "- subject a\n- subject b" in rendered.body
    assert domain.digest_id("x@a.example", groups["x@a.example"]) == domain.digest_id(
        "X@A.example", list(reversed(groups["x@a.example"]))
    )


@pytest.mark.parametrize(
    ("kind", "bounce", "expected"),
    [
        ("delivered", None, DeliveryKind.DELIVERED),
        ("Delivery", None, DeliveryKind.DELIVERED),
        ("bounce", "hard", DeliveryKind.HARD_BOUNCE),
        ("Bounce", "Permanent", DeliveryKind.HARD_BOUNCE),
        ("bounce", "Transient", DeliveryKind.SOFT_BOUNCE),
        ("bounce", None, DeliveryKind.SOFT_BOUNCE),
        ("HardBounce", None, DeliveryKind.HARD_BOUNCE),
        ("soft-bounce", None, DeliveryKind.SOFT_BOUNCE),
        ("spamreport", None, DeliveryKind.COMPLAINT),
        ("SpamComplaint", None, DeliveryKind.COMPLAINT),
        ("Complaint", None, DeliveryKind.COMPLAINT),
    ],
)
def test_provider_vocabularies_are_normalized(kind: str, bounce: str | None, expected: DeliveryKind) -> None:
    assert domain.normalize_delivery(kind, bounce) is expected


def test_unknown_reports_are_refused_and_only_hard_bounces_and_complaints_suppress() -> None:
    with pytest.raises(domain.UnsupportedReport):
        domain.normalize_delivery("opened", None)
    with pytest.raises(domain.UnsupportedReport):
        domain.normalize_delivery("bounce", "weird")
    assert [k for k in DeliveryKind if domain.suppresses(k)] == [
        DeliveryKind.HARD_BOUNCE,
        DeliveryKind.COMPLAINT,
    ]


def test_message_ids_carry_tenant_and_notification() -> None:
    ntf = domain.notification_id("e", "user:u", Channel.EMAIL)
    header = domain.message_id("t_0123abcd", ntf)
    assert domain.parse_message_id(header) == ("t_0123abcd", ntf)
    assert domain.parse_message_id("<abc@elsewhere.example>") is None
    assert domain.parse_message_id(header.replace("t_0123abcd", "t/../x")) is None


def test_report_signatures() -> None:
    body: Any = b'{"id": "1"}'
    header = sign_report("s3cret", 1_700_000_000, body)
    verify_report("s3cret", header, body, 1_700_000_100)
    for secret, sent, now in (("other", body, 1_700_000_000), ("s3cret", b"{}", 1_700_000_000)):
        with pytest.raises(BadSignature):
            verify_report(secret, header, sent, now)
    with pytest.raises(BadSignature):
        verify_report("s3cret", header, body, 1_700_000_000 + 301)
    with pytest.raises(BadSignature):
        verify_report("s3cret", None, body, 1_700_000_000)
