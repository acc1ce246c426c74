"""Fixtures for the emulator-backed tests.

The suite (real Firestore and Pub/Sub emulators, the Auth emulator, our Tasks and Secret Manager
emulators, and every function on functions-framework) starts once per session, on free ports, only
when a test asks for it; emulators whose *_EMULATOR_HOST variables are set are reused. Firestore is
emptied before each test that uses it.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import pytest
import requests

from emulators.suite import DEFAULT_PROJECT, LOCAL_SIGNING_KEY_ENV, Ports, Suite
from shared.problems import CONTENT_TYPE as PROBLEM_CONTENT_TYPE


def _is_xdist_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput") and int(config.getoption("numprocesses", 0) or 0) > 0


def pytest_configure(config: pytest.Config) -> None:
    """With pytest-xdist, the controller starts the Firestore, Pub/Sub, Tasks and Secret Manager emulators
    once and the workers share them, each with a project (so a database, topics, queues and secrets) of
    its own, and its own Auth emulator, SMTP sink and functions host. The workers inherit the shared
    emulators' addresses through *_EMULATOR_HOST."""
    if not _is_xdist_controller(config):
        return
    os.environ.setdefault(LOCAL_SIGNING_KEY_ENV, os.urandom(24).hex())
    shared = Suite(Ports.free(), project_scoped_emulators_only=True)
    shared.start()
    config.stash[_SHARED_EMULATORS] = shared


def pytest_unconfigure(config: pytest.Config) -> None:
    shared = config.stash.get(_SHARED_EMULATORS, None)
    if shared is not None:
        shared.stop()


_SHARED_EMULATORS = pytest.StashKey[Suite]()


@pytest.fixture(scope="session")
def suite(worker_id: str) -> Iterator[Suite]:
    from emulators.provision import provision
    from shared.catalog import load_catalog

    # Webhook retries of the Integration API on a schedule of fractions of a second, not hours.
    # Offboarding erases a deactivated tenant after 15 s (0.000174 days), not 30 days.
    running = Suite(
        Ports.free(),
        project=DEFAULT_PROJECT if worker_id == "master" else f"{DEFAULT_PROJECT}-{worker_id}",
        env={"CMP_WEBHOOK_RETRY_SCHEDULE": "[0.2, 0.4, 0.6]", "CMP_TENANT_RETENTION_DAYS": "0.000174"},
    )
    running.start()
    _forget_clients()
    try:
        provision(load_catalog(), running.project, running.functions_url, running.signing_key)
        yield running
    finally:
        running.stop()


def _forget_clients() -> None:
    """Settings and clients made before the suite started (by unit tests in the same worker) name another
    project or no emulator: the code under test makes them again, from the suite's environment."""
    import firebase_admin

    from shared import clients, config, platform

    config.get_settings.cache_clear()
    platform.platform.cache_clear()
    for getter in (
        clients.firestore_client,
        clients.publisher,
        clients.tasks_client,
        clients.secrets_client,
        clients.firebase_app,
    ):
        getter.cache_clear()
    with contextlib.suppress(ValueError):
        firebase_admin.delete_app(firebase_admin.get_app())


def reset_firestore(project: str) -> None:
    """Empty the database. The emulator answers 409 while a transaction holds locks (a delivery of an
    earlier test still running): wait for it."""
    host = os.environ["FIRESTORE_EMULATOR_HOST"]
    url = f"http://{host}/emulator/v1/projects/{project}/databases/(default)/documents"

    def reset() -> bool:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=10):
                return True
        except urllib.error.HTTPError as error:
            if error.code != 409:
                raise
            return False

    eventually(reset, timeout=30, what="the Firestore emulator to accept a reset")


def purge_queues(project: str) -> None:
    """Drop the tasks earlier tests left behind (retries of steps for tenants about to be wiped), so they
    neither load the next test nor act on its data."""
    from shared.catalog import load_catalog
    from shared.clients import tasks_client
    from shared.config import get_settings

    client = tasks_client()
    parent = f"projects/{project}/locations/{get_settings().location}/queues"
    for queue in load_catalog().queues:
        client.purge_queue(name=f"{parent}/{queue.name}")


def requests_in_flight() -> int:
    started, finished = functions_activity()
    return started - finished


