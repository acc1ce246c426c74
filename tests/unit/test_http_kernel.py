"""The HTTP kernel (shared.http) driven in-process, plus the small kernel pieces it relies on.

A Router is built here with a few routes; the Authenticator is a fake that reads "Bearer role:tenant"
tokens ("Bearer operator:" for a platform operator); no Google client is involved.
"""

from __future__ import annotations

import base64
import json
import logging
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import flask
import pytest
from pydantic import BaseModel, ConfigDict, Field

from shared import logs
from shared.auth import ServiceAuthenticator, bearer_token, principal_from_claims, sign_local_service_token
from shared.authz import Principal
from shared.config import Settings
from shared.http import HttpApp, Reply, RequestContext, Router
from shared.idempotency import AnsweredOnce, IdempotencyStore, StoredReply, without_secrets
from shared.pagination import decode_cursor, encode_cursor
from shared.problems import CONTENT_TYPE as PROBLEM_TYPE
from shared.problems import PROBLEM_BASE, Problem, unauthenticated

FLASK = flask.Flask(__name__)
SECRET_TEXT = "db-password=hunter2"


# --------------------------------------------------------------------------------------------------------
# Fakes of our own abstractions
# --------------------------------------------------------------------------------------------------------


class FakeAuthenticator:
    """`Authorization: Bearer <role>:<tenant>`; the role "operator" makes a platform operator."""

    def authenticate(
        self, headers: Mapping[str, str], *, access_checks_revocation: bool = False
    ) -> Principal:
        token = bearer_token(headers)
        if token is None or ":" not in token:
            raise unauthenticated()
        role, _, tenant = token.partition(":")
        if role == "operator":
            return Principal(uid="op-1", tenant_id=None, is_operator=True)
        if not tenant:
            raise unauthenticated("The bearer token is not valid.")
        return Principal(uid=f"{role}@{tenant}", tenant_id=tenant, roles=frozenset({role}))


def no_idempotency() -> IdempotencyStore:
    raise AssertionError("the idempotency store must not be used by this request")


class MemoryIdempotency(IdempotencyStore):
    """In-memory stand-in for the Firestore store: same claim/complete contract, no replay lock."""

    def __init__(self) -> None:
        self.claims: dict[tuple[str, str], tuple[str, StoredReply | None]] = {}
        self.owners: dict[tuple[str, str], str | None] = {}

    def claim(
        self, scope: str, key: str, fingerprint: str, tenant_id: str | None = None
    ) -> StoredReply | None:
        self.owners[(scope, key)] = tenant_id
        existing = self.claims.get((scope, key))
        if existing is None:
            self.claims[(scope, key)] = (fingerprint, None)
            return None
        if existing[0] != fingerprint:
            raise Problem(422, "idempotency-key-reused", "different request")
        return existing[1]

    def complete(self, scope: str, key: str, reply: StoredReply) -> None:
        fingerprint, _ = self.claims[(scope, key)]
        if reply.status >= 500:
            del self.claims[(scope, key)]
        else:
            self.claims[(scope, key)] = (fingerprint, reply)


class Address(BaseModel):
    model_config = ConfigDict(extra="forbid")
    city: str = Field(min_length=1)
    zip: str = Field(pattern=r"^[0-9]{5}$")


class Widget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    count: int = Field(ge=0)
    address: Address | None = None
    labels: dict[str, int] = Field(default_factory=dict)


class Calls:
    def __init__(self) -> None:
        self.names: list[str] = []


