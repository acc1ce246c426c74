"""7. Outbound webhooks: fan-out deliveries/s to a local receiver, and the cost of verifying one.

Fan-out: a fresh tenant registers ENDPOINTS endpoints for "Contact Created" through the Integration
API, all pointing at one local threaded receiver (http.server on 127.0.0.1, distinct paths; loopback is
allowed by CMP_WEBHOOKS_ALLOW_LOOPBACK=true, which the suite sets). N Contact Created events are pushed
through the real push endpoint (integration_api_events, with the push service token); each fans out to
every endpoint, and every delivery goes through the Tasks emulator and the delivery function. The
figure is the time from the first push until all N x ENDPOINTS deliveries arrived (bounded), as
deliveries/s. The receiver answers 204 and verifies every request's Standard Webhooks signature with
`signing.verify` and the endpoint's secret. Baseline: the same receiver hit directly by a bounded thread
pool with as many signed POSTs of a delivery's body, requests/s in the same run.

Verification: `signing.verify(body, headers, secret)` over a delivered body, vs a bare
`hmac.new(key, content, sha256).digest()` over the same bytes: what the header parsing, the timestamp
check, the key decoding and the constant-time compare add to the HMAC itself. Samples are interleaved.

The endpoints are deleted through the API afterwards, and the receiver is stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from emulators import identity
from functions.integration_api.service import API_NAME
from shared import webhook_signing as signing
from tests.bench.context import (
    HTTP_TIMEOUT,
    Bench,
    bearer,
    create_tenant,
    example_envelope,
    new_slug,
    push_body,
)
from tests.bench.measure import Measurement, Report, Stats

SECTION = "7. Outbound webhooks: fan-out to a local receiver (loopback), signature verification"
BASELINE_FANOUT = "the same receiver hit directly, signed POSTs of a delivery's body"
BASELINE_VERIFY = "bare hmac.new(key, content, sha256).digest() over the same bytes"
EVENT = "Contact Created"
ENDPOINTS = 100
BASELINE_PATH = "/baseline"


@dataclass
class Hit:
    path: str
    webhook_id: str
    verified: bool
    at: float
    size: int


@dataclass
class Receiver:
    """A threaded HTTP server on 127.0.0.1: answers 204, records and verifies every POST."""

    secrets: dict[str, str] = field(default_factory=dict)  # path -> the endpoint's signing secret
    hits: list[Hit] = field(default_factory=list)
    sample: tuple[dict[str, str], bytes, str] | None = None  # one delivery: headers, body, secret
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver would

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                secret = receiver.secrets.get(self.path)
                verified = False
                if secret is not None:
                    try:
                        signing.verify(body, headers, secret)
                        verified = True
                    except signing.WebhookVerificationError:
                        pass
                hit = Hit(
                    self.path, headers.get(signing.ID_HEADER, ""), verified, time.perf_counter(), len(body)
                )
                with receiver.lock:
                    receiver.hits.append(hit)
                    if verified and receiver.sample is None and self.path != BASELINE_PATH and secret:
                        receiver.sample = (headers, body, secret)
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="bench-receiver", daemon=True)
        self.thread.start()

    def snapshot(self, prefix: str) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.path.startswith(prefix)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@dataclass(frozen=True)
class Fanout:
    delivered: int  # distinct webhook-ids received on the endpoints' paths
    requests: int  # every request received there (a retry counts again)
    verified: int
    elapsed: float  # first push -> last delivery (or the timeout)
    push_s: float  # first push -> last push answered
    body_bytes: int


def register(session: requests.Session, url: str, token: str, receiver: Receiver) -> list[str]:
    ids = []
    for i in range(ENDPOINTS):
        path = f"/hook/{i:03d}"
        response = session.post(
            url + "/endpoints",
            json={
                "url": receiver.base + path,
                "description": f"bench receiver {i}",
                "event_types": [EVENT],
                "ordered": False,
            },
            headers=bearer(token),
            timeout=HTTP_TIMEOUT,
        )
        if response.status_code != 201:
            raise RuntimeError(f"POST /endpoints answered {response.status_code}: {response.text[:500]}")
        created = response.json()
        receiver.secrets[path] = str(created["secret"])
        ids.append(str(created["id"]))
    return ids


def unregister(session: requests.Session, url: str, token: str, ids: list[str], budget_s: float) -> None:
    deadline = time.perf_counter() + budget_s
    for endpoint_id in ids:
        if time.perf_counter() > deadline:
            break
        with contextlib.suppress(requests.RequestException):
            session.delete(f"{url}/endpoints/{endpoint_id}", headers=bearer(token), timeout=HTTP_TIMEOUT)


def fan_out(
    bench: Bench, session: requests.Session, tenant_id: str, receiver: Receiver, events: int, timeout: float
) -> Fanout:
    event = bench.catalog.event(EVENT)
    api = bench.catalog.api(API_NAME)
    endpoint = bench.url("integration_api_events") + bench.push_query()
    expected = events * ENDPOINTS
    started = time.perf_counter()
    for _ in range(events):
        body = push_body(bench.suite.project, event, api, example_envelope(bench.catalog, event, tenant_id))
        response = session.post(endpoint, json=body, timeout=HTTP_TIMEOUT)
        if response.status_code != 200:
            raise RuntimeError(f"the push answered {response.status_code}: {response.text[:500]}")
    push_s = time.perf_counter() - started
    deadline = started + timeout
    while True:
        hits = receiver.snapshot("/hook/")
        delivered = len({h.webhook_id for h in hits})
        if delivered >= expected or time.perf_counter() > deadline:
            break
        time.sleep(0.05)
    last = max((h.at for h in hits), default=time.perf_counter())
    elapsed = (last if delivered >= expected else time.perf_counter()) - started
    size = max((h.size for h in hits), default=0)
    return Fanout(delivered, len(hits), sum(h.verified for h in hits), elapsed, push_s, size)


def direct(receiver: Receiver, body: bytes, count: int, threads: int) -> float:
    """`count` signed POSTs straight at the receiver by `threads` threads (one session each); seconds."""
    secret = signing.generate_secret()
    receiver.secrets[BASELINE_PATH] = secret
    url = receiver.base + BASELINE_PATH
    local = threading.local()

    def post(i: int) -> int:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        headers = signing.sign(f"msg_base{i:06d}", int(time.time()), body, [secret])
        headers["Content-Type"] = "application/json"
        return session.post(url, data=body, headers=headers, timeout=HTTP_TIMEOUT).status_code

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        statuses = list(pool.map(post, range(count)))
    elapsed = time.perf_counter() - started
    bad = [s for s in statuses if s != 204]
    if bad:
        raise RuntimeError(f"{len(bad)} direct POSTs were not answered 204 (e.g. {bad[0]})")
    verified = sum(h.verified for h in receiver.snapshot(BASELINE_PATH))
    if verified != count:
        raise RuntimeError(f"the receiver verified {verified} of {count} direct POSTs")
    return elapsed


def verification(
    headers: dict[str, str], body: bytes, secret: str, samples: int
) -> tuple[list[float], list[float]]:
    msg_id, stamp = headers[signing.ID_HEADER], headers[signing.TIMESTAMP_HEADER]
    key = signing._key(secret)
    content = f"{msg_id}.{stamp}.".encode() + body
    now = float(stamp)  # the delivery's own timestamp: within tolerance however long the bench ran
    signing.verify(body, headers, secret, now=now)  # raises if the sample is not authentic
    full, bare = [], []
    for _ in range(samples):
        started = time.perf_counter()
        signing.verify(body, headers, secret, now=now)
        full.append(time.perf_counter() - started)
        started = time.perf_counter()
        hmac.new(key, content, hashlib.sha256).digest()
        bare.append(time.perf_counter() - started)
    return full, bare


def run(
    bench: Bench,
    report: Report,
    events: int,
    threads: int,
    verifications: int,
    timeout: float,
) -> None:
    if "integration_api" not in bench.served or "integration_api_events" not in bench.served:
        report.skip(SECTION, "integration_api or integration_api_events is not served")
        return
    slug = new_slug("bench-hooks")
    receiver = Receiver()
    try:
        with requests.Session() as session:
            tenant_id = create_tenant(session, bench.url("tenant_api"), bench.operator_token, slug)
            token = identity.token_for(f"admin@{slug}.example", {"tenant_id": tenant_id, "roles": ["admin"]})
            url = f"{bench.url('integration_api')}/tenants/{tenant_id}/webhooks"
            ids: list[str] = []
            try:
                registering = time.perf_counter()
                ids = register(session, url, token, receiver)
                register_s = time.perf_counter() - registering
                result = fan_out(bench, session, tenant_id, receiver, events, timeout)
            finally:
                unregister(session, url, token, ids, budget_s=120)
        if receiver.sample is None:
            raise RuntimeError("no verified delivery arrived")
        headers, body, secret = receiver.sample
        direct_s = direct(receiver, body, events * ENDPOINTS, threads)
    finally:
        receiver.close()
    full, bare = verification(headers, body, secret, verifications)

    expected = events * ENDPOINTS
    if result.delivered < expected:
        raise RuntimeError(f"{result.delivered} of {expected} deliveries arrived within {timeout:.0f} s")
    rate = result.delivered / result.elapsed
    direct_rate = expected / direct_s
    v, h = Stats.of(full), Stats.of(bare)
    report.samples["webhooks"] = {
        "tenant_id": tenant_id,
        "endpoints": ENDPOINTS,
        "events": events,
        "delivered": result.delivered,
        "requests": result.requests,
        "verified": result.verified,
        "fanout_s": round(result.elapsed, 3),
        "push_s": round(result.push_s, 3),
        "register_s": round(register_s, 3),
        "direct_s": round(direct_s, 3),
        "body_bytes": len(body),
        "verify_us_p50": round(v.p50 * 1e6, 3),
        "hmac_us_p50": round(h.p50 * 1e6, 3),
    }
    report.add(
        Measurement(
            SECTION,
            "fan-out deliveries/s",
            "/s",
            rate,
            direct_rate,
            BASELINE_FANOUT,
            higher_is_better=True,
            note=f"{events} events x {ENDPOINTS} endpoints: {result.delivered:,} delivered in "
            f"{result.elapsed:,.1f} s (pushes {result.push_s:,.1f} s); baseline {threads} threads, "
            f"{len(body):,} B bodies",
        ),
        Measurement(
            SECTION,
            "deliveries with a verified signature",
            "",
            float(result.verified),
            float(expected),
            "every delivery expected",
            higher_is_better=True,
            note=f"{result.requests:,} requests received for {result.delivered:,} distinct webhook-ids; "
            f"{ENDPOINTS} endpoints registered in {register_s:,.1f} s",
        ),
        Measurement(
            SECTION,
            "signing.verify p50",
            "us",
            v.p50 * 1e6,
            h.p50 * 1e6,
            BASELINE_VERIFY,
            note=f"{v.n:,} verifications of a {len(body):,} B delivery, p95 {v.p95 * 1e6:,.1f} us "
            f"(hmac p95 {h.p95 * 1e6:,.1f} us)",
        ),
    )
