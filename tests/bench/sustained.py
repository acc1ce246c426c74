"""4. Sustained audit entries/s for ONE tenant, vs raw Firestore creates/s and raw push deliveries/s.

N User Invited events for one fresh tenant are published with the real PublisherClient (ordering on,
as the outbox publishes) to the catalog topic; the Pub/Sub emulator pushes them to the Audit API's
events function on the suite's functions host. The clock runs from the first publish until a count()
aggregation on tenants/{tid}/audit_entries reaches N more than before. Failed push deliveries are the
event intake's own `_delivery_attempts` records (one per event that failed at least once, with its
attempt count); dead-lettered and quarantined events are counted too, and lost = N - recorded.

Baselines: N independent documents created in one fresh collection by `threads` threads through the
same Firestore emulator, before and after the platform run (their mean); and the same N messages
published to a fresh ordered push subscription whose endpoint is a bare function (what the emulator's
push alone sustains).
"""

from __future__ import annotations

import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from google.cloud import firestore

from shared.clients import firestore_client, publisher
from shared.contracts import UserInvited
from shared.events import CloudEvent
from shared.intake import ATTEMPTS, DEAD_LETTERS, QUARANTINE
from tests.bench.context import (
    AUDIT_ENTRIES,
    Bench,
    count,
    create_tenant,
    envelope,
    example_data,
    new_slug,
    push_topic,
    settle_audit,
)
from tests.bench.measure import Measurement, Report
from tests.bench.procs import Probe, first_answer, write_baseline

SECTION = "4. Sustained audit entries/s, one tenant"
BASELINE = "raw Firestore emulator creates/s, one collection"
PUSH_BASELINE = "raw emulator push deliveries/s (same messages, ordered) to a bare function"
COUNT_INTERVAL = 0.1
STALL_S = 30.0
SETTLE_S = 20.0


def _settled(waited: float, unsealed: int) -> str:
    if unsealed:
        return f"started with {unsealed} entries still unsealed after {waited:.0f} s"
    return f"started quiet (waited {waited:.0f} s for pending seals)"


def audit_entries(db: firestore.Client, tenant_id: str) -> Any:
    return db.collection("tenants").document(tenant_id).collection(AUDIT_ENTRIES)


@dataclass(frozen=True)
class Deliveries:
    """The Audit API intake's failure records, at one moment."""

    retried_events: int  # events whose push failed at least once
    failed_attempts: int  # failed push deliveries, all events together
    dead_lettered: int
    quarantined: int

    @classmethod
    def read(cls, db: firestore.Client, api_name: str, api_slug: str) -> Deliveries:
        attempts = [
            doc.to_dict() or {}
            for doc in db.collection(ATTEMPTS).stream()
            if doc.id.startswith(f"{api_slug}--")
        ]
        api = firestore.FieldFilter("api", "==", api_name)
        return cls(
            len(attempts),
            sum(int(a.get("attempts", 0)) for a in attempts),
            count(db.collection(DEAD_LETTERS).where(filter=api)),
            count(db.collection(QUARANTINE).where(filter=api)),
        )

    def __sub__(self, before: Deliveries) -> Deliveries:
        return Deliveries(
            self.retried_events - before.retried_events,
            self.failed_attempts - before.failed_attempts,
            self.dead_lettered - before.dead_lettered,
            self.quarantined - before.quarantined,
        )


def user_invited_events(bench: Bench, tenant_id: str, n: int) -> list[CloudEvent]:
    """N valid User Invited envelopes (the schema's example with unique ids), unique event ids."""
    event = bench.catalog.event("User Invited")
    example = example_data(event)
    expires = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    events = []
    for i in range(n):
        user_id = f"usr_bench_{i:05d}"
        payload = UserInvited.model_validate(
            {
                **example,
                "user_id": user_id,
                "invitation_id": f"inv_bench_{i:05d}",
                "email": f"user{i:05d}@bench.example",
                "expires_at": expires,
            }
        )
        events.append(envelope(bench.catalog, event, payload, tenant_id, subject=user_id))
    return events


@dataclass(frozen=True)
class Counted:
    seen: int
    last_change: float  # perf_counter time the count last changed (the first read, if it never did)
    longest_gap: float  # the longest time the count stood still before reaching the target
    stopped: str  # "reached", "timed out" or "stalled"


def wait_for_count(query: Any, target: int, deadline: float) -> Counted:
    """Poll count() until it reaches `target`, the deadline passes or it stalls for STALL_S."""
    seen, last_change, longest_gap = count(query), time.perf_counter(), 0.0
    while seen < target:
        now = time.perf_counter()
        longest_gap = max(longest_gap, now - last_change)
        if now > deadline:
            return Counted(seen, last_change, longest_gap, "timed out")
        if now - last_change > STALL_S:
            return Counted(seen, last_change, longest_gap, "stalled")
        time.sleep(COUNT_INTERVAL)
        now_seen = count(query)
        if now_seen != seen:
            seen, last_change = now_seen, time.perf_counter()
    return Counted(seen, last_change, longest_gap, "reached")


