"""The Tenant API over HTTP, through functions-framework, on the real emulators."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from google.cloud import pubsub_v1

from emulators.suite import Suite
from functions.tenant_api.domain import SEAT_LIMITS
from tests.conftest import (
    Api,
    BadRequest,
    bad_requests_change_nothing,
    eventually,
    send,
    store_tenant,
)

PROBLEM = "application/problem+json"


def create(api: Api, slug: str, plan: str = "growth") -> dict[str, Any]:
    """A tenant as POST /tenants stores it, but without Tenant Created: onboarding would take the first
    admin's seat (moving seats and versions these tests count). Creation itself is tested over HTTP."""
    tenant = store_tenant(slug, plan)
    assert api.get(f"/tenants/{tenant['id']}").status_code == 200
    return tenant


def test_create_then_get_as_operator_and_as_the_tenant_admin(
    tenant_api: Api, tokens: Callable[..., str]
) -> None:
    response = tenant_api.post(
        "/tenants",
        json={"name": "Acme", "slug": "acme", "plan": "starter", "admin_email": "Admin@Acme.example"},
    )
    assert response.status_code == 201
    tenant = response.json()
    assert response.headers["Location"] == f"/tenants/{tenant['id']}"
    assert response.headers["ETag"] == '"1"'
    assert tenant["status"] == "active" and tenant["seat_limit"] == SEAT_LIMITS["starter"]
    assert tenant["admin_email"] == "admin@acme.example"

    admin = tenant_api.as_(tokens("admin@acme.example", tenant["id"], ("admin",)))
    # Onboarding may already have taken the first admin's seat (seats and version move): the rest holds.
    moving = {"seats_used", "version", "updated_at"}
    seen = admin.get(f"/tenants/{tenant['id']}").json()
    assert {k: v for k, v in seen.items() if k not in moving} == {
        k: v for k, v in tenant.items() if k not in moving
    }


def test_a_tenant_never_sees_another_tenants_data(tenant_api: Api, tokens: Callable[..., str]) -> None:
    a, b = create(tenant_api, "alpha"), create(tenant_api, "bravo")
    admin_a = tenant_api.as_(tokens("admin@alpha.example", a["id"], ("admin",)))
    for method, path in [
        ("GET", f"/tenants/{b['id']}"),
        ("PATCH", f"/tenants/{b['id']}"),
        ("GET", f"/tenants/{b['id']}/seats"),
        ("POST", f"/tenants/{b['id']}/seats"),
        ("DELETE", f"/tenants/{b['id']}/seats/u1"),
    ]:
        response = admin_a.request(method, path, json={"name": "x", "user_id": "u1"})
        assert response.status_code == 404, (method, path, response.text)
        assert response.headers["Content-Type"] == PROBLEM
    # Listing all tenants and lifecycle changes are the platform operator's alone.
    assert admin_a.get("/tenants").status_code == 403
    assert admin_a.post(f"/tenants/{a['id']}/suspend", json={"reason": "x"}).status_code == 403
    assert (
        admin_a.post(
            "/tenants", json={"name": "n", "slug": "zz-z", "plan": "free", "admin_email": "a@b.co"}
        ).status_code
        == 403
    )


