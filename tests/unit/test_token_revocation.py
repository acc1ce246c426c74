"""Revoked tokens refused from the access state, with no per-request Identity Platform lookup.

The decision (shared.access.decide) refuses a token signed in before the principal's
`tokens_valid_after`; the HTTP kernel answers it 401 (sign in again); the user authenticator asks
Identity Platform about revocation only where no access snapshot is consulted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import flask
import pytest

from shared import auth as auth_module
from shared.access import AccessDecision, PrincipalState, TenantAccess, decide
from shared.auth import UserAuthenticator
from shared.authz import Principal
from shared.http import HttpApp, Reply, RequestContext, Router
from shared.idempotency import IdempotencyStore
from shared.problems import Problem

TENANT = "t_acme"
REVOKED_AT = datetime(2026, 3, 1, 12, 0, 0, 400_000, tzinfo=UTC)  # Identity Platform keeps whole seconds
NOW = REVOKED_AT + timedelta(minutes=5)


def signed_in(at: datetime | None, *roles: str, uid: str = "u1") -> Principal:
    return Principal(uid=uid, tenant_id=TENANT, roles=frozenset(roles or ("admin",)), authenticated_at=at)


def revoked(**state: Any) -> TenantAccess:
    principal = PrincipalState(uid="u1", tokens_valid_after=REVOKED_AT, **state)
    return TenantAccess(tenant_id=TENANT, version=4, principals={"u1": principal})


# --- the decision ---------------------------------------------------------------------------------------


def test_a_token_signed_in_before_the_revocation_is_refused_as_revoked() -> None:
    decision = decide(revoked(), signed_in(REVOKED_AT - timedelta(seconds=1)), "tenants:read", now=NOW)
    assert not decision.allowed and decision.token_revoked
    assert decision.reason.startswith("token signed in before its revocation at 2026-03-01T12:00:00.4")


@pytest.mark.parametrize(
    "at",
    [
        REVOKED_AT.replace(microsecond=0),  # the revocation's own second, as Identity Platform
        REVOKED_AT + timedelta(seconds=1),
        NOW,
    ],
)
def test_a_token_signed_in_at_or_after_the_revocation_is_allowed(at: datetime) -> None:
    decision = decide(revoked(), signed_in(at), "tenants:read", now=NOW)
    assert decision.allowed and not decision.token_revoked


def test_a_token_without_its_sign_in_time_is_refused_where_a_revocation_is_known() -> None:
    assert decide(revoked(), signed_in(None), "tenants:read", now=NOW).token_revoked
    # With no revocation on record the sign-in time does not matter.
    assert decide(TenantAccess(tenant_id=TENANT), signed_in(None), "tenants:read", now=NOW).allowed


def test_a_revocation_reaches_only_its_own_principal() -> None:
    other = signed_in(REVOKED_AT - timedelta(hours=1), uid="u2")
    assert decide(revoked(), other, "tenants:read", now=NOW).allowed


def test_a_revoked_token_of_a_deactivated_principal_is_refused_as_revoked_not_forbidden() -> None:
    state = revoked(deactivated=True, deactivated_at=REVOKED_AT)
    old = decide(state, signed_in(REVOKED_AT - timedelta(seconds=5)), "tenants:read", now=NOW)
    assert old.token_revoked and not old.allowed
    # A newer token of a still deactivated principal is forbidden, not revoked.
    newer = decide(state, signed_in(REVOKED_AT.replace(microsecond=0)), "tenants:read", now=NOW)
    assert not newer.allowed and not newer.token_revoked and newer.reason == "principal deactivated"


def test_a_question_about_the_principal_alone_ignores_token_age() -> None:
    decision = decide(revoked(), signed_in(None, "viewer"), "tenants:read", now=NOW, check_token=False)
    assert decision.allowed and not decision.token_revoked


def test_operators_and_services_are_not_decided_by_a_principal_state() -> None:
    operator = Principal(uid="u1", tenant_id=None, is_operator=True)
    assert decide(revoked(), operator, "tenants:read", now=NOW).allowed


def test_the_stored_instant_is_read_from_the_principal_document() -> None:
    access = TenantAccess.from_documents(
        TENANT, {"version": 2}, None, [], [], [], [("u1", {"tokens_valid_after": REVOKED_AT})]
    )
    assert access.principals["u1"].tokens_valid_after == REVOKED_AT
    garbage = TenantAccess.from_documents(
        TENANT, None, None, [], [], [], [("u1", {"tokens_valid_after": "yesterday"})]
    )
    assert garbage.principals["u1"].tokens_valid_after is None


# --- the HTTP kernel --------------------------------------------------------------------------------------


class RecordingAuthenticator:
    def __init__(self, principal: Principal) -> None:
        self.principal = principal
        self.asked: list[bool] = []

    def authenticate(
        self, headers: Mapping[str, str], *, access_checks_revocation: bool = False
    ) -> Principal:
        self.asked.append(access_checks_revocation)
        return self.principal


class SnapshotAuthorizer:
    def __init__(self, snapshot: TenantAccess) -> None:
        self.snapshot = snapshot

    def decide(self, principal: Principal, permission: str, tenant_id: str) -> AccessDecision:
        return decide(self.snapshot, principal, permission)


def no_idempotency() -> IdempotencyStore:
    raise AssertionError("not used")


def kernel(authenticator: RecordingAuthenticator) -> tuple[HttpApp, list[str]]:
    router = Router("test-api")
    ran: list[str] = []

    @router.get("/tenants/{tenant_id}", permission="tenants:read")
    def tenant(ctx: RequestContext) -> Reply:
        ran.append("tenant")
        return Reply({"id": ctx.tenant_id})

    @router.get("/tenants", permission="tenants:list")
    def tenants(ctx: RequestContext) -> Reply:
        ran.append("tenants")
        return Reply([])

    app = HttpApp(router, lambda: authenticator, no_idempotency, lambda: SnapshotAuthorizer(revoked()))
    return app, ran


def get(app: HttpApp, path: str) -> flask.Response:
    with flask.Flask(__name__).test_request_context(path, headers={"Authorization": "Bearer t"}):
        return app.handle(flask.request)


def test_the_kernel_answers_a_revoked_token_401_problem_and_the_handler_never_runs() -> None:
    authenticator = RecordingAuthenticator(signed_in(REVOKED_AT - timedelta(seconds=2)))
    app, ran = kernel(authenticator)
    response = get(app, f"/tenants/{TENANT}")
    assert response.status_code == 401 and response.content_type == "application/problem+json"
    assert response.headers["WWW-Authenticate"] == "Bearer"
    body = json.loads(response.get_data())
    assert body["detail"] == "The token was revoked: sign in again."
    assert ran == [] and authenticator.asked == [True]


def test_the_kernel_leaves_revocation_to_the_authenticator_where_no_snapshot_is_consulted() -> None:
    authenticator = RecordingAuthenticator(Principal(uid="op", tenant_id=None, is_operator=True))
    app, ran = kernel(authenticator)
    assert get(app, "/tenants").status_code == 200
    assert get(app, f"/tenants/{TENANT}").status_code == 200
    assert authenticator.asked == [False, True] and ran == ["tenants", "tenant"]


# --- Identity Platform calls per request ------------------------------------------------------------------


class CountingIdentityPlatform:
    """Stands in for firebase_admin's verify_id_token: the signature check is local (cached keys); each
    call with check_revoked=True is one user lookup at Identity Platform."""

    def __init__(self, claims: dict[str, Any]) -> None:
        self.claims = claims
        self.lookups = 0

    def verify_id_token(self, token: str, app: Any = None, check_revoked: bool = False) -> dict[str, Any]:
        self.lookups += int(check_revoked)
        return dict(self.claims)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def lookups_per_request(
    monkeypatch: pytest.MonkeyPatch,
    claims: dict[str, Any],
    *,
    access_checks_revocation: bool,
    requests: int = 3,
    clock: Clock | None = None,
    authenticator: UserAuthenticator | None = None,
) -> list[int]:
    """Identity Platform lookups of each of `requests` requests carrying the same token."""
    from firebase_admin import auth

    import shared.clients

    platform = CountingIdentityPlatform(claims)
    monkeypatch.setattr(auth, "verify_id_token", platform.verify_id_token)
    monkeypatch.setattr(shared.clients, "firebase_app", lambda: None)
    monkeypatch.setattr(auth_module, "unverified_claims", lambda token: {"firebase": {}, **claims})
    users = authenticator or UserAuthenticator(check_revoked=True, clock=clock or Clock())
    counts = []
    for _ in range(requests):
        before = platform.lookups
        users.authenticate(
            {"Authorization": "Bearer token"}, access_checks_revocation=access_checks_revocation
        )
        counts.append(platform.lookups - before)
    return counts


USER = {"uid": "u1", "tenant_id": TENANT, "roles": ["admin"], "auth_time": 1_772_366_400}
OPERATOR = {"uid": "op", "platform_operator": True, "roles": [], "auth_time": 1_772_366_400}


def test_tenant_scoped_requests_of_a_tenant_user_look_a_token_up_once_per_recheck_period(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    users = UserAuthenticator(check_revoked=True, recheck_seconds=300, clock=clock)
    first = lookups_per_request(monkeypatch, USER, access_checks_revocation=True, authenticator=users)
    assert first == [1, 0, 0]
    clock.now += 299
    assert lookups_per_request(monkeypatch, USER, access_checks_revocation=True, authenticator=users) == [
        0,
        0,
        0,
    ]
    clock.now += 1
    assert lookups_per_request(monkeypatch, USER, access_checks_revocation=True, authenticator=users) == [
        1,
        0,
        0,
    ]


def test_a_request_no_snapshot_covers_asks_identity_platform_every_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert lookups_per_request(monkeypatch, USER, access_checks_revocation=False) == [1, 1, 1]


def test_an_operator_is_looked_up_on_every_request_even_tenant_scoped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert lookups_per_request(monkeypatch, OPERATOR, access_checks_revocation=True) == [1, 1, 1]


def test_a_revoked_token_is_never_remembered_as_looked_up(monkeypatch: pytest.MonkeyPatch) -> None:
    from firebase_admin import auth

    import shared.clients

    calls: list[bool] = []

    def revoked(token: str, app: Any = None, check_revoked: bool = False) -> dict[str, Any]:
        calls.append(check_revoked)
        raise auth.RevokedIdTokenError("revoked")

    monkeypatch.setattr(auth, "verify_id_token", revoked)
    monkeypatch.setattr(shared.clients, "firebase_app", lambda: None)
    monkeypatch.setattr(auth_module, "unverified_claims", lambda token: {"firebase": {}})
    users = UserAuthenticator(check_revoked=True, clock=Clock())
    for _ in range(2):
        with pytest.raises(Problem) as refused:
            users.authenticate({"Authorization": "Bearer token"}, access_checks_revocation=True)
        assert refused.value.status == 401 and refused.value.detail == "The token was revoked: sign in again."
    assert calls == [True, True]


def test_remembered_lookups_are_bounded() -> None:
    users = UserAuthenticator(max_remembered=2, clock=Clock())
    for digest in ("a", "b", "c"):
        users._remember(digest)
    assert users._due("a") and not users._due("b") and not users._due("c")