@pytest.fixture
def clean(suite: Suite) -> Suite:
    purge_queues(suite.project)
    # A request of the previous test still running (a seal, a step) would write into the emptied database:
    # wait for it, for a while (one that hangs, as some tests make them, is left to its deadline).
    with contextlib.suppress(AssertionError):
        eventually(lambda: requests_in_flight() == 0, timeout=20, what="the previous test's requests")
    reset_firestore(suite.project)
    return suite


@pytest.fixture
def db(clean: Suite) -> Any:
    from shared.clients import firestore_client

    return firestore_client()


class Api:
    """A tiny HTTP client for one function of the running suite."""

    def __init__(self, base: str, token: str | None = None) -> None:
        self.base = base
        self.token = token
        self.session = requests.Session()

    def as_(self, token: str | None) -> Api:
        return Api(self.base, token)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if self.token is not None:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        return self.session.request(method, self.base + path, headers=headers, timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)


@pytest.fixture(scope="session")
def tokens(suite: Suite) -> Callable[..., str]:
    """token(email, tenant_id=None, roles=(), operator=False): an ID token from the Auth emulator."""
    from emulators import identity

    cache: dict[tuple[Any, ...], str] = {}

    def token(
        email: str, tenant_id: str | None = None, roles: tuple[str, ...] = (), operator: bool = False
    ) -> str:
        key = (email, tenant_id, roles, operator)
        if key not in cache:
            claims: dict[str, Any] = {"roles": list(roles), "platform_operator": operator}
            if tenant_id:
                claims["tenant_id"] = tenant_id
            cache[key] = identity.token_for(email, claims)
        return cache[key]

    return token


@pytest.fixture
def operator(clean: Suite, tokens: Callable[..., str]) -> str:
    return tokens("operator@platform.test", operator=True)


@pytest.fixture
def tenant_api(clean: Suite, operator: str) -> Api:
    return Api(clean.function_url("tenant_api"), operator)


@pytest.fixture
def audit_api(clean: Suite) -> Api:
    return Api(clean.function_url("audit_api"))