def test_roles_inside_a_tenant(tenant_api: Api, tokens: Callable[..., str]) -> None:
    tenant = create(tenant_api, "roles")
    viewer = tenant_api.as_(tokens("viewer@roles.example", tenant["id"], ("viewer",)))
    admin = tenant_api.as_(tokens("admin@roles.example", tenant["id"], ("admin",)))
    assert viewer.get(f"/tenants/{tenant['id']}").status_code == 200
    assert viewer.patch(f"/tenants/{tenant['id']}", json={"name": "New"}).status_code == 403
    assert viewer.post(f"/tenants/{tenant['id']}/seats", json={"user_id": "u1"}).status_code == 403
    renamed = admin.patch(f"/tenants/{tenant['id']}", json={"name": "New name"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "New name"
    # Plans follow billing: a tenant admin cannot change the plan.
    assert admin.patch(f"/tenants/{tenant['id']}", json={"plan": "enterprise"}).status_code == 403
    no_token = tenant_api.as_(None)
    unauthenticated = no_token.get(f"/tenants/{tenant['id']}")
    assert unauthenticated.status_code == 401 and unauthenticated.headers["Content-Type"] == PROBLEM
    forged = tenant_api.as_("not-a-token").get(f"/tenants/{tenant['id']}")
    assert forged.status_code == 401


def test_lifecycle_state_machine_and_409_with_the_current_state(tenant_api: Api) -> None:
    tenant = create(tenant_api, "cycle")
    path = f"/tenants/{tenant['id']}"
    suspended = tenant_api.post(f"{path}/suspend", json={"reason": "unpaid invoice"})
    assert suspended.status_code == 200 and suspended.json()["status"] == "suspended"
    again = tenant_api.post(f"{path}/suspend", json={"reason": "again"})
    assert again.status_code == 409
    assert again.json()["current_status"] == "suspended"
    assert tenant_api.post(f"{path}/reactivate", json={}).json()["status"] == "active"
    deactivated = tenant_api.post(f"{path}/deactivate", json={"reason": "churned"}).json()
    assert deactivated["status"] == "deactivated" and deactivated["retention_until"] is not None
    assert (
        tenant_api.post(f"{path}/deactivate", json={"reason": "x"}).json()["current_status"] == "deactivated"
    )
    assert tenant_api.post(f"{path}/reactivate", json={}).json()["status"] == "active"
    assert tenant_api.get(path).json()["version"] == 5


def test_lifecycle_events_reach_partner_pull_subscriptions(tenant_api: Api, clean: Suite) -> None:
    subscriber = pubsub_v1.SubscriberClient()
    created_sub = subscriber.subscription_path(clean.project, "tenant-created--analytics-query-api")
    deactivated_sub = subscriber.subscription_path(clean.project, "tenant-deactivated--subscription-api")
    response = tenant_api.post(
        "/tenants",
        json={"name": "Partners", "slug": "partners", "plan": "growth", "admin_email": "a@partners.example"},
    )
    assert response.status_code == 201, response.text
    tenant = response.json()
    gone = tenant_api.post(f"/tenants/{tenant['id']}/deactivate", json={"reason": "gone"}).json()

    def received(path: str) -> list[dict[str, Any]]:
        import json

        found = []
        response = subscriber.pull(request={"subscription": path, "max_messages": 50}, timeout=5)
        for message in response.received_messages:
            envelope = json.loads(message.message.data)
            if envelope["tenantid"] == tenant["id"]:
                found.append(envelope)
        if response.received_messages:
            subscriber.acknowledge(
                request={"subscription": path, "ack_ids": [m.ack_id for m in response.received_messages]}
            )
        return found

    created = eventually(lambda: received(created_sub), what="Tenant Created on the partner subscription")
    assert created[0]["type"] == "com.cmp.tenant.created.v1"
    assert created[0]["subject"] == tenant["id"]
    assert created[0]["data"]["slug"] == "partners"
    deactivated = eventually(
        lambda: received(deactivated_sub), what="Tenant Deactivated on Subscription API's"
    )
    assert deactivated[0]["data"]["reason"] == "gone"
    assert deactivated[0]["aggregateversion"] == gone["version"]


def test_update_with_if_match(tenant_api: Api) -> None:
    tenant = create(tenant_api, "etag")
    path = f"/tenants/{tenant['id']}"
    stale = tenant_api.patch(path, json={"name": "A"}, headers={"If-Match": '"7"'})
    assert stale.status_code == 412 and stale.json()["current_version"] == 1
    fresh = tenant_api.patch(path, json={"plan": "enterprise"}, headers={"If-Match": '"1"'})
    assert fresh.status_code == 200
    assert fresh.json()["seat_limit"] == SEAT_LIMITS["enterprise"] and fresh.headers["ETag"] == '"2"'


def test_duplicate_slug_is_a_conflict(tenant_api: Api) -> None:
    create(tenant_api, "dupe")
    response = tenant_api.post(
        "/tenants", json={"name": "Other", "slug": "dupe", "plan": "free", "admin_email": "x@dupe.example"}
    )
    assert response.status_code == 409 and response.json()["type"].endswith("/slug-taken")
    assert len(tenant_api.get("/tenants").json()["items"]) == 1


def test_list_filters_by_status_and_pages_with_cursors(tenant_api: Api) -> None:
    ids = [create(tenant_api, f"page-{i}")["id"] for i in range(5)]
    tenant_api.post(f"/tenants/{ids[0]}/suspend", json={"reason": "r"})
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = tenant_api.get("/tenants", params=params).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    suspended = tenant_api.get("/tenants", params={"status": "suspended"}).json()["items"]
    assert [t["id"] for t in suspended] == [ids[0]]


BAD_INPUT: list[BadRequest] = [
    ("POST", "/tenants", {"name": "", "slug": "ok-slug", "plan": "free", "admin_email": "a@b.co"}, 422),
    ("POST", "/tenants", {"name": "A", "slug": "Bad Slug", "plan": "free", "admin_email": "a@b.co"}, 422),
    (
        "POST",
        "/tenants",
        {"name": "A", "slug": "ok-slug", "plan": "platinum", "admin_email": "a@b.co"},
        422,
    ),
    ("POST", "/tenants", {"name": "A", "slug": "ok-slug", "plan": "free", "admin_email": "nope"}, 422),
    (
        "POST",
        "/tenants",
        {"name": "A", "slug": "ok-slug", "plan": "free", "admin_email": "a@b.co", "x": 1},
        422,
    ),
    ("POST", "/tenants", "not json", 400),
    ("POST", "/tenants", ["a", "list"], 422),
    ("PATCH", "/tenants/{id}", {"plan": "gold"}, 422),
    ("PATCH", "/tenants/{id}", {"name": "x" * 201}, 422),
    ("POST", "/tenants/{id}/suspend", {}, 422),
    ("POST", "/tenants/{id}/suspend", {"reason": ""}, 422),
    ("POST", "/tenants/{id}/seats", {"user_id": "has space"}, 422),
    ("POST", "/tenants/{id}/seats", {"user_id": "u1", "email": "bad"}, 422),
    ("GET", "/tenants?limit=0", None, 422),
    ("GET", "/tenants?limit=abc", None, 422),
    ("GET", "/tenants?status=sleeping", None, 422),
    ("GET", "/tenants?cursor=%%%", None, 400),
    ("GET", "/tenants/t_missing", None, 404),
    ("POST", "/tenants/t_missing/suspend", {"reason": "r"}, 404),
    ("DELETE", "/tenants/{id}/seats/nobody", None, 404),
    ("PUT", "/tenants/{id}", {"name": "x"}, 405),
    ("GET", "/nowhere", None, 404),
]


@pytest.mark.usefixtures("paused_sealing")
def test_bad_input_gets_a_problem_and_changes_nothing(
    tenant_api: Api, db: Any, subtests: pytest.Subtests
) -> None:
    tenant = create(tenant_api, "strict")

    def request(method: str, path: str, body: Any) -> requests.Response:
        return send(tenant_api, method, path.replace("{id}", tenant["id"]), body)

    bad_requests_change_nothing(db, subtests, BAD_INPUT, request, tenant_id=tenant["id"])
    assert [t["id"] for t in tenant_api.get("/tenants").json()["items"]] == [tenant["id"]]


def test_seats_assign_idempotently_release_and_list(tenant_api: Api) -> None:
    tenant = create(tenant_api, "seats", plan="free")
    seats = f"/tenants/{tenant['id']}/seats"
    first = tenant_api.post(seats, json={"user_id": "u1", "email": "u1@seats.example"})
    assert first.status_code == 201
    assert tenant_api.post(seats, json={"user_id": "u1"}).status_code == 200
    assert tenant_api.get(f"/tenants/{tenant['id']}").json()["seats_used"] == 1
    assert [s["user_id"] for s in tenant_api.get(seats).json()["items"]] == ["u1"]
    assert tenant_api.delete(f"{seats}/u1").status_code == 204
    assert tenant_api.delete(f"{seats}/u1").status_code == 404
    assert tenant_api.get(f"/tenants/{tenant['id']}").json()["seats_used"] == 0


def test_the_seat_limit_holds_under_concurrent_assignment(tenant_api: Api) -> None:
    tenant = create(tenant_api, "rush", plan="free")
    limit = SEAT_LIMITS["free"]
    seats = f"/tenants/{tenant['id']}/seats"

    def assign(i: int) -> int:
        return tenant_api.as_(tenant_api.token).post(seats, json={"user_id": f"user-{i}"}).status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(assign, range(4 * limit)))
    assert statuses.count(201) == limit
    assert statuses.count(409) == 3 * limit
    assert tenant_api.get(f"/tenants/{tenant['id']}").json()["seats_used"] == limit
    assert len(tenant_api.get(seats).json()["items"]) == limit
