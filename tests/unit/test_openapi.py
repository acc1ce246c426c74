"""The published HTTP contracts, and hostile input on every route of every API.

The routers are the APIs' own (built with no client: any datastore use fails the test), so a route added
later is covered without editing this file. Each request is driven in-process through the HTTP kernel
with a platform operator's principal, which holds every permission.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import flask
import pytest
from openapi_spec_validator import validate
from pydantic import BaseModel, TypeAdapter, ValidationError

from functions.customer_data_api import domain as customer_domain
from functions.user_management_api import domain as user_domain
from shared.authz import PUBLIC, Principal
from shared.catalog import schemas_dir
from shared.contracts import json_text
from shared.contracts.openapi import document, render, routers
from shared.http import HttpApp, Reply, RequestContext, Route, Router, Upload
from shared.idempotency import IdempotencyStore

FLASK = flask.Flask(__name__)
ROUTERS = routers()
ROUTES = [(api, route) for api, router in sorted(ROUTERS.items()) for route in router.routes]
DEEP = "[" * 5000 + "]" * 5000
HOSTILE_IDS = ["..", ".", "__reserved__", "x" * 10_000, "a b", "a\\b"]


class Operator:
    def authenticate(self, headers: Mapping[str, str], access_checks_revocation: bool = False) -> Principal:
        return Principal(uid="op-1", tenant_id=None, is_operator=True)


def no_idempotency() -> IdempotencyStore:
    raise AssertionError("the idempotency store must not be reached by a refused request")


APPS = {api: HttpApp(router, Operator, no_idempotency) for api, router in ROUTERS.items()}


def case_id(case: tuple[str, Route]) -> str:
    api, route = case
    return f"{api}:{route.method}:{route.template}"


def concrete(route: Route, **values: str) -> str:
    return re.sub(r"\{([a-z_]+)\}", lambda m: values.get(m.group(1), "t-1"), route.template)


def call(api: str, method: str, path: str, data: bytes | str | None = None, **kw: Any) -> flask.Response:
    headers = {"Content-Type": "application/json"} if data is not None else {}
    with FLASK.test_request_context(path, method=method, data=data, headers=headers, **kw):
        return APPS[api].handle(flask.request)


def problem(response: flask.Response, *statuses: int) -> dict[str, Any]:
    assert response.status_code in statuses, response.get_data(as_text=True)[:500]
    assert response.content_type == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    return body


# --- the documents --------------------------------------------------------------------------------------


@pytest.mark.parametrize("api", sorted(ROUTERS))
def test_each_api_document_is_valid_openapi_3_1_and_checked_in(api: str) -> None:
    doc = document(ROUTERS[api])
    validate(doc)
    path = schemas_dir() / "openapi" / f"{api}.json"
    assert path.read_text(encoding="utf-8") == render(doc), f"{path} drifted: run `make schemas`"


@pytest.mark.parametrize("api", sorted(ROUTERS))
def test_each_function_serves_its_document_to_anyone(api: str) -> None:
    response = call(api, "GET", "/openapi.json")
    assert response.status_code == 200
    assert response.get_json() == json.loads(render(document(ROUTERS[api])))


@pytest.mark.parametrize("case", ROUTES, ids=case_id)
def test_every_route_is_documented_with_its_permission_and_declarations(case: tuple[str, Route]) -> None:
    api, route = case
    op = document(ROUTERS[api])["paths"][route.template][route.method.lower()]
    assert op["x-permission"] == route.permission
    assert op["security"] == ([] if route.permission == PUBLIC else [{"bearer": []}])
    assert {str(s) for s in route.status} <= set(op["responses"])
    assert ("requestBody" in op) == (route.body is not None)
    names = {p.get("name") for p in op.get("parameters", [])}
    assert set(route.params) <= names
    if route.query is not None:
        assert set(route.query.model_fields) <= names


# --- hostile input, refused by the kernel before any handler or datastore call ---------------------------


@pytest.mark.parametrize("case", [c for c in ROUTES if c[1].params], ids=case_id)
@pytest.mark.parametrize("hostile", HOSTILE_IDS, ids=["dotdot", "dot", "reserved", "long", "space", "bslash"])
def test_a_path_id_that_is_not_an_id_is_a_404(case: tuple[str, Route], hostile: str) -> None:
    api, route = case
    for param in route.params:
        problem(call(api, route.method, concrete(route, **{param: hostile})), 404)


@pytest.mark.parametrize("case", [c for c in ROUTES if isinstance(c[1].body, type)], ids=case_id)
@pytest.mark.parametrize("body", [DEEP, json.dumps(json.loads("[" * 17 + "]" * 17))], ids=["5000", "17"])
def test_json_nested_too_deep_is_a_400_on_every_json_body_route(case: tuple[str, Route], body: str) -> None:
    api, route = case
    found = problem(call(api, route.method, concrete(route), body), 400)
    assert "nested" in found["detail"]


@pytest.mark.parametrize(
    "case", [c for c in ROUTES if c[1].body is None and c[1].method != "GET"], ids=case_id
)
@pytest.mark.parametrize("body", ['{"unexpected": true}', '{"broken', DEEP], ids=["object", "broken", "deep"])
def test_a_route_that_takes_no_body_refuses_one(case: tuple[str, Route], body: str) -> None:
    api, route = case
    problem(call(api, route.method, concrete(route), body), 400)


def _cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


HOSTILE_CURSORS = {
    "not-base64-json": "!!!",
    "deep": _cursor(json.loads("[" * 900 + "]" * 900)),
    "reserved-id": _cursor(["a", "__name__"]),
    "dotdot-id": _cursor(["a", ".."]),
    "long-id": _cursor(["a", "x" * 1000]),
    "slash-id": _cursor(["a", "a/b"]),
    "object-value": _cursor([{"a": 1}, "id-1"]),
    "too-long": "A" * 3000,
}


@pytest.mark.parametrize(
    "case",
    [c for c in ROUTES if c[1].query is not None and "cursor" in c[1].query.model_fields],
    ids=case_id,
)
@pytest.mark.parametrize("cursor", sorted(HOSTILE_CURSORS))
def test_a_forged_cursor_is_refused_before_any_query(case: tuple[str, Route], cursor: str) -> None:
    api, route = case
    path = concrete(route)
    response = call(api, route.method, path, query_string={"cursor": HOSTILE_CURSORS[cursor]})
    found = problem(response, 400, 422)  # 422: longer than a cursor can be
    assert "cursor" in json.dumps(found)


def test_a_string_that_is_not_text_is_a_400_on_every_json_body_route() -> None:
    for api, route in [c for c in ROUTES if isinstance(c[1].body, type)]:
        found = problem(call(api, route.method, concrete(route), '{"name": "\\ud800"}'), 400)
        assert "surrogate" in found["detail"], (api, route.template)


def test_json_text_bounds_depth_without_recursion() -> None:
    assert json_text.depth(json_text.loads('[[1, {"a": []}]]')) == 4
    with pytest.raises(json_text.JsonTooDeep):
        json_text.loads(DEEP)
    with pytest.raises(ValueError, match="nested"):
        json_text.loads("[" * 17 + "]" * 17)


def test_ndjson_imports_read_a_deeply_nested_row_as_an_invalid_row() -> None:
    text = '{"name": "ok"}\n' + DEEP + "\n"
    rows = list(customer_domain.read_rows(text, "ndjson"))
    assert rows[1] == (2, "invalid row: not a JSON object")
    parsed = user_domain.parse_ndjson(DEEP + "\n", grantor=_grantor())
    assert parsed[0].status == "failed"


def _grantor() -> Any:
    return user_domain.Grantor(uid="op-1", roles=frozenset({"owner"}), is_operator=True)


def test_upload_routes_name_their_media_types() -> None:
    uploads = [route for _, route in ROUTES if isinstance(route.body, Upload)]
    assert uploads, "the import and provider-report routes declare their uploads"
    for route in uploads:
        assert isinstance(route.body, Upload)
        assert route.body.media_types


class Answer(BaseModel):
    id: str
    count: int


def test_answers_are_produced_from_the_declared_response_model() -> None:
    router = Router("test-api")
    answers: dict[str, Any] = {"body": {"id": "a-1", "count": 2, "internal": "not documented"}}

    @router.get("/things/{thing_id}", permission="tenants:read", response=Answer)
    def get_thing(ctx: RequestContext) -> Reply:
        return Reply(answers["body"])

    app = HttpApp(router, Operator, no_idempotency)
    with FLASK.test_request_context("/things/a-1", method="GET"):
        response = app.handle(flask.request)
    assert response.get_json() == {"id": "a-1", "count": 2}  # what the document says, and no more

    answers["body"] = {"id": "a-1"}  # a handler that breaks its contract is a bug, not an answer
    with FLASK.test_request_context("/things/a-1", method="GET"):
        problem(app.handle(flask.request), 500)


@pytest.mark.parametrize("api", sorted(ROUTERS))
def test_each_document_lists_the_problem_types_of_its_api_and_the_kernel(api: str) -> None:
    types = document(ROUTERS[api])["components"]["schemas"]["Problem"]["x-problem-types"]
    for kind in ("validation-error", "not-found", "bad-request", "unexpected-body", "forbidden"):
        assert f"https://problems.cmp.example/{kind}" in types


class Toggle(BaseModel):
    enabled: bool
    at: datetime
    count: int = 0


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"enabled": "yes", "at": "2026-01-01T00:00:00Z"}, "#/enabled"),
        ({"enabled": 1, "at": "2026-01-01T00:00:00Z"}, "#/enabled"),
        ({"enabled": True, "at": 1767225600}, "#/at"),
        ({"enabled": True, "at": "2026-01-01T00:00:00Z", "count": "3"}, "#/count"),
    ],
)
def test_request_bodies_are_validated_strictly(body: dict[str, Any], pointer: str) -> None:
    router = Router("test-api")

    @router.post("/toggles", permission="tenants:read", body=Toggle)
    def toggle(ctx: RequestContext) -> Reply:
        return Reply(ctx.body())

    app = HttpApp(router, Operator, no_idempotency)
    with FLASK.test_request_context("/toggles", method="POST", json=body):
        found = problem(app.handle(flask.request), 422)
    assert [error["pointer"] for error in found["errors"]] == [pointer]
    good = {"enabled": True, "at": "2026-01-01T00:00:00Z", "count": 3}
    with FLASK.test_request_context("/toggles", method="POST", json=good):
        assert app.handle(flask.request).get_json()["enabled"] is True


@pytest.mark.parametrize(
    "details", [{"a": [[1]]}, {"__name__": 1}, {"": 1}], ids=["nested-array", "reserved", "empty"]
)
def test_free_form_json_that_firestore_cannot_store_is_refused(details: dict[str, Any]) -> None:
    adapter = TypeAdapter(json_text.StorableMap)
    with pytest.raises(ValidationError, match="cannot be stored"):
        adapter.validate_python(details)
    assert adapter.validate_python({"a": [{"b": [1, {"c": [2]}]}]}) == {"a": [{"b": [1, {"c": [2]}]}]}
