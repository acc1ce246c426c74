"""3. POST /tenants -> its Tenant Created audit entry is queryable, vs a raw publish -> push round trip.

The platform path: the Tenant API commits the tenant and its outbox entry, publishes Tenant Created,
the Pub/Sub emulator pushes it to the Audit API's events function, which records the entry; the bench
polls GET /tenants/{tid}/audit/entries?action=tenant.created every 10 ms (all on the suite's functions
host, as `make run` serves them). The baseline: publish (same client settings: ordering on) to a fresh
topic whose push subscription (ordering on) points at a bare function that records the arrival time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import requests

from emulators import identity
from shared.clients import publisher
from tests.bench.context import Bench, bearer, create_tenant, new_slug, push_topic
from tests.bench.measure import Measurement, Report, Stats, ms
from tests.bench.procs import Probe, Served, first_answer, write_baseline

SECTION = "3. POST /tenants -> Tenant Created audit entry queryable"
BASELINE = "raw emulator round trip: publish -> push arrival at a bare function"
POLL_INTERVAL = 0.010
WARMUP = 2


@dataclass
class PlatformPath:
    bench: Bench
    session: requests.Session
    use_operator: bool  # the operator holds audit:read on every tenant; else a tenant admin is minted
    post_latencies: list[float]

    def once(self, timeout: float) -> float:
        tenant_api, audit_api = self.bench.url("tenant_api"), self.bench.url("audit_api")
        slug = new_slug("bench-lat")
        started = time.perf_counter()
        tenant_id = create_tenant(self.session, tenant_api, self.bench.operator_token, slug)
        self.post_latencies.append(time.perf_counter() - started)
        token = (
            self.bench.operator_token
            if self.use_operator
            else identity.token_for(f"admin@{slug}.example", {"tenant_id": tenant_id, "roles": ["admin"]})
        )
        url = f"{audit_api}/tenants/{tenant_id}/audit/entries?action=tenant.created&limit=10"
        return poll_until(
            lambda: _has_items(self.session.get(url, headers=bearer(token), timeout=10)), started, timeout
        )


def _has_items(response: requests.Response) -> bool:
    return response.status_code == 200 and bool(response.json().get("items"))


def poll_until(check: Callable[[], bool], started: float, timeout: float) -> float:
    """Call check() every POLL_INTERVAL (fixed cadence) until it is true; seconds since `started`."""
    tick = time.perf_counter()
    while True:
        if check():
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"not seen within {timeout:.0f} s")
        tick += POLL_INTERVAL
        time.sleep(max(0.0, tick - time.perf_counter()))


@dataclass
class RawPath:
    recorder: Served
    session: requests.Session
    topic: str
    seq: int = 0

    def once(self, timeout: float) -> float:
        self.seq += 1
        key = str(self.seq)
        arrivals: dict[str, float] = {}

        def arrived() -> bool:
            arrivals.update(self.session.get(self.recorder.url + "/", timeout=10).json())
            return key in arrivals

        sent = time.time()
        started = time.perf_counter()
        publisher().publish(self.topic, b'{"bench": true}', ordering_key="bench", seq=key).result(timeout=30)
        poll_until(arrived, started, timeout)
        return arrivals[key] - sent


def operator_reads_audit(bench: Bench) -> bool:
    response = requests.get(
        f"{bench.url('audit_api')}/tenants/{bench.tenant_id}/audit/entries?limit=1",
        headers=bearer(bench.operator_token),
        timeout=30,
    )
    if response.status_code in (401, 403, 404):
        return False
    if response.status_code != 200:
        raise RuntimeError(f"the Audit API answered {response.status_code}: {response.text[:300]}")
    return True


def run(bench: Bench, report: Report, count: int, timeout: float) -> None:
    has_audit = "audit_api" in bench.served and "audit_api_events" in bench.served
    recorder = bench.fleet.spawn("recorder", write_baseline(bench.workdir / "baselines", "recorder"))
    session = requests.Session()
    try:
        first_answer(recorder, Probe("GET", "/", "GET /"))
        platform = PlatformPath(bench, session, operator_reads_audit(bench), []) if has_audit else None
        raw_samples: list[float] = []
        platform_samples: list[float] = []
        with push_topic(bench.suite.project, recorder.url + "/") as topic:
            raw = RawPath(recorder, session, topic)
            for i in range(WARMUP + count):  # interleaved, so a slow patch of the machine hits both
                raw_latency = raw.once(timeout)
                platform_latency = platform.once(timeout) if platform else None
                if i >= WARMUP:
                    raw_samples.append(raw_latency)
                    if platform_latency is not None:
                        platform_samples.append(platform_latency)
    finally:
        session.close()
        bench.fleet.stop(recorder)

    b = Stats.of(raw_samples)
    report.samples["tenant_created_to_audit"] = {"latency_ms": ms(platform_samples)}
    report.samples["raw_publish_to_push"] = {"latency_ms": ms(raw_samples)}
    if platform is None:
        report.skip(SECTION, "the Audit API (functions/audit_api/main.py) is not there yet")
        report.add(
            Measurement(SECTION, "p50", "ms", None, b.p50 * 1000, BASELINE),
            Measurement(SECTION, "p95", "ms", None, b.p95 * 1000, BASELINE),
        )
        return
    t = Stats.of(platform_samples)
    post = Stats.of(platform.post_latencies[WARMUP:])
    who = "operator" if platform.use_operator else "tenant admin (minted after the POST)"
    report.add(
        Measurement(
            SECTION,
            f"p50 over {t.n} tenants",
            "ms",
            t.p50 * 1000,
            b.p50 * 1000,
            BASELINE,
            note=f"of which POST /tenants p50 {post.p50 * 1000:,.0f} ms; polled as {who}",
        ),
        Measurement(
            SECTION,
            f"p95 over {t.n} tenants",
            "ms",
            t.p95 * 1000,
            b.p95 * 1000,
            BASELINE,
            note=f"max {t.max * 1000:,.0f} ms (baseline max {b.max * 1000:,.0f} ms)",
        ),
    )