def build_router(calls: Calls) -> Router:
    router = Router("test-api")

    @router.get("/tenants/{tenant_id}", permission="tenants:read")
    def read(ctx: RequestContext) -> Reply:
        calls.names.append("read")
        return Reply({"tenant": ctx.tenant_id, "uid": ctx.principal.uid})

    @router.patch("/tenants/{tenant_id}", permission="tenants:update", body=Widget)
    def update(ctx: RequestContext) -> Reply:
        calls.names.append("update")
        return Reply(ctx.body(Widget))

    @router.post("/tenants/{tenant_id}/widgets", permission="tenants:update", body=Widget, status=201)
    def create_widget(ctx: RequestContext) -> Reply:
        calls.names.append("create_widget")
        widget = ctx.body(Widget)
        return Reply({"n": len(calls.names), **widget.model_dump()}, status=201, headers={"X-N": "1"})

    @router.post("/tenants/{tenant_id}/boom", permission="tenants:read")
    def boom(ctx: RequestContext) -> Reply:
        calls.names.append("boom")
        raise RuntimeError(f"cannot reach the database with {SECRET_TEXT}")

    @router.post("/tenants/{tenant_id}/throttled", permission="tenants:update")
    def throttled(ctx: RequestContext) -> Reply:
        calls.names.append("throttled")
        raise Problem(429, "too-many-requests", "Slow down.", headers={"Retry-After": "30"})

    @router.post("/tenants", permission="tenants:create")
    def create_tenant(ctx: RequestContext) -> Reply:
        calls.names.append("create_tenant")
        return Reply({"ok": True}, status=201)

    return router


@pytest.fixture(autouse=True)
def _reset_log_context() -> Iterator[None]:
    yield
    logs.trace_id.set(None)
    logs.span_id.set(None)
    logs.tenant_id.set(None)


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def app(calls: Calls) -> HttpApp:
    return HttpApp(build_router(calls), FakeAuthenticator, no_idempotency)


def call(
    app: HttpApp,
    method: str,
    path: str,
    token: str | None = None,
    body: Any = None,
    data: bytes | str | None = None,
    content_type: str | None = None,
    headers: dict[str, str] | None = None,
) -> flask.Response:
    all_headers = dict(headers or {})
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    if body is not None:
        data = json.dumps(body)
        content_type = content_type or "application/json"
    with FLASK.test_request_context(
        path, method=method, headers=all_headers, data=data, content_type=content_type
    ) as ctx:
        return app.handle(ctx.request)


