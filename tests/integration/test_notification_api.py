"""The Notification API on the running suite: events pushed through the real push endpoint, email sent by
the real Tasks emulator over SMTP to the suite's SMTP sink (emulators/smtp_sink.py), the in-app inbox,
preferences, the digest, and signed provider delivery reports (bounces) publishing Notification Bounced.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests

from emulators.provision import ensure_secret
from emulators.suite import Suite
from functions.notification_api.routes import example_payload
from functions.notification_api.service import PROVIDER_SECRET, sign_report
from shared.auth import sign_local_service_token
from shared.contracts import PAYLOADS
from shared.events import CloudEvent, new_event
from tests.conftest import Api, dump_firestore, eventually, push_body, quiescent, store_tenant

PROBLEM = "application/problem+json"
PROVIDER_SECRET_VALUE = "provider-test-secret-1"


# --- helpers ---------------------------------------------------------------------------------------------
def sink_messages(suite: Suite, to: str) -> list[dict[str, Any]]:
    response = requests.get(f"{suite.smtp_url}/messages", timeout=10)
    response.raise_for_status()
    return [m for m in response.json()["messages"] if to.lower() in [r.lower() for r in m["rcpt_to"]]]


def event(name: str, tenant_id: str, **changes: Any) -> CloudEvent:
    payload = {**example_payload(name), **changes}
    if "tenant_id" in payload:
        payload["tenant_id"] = tenant_id
    catalog_event = PAYLOADS[name]
    return new_event(
        catalog_event.model_validate(payload),
        tenant_id=tenant_id,
        subject=f"subject-{uuid.uuid4().hex[:8]}",
        source_api_slug="test",
    )


def push(suite: Suite, envelope: CloudEvent) -> str:
    token = sign_local_service_token(
        suite.signing_key, f"pubsub-push@{suite.project}.iam.gserviceaccount.com"
    )
    url = f"{suite.function_url('notification_api_events')}?token={token}"
    body = push_body(envelope.model_dump_json(), str(uuid.uuid4()), "projects/p/subscriptions/s")
    response = requests.post(url, json=body, timeout=30)
    assert response.status_code == 200, response.text
    result: str = response.json()["result"]
    return result


def run_digest(suite: Suite, **body: Any) -> dict[str, Any]:
    token = sign_local_service_token(
        suite.signing_key, f"cloud-scheduler@{suite.project}.iam.gserviceaccount.com"
    )
    response = requests.post(
        suite.function_url("notification_api_digest"),
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def report(suite: Suite, body: dict[str, Any], secret: str = PROVIDER_SECRET_VALUE) -> requests.Response:
    raw = json.dumps(body).encode()
    headers = {
        "Content-Type": "application/json",
        "Notification-Signature": sign_report(secret, int(time.time()), raw),
    }
    return requests.post(
        suite.function_url("notification_api") + "/notifications/provider-events",
        data=raw,
        headers=headers,
        timeout=30,
    )


def uid_of(email: str) -> str:
    from firebase_admin import auth

    from shared.clients import firebase_app

    return str(auth.get_user_by_email(email, app=firebase_app()).uid)


class Person:
    def __init__(self, email: str, uid: str, api: Api) -> None:
        self.email = email
        self.uid = uid
        self.api = api

    def inbox(self, **params: Any) -> list[dict[str, Any]]:
        response = self.api.get("/inbox", params=params)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    def unread(self) -> int:
        response = self.api.get("/inbox/unread-count")
        assert response.status_code == 200, response.text
        return int(response.json()["unread"])


@pytest.fixture(scope="session")
def provider_secret(suite: Suite) -> str:
    return ensure_secret(suite.project, PROVIDER_SECRET, PROVIDER_SECRET_VALUE)


@pytest.fixture
def tenant(clean: Suite) -> dict[str, Any]:
    # Stored without Tenant Created: the events each test pushes are the ones it is about.
    return store_tenant(f"ntf-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def people(clean: Suite, tenant: dict[str, Any], tokens: Callable[..., str], db: Any) -> dict[str, Person]:
    """The tenant's admin and a member, as User Management records them (the users collection)."""
    found = {}
    for role in ("admin", "member"):
        email = f"{role}@{tenant['slug']}.example"
        token = tokens(email, tenant["id"], (role,))
        uid = uid_of(email)
        db.collection("tenants").document(tenant["id"]).collection("users").document(uid).set(
            {"id": uid, "tenant_id": tenant["id"], "email": email, "role": role, "status": "active"}
        )
        api = Api(clean.function_url("notification_api") + f"/tenants/{tenant['id']}/notifications", token)
        found[role] = Person(email, uid, api)
    # Start from an empty sink and a read inbox, so each test sees only its own notifications.
    quiescent(db, tenant_id=tenant["id"])
    requests.delete(f"{clean.smtp_url}/messages", timeout=10).raise_for_status()
    for person in found.values():
        assert person.api.post("/inbox/read-all").status_code == 200
    return found


