"""The Customer Health API on the running suite: tenant events through the real Pub/Sub path, events
pushed to the real push endpoint, scores read over HTTP.

Attribution of a bounce needs the Customer Data API's contract (`GET /tenants/{tid}/contacts/{id}` with
`organization_id`, `GET /tenants/{tid}/contacts?email=`). Until that API is part of the suite, a tiny
local HTTP server answers it: a second functions host, started here with CMP_FUNCTIONS_BASE_URL pointing
at that server, receives the pushes whose attribution matters (same code, same emulators).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from google.cloud.firestore import FieldFilter

from emulators.suite import ROOT, Suite
from shared.auth import sign_local_service_token
from shared.contracts.base import EventPayload
from shared.contracts.payloads import NotificationBounced, TenantCreated, WebhookFailed
from shared.events import new_event
from tests.conftest import Api, dump_firestore, eventually, push_body, quiescent

PROBLEM = "application/problem+json"
HSC = "com.cmp.health.score.changed.v1"


class CustomerDataStub:
    """The Customer Data API's contacts contract, answered from two dictionaries."""

    def __init__(self) -> None:
        self.contacts: dict[tuple[str, str], dict[str, Any]] = {}
        self.failing = False
        self.calls: list[tuple[str, bool]] = []  # (path, carried a bearer token)
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                stub.calls.append((self.path, self.headers.get("Authorization", "").startswith("Bearer ")))
                if stub.failing:
                    return self._answer(503, {"title": "down"})
                one = re.fullmatch(r"/customer_data_api/tenants/([^/]+)/contacts/([^/]+)", url.path)
                if one is not None:
                    contact = stub.contacts.get((one.group(1), one.group(2)))
                    return (
                        self._answer(200, contact) if contact else self._answer(404, {"title": "Not Found"})
                    )
                many = re.fullmatch(r"/customer_data_api/tenants/([^/]+)/contacts", url.path)
                if many is not None:
                    email = parse_qs(url.query).get("email", [""])[0]
                    items = [
                        c
                        for (tid, _), c in stub.contacts.items()
                        if tid == many.group(1) and c["email"] == email
                    ]
                    return self._answer(200, {"items": items, "next_cursor": None})
                return self._answer(404, {"title": "Not Found"})

            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add(self, tenant_id: str, contact_id: str, email: str, organization_id: str | None) -> None:
        self.contacts[(tenant_id, contact_id)] = {
            "id": contact_id,
            "email": email,
            "organization_id": organization_id,
        }

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def customer_data(suite: Suite) -> Iterator[tuple[CustomerDataStub, str]]:
    """The stub, and the URL of a second functions host that calls it as the Customer Data API."""
    stub = CustomerDataStub()
    log = Path(suite.log_dir) / "health-functions-host.log"
    with log.open("wb") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "emulators.functions_host", "--host", "127.0.0.1", "--port", "0"],
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            env={**os.environ, **suite.env, "CMP_FUNCTIONS_BASE_URL": stub.url, "PYTHONPATH": str(ROOT)},
            start_new_session=True,
        )
    try:
        ready = eventually(
            lambda: re.search(r"^READY \S+:(\d+)$", log.read_text(errors="replace"), re.MULTILINE),
            timeout=60,
            what="the second functions host",
        )
        yield stub, f"http://127.0.0.1:{ready.group(1)}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        stub.stop()


def push(suite: Suite, base: str, payload: EventPayload, tenant_id: str) -> requests.Response:
    envelope = new_event(payload, tenant_id=tenant_id, subject=tenant_id, source_api_slug="test")
    token = sign_local_service_token(
        suite.signing_key, f"pubsub-push@{suite.project}.iam.gserviceaccount.com"
    )
    body = push_body(envelope.model_dump_json(), str(uuid.uuid4()), "projects/p/subscriptions/health-test")
    response = requests.post(f"{base}/customer_health_api_events?token={token}", json=body, timeout=30)
    response.event_id = envelope.id  # type: ignore[attr-defined]
    return response


def bounce(contact_id: str | None, recipient: str, bounce_type: str = "hard") -> NotificationBounced:
    return NotificationBounced.model_validate(
        {
            "notification_id": f"ntf_{uuid.uuid4().hex[:8]}",
            "channel": "email",
            "recipient": recipient,
            "contact_id": contact_id,
            "bounce_type": bounce_type,
            "provider": "sendgrid",
            "provider_message_id": "sg-1",
            "diagnostic": "550 5.1.1 unknown",
            "bounced_at": datetime.now(UTC).isoformat(),
        }
    )