def problem(response: flask.Response, status: int) -> dict[str, Any]:
    """Assert the response is an RFC 9457 problem with `status`; return its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_TYPE
    body: dict[str, Any] = json.loads(response.get_data())
    assert {"type", "title", "status", "detail", "instance"} <= set(body)
    assert body["status"] == status
    assert body["type"].startswith(PROBLEM_BASE + "/")
    assert body["title"]
    assert body["detail"]
    return body


# --------------------------------------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------------------------------------


def test_unknown_path_is_a_404_problem_with_every_rfc9457_field(app: HttpApp, calls: Calls) -> None:
    response = call(app, "GET", "/nowhere/at-all", token="admin:t-a")
    body = problem(response, 404)
    assert body["type"] == f"{PROBLEM_BASE}/not-found"
    assert body["instance"] == "/nowhere/at-all"
    assert calls.names == []


def test_known_path_with_a_wrong_method_is_a_405_with_allow(app: HttpApp, calls: Calls) -> None:
    response = call(app, "DELETE", "/tenants/t-a", token="admin:t-a")
    problem(response, 405)
    assert response.headers["Allow"] == "GET, PATCH"
    assert calls.names == []


def test_a_trailing_slash_matches_the_same_route(app: HttpApp, calls: Calls) -> None:
    response = call(app, "GET", "/tenants/t-a/", token="viewer:t-a")
    assert response.status_code == 200
    assert response.get_json() == {"tenant": "t-a", "uid": "viewer@t-a"}


# --------------------------------------------------------------------------------------------------------
# Authentication, tenant isolation, permissions
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-authorization"),
        pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, id="not-bearer"),
        pytest.param({"Authorization": "Bearer "}, id="empty-bearer"),
        pytest.param({"Authorization": "Bearer garbage"}, id="invalid-token"),
    ],
)
def test_missing_or_invalid_token_is_a_401_with_www_authenticate(
    app: HttpApp, calls: Calls, headers: dict[str, str]
) -> None:
    response = call(app, "GET", "/tenants/t-a", headers=headers)
    body = problem(response, 401)
    assert body["type"] == f"{PROBLEM_BASE}/unauthenticated"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert calls.names == []


def test_a_principal_of_another_tenant_gets_404_and_the_handler_never_runs(
    app: HttpApp, calls: Calls
) -> None:
    response = call(app, "GET", "/tenants/t-b", token="owner:t-a")
    body = problem(response, 404)
    assert "t-b" in body["detail"]
    # Same answer as a tenant that does not exist: ids of other tenants cannot be probed.
    assert body["type"] == f"{PROBLEM_BASE}/not-found"
    assert calls.names == []


def test_tenant_isolation_is_checked_before_the_permission(app: HttpApp, calls: Calls) -> None:
    # A viewer lacks tenants:update, but on another tenant the answer must still be 404, not 403.
    response = call(app, "PATCH", "/tenants/t-b", token="viewer:t-a", body={"name": "x", "count": 1})
    problem(response, 404)
    assert calls.names == []


def test_missing_permission_is_a_403_and_the_handler_never_runs(app: HttpApp, calls: Calls) -> None:
    response = call(app, "PATCH", "/tenants/t-a", token="viewer:t-a", body={"name": "x", "count": 1})
    body = problem(response, 403)
    assert "tenants:update" in body["detail"]
    assert calls.names == []


def test_platform_permission_is_refused_to_a_tenant_owner(app: HttpApp, calls: Calls) -> None:
    problem(call(app, "POST", "/tenants", token="owner:t-a", body={}), 403)
    assert calls.names == []


def test_an_operator_passes_any_tenant(app: HttpApp, calls: Calls) -> None:
    for tenant in ("t-a", "t-b"):
        response = call(app, "GET", f"/tenants/{tenant}", token="operator:")
        assert response.status_code == 200
        assert response.get_json() == {"tenant": tenant, "uid": "op-1"}
    assert calls.names == ["read", "read"]


def test_a_member_of_the_tenant_with_the_permission_reaches_the_handler(app: HttpApp, calls: Calls) -> None:
    response = call(app, "PATCH", "/tenants/t-a", token="admin:t-a", body={"name": "w", "count": 2})
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == {"name": "w", "count": 2, "address": None, "labels": {}}
    assert calls.names == ["update"]


# --------------------------------------------------------------------------------------------------------
# Request bodies
# --------------------------------------------------------------------------------------------------------


def test_body_validation_is_a_422_with_json_pointers(app: HttpApp) -> None:
    response = call(
        app,
        "PATCH",
        "/tenants/t-a",
        token="admin:t-a",
        body={"name": "", "count": -1, "address": {"city": "Lyon", "zip": "6900"}, "colour": "red"},
    )
    body = problem(response, 422)
    assert body["type"] == f"{PROBLEM_BASE}/validation-error"
    errors = body["errors"]
    pointers = {error["pointer"] for error in errors}
    assert pointers == {"#/name", "#/count", "#/address/zip", "#/colour"}
    assert all(error["in"] == "body" and error["detail"] and error["type"] for error in errors)
    by_pointer = {error["pointer"]: error for error in errors}
    assert by_pointer["#/colour"]["type"] == "extra_forbidden"
    assert by_pointer["#/count"]["type"] == "greater_than_equal"


def test_json_pointers_escape_slash_and_tilde_in_keys(app: HttpApp) -> None:
    # RFC 6901: "~" is written "~0" and "/" is written "~1" inside a reference token.
    response = call(
        app,
        "PATCH",
        "/tenants/t-a",
        token="admin:t-a",
        body={"name": "n", "count": 1, "labels": {"a/b~c": "x"}},
    )
    body = problem(response, 422)
    assert [error["pointer"] for error in body["errors"]] == ["#/labels/a~1b~0c"]


def test_a_non_object_body_points_at_the_document_root(app: HttpApp) -> None:
    body = problem(call(app, "PATCH", "/tenants/t-a", token="admin:t-a", body=[1, 2]), 422)
    assert [error["pointer"] for error in body["errors"]] == ["#"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_that_is_not_json_is_a_415(app: HttpApp, calls: Calls, content_type: str | None) -> None:
    response = call(
        app,
        "PATCH",
        "/tenants/t-a",
        token="admin:t-a",
        data='{"name": "x", "count": 1}',
        content_type=content_type,
    )
    problem(response, 415)
    assert calls.names == []  # refused before the handler ran


def test_malformed_json_is_a_400(app: HttpApp) -> None:
    response = call(
        app, "PATCH", "/tenants/t-a", token="admin:t-a", data='{"name": "x",', content_type="application/json"
    )
    body = problem(response, 400)
    assert body["type"] == f"{PROBLEM_BASE}/bad-request"


def test_a_json_content_type_with_parameters_is_accepted(app: HttpApp) -> None:
    response = call(
        app,
        "PATCH",
        "/tenants/t-a",
        token="admin:t-a",
        data='{"name": "x", "count": 1}',
        content_type="application/json; charset=utf-8",
    )
    assert response.status_code == 200


# --------------------------------------------------------------------------------------------------------
# Unhandled errors
# --------------------------------------------------------------------------------------------------------


def test_an_exception_in_a_handler_is_a_500_problem_without_internals(
    app: HttpApp, calls: Calls, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="shared.http"):
        response = call(app, "POST", "/tenants/t-a/boom", token="admin:t-a", body={})
    body = problem(response, 500)
    assert body["type"] == f"{PROBLEM_BASE}/internal"
    text = response.get_data(as_text=True)
    for leak in ("Traceback", "RuntimeError", SECRET_TEXT, "hunter2", "File ", "line "):
        assert leak not in text
    assert calls.names == ["boom"]
    # ... but it is logged, with the stack, for the operators.
    assert any(record.exc_info and record.exc_info[0] is RuntimeError for record in caplog.records)


def test_the_trace_header_of_the_request_is_bound_for_the_logs(app: HttpApp) -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    call(
        app,
        "GET",
        "/tenants/t-a",
        token="admin:t-a",
        headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"},
    )
    assert logs.trace_id.get() == trace
    assert logs.tenant_id.get() == "t-a"


# --------------------------------------------------------------------------------------------------------
# Router registration and Idempotency-Key wiring
# --------------------------------------------------------------------------------------------------------


def test_router_refuses_a_route_with_an_unknown_permission() -> None:
    router = Router("test-api")
    with pytest.raises(ValueError, match="unknown permission 'widgets:explode'"):
        router.post("/widgets", permission="widgets:explode")
    assert router.routes == []


def test_idempotency_key_replays_the_stored_reply_without_running_the_handler_again(calls: Calls) -> None:
    store = MemoryIdempotency()
    app = HttpApp(build_router(calls), FakeAuthenticator, lambda: store)
    payload = {"name": "w", "count": 1}
    key = {"Idempotency-Key": "key-1"}

    first = call(app, "POST", "/tenants/t-a/widgets", token="admin:t-a", body=payload, headers=key)
    second = call(app, "POST", "/tenants/t-a/widgets", token="admin:t-a", body=payload, headers=key)

    assert first.status_code == second.status_code == 201
    assert (
        first.get_json()
        == second.get_json()
        == {
            "n": 1,
            "name": "w",
            "count": 1,
            "address": None,
            "labels": {},
        }
    )
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.headers["X-N"] == "1"
    assert second.mimetype == "application/json"
    assert calls.names == ["create_widget"]

    other = call(
        app, "POST", "/tenants/t-a/widgets", token="admin:t-a", body={**payload, "count": 2}, headers=key
    )
    problem(other, 422)
    assert calls.names == ["create_widget"]


def test_a_replayed_problem_keeps_its_headers(calls: Calls) -> None:
    store = MemoryIdempotency()
    app = HttpApp(build_router(calls), FakeAuthenticator, lambda: store)
    key = {"Idempotency-Key": "key-2"}

    first = call(app, "POST", "/tenants/t-a/throttled", token="admin:t-a", body={}, headers=key)
    second = call(app, "POST", "/tenants/t-a/throttled", token="admin:t-a", body={}, headers=key)

    assert problem(first, 429) == problem(second, 429)
    assert first.headers["Retry-After"] == "30"
    assert second.headers["Idempotent-Replayed"] == "true"
    assert calls.names == ["throttled"]
    # A replay is the first answer again: its headers too.
    assert second.headers.get("Retry-After") == "30"


# --------------------------------------------------------------------------------------------------------
# shared.pagination
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC),
        datetime(2026, 3, 1, 9, 30),  # naive
        datetime(2026, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=-5))),
        datetime(2026, 3, 1, 9, 30, tzinfo=UTC).astimezone(),
        "acme",
        42,
        None,
    ],
)
def test_cursor_round_trips(value: Any) -> None:
    cursor = encode_cursor(value, "doc_7")
    assert "=" not in cursor and "/" not in cursor and "+" not in cursor  # URL safe, unpadded
    decoded, doc_id = decode_cursor(cursor)
    assert doc_id == "doc_7"
    assert decoded == value
    assert type(decoded) is type(value)
    if isinstance(value, datetime):
        assert decoded.utcoffset() == value.utcoffset()


def _b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("!!!not-a-cursor!!!", id="not-base64"),
        pytest.param(_b64("{not json"), id="not-json"),
        pytest.param(_b64("[1, 2, 3]"), id="three-items"),
        pytest.param(_b64("[1, 2]"), id="doc-id-not-a-string"),
        pytest.param(_b64('[1, ""]'), id="empty-doc-id"),
        pytest.param(_b64('[1, "tenants/other"]'), id="doc-id-with-slash"),
        pytest.param(_b64("7"), id="scalar"),
        pytest.param(_b64('[{"$t": "not a date"}, "doc_1"]'), id="forged-datetime"),
    ],
)
def test_a_garbage_cursor_is_a_400_problem(cursor: str) -> None:
    with pytest.raises(Problem) as caught:
        decode_cursor(cursor)
    assert caught.value.status == 400
    assert caught.value.kind == "bad-request"


# --------------------------------------------------------------------------------------------------------
# shared.logs
# --------------------------------------------------------------------------------------------------------


def _format(
    message: str, *args: Any, level: int = logging.INFO, exc: bool = False, **extra: Any
) -> dict[str, Any]:
    record = logging.getLogger("cmp.test").makeRecord(
        "cmp.test", level, __file__, 1, message, args, sys.exc_info() if exc else None, extra=extra
    )
    line = logs.CloudLoggingFormatter("demo-proj").format(record)
    assert "\n" not in line  # one JSON object per line
    entry: dict[str, Any] = json.loads(line)
    return entry


def test_log_line_is_json_with_severity_message_trace_and_tenant() -> None:
    logs.bind_trace("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    logs.tenant_id.set("t-a")
    entry = _format("tenant %s created", "acme", level=logging.WARNING, tenant="acme", attempt=2)
    assert entry["severity"] == "WARNING"
    assert entry["message"] == "tenant acme created"
    assert (
        entry["logging.googleapis.com/trace"] == "projects/demo-proj/traces/4bf92f3577b34da6a3ce929d0e0e4736"
    )
    assert entry["logging.googleapis.com/spanId"] == "00f067aa0ba902b7"
    assert entry["tenant_id"] == "t-a"
    assert entry["attempt"] == 2
    datetime.fromisoformat(entry["time"])


def test_log_line_without_trace_has_no_trace_field() -> None:
    logs.bind_trace(None)
    entry = _format("hello")
    assert "logging.googleapis.com/trace" not in entry
    assert "tenant_id" not in entry


def test_log_line_carries_the_stack_trace_of_an_exception() -> None:
    try:
        raise KeyError("missing")
    except KeyError:
        entry = _format("failed", level=logging.ERROR, exc=True)
    assert entry["severity"] == "ERROR"
    assert "KeyError" in entry["stack_trace"]


def test_secrets_in_extra_fields_are_masked() -> None:
    entry = _format(
        "call",
        authorization="Bearer eyJhbGciOi.secret.value",
        id_token="tok-123",
        client_secret="s3cr3t",
        db_password="pw",
        headers={"Authorization": "Bearer abc", "X-Api-Key": "k", "Accept": "application/json"},
        tenant="acme",
    )
    text = json.dumps(entry)
    for leaked in ("eyJhbGciOi", "tok-123", "s3cr3t", "Bearer abc"):
        assert leaked not in text
    assert entry["authorization"] == entry["id_token"] == entry["client_secret"] == "[redacted]"
    assert entry["db_password"] == "[redacted]"
    assert entry["headers"]["Authorization"] == "[redacted]"
    assert entry["headers"]["Accept"] == "application/json"
    assert entry["tenant"] == "acme"


def test_secrets_inside_lists_of_mappings_are_masked() -> None:
    entry = _format("calls", requests=[{"url": "/x", "token": "tok-456"}])
    assert "tok-456" not in json.dumps(entry)
    assert entry["requests"][0]["url"] == "/x"


def test_bind_trace_reads_w3c_traceparent() -> None:
    logs.bind_trace("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    assert logs.trace_id.get() == "0af7651916cd43dd8448eb211c80319c"
    assert logs.span_id.get() == "b7ad6b7169203331"
    assert logs.current_traceparent() == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_bind_trace_reads_x_cloud_trace_context() -> None:
    logs.bind_trace("105445aa7843bc8bf206b12000100000/1;o=1")
    assert logs.trace_id.get() == "105445aa7843bc8bf206b12000100000"
    assert logs.span_id.get() == "1"
    traceparent = logs.current_traceparent()
    assert traceparent is not None and traceparent.startswith("00-105445aa7843bc8bf206b12000100000-")

    logs.bind_trace("105445aa7843bc8bf206b12000100000")
    assert logs.trace_id.get() == "105445aa7843bc8bf206b12000100000"
    assert logs.span_id.get() is None


def test_bind_trace_clears_a_previous_trace() -> None:
    logs.bind_trace("105445aa7843bc8bf206b12000100000/1;o=1")
    logs.bind_trace(None)
    assert logs.trace_id.get() is None
    assert logs.span_id.get() is None
    assert logs.current_traceparent() is None


# --------------------------------------------------------------------------------------------------------
# shared.auth
# --------------------------------------------------------------------------------------------------------


def test_principal_from_claims_of_a_tenant_user() -> None:
    principal = principal_from_claims(
        {"uid": "u-1", "tenant_id": "t-a", "roles": ["admin", "viewer"], "email": "a@acme.example"}
    )
    assert principal == Principal(
        uid="u-1", tenant_id="t-a", roles=frozenset({"admin", "viewer"}), email="a@acme.example"
    )
    assert principal.can("tenants:update")
    assert not principal.can("tenants:create")
    assert principal.may_access_tenant("t-a")
    assert not principal.may_access_tenant("t-b")


def test_principal_from_claims_of_an_operator_and_defaults() -> None:
    operator = principal_from_claims({"sub": "op-1", "platform_operator": True})
    assert operator.uid == "op-1"
    assert operator.is_operator
    assert operator.tenant_id is None
    assert operator.may_access_tenant("anyone")

    # Only the boolean true makes an operator; an empty tenant is no tenant; a non-string email is dropped.
    lookalike = principal_from_claims(
        {"uid": "u-2", "platform_operator": "true", "tenant_id": "", "email": 7}
    )
    assert not lookalike.is_operator
    assert lookalike.tenant_id is None
    assert lookalike.email is None
    assert lookalike.roles == frozenset()
    assert not lookalike.may_access_tenant("")


@pytest.mark.parametrize("roles", ["admin", [1, 2], {"admin": True}])
def test_principal_from_claims_refuses_malformed_roles(roles: Any) -> None:
    with pytest.raises(Problem) as caught:
        principal_from_claims({"uid": "u-1", "roles": roles})
    assert caught.value.status == 401


SIGNING_KEY = "unit-test-signing-key-0123456789abcdef"
PUSH_ACCOUNT = "pubsub-push@demo-cmp.iam.gserviceaccount.com"


def local_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "service_auth": "local",
        "local_signing_key": SIGNING_KEY,
        "service_invokers": (PUSH_ACCOUNT,),
        "service_audience": None,
        **overrides,
    }
    return Settings(**values)


def _service_auth_status(
    settings: Settings, headers: Mapping[str, str], query_token: str | None = None
) -> int | Principal:
    try:
        return ServiceAuthenticator(settings).authenticate(headers, query_token, "http://x/fn?token=t")
    except Problem as problem:
        assert problem.headers.get("WWW-Authenticate") == "Bearer"
        return problem.status


def test_service_authenticator_accepts_a_valid_local_token_in_header_or_query() -> None:
    token = sign_local_service_token(SIGNING_KEY, PUSH_ACCOUNT)
    expected = Principal(uid=PUSH_ACCOUNT, tenant_id=None, email=PUSH_ACCOUNT, is_service=True)
    assert _service_auth_status(local_settings(), {"Authorization": f"Bearer {token}"}) == expected
    assert _service_auth_status(local_settings(), {}, query_token=token) == expected


def test_service_authenticator_refuses_a_token_signed_with_another_key() -> None:
    token = sign_local_service_token("another-key-0123456789abcdef0123", PUSH_ACCOUNT)
    assert _service_auth_status(local_settings(), {"Authorization": f"Bearer {token}"}) == 401


def test_service_authenticator_refuses_an_expired_token() -> None:
    token = sign_local_service_token(SIGNING_KEY, PUSH_ACCOUNT, ttl_seconds=-60)
    assert _service_auth_status(local_settings(), {}, query_token=token) == 401


def test_service_authenticator_refuses_an_account_that_is_not_an_invoker() -> None:
    token = sign_local_service_token(SIGNING_KEY, "intruder@demo-cmp.iam.gserviceaccount.com")
    assert _service_auth_status(local_settings(), {}, query_token=token) == 401


def test_service_authenticator_refuses_a_request_without_token_or_garbage() -> None:
    assert _service_auth_status(local_settings(), {}) == 401
    assert _service_auth_status(local_settings(), {}, query_token="not.a.jwt") == 401


def test_service_authenticator_checks_the_audience_when_one_is_configured() -> None:
    settings = local_settings(service_audience="https://fn.example/events")
    good = sign_local_service_token(SIGNING_KEY, PUSH_ACCOUNT, audience="https://fn.example/events")
    wrong = sign_local_service_token(SIGNING_KEY, PUSH_ACCOUNT, audience="https://other.example")
    none = sign_local_service_token(SIGNING_KEY, PUSH_ACCOUNT)
    assert isinstance(_service_auth_status(settings, {}, query_token=good), Principal)
    assert _service_auth_status(settings, {}, query_token=wrong) == 401
    assert _service_auth_status(settings, {}, query_token=none) == 401


def test_service_authenticator_without_a_signing_key_refuses_everything() -> None:
    token = sign_local_service_token(SIGNING_KEY, PUSH_ACCOUNT)
    assert _service_auth_status(local_settings(local_signing_key=None), {}, query_token=token) == 401


def test_an_idempotent_answer_is_stored_without_its_secrets_and_owned_by_the_tenant() -> None:
    router = Router("test-api")

    @router.post("/tenants/{tenant_id}/keys", permission="webhooks:manage")
    def create_key(ctx: RequestContext) -> Reply:
        secret = AnsweredOnce("s3cr3t-value")
        return Reply({"id": "k1", "secret": secret, "nested": [{"token": secret}]}, status=201)

    store = MemoryIdempotency()
    app = HttpApp(router, FakeAuthenticator, lambda: store)
    key = {"Idempotency-Key": "key-1"}
    first = call(app, "POST", "/tenants/t-a/keys", token="admin:t-a", body={}, headers=key)
    second = call(app, "POST", "/tenants/t-a/keys", token="admin:t-a", body={}, headers=key)

    assert first.get_json() == {"id": "k1", "secret": "s3cr3t-value", "nested": [{"token": "s3cr3t-value"}]}
    assert "Idempotent-Redacted" not in first.headers
    assert second.get_json() == {"id": "k1", "secret": None, "nested": [{"token": None}]}
    assert second.headers["Idempotent-Redacted"] == "#/secret, #/nested/0/token"
    assert not any("s3cr3t" in repr(reply) for _, reply in store.claims.values())
    assert set(store.owners.values()) == {"t-a"}


def test_without_secrets_leaves_everything_else_as_it_is() -> None:
    body = {"a/b": AnsweredOnce("x"), "n": 1, "s": "plain", "l": [1, "two"], "none": None}
    assert without_secrets(body) == ({**body, "a/b": None}, ["#/a~1b"])
    assert without_secrets("plain") == ("plain", [])
