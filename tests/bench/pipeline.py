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
from typing import Protocol

import requests

from emulators import identity
from shared.clients import publisher
from tests.bench.context import Bench, bearer, create_tenant, new_slug, push_topic, settle_audit
from tests.bench.measure import Measurement, Report, Stats, ms
from tests.bench.procs import Probe, Served, first_answer, write_baseline

SECTION = "3. POST /tenants -> Tenant Created audit entry queryable"
BASELINE = "raw emulator round trip: publish -> push arrival at a bare function"
POLL_INTERVAL = 0.010
SETTLE_S = 20.0  # at most, for pending seals to finish before the section starts
WARMUP = 2


class RoundTrip(Protocol):
    def once(self, timeout: float) -> float | None:
        """Seconds from sending to seen, or None if not seen within `timeout`."""


@dataclass
class PlatformPath:
    bench: Bench
    session: requests.Session
    use_operator: bool  # the operator holds audit:read on every tenant; else a tenant admin is minted
    post_latencies: list[float]

    def once(self, timeout: float) -> float | None:
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


def poll_until(check: Callable[[], bool], started: float, timeout: float) -> float | None:
    """Call check() every POLL_INTERVAL (fixed cadence) until it is true: seconds since `started`, or
    None after `timeout` seconds."""
    tick = time.perf_counter()
    while True:
        if check():
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            return None
        tick += POLL_INTERVAL
        time.sleep(max(0.0, tick - time.perf_counter()))


@dataclass
class RawPath:
    recorder: Served
    session: requests.Session
    topic: str
    seq: int = 0

    def once(self, timeout: float) -> float | None:
        self.seq += 1
        key = str(self.seq)
        arrivals: dict[str, float] = {}

        def arrived() -> bool:
            arrivals.update(self.session.get(self.recorder.url + "/", timeout=10).json())
            return key in arrivals

        sent = time.time()
        started = time.perf_counter()
        publisher().publish(self.topic, b'{"bench": true}', ordering_key="bench", seq=key).result(timeout=30)
        if poll_until(arrived, started, timeout) is None:
            return None
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


def run(bench: Bench, report: Report, count: int, timeout: float, budget_s: float) -> None:
    has_audit = "audit_api" in bench.served and "audit_api_events" in bench.served
    recorder = bench.fleet.spawn("recorder", write_baseline(bench.workdir / "baselines", "recorder"))
    session = requests.Session()
    try:
        first_answer(recorder, Probe("GET", "/", "GET /"))
        settled, unsealed = settle_audit(SETTLE_S) if has_audit else (0.0, 0)
        platform = PlatformPath(bench, session, operator_reads_audit(bench), []) if has_audit else None
        raw_samples: list[float] = []
        platform_samples: list[float] = []
        missed: dict[str, int] = {"baseline": 0, "platform": 0}
        deadline = time.perf_counter() + budget_s
        with push_topic(bench.suite.project, recorder.url + "/") as topic:
            raw = RawPath(recorder, session, topic)
            paths: list[tuple[str, RoundTrip | None, list[float]]] = [
                ("baseline", raw, raw_samples),
                ("platform", platform, platform_samples),
            ]
            for i in range(WARMUP + count):  # interleaved, so a slow patch of the machine hits both
                if time.perf_counter() > deadline:
                    break
                for name, path, samples in paths:
                    if path is None:
                        continue
                    latency = path.once(timeout)
                    if latency is None:  # counted as `timeout`: a percentile must not hide it
                        missed[name] += 1
                    if i >= WARMUP:
                        samples.append(timeout if latency is None else latency)
    finally:
        session.close()
        bench.fleet.stop(recorder)

    report.samples["tenant_created_to_audit"] = {"latency_ms": ms(platform_samples), "missed": missed}
    report.samples["raw_publish_to_push"] = {"latency_ms": ms(raw_samples)}
    if platform is None:
        report.skip(SECTION, "the Audit API (functions/audit_api/main.py) is not there yet")
    who = "" if platform is None else "operator" if platform.use_operator else "a tenant admin"
    t = Stats.of(platform_samples) if platform_samples else None
    b = Stats.of(raw_samples) if raw_samples else None
    post = platform.post_latencies[WARMUP:] if platform else []
    notes = [f"{len(platform_samples)} tenants"] if platform else []
    if post:
        notes.append(f"POST /tenants p50 {Stats.of(post).p50 * 1000:,.0f} ms of it; polled as {who}")
    if unsealed:
        notes.append(f"started with {unsealed} entries still unsealed after {settled:.0f} s")
    notes += [
        f"{name}: {n} not seen within {timeout:.0f} s (counted as {timeout:.0f} s)"
        for name, n in missed.items()
        if n
    ]
    spread = f"max {t.max * 1000:,.0f} ms" if t else ""
    if t and b:
        spread += f" (baseline max {b.max * 1000:,.0f} ms)"
    report.add(
        Measurement(
            SECTION,
            "p50",
            "ms",
            t.p50 * 1000 if t else None,
            b.p50 * 1000 if b else None,
            BASELINE,
            note="; ".join(notes),
        ),
        Measurement(
            SECTION,
            "p95",
            "ms",
            t.p95 * 1000 if t else None,
            b.p95 * 1000 if b else None,
            BASELINE,
            note=spread,
        ),
    )