def webhook_failed(final: bool) -> WebhookFailed:
    return WebhookFailed.model_validate(
        {
            "webhook_id": "whk_1",
            "message_id": f"msg_{uuid.uuid4().hex[:8]}",
            "event_id": str(uuid.uuid4()),
            "event_type": "com.cmp.contact.created.v1",
            "endpoint_url": "https://hooks.example.test/cmp",
            "status_code": 500,
            "error": "Internal Server Error",
            "attempt": 7,
            "final": final,
            "next_attempt_at": None,
            "endpoint_disabled": False,
            "failed_at": datetime.now(UTC).isoformat(),
        }
    )


def published(db: Any, tenant_id: str) -> list[dict[str, Any]]:
    """Health Score Changed payloads of this tenant in the outbox, in the order they were raised."""
    found = [
        s.to_dict()
        for s in db.collection("_outbox").where(filter=FieldFilter("tenant_id", "==", tenant_id)).stream()
        if s.get("type") == HSC
    ]
    found.sort(key=lambda d: d["created_at"])
    return [json.loads(d["envelope"])["data"] for d in found]


@pytest.fixture
def tenant(tenant_api: Api) -> str:
    slug = f"health-{uuid.uuid4().hex[:8]}"
    created = tenant_api.post(
        "/tenants",
        json={"name": "Health", "slug": slug, "plan": "growth", "admin_email": f"admin@{slug}.example"},
    )
    assert created.status_code == 201, created.text
    tenant_id: str = created.json()["id"]
    return tenant_id


@pytest.fixture
def health(clean: Suite, operator: str) -> Api:
    return Api(clean.function_url("customer_health_api"), operator)


def wait_model(health: Api, tenant_id: str) -> requests.Response:
    found: requests.Response = eventually(
        lambda: (r := health.get(f"/tenants/{tenant_id}/health/model")).status_code == 200 and r,
        what="the default health model (Tenant Created)",
    )
    return found


def test_tenant_created_makes_the_default_model_and_tenant_events_move_the_tenant_score(
    tenant: str, health: Api, tenant_api: Api, clean: Suite, db: Any, tokens: Callable[..., str]
) -> None:
    model = wait_model(health, tenant)
    assert model.json()["version"] == 1 and model.headers["ETag"] == '"1"'
    assert sum(f["weight"] for f in model.json()["factors"]) == 100
    # The Onboarding API checks it as a platform service; a viewer of the tenant reads it too.
    service = sign_local_service_token(
        clean.signing_key, f"onboarding@{clean.project}.iam.gserviceaccount.com"
    )
    assert health.as_(service).get(f"/tenants/{tenant}/health/model").status_code == 200
    viewer = health.as_(tokens(f"viewer@{tenant}.example", tenant, ("viewer",)))
    assert viewer.get(f"/tenants/{tenant}/health/model").status_code == 200
    assert viewer.put(f"/tenants/{tenant}/health/model", json={}).status_code == 403

    # The new tenant's onboarding moves its score too (Onboarding Started, Completed): it settles first, so
    # the suspension is the only change measured below.
    quiescent(db, tenant_id=tenant)
    first = eventually(lambda: (r := health.get(f"/tenants/{tenant}/health")).status_code == 200 and r.json())
    standing = next(f for f in first["factors"] if f["factor"] == "account_standing")
    assert standing["applicable"] and standing["points"] == 100

    assert tenant_api.post(f"/tenants/{tenant}/suspend", json={"reason": "unpaid"}).status_code == 200

    def suspended() -> dict[str, Any] | None:
        body = health.get(f"/tenants/{tenant}/health").json()
        factor = next(f for f in body["factors"] if f["factor"] == "account_standing")
        return body if factor["points"] == 30 else None

    after = eventually(suspended, what="the suspension to reach the tenant score")
    assert (
        after["score"] < first["score"] and after["previous_score"] is not None and after["trend"] == "down"
    )
    standing = next(f for f in after["factors"] if f["factor"] == "account_standing")
    # Other APIs (onboarding) may move the score too: find the suspension's own entry.
    history = health.get(f"/tenants/{tenant}/health/history", params={"limit": 200}).json()["items"]
    caused = [h for h in history if h["cause_event_name"] == "Tenant Suspended"]
    assert [h["cause_event_id"] for h in caused] == [standing["event_ids"][0]]
    # The tenant-level score's events carry no organization.
    assert all(p["organization_id"] is None for p in published(db, tenant))


