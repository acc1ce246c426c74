"""Faults injected into real parts: each test asserts the fault stays with whom it hit.

- A Firestore read that never answers: the real Firestore client against a server that accepts and
  never speaks, for one tenant; every other tenant's decisions read the emulator. The hung tenant's
  requests get a 503 problem when the deadline hits; the others are answered meanwhile.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import flask
import pytest

from shared.access import AccessStore, FirestoreAccessLoader, TenantAccess
from shared.authz import Principal
from shared.clients import new_firestore_client
from shared.http import HttpApp, Reply, RequestContext, Router
from shared.idempotency import IdempotencyStore
from shared.problems import CONTENT_TYPE as PROBLEM_TYPE

FLASK = flask.Flask(__name__)
HUNG = "t-hung"


@pytest.fixture
def silent_firestore(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A Firestore client whose server accepts connections and never answers."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    with monkeypatch.context() as patched:
        patched.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{silent.getsockname()[1]}")
        client = new_firestore_client("demo-silent")
    yield client
    silent.close()


class RoutedLoader:
    """The real Firestore loader, over the silent server for the hung tenant, the emulator otherwise."""

    def __init__(self, healthy: Any, hung: Any) -> None:
        self.healthy = FirestoreAccessLoader(healthy, deadline_seconds=1.0)
        self.hung = FirestoreAccessLoader(hung, deadline_seconds=1.0)

    def _for(self, tenant_id: str) -> FirestoreAccessLoader:
        return self.hung if tenant_id == HUNG else self.healthy

    def version(self, tenant_id: str) -> int:
        return self._for(tenant_id).version(tenant_id)

    def load(self, tenant_id: str) -> TenantAccess:
        return self._for(tenant_id).load(tenant_id)


class Members:
    def authenticate(self, headers: Any, *, access_checks_revocation: bool = False) -> Principal:
        tenant = headers["Authorization"].removeprefix("Bearer ")
        return Principal(uid="u1", tenant_id=tenant, roles=frozenset({"member"}))


def no_idempotency() -> IdempotencyStore:
    raise AssertionError("not used")


def test_a_firestore_read_that_never_answers_fails_its_tenant_only(db: Any, silent_firestore: Any) -> None:
    router = Router("fault-api")

    @router.get("/tenants/{tenant_id}", permission="tenants:read")
    def read(ctx: RequestContext) -> Reply:
        return Reply({"tenant": ctx.tenant_id})

    store = AccessStore(RoutedLoader(db, silent_firestore), load_deadline_seconds=1.0)
    app = HttpApp(router, Members, no_idempotency, lambda: store)

    def get(tenant_id: str) -> tuple[int, str | None, dict[str, Any]]:
        with FLASK.test_request_context(
            f"/tenants/{tenant_id}", headers={"Authorization": f"Bearer {tenant_id}"}
        ) as ctx:
            response = app.handle(ctx.request)
        return response.status_code, response.mimetype, json.loads(response.get_data() or b"{}")

    with ThreadPoolExecutor(max_workers=8) as pool:
        hung = [pool.submit(get, HUNG) for _ in range(3)]
        others = list(pool.map(get, [f"t-ok-{i}" for i in range(40)]))
        stuck = [future.result(timeout=60) for future in hung]
    assert all(status == 200 for status, _, _ in others), others
    for status, mimetype, body in stuck:
        assert (status, mimetype, body["type"].rsplit("/", 1)[-1]) == (
            503,
            PROBLEM_TYPE,
            "access-unavailable",
        )
