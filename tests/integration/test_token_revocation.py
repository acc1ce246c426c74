"""Revoked tokens refused from the access state, against the real Auth and Firestore emulators.

The HTTP kernel runs in this process (so Identity Platform lookups can be counted) with the real
UserAuthenticator and the real Firestore-backed AccessStore; the lookups counted are those
firebase_admin makes to check revocation (`Client.get_user`, one accounts:lookup each).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import flask
import jwt
import pytest

from emulators.suite import Suite
from shared.access import PRINCIPALS, STATE, TENANTS, VERSION, AccessStore
from shared.auth import UserAuthenticator
from shared.http import HttpApp, Reply, RequestContext, Router
from shared.idempotency import IdempotencyStore

TENANT = "t_revoke"


class Lookups:
    def __init__(self) -> None:
        self.count = 0


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> Lookups:
    from firebase_admin import _auth_client

    counter = Lookups()
    real = _auth_client.Client.get_user

    def counted(self: Any, uid: str) -> Any:
        counter.count += 1
        return real(self, uid)

    monkeypatch.setattr(_auth_client.Client, "get_user", counted)
    return counter


def no_idempotency() -> IdempotencyStore:
    raise AssertionError("not used")


def kernel(users: UserAuthenticator, store: AccessStore) -> HttpApp:
    router = Router("revocation-test")

    @router.get("/tenants/{tenant_id}", permission="tenants:read")
    def tenant(ctx: RequestContext) -> Reply:
        return Reply({"id": ctx.tenant_id})

    @router.get("/tenants", permission="tenants:list")
    def tenants(ctx: RequestContext) -> Reply:
        return Reply([])

    return HttpApp(router, lambda: users, no_idempotency, lambda: store)


def get(app: HttpApp, path: str, token: str) -> flask.Response:
    with flask.Flask(__name__).test_request_context(path, headers={"Authorization": f"Bearer {token}"}):
        return app.handle(flask.request)


def lookups_of(counter: Lookups, requests: Callable[[], object], times: int) -> list[int]:
    counts = []
    for _ in range(times):
        before = counter.count
        requests()
        counts.append(counter.count - before)
    return counts


def test_identity_platform_lookups_per_request_before_and_after(
    clean: Suite, db: Any, tokens: Callable[..., str], lookups: Lookups
) -> None:
    member = tokens("reader@revoke.example", TENANT, ("member",))
    operator = tokens("ops@revoke.example", None, (), True)
    store = AccessStore.for_firestore(db)

    # Before: every request verified with check_revoked (as the kernel did for every route).
    before = lookups_of(lookups, lambda: UserAuthenticator().verify(member), 5)
    assert before == [1, 1, 1, 1, 1]

    # After: tenant-scoped requests look a token up once per recheck period (300 s) per instance.
    app = kernel(UserAuthenticator(), store)
    after = lookups_of(lookups, lambda: get(app, f"/tenants/{TENANT}", member), 5)
    assert after == [1, 0, 0, 0, 0]
    # Routes that consult no snapshot, and operators, are looked up on every request, as before.
    listing = lookups_of(lookups, lambda: get(app, "/tenants", operator), 3)
    operator_scoped = lookups_of(lookups, lambda: get(app, f"/tenants/{TENANT}", operator), 3)
    assert listing == [1, 1, 1] and operator_scoped == [1, 1, 1]
    print(f"\nIdentity Platform lookups per request: before {before}, after {after} (tenant user)")


def test_a_token_in_use_is_refused_once_its_principal_tokens_valid_after_passes_it(
    clean: Suite, db: Any, tokens: Callable[..., str], lookups: Lookups
) -> None:
    member = tokens("leaver@revoke.example", TENANT, ("member",))
    claims = jwt.decode(member, options={"verify_signature": False})
    uid = claims["user_id"]
    # A revocation one second after the sign-in (Identity Platform's resolution), with no sleep.
    revoked_at = datetime.fromtimestamp(claims["auth_time"] + 1, UTC)
    store = AccessStore.for_firestore(db)
    app = kernel(UserAuthenticator(), store)
    assert get(app, f"/tenants/{TENANT}", member).status_code == 200  # looked up once, remembered
    seen = lookups.count

    # What the Access Control API writes for a revoking event: the instant, and a version bump.
    tenant = db.collection(TENANTS).document(TENANT)
    tenant.collection(PRINCIPALS).document(uid).set(
        {"uid": uid, "restricted": False, "tokens_valid_after": revoked_at}
    )
    tenant.collection(STATE).document(VERSION).set({"version": 1})
    store.invalidate(TENANT)

    refused = get(app, f"/tenants/{TENANT}", member)
    assert refused.status_code == 401 and refused.content_type == "application/problem+json"
    assert refused.get_json()["detail"] == "The token was revoked: sign in again."
    assert lookups.count == seen  # refused from the access state, not by Identity Platform
    # Other principals of the tenant are not touched.
    other = tokens("stayer@revoke.example", TENANT, ("member",))
    assert get(app, f"/tenants/{TENANT}", other).status_code == 200