def test_health_score_changed_is_published_only_on_crossings(health: Api, clean: Suite, db: Any) -> None:
    # A tenant only this test sends events for (no other API reacts to it), so every signal is ours.
    tenant = f"t_health_{uuid.uuid4().hex[:12]}"
    created = TenantCreated.model_validate(
        {
            "tenant_id": tenant,
            "name": "Crossings",
            "slug": "crossings",
            "plan": "growth",
            "seat_limit": 5,
            "admin_email": "admin@crossings.example",
            "actor": {"type": "service", "id": "test", "email": None},
        }
    )
    assert push(clean, clean.functions_url, created, tenant).json()["result"] == "processed"
    wait_model(health, tenant)
    tiers = [
        {"up_to": 0, "points": 100},
        {"up_to": 1, "points": 90},
        {"up_to": 2, "points": 60},
        {"up_to": None, "points": 0},
    ]
    model = {
        "window_days": 30,
        "factors": [
            {
                "factor": "account_standing",
                "weight": 50,
                "tiers": [{"up_to": 0, "points": 100}, {"up_to": None, "points": 0}],
            },
            {"factor": "integration_reliability", "weight": 50, "tiers": tiers},
        ],
        "grades": {"healthy": 75, "watch": 50, "at_risk": 25},
        "publish_delta": 20,
    }
    stale = health.put(f"/tenants/{tenant}/health/model", json=model, headers={"If-Match": '"7"'})
    assert stale.status_code == 412 and stale.headers["Content-Type"] == PROBLEM
    saved = health.put(f"/tenants/{tenant}/health/model", json=model, headers={"If-Match": '"1"'})
    assert saved.status_code == 200 and saved.headers["ETag"] == '"2"', saved.text

    scores = []
    for _ in range(3):
        response = push(clean, clean.functions_url, webhook_failed(final=True), tenant)
        assert response.status_code == 200 and response.json()["result"] == "processed", response.text
        scores.append(health.get(f"/tenants/{tenant}/health").json()["score"])
    # 95 (moved 5 from the last published 100: quiet), 80 (moved 20: published), 50 (watch: published).
    assert scores == [95, 80, 50]
    quiescent(db, tenant_id=tenant)
    events = published(db, tenant)
    assert [(e["score"], e["grade"]) for e in events] == [(100, "healthy"), (80, "healthy"), (50, "watch")]
    assert [e["previous_score"] for e in events] == [None, 100, 80]
    assert events[-1]["model_version"] == 2
    history = health.get(f"/tenants/{tenant}/health/history", params={"limit": 2}).json()
    assert [h["score"] for h in history["items"]] == [50, 80] and history["next_cursor"]
    rest = health.get(f"/tenants/{tenant}/health/history", params={"cursor": history["next_cursor"]}).json()
    assert [(h["score"], h["published"]) for h in rest["items"]][:1] == [(95, False)]


