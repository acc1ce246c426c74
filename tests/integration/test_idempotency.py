"""Idempotency-Key through the running Tenant API over HTTP (Firestore emulator, Auth emulator tokens)."""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from google.cloud import firestore

from shared.idempotency import COLLECTION
from shared.problems import CONTENT_TYPE as PROBLEM_TYPE
from shared.problems import PROBLEM_BASE
from tests.conftest import Api


def new_tenant(slug: str | None = None) -> dict[str, Any]:
    return {
        "name": "Acme",
        "slug": slug or f"acme-{uuid.uuid4().hex[:8]}",
        "plan": "starter",
        "admin_email": "admin@acme.example",
    }


def key() -> dict[str, str]:
    return {"Idempotency-Key": f"test-{uuid.uuid4()}"}


def all_tenants(api: Api) -> list[dict[str, Any]]:
    response = api.get("/tenants")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def assert_problem(response: requests.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith(PROBLEM_TYPE)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"] == f"{PROBLEM_BASE}/{kind}"
    return body


def test_a_repeated_post_replays_the_first_answer_and_creates_one_tenant(tenant_api: Api) -> None:
    headers = key()
    body = new_tenant()

    first = tenant_api.post("/tenants", json=body, headers=headers)
    second = tenant_api.post("/tenants", json=body, headers=headers)

    assert first.status_code == second.status_code == 201, (first.text, second.text)
    assert second.json() == first.json()
    assert second.content == first.content
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.headers["Location"] == first.headers["Location"] == f"/tenants/{first.json()['id']}"
    assert second.headers["ETag"] == first.headers["ETag"]
    assert second.headers["Content-Type"].startswith("application/json")

    tenants = all_tenants(tenant_api)
    assert [t["id"] for t in tenants] == [first.json()["id"]]


def test_the_same_key_with_a_different_body_is_refused(tenant_api: Api) -> None:
    headers = key()
    first = tenant_api.post("/tenants", json=new_tenant(), headers=headers)
    assert first.status_code == 201, first.text

    reused = tenant_api.post("/tenants", json=new_tenant(), headers=headers)

    problem = assert_problem(reused, 422, "idempotency-key-reused")
    assert problem["title"] == "Idempotency-Key reused"
    assert "Idempotent-Replayed" not in reused.headers
    assert [t["id"] for t in all_tenants(tenant_api)] == [first.json()["id"]]


def test_without_a_key_a_repeated_post_is_a_new_request(tenant_api: Api) -> None:
    body = new_tenant()
    assert tenant_api.post("/tenants", json=body).status_code == 201
    again = tenant_api.post("/tenants", json=body)
    assert_problem(again, 409, "slug-taken")
    assert "Idempotent-Replayed" not in again.headers


def test_a_validation_failure_is_stored_and_replayed(tenant_api: Api, db: firestore.Client) -> None:
    headers = key()
    invalid = {**new_tenant(), "plan": "platinum", "slug": "-bad-"}

    first = tenant_api.post("/tenants", json=invalid, headers=headers)
    second = tenant_api.post("/tenants", json=invalid, headers=headers)

    problem = assert_problem(first, 422, "validation-error")
    assert {error["pointer"] for error in problem["errors"]} == {"#/plan", "#/slug"}
    assert_problem(second, 422, "validation-error")
    assert second.json() == problem
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Idempotent-Replayed"] == "true"

    (stored,) = [snapshot.to_dict() or {} for snapshot in db.collection(COLLECTION).stream()]
    assert stored["state"] == "done"
    assert stored["status"] == 422
    assert json.loads(stored["body"]) == problem
    assert all_tenants(tenant_api) == []


def test_keys_are_scoped_to_the_caller(tenant_api: Api, tokens: Any) -> None:
    headers = key()
    first = tenant_api.post("/tenants", json=new_tenant(), headers=headers)
    assert first.status_code == 201, first.text

    # Another operator reusing the same key string is another request, not a replay of someone else's.
    other = tenant_api.as_(tokens("other-operator@platform.test", operator=True))
    second = other.post("/tenants", json=new_tenant(), headers=headers)
    assert second.status_code == 201, second.text
    assert "Idempotent-Replayed" not in second.headers
    assert second.json()["id"] != first.json()["id"]
    assert len(all_tenants(tenant_api)) == 2


def test_racing_requests_with_one_key_create_one_tenant(tenant_api: Api) -> None:
    headers = key()
    body = new_tenant()
    racers = 6
    start = threading.Barrier(racers)

    def post(_: int) -> requests.Response:
        start.wait(timeout=30)
        return tenant_api.as_(tenant_api.token).post("/tenants", json=body, headers=headers)

    with ThreadPoolExecutor(max_workers=racers) as pool:
        responses = list(pool.map(post, range(racers)))

    # Whatever the timing: one request ran; the others replayed it (201) or were told to retry (409).
    ran = [r for r in responses if r.status_code == 201 and "Idempotent-Replayed" not in r.headers]
    replayed = [r for r in responses if r.status_code == 201 and "Idempotent-Replayed" in r.headers]
    in_use = [r for r in responses if r.status_code == 409]
    assert len(ran) == 1, [(r.status_code, r.text) for r in responses]
    assert len(ran) + len(replayed) + len(in_use) == racers, [(r.status_code, r.text) for r in responses]
    assert all(r.json() == ran[0].json() for r in replayed)
    for response in in_use:
        assert_problem(response, 409, "idempotency-key-in-use")
        assert response.headers["Retry-After"] == "1"
    assert [t["id"] for t in all_tenants(tenant_api)] == [ran[0].json()["id"]]