def named(items: list[dict[str, Any]], *names: str) -> list[dict[str, Any]]:
    return [i for i in items if i["event_name"] in names]


def emails(admin: Person, **params: Any) -> list[dict[str, Any]]:
    response = admin.api.get("/emails", params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


# --- tests -----------------------------------------------------------------------------------------------
def test_user_invited_mails_the_invitee_and_tells_the_admin_in_app_once(
    clean: Suite, tenant: dict[str, Any], people: dict[str, Person], db: Any
) -> None:
    invitee = f"new.user@{tenant['slug']}.example"
    invited = event("User Invited", tenant["id"], email=invitee, role="member")
    assert push(clean, invited) == "processed"

    mail = eventually(lambda: sink_messages(clean, invitee), what="the invitation mail")
    assert mail[0]["subject"] == "You are invited to join as member"
    assert invitee in mail[0]["text"] and mail[0]["message_id"].endswith("@notifications.cmp.example>")
    admin, member = people["admin"], people["member"]
    # (The platform may invite the tenant's first admin itself: ours is the one naming the invitee.)
    items = [i for i in named(admin.inbox(), "User Invited") if invitee in i["body"]]
    assert len(items) == 1 and items[0]["read"] is False
    assert named(member.inbox(), "User Invited") == []  # members are not told about invitations
    sent = eventually(
        lambda: [e for e in emails(admin, status="sent") if e["to"] == invitee], what="the email marked sent"
    )
    assert [(e["event_name"], e["attempts"]) for e in sent] == [("User Invited", 1)]

    # The same event again (a relay republish): recognised, nothing new anywhere.
    before = quiescent(db, tenant_id=tenant["id"])
    assert push(clean, invited) == "duplicate"
    assert dump_firestore(db, tenant["id"]) == before
    assert len(sink_messages(clean, invitee)) == 1

    # Read state: unread until marked read, then only in the full listing.
    assert items[0]["id"] in [i["id"] for i in admin.inbox(unread="true")]
    read = admin.api.post(f"/inbox/{items[0]['id']}/read")
    assert read.status_code == 200 and read.json()["read"] is True
    assert items[0]["id"] not in [i["id"] for i in admin.inbox(unread="true")]
    assert items[0]["id"] in [i["id"] for i in admin.inbox()]


def test_unread_count_mark_all_read_and_pagination(
    clean: Suite, tenant: dict[str, Any], people: dict[str, Person]
) -> None:
    member = people["member"]  # an insight shared with the member reaches nobody else
    for title in ("one", "two", "three"):
        push(clean, event("Insight Shared", tenant["id"], title=title, shared_with_user_ids=[member.uid]))
    assert member.unread() == 3
    everything = member.inbox()
    seen: list[str] = []
    cursor = None
    while True:
        page = member.api.get("/inbox", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        assert len(page["items"]) <= 2
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [i["id"] for i in everything] and len(seen) == 3
    assert [i["subject"] for i in everything] == [
        f"Insight shared with you: {t}" for t in ("three", "two", "one")
    ]
    assert member.api.post("/inbox/read-all").json() == {"marked": 3}
    assert member.unread() == 0 and member.inbox(unread="true") == []


def test_a_failing_smtp_server_is_retried_then_the_mail_is_delivered(
    clean: Suite, tenant: dict[str, Any], people: dict[str, Person]
) -> None:
    admin = people["admin"]
    failing = requests.post(f"{clean.smtp_url}/fail", json={"count": 2, "code": 451}, timeout=10)
    assert failing.status_code == 200
    push(
        clean,
        event("User Role Changed", tenant["id"], user_id=admin.uid, previous_role="member", new_role="admin"),
    )

    def ours() -> list[dict[str, Any]]:
        return [m for m in sink_messages(clean, admin.email) if m["subject"] == "Your role is now admin"]

    eventually(ours, timeout=30, what="the mail after retries")
    sent = eventually(
        lambda: named(emails(admin, status="sent"), "User Role Changed"), what="the email marked sent"
    )
    assert sent[0]["attempts"] == 3 and sent[0]["last_error"] is None
    assert len(ours()) == 1


def test_an_email_whose_tasks_ran_out_is_sent_once_by_a_new_task(
    clean: Suite, tenant: dict[str, Any], people: dict[str, Person]
) -> None:
    from shared.clients import tasks_client
    from shared.config import get_settings

    admin = people["admin"]
    queue = f"projects/{clean.project}/locations/{get_settings().location}/queues/notification-email"
    tasks_client().pause_queue(name=queue)
    try:
        push(clean, event("Capacity Limit Approaching", tenant["id"]))
        pending = named(emails(admin, status="pending"), "Capacity Limit Approaching")
        assert len(pending) == 1
        # Its first task is held by the paused queue, as if Cloud Tasks had run out of attempts.
        assert run_digest(clean)["redispatched"] == 0  # too recent for the default threshold
        assert run_digest(clean, redispatch_after_seconds=0)["redispatched"] >= 1
    finally:
        tasks_client().resume_queue(name=queue)

    def ours() -> list[dict[str, Any]]:
        return [m for m in sink_messages(clean, admin.email) if m["subject"] == "seats at 90% of your plan"]

    assert len(eventually(ours, what="the mail")) == 1
    eventually(lambda: named(emails(admin, status="sent"), "Capacity Limit Approaching"), what="sent")
    time.sleep(1.0)  # the first task ran too, and found its dispatch token replaced
    assert len(ours()) == 1


def test_a_hard_bounce_suppresses_the_address_and_publishes_notification_bounced(
    clean: Suite, tenant: dict[str, Any], people: dict[str, Person], provider_secret: str
) -> None:
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    subscription = subscriber.subscription_path(
        clean.project, f"notification-bounced--test-{uuid.uuid4().hex[:8]}"
    )
    subscriber.create_subscription(
        request={"name": subscription, "topic": f"projects/{clean.project}/topics/notification-bounced"}
    )
    admin = people["admin"]
    invitee = f"gone@{tenant['slug']}.example"
    invitation = event("User Invited", tenant["id"], email=invitee)
    push(clean, invitation)
    mail = eventually(lambda: sink_messages(clean, invitee), what="the invitation mail")[0]

    bounce = {
        "id": f"prov-{uuid.uuid4().hex}",
        "type": "bounce",
        "bounce_type": "Permanent",
        "message_id": mail["message_id"],
        "recipient": invitee,
        "diagnostic": "550 5.1.1 The email account does not exist",
        "provider": "ses",
        "occurred_at": "2026-01-01T10:00:00Z",
    }
    first = report(clean, bounce, provider_secret)
    assert first.status_code == 200 and first.json() == {"result": "applied"}, first.text

    def bounced() -> dict[str, Any] | None:
        response = subscriber.pull(request={"subscription": subscription, "max_messages": 10}, timeout=5)
        found = None
        for message in response.received_messages:
            envelope = json.loads(message.message.data)
            if envelope["data"]["recipient"] == invitee:
                found = envelope
        if response.received_messages:
            subscriber.acknowledge(
                request={
                    "subscription": subscription,
                    "ack_ids": [m.ack_id for m in response.received_messages],
                }
            )
        return found

    published = eventually(bounced, what="Notification Bounced")
    data = published["data"]
    assert published["tenantid"] == tenant["id"]
    assert data["bounce_type"] == "hard" and data["channel"] == "email" and data["provider"] == "ses"
    assert data["user_id"] == invitation.data["user_id"] and data["provider_message_id"] == mail["message_id"]
    assert [e["status"] for e in emails(admin) if e["to"] == invitee] == ["bounced"]
    suppressed = admin.api.get("/suppressions").json()["items"]
    assert [(s["address"], s["reason"]) for s in suppressed] == [(invitee, "hard_bounce")]

    # The same provider event again changes nothing and publishes nothing.
    again = report(clean, bounce, provider_secret)
    assert again.status_code == 200 and again.json() == {"result": "duplicate"}

    # No more email to that address; in-app is unaffected.
    push(clean, event("User Invited", tenant["id"], email=invitee))
    eventually(
        lambda: len([i for i in named(admin.inbox(), "User Invited") if invitee in i["body"]]) == 2,
        what="the second in-app notification",
    )
    statuses = [e["status"] for e in emails(admin) if e["to"] == invitee]
    assert sorted(statuses) == ["bounced", "suppressed"]
    time.sleep(1.0)  # a wrongly enqueued mail would have arrived by now
    assert len(sink_messages(clean, invitee)) == 1
    assert bounced() is None
    subscriber.delete_subscription(request={"subscription": subscription})

    # Lifting the suppression lets mail through again.
    assert admin.api.delete(f"/suppressions/{invitee}").status_code == 204
    push(clean, event("User Invited", tenant["id"], email=invitee))
    eventually(lambda: len(sink_messages(clean, invitee)) == 2, what="mail after the suppression is lifted")


def test_an_address_the_relay_refuses_is_a_hard_bounce(
    clean: Suite, tenant: dict[str, Any], people: dict[str, Person]
) -> None:
    admin = people["admin"]
    invitee = f"nobody@{tenant['slug']}.example"
    refusing = requests.post(
        f"{clean.smtp_url}/fail", json={"count": 1, "code": 550, "stage": "rcpt"}, timeout=10
    )
    assert refusing.status_code == 200
    push(clean, event("User Invited", tenant["id"], email=invitee))

    bounced = eventually(lambda: named(emails(admin, status="bounced"), "User Invited"), what="the bounce")
    assert bounced[0]["to"] == invitee and bounced[0]["attempts"] == 1  # a 5xx is not retried
    assert bounced[0]["bounce"]["kind"] == "hard_bounce" and "550" in bounced[0]["bounce"]["diagnostic"]
    suppressed = admin.api.get("/suppressions").json()["items"]
    assert [(s["address"], s["provider"]) for s in suppressed] == [(invitee, "smtp")]
    assert sink_messages(clean, invitee) == []


def test_preferences_apply_but_critical_notifications_always_arrive(
    clean: Suite, tenant: dict[str, Any], people: dict[str, Person]
) -> None:
    admin = people["admin"]
    saved = admin.api.put(
        "/preferences", json={"channels": {"email": False}, "categories": {"access": {"in_app": False}}}
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["channels"] == {"email": False} and "always_on_categories" in saved.json()

    push(clean, event("Permission Policy Changed", tenant["id"]))  # access: in-app off, email off
    push(clean, event("Capacity Limit Approaching", tenant["id"]))  # billing: in-app only
    push(clean, event("Tenant Suspended", tenant["id"]))  # critical: both, whatever the preferences
    pushed = ("Permission Policy Changed", "Capacity Limit Approaching", "Tenant Suspended")
    names = sorted(i["event_name"] for i in named(admin.inbox(), *pushed))
    assert names == ["Capacity Limit Approaching", "Tenant Suspended"]

    def subjects() -> list[str]:
        return sorted(m["subject"] for m in sink_messages(clean, admin.email))

    eventually(lambda: "Your workspace was suspended" in subjects(), what="the critical mail")
    assert subjects().count("Your workspace was suspended") == 1
    assert not [s for s in subjects() if s.startswith(("seats at", "Permissions of role"))]
    assert [e["event_name"] for e in named(emails(admin), *pushed)] == ["Tenant Suspended"]

    # German, and the tenant's own template wins over the built-in one.
    assert admin.api.put("/preferences", json={"locale": "de"}).status_code == 200
    own = admin.api.put(
        "/templates/tenant-reactivated/de",
        json={"subject": "Wieder da: {{tenant_id}}", "body": "Hallo {{actor.id}}"},
    )
    assert own.status_code == 201, own.text
    push(clean, event("Tenant Reactivated", tenant["id"]))
    push(clean, event("Tenant Suspended", tenant["id"]))
    german = {f"Wieder da: {tenant['id']}", "Ihr Arbeitsbereich wurde gesperrt"}
    eventually(lambda: german <= set(subjects()), what="the German mails")


def test_low_priority_email_is_collected_into_one_digest_per_user(
    clean: Suite, tenant: dict[str, Any], people: dict[str, Person]
) -> None:
    admin = people["admin"]
    for first in ("Ada", "Grace"):
        push(clean, event("Contact Created", tenant["id"], first_name=first))
    # The tenant's own creation may have queued low-priority mail too (a contact for its admin): all
    # of it goes in the same digest.
    waiting = emails(admin, status="digest")
    ours = [e for e in waiting if e["subject"].startswith(("New contact: Ada ", "New contact: Grace "))]
    assert len(ours) == 2 and {e["to"] for e in waiting} == {admin.email}
    in_app = [i["subject"] for i in admin.inbox()]  # in-app is immediate
    assert {e["subject"] for e in ours} <= set(in_app)

    result = run_digest(clean)
    assert (result["digests"], result["items"]) == (1, len(waiting))

    def digests() -> list[dict[str, Any]]:
        return [m for m in sink_messages(clean, admin.email) if m["subject"].startswith("Your digest")]

    mail = eventually(digests, what="the digest mail")
    assert [m["subject"] for m in mail] == [f"Your digest: {len(waiting)} notifications"]
    assert "New contact: Ada" in mail[0]["text"] and "New contact: Grace" in mail[0]["text"]
    assert emails(admin, status="digest") == []
    assert len(emails(admin, status="digested")) == len(waiting)

    assert run_digest(clean)["digests"] == 0
    time.sleep(0.5)
    assert len(digests()) == 1


def test_bad_input_is_a_problem_and_changes_nothing(
    clean: Suite, tenant: dict[str, Any], people: dict[str, Person], provider_secret: str, db: Any
) -> None:
    admin = people["admin"]
    before = quiescent(db, tenant_id=tenant["id"])
    url = clean.function_url("notification_api") + "/notifications/provider-events"
    good = {
        "id": "x1",
        "type": "bounce",
        "bounce_type": "hard",
        "message_id": f"<ntf_{'0' * 32}.{tenant['id']}@notifications.cmp.example>",
        "recipient": admin.email,
        "occurred_at": "2026-01-01T10:00:00Z",
    }
    cases = [
        requests.post(url, json=good, timeout=10),  # unsigned
        report(clean, good, secret="wrong-secret"),
        report(clean, {**good, "occurred_at": "yesterday"}),
        report(clean, {**good, "type": "opened"}),
        admin.api.put("/preferences", json={"categories": {"security": {"email": False}}}),
        admin.api.put("/preferences", json={"channels": {"sms": True}}),
        admin.api.put("/templates/user-invited/en", json={"subject": "Hi {{emial}}", "body": "x"}),
        admin.api.put("/templates/user-invited/en", json={"subject": "two\nlines", "body": "x"}),
        admin.api.put("/templates/no-such-event/en", json={"subject": "s", "body": "b"}),
        admin.api.get("/inbox", params={"cursor": "%%%"}),
        admin.api.post("/inbox/ntf_nope/read"),
    ]
    assert [c.status_code for c in cases] == [401, 401, 422, 422, 422, 422, 422, 422, 404, 400, 404]
    assert all(c.headers["Content-Type"].startswith(PROBLEM) for c in cases)
    assert cases[4].json()["errors"][0]["pointer"] == "#/categories/security/email"
    # A well-formed, signed report of a message we never sent is acknowledged and ignored.
    unknown = report(clean, good)
    assert unknown.status_code == 200 and unknown.json() == {"result": "ignored"}
    assert dump_firestore(db, tenant["id"]) == before


def test_nobody_reads_another_users_or_another_tenants_inbox(
    clean: Suite,
    tenant: dict[str, Any],
    people: dict[str, Person],
    tenant_api: Api,
    tokens: Callable[..., str],
) -> None:
    admin, member = people["admin"], people["member"]
    push(clean, event("Tenant Suspended", tenant["id"]))
    mine = named(admin.inbox(), "Tenant Suspended")[0]

    assert named(member.inbox(), "Tenant Suspended") == [] and member.unread() == 0
    stolen = member.api.post(f"/inbox/{mine['id']}/read")
    assert stolen.status_code == 404
    assert member.api.post("/inbox/read-all").json() == {"marked": 0}
    assert mine["id"] in [i["id"] for i in admin.inbox(unread="true")]  # still unread
    assert member.api.get("/templates").status_code == 403  # admins only

    other = tenant_api.post(
        "/tenants",
        json={
            "name": "Other",
            "slug": f"other-{uuid.uuid4().hex[:6]}",
            "plan": "growth",
            "admin_email": "a@o.example",
        },
    ).json()
    outsider = Api(admin.api.base, tokens("admin@other.example", other["id"], ("admin",)))
    for response in (
        outsider.get("/inbox"),
        outsider.post(f"/inbox/{mine['id']}/read"),
        outsider.get("/emails"),
    ):
        assert response.status_code == 404, response.text
    assert mine["id"] in [i["id"] for i in admin.inbox(unread="true")]  # still unread