@pytest.mark.usefixtures("paused_sealing")
def test_a_bounce_moves_its_organizations_score_with_an_explanation_and_recompute_agrees(
    customer_data: tuple[CustomerDataStub, str], tenant: str, health: Api, clean: Suite, db: Any
) -> None:
    stub, host = customer_data
    wait_model(health, tenant)
    stub.add(tenant, "con_a1", "ana@globex.example", "org_globex")
    stub.add(tenant, "con_b1", "bo@initech.example", "org_initech")
    stub.add(tenant, "con_n1", "nobody@loose.example", None)

    by_contact = push(clean, host, bounce("con_a1", "ana@globex.example"), tenant)
    assert by_contact.status_code == 200 and by_contact.json()["result"] == "processed", by_contact.text
    globex = health.get(f"/tenants/{tenant}/health/organizations/org_globex").json()
    deliverability = next(f for f in globex["factors"] if f["factor"] == "email_deliverability")
    assert (globex["score"], globex["grade"]) == (70, "watch")
    assert deliverability["event_ids"] == [by_contact.event_id]  # type: ignore[attr-defined]
    assert globex["last_event_id"] == by_contact.event_id  # type: ignore[attr-defined]
    assert [f["factor"] for f in globex["factors"] if f["applicable"]] == ["email_deliverability"]
    assert any(path.endswith("/contacts/con_a1") and bearer for path, bearer in stub.calls)

    # Only the recipient's address: attributed through the contacts with that email.
    for _ in range(3):
        by_email = push(clean, host, bounce(None, "bo@initech.example"), tenant)
        assert by_email.status_code == 200, by_email.text
    initech = health.get(f"/tenants/{tenant}/health/organizations/org_initech").json()
    assert (initech["score"], initech["grade"]) == (40, "at_risk")

    # A contact without organization, and an unknown one: the tenant-level score only.
    for contact in ("con_n1", "con_unknown"):
        assert push(clean, host, bounce(contact, "x@y.example"), tenant).status_code == 200
    tenant_score = health.get(f"/tenants/{tenant}/health").json()
    tenant_deliverability = next(f for f in tenant_score["factors"] if f["factor"] == "email_deliverability")
    assert tenant_deliverability["signal_count"] == 6

    listed = health.get(f"/tenants/{tenant}/health/organizations", params={"limit": 1}).json()
    assert [o["organization_id"] for o in listed["items"]] == ["org_initech"]  # the worst first
    second = health.get(
        f"/tenants/{tenant}/health/organizations", params={"cursor": listed["next_cursor"]}
    ).json()
    assert [o["organization_id"] for o in second["items"]] == ["org_globex"] and second["next_cursor"] is None
    watch = health.get(f"/tenants/{tenant}/health/organizations", params={"grade": "watch"}).json()["items"]
    assert [o["organization_id"] for o in watch] == ["org_globex"]

    quiescent(db, tenant_id=tenant)
    org_events = [e for e in published(db, tenant) if e["organization_id"] == "org_initech"]
    assert [(e["score"], e["grade"]) for e in org_events] == [(70, "watch"), (40, "at_risk")]

    before = quiescent(db, tenant_id=tenant)
    again = health.post(f"/tenants/{tenant}/health/organizations/org_initech/recompute")
    assert again.status_code == 200, again.text
    body = again.json()
    assert (
        body["changed"] is False
        and body["score"] == initech["score"]
        and body["factors"] == initech["factors"]
    )
    assert dump_firestore(db, tenant) == before


@pytest.mark.usefixtures("paused_sealing")
def test_the_customer_data_api_failing_is_retried_and_changes_nothing(
    customer_data: tuple[CustomerDataStub, str], tenant: str, health: Api, clean: Suite, db: Any
) -> None:
    stub, host = customer_data
    wait_model(health, tenant)
    before = quiescent(db, tenant_id=tenant)
    stub.failing = True
    try:
        response = push(clean, host, bounce("con_a1", "ana@globex.example"), tenant)
    finally:
        stub.failing = False
    assert response.status_code == 500 and response.json()["result"] == "retry", response.text
    after = {k: v for k, v in dump_firestore(db, tenant).items() if not k.startswith("_delivery_attempts/")}
    assert after == before


@pytest.mark.usefixtures("paused_sealing")
def test_preview_compares_models_and_writes_nothing_and_bad_models_are_refused(
    customer_data: tuple[CustomerDataStub, str], tenant: str, health: Api, clean: Suite, db: Any
) -> None:
    stub, host = customer_data
    wait_model(health, tenant)
    stub.add(tenant, "con_p1", "pat@umbrella.example", "org_umbrella")
    assert push(clean, host, bounce("con_p1", "pat@umbrella.example"), tenant).status_code == 200
    current = health.get(f"/tenants/{tenant}/health/model").json()
    strict = {
        "window_days": 90,
        "factors": [
            {"factor": f["factor"], "weight": f["weight"], "tiers": f["tiers"]} for f in current["factors"]
        ],
        "grades": {"healthy": 90, "watch": 80, "at_risk": 60},
        "publish_delta": 5,
    }
    before = quiescent(db, tenant_id=tenant)
    preview = health.post(f"/tenants/{tenant}/health/model:preview", json=strict)
    assert preview.status_code == 200, preview.text
    umbrella = next(o for o in preview.json()["organizations"] if o["organization_id"] == "org_umbrella")
    assert umbrella["current"] == {"score": 70, "grade": "watch"}
    assert umbrella["proposed"]["score"] == 70 and umbrella["proposed"]["grade"] == "at_risk"
    assert umbrella["grade_changed"] is True and preview.json()["grade_changes"] >= 1

    bad = {**strict, "factors": current["factors"][:-1]}  # weights no longer total 100
    for method, path in (("POST", "/health/model:preview"), ("PUT", "/health/model")):
        refused = health.request(method, f"/tenants/{tenant}{path}", json=bad)
        assert refused.status_code == 422 and refused.headers["Content-Type"] == PROBLEM
        assert any(e["pointer"] == "#/factors" for e in refused.json()["errors"])
    for payload, status in (({"window_days": 0, "factors": []}, 422), ({"unknown": 1}, 422)):
        assert health.put(f"/tenants/{tenant}/health/model", json=payload).status_code == status
    assert (
        health.put(
            f"/tenants/{tenant}/health/model", data="x", headers={"Content-Type": "application/json"}
        ).status_code
        == 400
    )
    assert (
        health.put(f"/tenants/{tenant}/health/model", json=strict, headers={"If-Match": "nope"}).status_code
        == 400
    )
    assert health.get(f"/tenants/{tenant}/health/organizations", params={"grade": "great"}).status_code == 422
    assert health.get(f"/tenants/{tenant}/health/organizations", params={"cursor": "%%%"}).status_code == 400
    assert health.get(f"/tenants/{tenant}/health/organizations/org_missing").status_code == 404
    assert health.post(f"/tenants/{tenant}/health/organizations/org_missing/recompute").status_code == 404
    assert dump_firestore(db, tenant) == before