def eventually(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll until check() returns a truthy value; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def dump_firestore(db: Any, tenant_id: str | Collection[str] | None = None) -> dict[str, dict[str, Any]]:
    """Every document in the database, by path (for "changed nothing" assertions). With `tenant_id` (one
    or several), only what concerns those tenants (their subtrees, and kernel records naming them) and
    documents naming no tenant: deliveries of earlier tests, still in flight for their own tenants, are
    left out."""
    out: dict[str, dict[str, Any]] = {}
    tenants = None if tenant_id is None else {tenant_id} if isinstance(tenant_id, str) else set(tenant_id)

    def concerns(path: str, data: dict[str, Any]) -> bool:
        if tenants is None:
            return True
        if path.startswith("tenants/"):
            return path.split("/")[1] in tenants
        named = data.get("tenant_id")
        return named is None or named in tenants

    # One recursive query per top-level collection (documents under missing parents included), not a
    # read per document: the dump is taken several times per test.
    for collection in db.collections():
        for snapshot in collection.recursive().stream():
            data = snapshot.to_dict() or {}
            if concerns(snapshot.reference.path, data):
                out[snapshot.reference.path] = data
    return out


def store_tenant(slug: str, plan: str = "growth") -> dict[str, Any]:
    """A tenant as the Tenant API stores it, written without publishing Tenant Created: for tests of one
    API's own behaviour, where the processes a new tenant starts (onboarding takes the first admin's
    seat and invites them, welcome mails, scores) would only move its seats, users and data meanwhile.
    Answers the tenant as GET /tenants/{id} does."""
    from functions.tenant_api.domain import Tenant
    from functions.tenant_api.service import new_tenant_id
    from shared.clients import firestore_client
    from shared.contracts import Actor

    actor = Actor(type="user", id="operator", email="operator@platform.test")
    tenant = Tenant.create(
        new_tenant_id(),
        f"Tenant {slug}",
        slug,
        cast(Any, plan),
        f"admin@{slug}.example",
        actor,
        datetime.now(UTC),
    )
    db = firestore_client()
    db.collection("tenant_slugs").document(slug).set({"tenant_id": tenant.id})
    db.collection("tenants").document(tenant.id).set(tenant.model_dump(mode="python"))
    stored: dict[str, Any] = tenant.model_dump(mode="json")
    return stored


def push_body(
    envelope_json: str, message_id: str, subscription: str = "projects/p/subscriptions/s"
) -> dict[str, Any]:
    """A Pub/Sub push request body, exactly as Pub/Sub sends it."""
    import base64

    return {
        "message": {
            "data": base64.b64encode(envelope_json.encode()).decode(),
            "attributes": {"content-type": "application/cloudevents+json"},
            "messageId": message_id,
            "publishTime": "2026-01-01T00:00:00Z",
        },
        "subscription": subscription,
    }


def functions_activity() -> tuple[int, int]:
    """(requests started, requests finished) by the suite's functions host."""
    url = os.environ["CMP_FUNCTIONS_BASE_URL"] + "/_activity"
    with urllib.request.urlopen(url, timeout=10) as response:
        counts = json.load(response)
    return int(counts["started"]), int(counts["finished"])


def quiescent(
    db: Any, settle_seconds: float = 0.5, tenant_id: str | Collection[str] | None = None, timeout: float = 30
) -> dict[str, Any]:
    """Wait until asynchronous consequences (published events, their consumers, tasks) have settled, and
    return the database as it then is (as dump_firestore, for `tenant_id`). Settled: over `settle_seconds`
    the functions host had no request in flight and started none, and the database did not change."""
    previous: tuple[dict[str, Any], tuple[int, int]] | None = None

    def settled() -> dict[str, Any] | None:
        nonlocal previous
        activity = functions_activity()
        current = (dump_firestore(db, tenant_id), activity)
        idle = activity[0] == activity[1] and functions_activity() == activity
        if idle and current == previous:
            return current[0]
        previous = current if idle else None
        time.sleep(settle_seconds)
        return None

    result: dict[str, Any] = eventually(settled, timeout=timeout, what="the database to settle")
    return result


BadRequest = tuple[str, str, Any, int]  # method, path, body, expected status


def send(api: Api, method: str, path: str, body: Any) -> requests.Response:
    """`body`: None (no body), a str (sent as it is, as JSON), (media type, text), or a JSON value."""
    kwargs: dict[str, Any] = {}
    if isinstance(body, tuple):
        kwargs = {"data": body[1].encode(), "headers": {"Content-Type": body[0]}}
    elif isinstance(body, str):
        kwargs = {"data": body, "headers": {"Content-Type": "application/json"}}
    elif body is not None:
        kwargs = {"json": body}
    return api.request(method, path, **kwargs)


def bad_requests_change_nothing(
    db: Any,
    subtests: pytest.Subtests,
    cases: list[BadRequest],
    request: Callable[[str, str, Any], requests.Response],
    tenant_id: str | None = None,
    check: Callable[[requests.Response], None] | None = None,
) -> None:
    """Each bad request on its own (a subtest each): a problem+json answer with its status, and the
    database (as dump_firestore, for `tenant_id`) exactly as the request found it. What the test set up
    settles once, before the first request, rather than once per case."""
    before = quiescent(db, tenant_id=tenant_id)
    for method, path, body, status in cases:
        with subtests.test(f"{method} {path} {status}"):
            response = request(method, path, body)
            after = dump_firestore(db, tenant_id)
            changed, before = after != before, after  # a case that changed something fails alone
            assert response.status_code == status, response.text
            assert response.headers["Content-Type"] == PROBLEM_CONTENT_TYPE, response.text
            problem = response.json()
            assert problem["status"] == status and problem["type"].startswith("https://") and problem["title"]
            assert "Traceback" not in response.text
            if check is not None:
                check(response)
            assert not changed, "the database changed"


@pytest.fixture
def paused_sealing(clean: Suite) -> Iterator[None]:
    """Hold the audit seal queue, so no seal rewrites entries while a test compares the database."""
    from shared.clients import tasks_client
    from shared.config import get_settings

    settings = get_settings()
    name = f"projects/{clean.project}/locations/{settings.location}/queues/audit-seal"
    tasks_client().pause_queue(name=name)
    try:
        yield
    finally:
        tasks_client().resume_queue(name=name)


class Receiver:
    """A webhook receiver on 127.0.0.1: records every request; answers `status` (and `headers`) until
    told otherwise."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.status = 204
        self.headers: dict[str, str] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    status, headers = receiver.status, dict(receiver.headers)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def received(self) -> list[tuple[dict[str, str], bytes]]:
        with self._lock:
            return list(self.requests)

    def bodies(self) -> list[Any]:
        return [json.loads(body) for _, body in self.received()]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()