def platform_rate(bench: Bench, n: int, timeout: float) -> tuple[float, dict[str, Any]]:
    db = firestore_client()
    api = bench.catalog.api("Audit API")
    with requests.Session() as session:
        tenant_id = create_tenant(
            session, bench.url("tenant_api"), bench.operator_token, new_slug("bench-load")
        )
    # Only the N User Invited entries count (the tenant's own Tenant Created lands there too).
    entries = audit_entries(db, tenant_id).where(filter=firestore.FieldFilter("action", "==", "user.invited"))
    before = count(entries)
    deliveries_before = Deliveries.read(db, api.name, api.slug)
    events = user_invited_events(bench, tenant_id, n)
    topic = f"projects/{bench.suite.project}/topics/{bench.catalog.event('User Invited').topic}"

    client = publisher()
    started = time.perf_counter()
    futures = []
    for cloud_event in events:
        data, attributes = cloud_event.to_message()
        futures.append(client.publish(topic, data, ordering_key=cloud_event.ordering_key, **attributes))
    for future in futures:
        future.result(timeout=60)
    published = time.perf_counter() - started

    counted = wait_for_count(entries, before + n, started + timeout)
    elapsed = counted.last_change - started  # until the last entry seen
    recorded = counted.seen - before
    failures = Deliveries.read(db, api.name, api.slug) - deliveries_before
    details = {
        "tenant_id": tenant_id,
        "events": n,
        "recorded": recorded,
        "lost": n - recorded,
        "publish_s": round(published, 3),
        "elapsed_s": round(elapsed, 3),
        "waited_s": round(time.perf_counter() - started, 3),
        "longest_gap_s": round(counted.longest_gap, 3),
        "stopped": counted.stopped,
        "retried_events": failures.retried_events,
        "failed_push_deliveries": failures.failed_attempts,
        "dead_lettered": failures.dead_lettered,
        "quarantined": failures.quarantined,
    }
    return (recorded / elapsed if recorded else 0.0), details


def raw_push_rate(bench: Bench, n: int, timeout: float) -> tuple[float, int]:
    """N messages (User Invited envelopes) published to a fresh ordered push subscription whose
    endpoint is a bare recording function; deliveries/s until the last arrival, and how many arrived."""
    payloads = [e.to_message()[0] for e in user_invited_events(bench, "t_raw", n)]
    recorder = bench.fleet.spawn("recorder", write_baseline(bench.workdir / "baselines", "recorder"))
    try:
        first_answer(recorder, Probe("GET", "/", "GET /"))
        with push_topic(bench.suite.project, recorder.url + "/") as topic, requests.Session() as session:
            client = publisher()
            sent, deadline = time.time(), time.perf_counter() + timeout
            futures = [
                client.publish(topic, data, ordering_key=f"raw/{i}", seq=str(i))
                for i, data in enumerate(payloads)
            ]
            for future in futures:
                future.result(timeout=60)
            arrivals: dict[str, float] = {}
            while len(arrivals) < n and time.perf_counter() < deadline:
                time.sleep(COUNT_INTERVAL)
                arrivals = session.get(recorder.url + "/", timeout=30).json()
    finally:
        bench.fleet.stop(recorder)
    if not arrivals:
        return 0.0, 0
    return len(arrivals) / (max(arrivals.values()) - sent), len(arrivals)


def raw_creates_rate(bench: Bench, n: int, threads: int) -> float:
    """N documents shaped like audit entries (the example's details) created by `threads` threads."""
    db = firestore_client()
    collection = db.collection(f"bench_raw_{secrets.token_hex(4)}")
    details = example_data(bench.catalog.event("User Invited"))
    now = datetime.now(UTC)

    def create(i: int) -> None:
        collection.document(f"e{i:05d}").create(
            {"action": "user.invited", "tenant_id": "t_raw", "details": details, "recorded_at": now}
        )

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(create, range(n)))
    return n / (time.perf_counter() - started)


def run(bench: Bench, report: Report, n: int, threads: int, timeout: float) -> None:
    creates = [raw_creates_rate(bench, n, threads)]
    push_rate, pushed = raw_push_rate(bench, n, timeout / 2)
    push_note = f"{pushed} of {n} arrived" + ("" if pushed == n else " (INCOMPLETE)")
    if "audit_api_events" not in bench.served:
        report.skip(SECTION, "the Audit API (functions/audit_api/main.py) is not there yet")
        report.add(
            Measurement(SECTION, "entries/s vs raw creates", "/s", None, creates[0], BASELINE, True),
            Measurement(SECTION, "entries/s vs raw push", "/s", None, push_rate, PUSH_BASELINE, True),
        )
        return
    settled, unsealed = settle_audit(SETTLE_S)
    rate, details = platform_rate(bench, n, timeout)
    details["settled_s"], details["unsealed_at_start"] = round(settled, 1), unsealed
    creates.append(raw_creates_rate(bench, n, threads))
    report.samples["sustained_audit"] = {
        **details,
        "baseline_creates_per_s": creates,
        "baseline_push_per_s": push_rate,
    }
    status = (
        f"all {n} recorded in {details['elapsed_s']:.1f} s"
        if details["recorded"] == n
        else f"INCOMPLETE ({details['stopped']} after {details['waited_s']:.0f} s): "
        f"{details['recorded']} of {n}, the last at {details['elapsed_s']:.1f} s"
    )
    report.add(
        Measurement(
            SECTION,
            f"audit entries/s ({n} User Invited) vs raw creates",
            "/s",
            rate,
            sum(creates) / len(creates),
            BASELINE,
            higher_is_better=True,
            note=f"{status}; longest pause {details['longest_gap_s']:.1f} s; {_settled(settled, unsealed)}; "
            f"publishing "
            f"{details['publish_s']:.1f} s; baseline {threads} threads, "
            f"before/after {creates[0]:,.0f}/{creates[1]:,.0f}",
        ),
        Measurement(
            SECTION,
            "audit entries/s vs raw push",
            "/s",
            rate,
            push_rate,
            PUSH_BASELINE,
            higher_is_better=True,
            note=f"baseline: {push_note}",
        ),
        Measurement(
            SECTION,
            "failed push deliveries",
            "",
            float(details["failed_push_deliveries"]),
            None,
            "",
            note=f"{details['retried_events']} events retried, {details['dead_lettered']} dead-lettered, "
            f"{details['quarantined']} quarantined, {details['lost']} lost (recorded {details['recorded']})",
        ),
    )
