"""Hostile but plausible requests on the running suite: each is a 4xx problem, and the function (and its
connection to Firestore) keeps serving. tests/unit/test_openapi.py drives the same classes in-process
over every route of every API; these check them end to end, against the real emulators."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from emulators.suite import Suite
from tests.conftest import Api, store_tenant

PROBLEM = "application/problem+json"


def test_a_ten_thousand_character_id_is_a_404_and_the_next_request_is_served(
    tenant_api: Api, operator: str
) -> None:
    tenant = store_tenant(f"long-{uuid.uuid4().hex[:8]}")
    for hostile in ("x" * 10_000, "__reserved__", ".."):
        response = tenant_api.get(f"/tenants/{hostile}")
        assert response.status_code == 404, response.text
        assert response.headers["Content-Type"] == PROBLEM
    assert tenant_api.get(f"/tenants/{tenant['id']}").status_code == 200
    cursor = tenant_api.get("/tenants", params={"cursor": "W1siYSJdLCAiX19uYW1lX18iXQ"})
    assert cursor.status_code == 400, cursor.text


def test_json_nested_thousands_of_levels_is_a_400(tenant_api: Api, operator: str) -> None:
    tenant = store_tenant(f"deep-{uuid.uuid4().hex[:8]}")
    deep = '{"name": ' + "[" * 5000 + "]" * 5000 + "}"
    response = tenant_api.patch(
        f"/tenants/{tenant['id']}", data=deep, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"] == PROBLEM


def test_a_boolean_or_timestamp_of_the_wrong_json_type_is_a_422(tenant_api: Api, operator: str) -> None:
    tenant = store_tenant(f"strict-{uuid.uuid4().hex[:8]}")
    response = tenant_api.patch(f"/tenants/{tenant['id']}", json={"name": 42})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["pointer"] == "#/name"


def test_a_body_on_a_route_that_takes_none_is_a_400_and_changes_nothing(
    tenant_api: Api, operator: str
) -> None:
    tenant = store_tenant(f"nobody-{uuid.uuid4().hex[:8]}")
    refused = tenant_api.post(
        f"/tenants/{tenant['id']}/reactivate", data="{not json", headers={"Content-Type": "application/json"}
    )
    assert refused.status_code == 400, refused.text
    assert tenant_api.get(f"/tenants/{tenant['id']}").json()["version"] == tenant["version"]


def test_rotating_or_deleting_an_endpoint_after_its_secrets_were_erased_works(
    clean: Suite, tokens: Callable[..., str], receiver: Any
) -> None:
    tenant = store_tenant(f"erased-{uuid.uuid4().hex[:8]}")
    admin = tokens(f"admin@{tenant['slug']}.example", tenant["id"], ("admin",))
    operator = tokens("operator@platform.test", operator=True)
    base = clean.function_url("integration_api") + f"/tenants/{tenant['id']}/webhooks"
    hooks, ops = Api(base, admin), Api(base, operator)
    created = hooks.post("/endpoints", json={"url": receiver.url, "event_types": ["Contact Created"]})
    assert created.status_code == 201, created.text
    endpoint = created.json()["id"]

    assert ops.post("/erase-secrets").status_code == 200
    assert ops.post("/erase-secrets").status_code == 200  # again: every secret is already gone

    rotated = hooks.post(f"/endpoints/{endpoint}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    assert ops.post("/erase-secrets").status_code == 200
    assert hooks.delete(f"/endpoints/{endpoint}").status_code == 204