def test_out_of_order_signals_give_the_score_of_their_event_times(
    tenant: str, health: Api, clean: Suite, db: Any
) -> None:
    """A suspension delivered after the reactivation that followed it leaves the tenant active."""
    from shared.contracts.payloads import TenantReactivated, TenantSuspended

    wait_model(health, tenant)
    actor = {"type": "user", "id": "usr_1", "email": "ops@cmp.example"}
    # After Tenant Created's own signal (now), so these two decide the standing.
    later = time.time() + 60
    suspended = new_event(
        TenantSuspended.model_validate({"tenant_id": tenant, "reason": "unpaid", "actor": actor}),
        tenant_id=tenant,
        subject=tenant,
        source_api_slug="test",
        time=datetime.fromtimestamp(later, UTC),
    )
    reactivated = new_event(
        TenantReactivated.model_validate({"tenant_id": tenant, "actor": actor}),
        tenant_id=tenant,
        subject=tenant,
        source_api_slug="test",
        time=datetime.fromtimestamp(later + 30, UTC),
    )
    token = sign_local_service_token(
        clean.signing_key, f"pubsub-push@{clean.project}.iam.gserviceaccount.com"
    )
    url = f"{clean.function_url('customer_health_api_events')}?token={token}"
    for envelope in (reactivated, suspended):  # the later one first
        body = push_body(
            envelope.model_dump_json(), str(uuid.uuid4()), "projects/p/subscriptions/health-test"
        )
        assert requests.post(url, json=body, timeout=30).json()["result"] == "processed"
    score = health.get(f"/tenants/{tenant}/health").json()
    standing = next(f for f in score["factors"] if f["factor"] == "account_standing")
    assert standing["points"] == 100 and standing["event_ids"] == [reactivated.id]


def test_a_bounce_is_attributed_by_the_real_customer_data_api(
    tenant: str, health: Api, clean: Suite, tokens: Callable[..., str]
) -> None:
    """The suite's own Customer Data API answers the contacts contract, by id and by email."""
    wait_model(health, tenant)
    admin = Api(
        clean.function_url("customer_data_api"), tokens(f"admin@{tenant}.example", tenant, ("admin",))
    )
    org = admin.post(
        f"/tenants/{tenant}/organizations", json={"name": "Globex", "domains": ["globex.example"]}
    )
    assert org.status_code == 201, org.text
    org_id = org.json()["id"]
    contacts = []
    for first, email in (("Ana", "ana@globex.example"), ("Bo", "bo@globex.example")):
        made = admin.post(
            f"/tenants/{tenant}/contacts",
            json={"first_name": first, "last_name": "Lima", "emails": [email], "organization_id": org_id},
        )
        assert made.status_code == 201, made.text
        contacts.append(made.json()["id"])

    by_id = push(clean, clean.functions_url, bounce(contacts[0], "ana@globex.example"), tenant)
    assert by_id.status_code == 200 and by_id.json()["result"] == "processed", by_id.text
    by_email = push(clean, clean.functions_url, bounce(None, "bo@globex.example", "soft"), tenant)
    assert by_email.status_code == 200 and by_email.json()["result"] == "processed", by_email.text

    score = health.get(f"/tenants/{tenant}/health/organizations/{org_id}").json()
    deliverability = next(f for f in score["factors"] if f["factor"] == "email_deliverability")
    assert deliverability["measure"] == 1.5 and (score["score"], score["grade"]) == (70, "watch")
    assert set(deliverability["event_ids"]) == {by_id.event_id, by_email.event_id}  # type: ignore[attr-defined]
