"""Every route of every API, called with a token of each built-in role, of another tenant, and with
none: nothing answers 2xx that should not, and no tenant ever reaches another tenant's data.

Routes are read from the APIs' own routers, so a route added later is walked without editing this file;
a route cannot even register without a declared permission (shared.http.Router)."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from importlib import import_module
from typing import Any

import pytest

from emulators.suite import Suite
from functions.manifest import discover
from shared.authz import BUILTIN_ROLES, PUBLIC, Principal
from shared.http import Route, Router
from shared.platform import Platform
from tests.conftest import Api

ROLES = sorted(BUILTIN_ROLES)
# The APIs (the portal function serves pages, it has no routes).
HTTP_FUNCTIONS = [spec for spec in discover() if spec.serves_api]


class RoutesOnly(Platform):
    """Enough of a platform to build the routers: a Firestore client that is never used."""

    @property
    def db(self) -> Any:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import firestore

        return firestore.Client(project="route-discovery", credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]


@cache
def routes(function: str) -> list[Route]:
    spec = next(s for s in HTTP_FUNCTIONS if s.name == function)
    module = import_module(f"functions.{spec.package}.routes")
    router: Router = module.build_router(RoutesOnly())
    return router.routes


def concrete(route: Route, tenant_id: str) -> str:
    return re.sub(
        r"\{([a-z_]+)\}", lambda m: tenant_id if m.group(1) == "tenant_id" else "x-missing", route.template
    )


CASES = [
    (spec.name, route.method, route.template)
    for spec in HTTP_FUNCTIONS
    for route in routes(spec.name)
    if route.permission != PUBLIC
]


@pytest.fixture(scope="module")
def two_tenants(suite: Suite, tokens: Callable[..., str]) -> dict[str, Any]:
    operator = Api(suite.function_url("tenant_api"), tokens("operator@platform.test", operator=True))
    made = {}
    for slug in ("authz-home", "authz-away"):
        response = operator.post(
            "/tenants",
            json={"name": slug, "slug": slug, "plan": "growth", "admin_email": f"admin@{slug}.example"},
        )
        made[slug] = (
            response.json()["id"]
            if response.status_code == 201
            else next(
                t["id"]
                for t in operator.get("/tenants", params={"limit": 200}).json()["items"]
                if t["slug"] == slug
            )
        )
    return {"home": made["authz-home"], "away": made["authz-away"]}


@pytest.mark.parametrize(("function", "method", "template"), CASES, ids=[f"{f}:{m} {t}" for f, m, t in CASES])
def test_each_route_answers_only_the_roles_that_hold_its_permission(
    function: str,
    method: str,
    template: str,
    suite: Suite,
    tokens: Callable[..., str],
    two_tenants: dict[str, Any],
) -> None:
    route = next(r for r in routes(function) if r.method == method and r.template == template)
    api = Api(suite.function_url(function))
    home, away = two_tenants["home"], two_tenants["away"]
    path = concrete(route, home)
    body: dict[str, Any] = {}

    anonymous = api.request(method, path, json=body)
    assert anonymous.status_code == 401, anonymous.text

    for role in ROLES:
        principal = Principal(uid=f"{role}-user", tenant_id=home, roles=frozenset({role}))
        member = api.as_(tokens(f"{role}@authz-home.example", home, (role,)))
        response = member.request(method, path, json=body)
        if principal.can(route.permission):
            assert response.status_code not in (401, 403), (role, response.text)
        else:
            assert response.status_code == 403, (role, response.status_code, response.text)

        # The same role in another tenant: never 2xx on this tenant's routes.
        outsider = api.as_(tokens(f"{role}@authz-away.example", away, (role,)))
        crossed = outsider.request(method, path, json=body)
        if route.tenant_scoped:
            assert crossed.status_code == 404, (role, crossed.status_code, crossed.text)
        else:
            assert not 200 <= crossed.status_code < 300 or principal.can(route.permission), crossed.text
