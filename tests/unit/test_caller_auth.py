"""HTTP callers: users by ID token, other platform functions by service token, public routes by nobody."""

from __future__ import annotations

import base64
import json

import flask
import pytest

from shared.auth import CallerAuthenticator, ServiceAuthenticator, UserAuthenticator, sign_local_service_token
from shared.authz import PUBLIC, SERVICE_PERMISSIONS, Principal
from shared.config import Settings
from shared.http import HttpApp, Reply, RequestContext, Router
from shared.problems import Problem

KEY = "s" * 48


class FakeUsers(UserAuthenticator):
    """Stands in for Identity Platform: any token with a `firebase` claim is the user it names."""

    def verify(self, token: str, *, access_checks_revocation: bool = False) -> Principal:
        claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        return Principal(uid=claims["sub"], tenant_id=claims["tenant_id"], roles=frozenset(claims["roles"]))


def id_token(sub: str, tenant: str, roles: list[str]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    claims: dict[str, object] = {"sub": sub, "tenant_id": tenant, "roles": roles, "firebase": {}}
    return f"{part({'alg': 'none'})}.{part(claims)}."


def callers(settings: Settings) -> CallerAuthenticator:
    return CallerAuthenticator(FakeUsers(), ServiceAuthenticator(settings))


LOCAL = Settings(service_auth="local", local_signing_key=KEY)


def test_an_id_token_is_a_user() -> None:
    principal = callers(LOCAL).authenticate({"Authorization": f"Bearer {id_token('u1', 't1', ['admin'])}"})
    assert principal.uid == "u1" and not principal.is_service


def test_a_service_token_is_a_platform_service_with_only_its_permissions() -> None:
    token = sign_local_service_token(KEY, "fn-user-management@demo.iam.gserviceaccount.com")
    principal = callers(LOCAL).authenticate({"Authorization": f"Bearer {token}"})
    assert principal.is_service and principal.may_access_tenant("any-tenant")
    assert principal.permissions() == SERVICE_PERMISSIONS
    assert not principal.can("tenants:suspend")


def test_a_service_token_signed_with_another_key_is_refused() -> None:
    token = sign_local_service_token("x" * 48, "fn-evil@demo.iam.gserviceaccount.com")
    with pytest.raises(Problem) as refused:
        callers(LOCAL).authenticate({"Authorization": f"Bearer {token}"})
    assert refused.value.status == 401


def test_in_production_an_api_with_no_service_callers_refuses_service_tokens() -> None:
    settings = Settings(service_auth="oidc", service_audience="https://f.example/tenant_api")
    token = sign_local_service_token(KEY, "fn-x@demo.iam.gserviceaccount.com")
    with pytest.raises(Problem) as refused:
        callers(settings).authenticate({"Authorization": f"Bearer {token}"})
    assert refused.value.status == 401


def test_a_public_route_runs_without_a_token_and_others_still_need_one() -> None:
    router = Router("test-api")
    seen: list[Principal] = []

    @router.post("/invitations/accept", permission=PUBLIC)
    def accept(ctx: RequestContext) -> Reply:
        seen.append(ctx.principal)
        return Reply({"ok": True})

    @router.get("/tenants/{tenant_id}", permission="tenants:read")
    def read(ctx: RequestContext) -> Reply:
        return Reply({"ok": True})

    app = HttpApp(router, lambda: callers(LOCAL), lambda: None)  # type: ignore[arg-type,return-value]
    flask_app = flask.Flask(__name__)
    with flask_app.test_request_context("/invitations/accept", method="POST", json={}):
        assert app.handle(flask.request).status_code == 200
    assert seen[0].uid == "anonymous" and seen[0].permissions() == frozenset()
    with flask_app.test_request_context("/tenants/t1", method="GET"):
        assert app.handle(flask.request).status_code == 401
