"""4. Sustained audit entries/s for ONE tenant, vs raw Firestore creates/s.

N User Invited events for one fresh tenant are published with the real PublisherClient (ordering on,
as the outbox publishes) to the catalog topic; the Pub/Sub emulator pushes them to the Audit API's
events function on the suite's functions host. The clock runs from the first publish until a count()
aggregation on tenants/{tid}/audit_entries reaches N more than before. Failed push deliveries are the
event intake's own `_delivery_attempts` records (one per event that failed at least once, with its
attempt count); dead-lettered and quarantined events are counted too, and lost = N - recorded.

Baseline: N independent documents created in one fresh collection by `threads` threads, through the
same Firestore emulator, measured before and after the platform run (their mean is the baseline).
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
from tests.bench.context import Bench, create_tenant, envelope, example_data, new_slug
from tests.bench.measure import Measurement, Report

SECTION = "4. Sustained audit entries/s, one tenant"
BASELINE = "raw Firestore emulator creates/s, one collection"
AUDIT_ENTRIES = "audit_entries"
COUNT_INTERVAL = 0.1
STALL_S = 30.0


def count(query: Any) -> int:
    return int(query.count().get()[0][0].value)


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
    stopped: str  # "reached", "timed out" or "stalled"


def wait_for_count(query: Any, target: int, deadline: float) -> Counted:
    """Poll count() until it reaches `target`, the deadline passes or it stalls for STALL_S."""
    seen, last_change = count(query), time.perf_counter()
    while seen < target:
        now = time.perf_counter()
        if now > deadline:
            return Counted(seen, last_change, "timed out")
        if now - last_change > STALL_S:
            return Counted(seen, last_change, "stalled")
        time.sleep(COUNT_INTERVAL)
        now_seen = count(query)
        if now_seen != seen:
            seen, last_change = now_seen, time.perf_counter()
    return Counted(seen, last_change, "reached")


def platform_rate(bench: Bench, n: int, timeout: float) -> tuple[float, dict[str, Any]]:
    db = firestore_client()
    api = bench.catalog.api("Audit API")
    with requests.Session() as session:
        tenant_id = create_tenant(
            session, bench.url("tenant_api"), bench.operator_token, new_slug("bench-load")
        )
    entries = audit_entries(db, tenant_id)
    # Its own Tenant Created entry lands first, so it is not counted as one of the N.
    before = wait_for_count(entries, 1, time.perf_counter() + 30).seen
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
    waited = time.perf_counter() - started
    recorded = counted.seen - before
    failures = Deliveries.read(db, api.name, api.slug) - deliveries_before
    details = {
        "tenant_id": tenant_id,
        "events": n,
        "recorded": recorded,
        "lost": n - recorded,
        "publish_s": round(published, 3),
        "elapsed_s": round(elapsed, 3),
        "waited_s": round(waited, 3),
        "stopped": counted.stopped,
        "retried_events": failures.retried_events,
        "failed_push_deliveries": failures.failed_attempts,
        "dead_lettered": failures.dead_lettered,
        "quarantined": failures.quarantined,
    }
    return (recorded / elapsed if recorded else 0.0), details


def raw_creates_rate(n: int, threads: int) -> float:
    db = firestore_client()
    collection = db.collection(f"bench_raw_{secrets.token_hex(4)}")
    now = datetime.now(UTC)

    def create(i: int) -> None:
        collection.document(f"e{i:05d}").create(
            {"action": "user.invited", "tenant_id": "t_raw", "actor": {"type": "user", "id": "u"}, "at": now}
        )

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(create, range(n)))
    return n / (time.perf_counter() - started)


def run(bench: Bench, report: Report, n: int, threads: int, timeout: float) -> None:
    baseline_runs = [raw_creates_rate(n, threads)]
    if "audit_api_events" not in bench.served:
        report.skip(SECTION, "the Audit API (functions/audit_api/main.py) is not there yet")
        report.add(Measurement(SECTION, "entries/s", "/s", None, baseline_runs[0], BASELINE, True))
        return
    rate, details = platform_rate(bench, n, timeout)
    baseline_runs.append(raw_creates_rate(n, threads))
    baseline = sum(baseline_runs) / len(baseline_runs)
    report.samples["sustained_audit"] = {**details, "baseline_creates_per_s": baseline_runs}
    complete = details["recorded"] == n
    status = (
        f"all {n} recorded in {details['elapsed_s']:.1f} s"
        if complete
        else f"INCOMPLETE ({details['stopped']} after {details['waited_s']:.0f} s): "
        f"{details['recorded']} of {n}, the last at {details['elapsed_s']:.1f} s"
    )
    report.add(
        Measurement(
            SECTION,
            f"audit entries/s ({n} User Invited)",
            "/s",
            rate,
            baseline,
            BASELINE,
            higher_is_better=True,
            note=f"{status}; publishing took {details['publish_s']:.1f} s; baseline {threads} threads, "
            f"before/after {baseline_runs[0]:,.0f}/{baseline_runs[1]:,.0f}",
        ),
        Measurement(
            SECTION,
            "failed push deliveries",
            "",
            float(details["failed_push_deliveries"]),
            None,
            BASELINE,
            note=f"{details['retried_events']} events retried, {details['dead_lettered']} dead-lettered, "
            f"{details['quarantined']} quarantined, {details['lost']} lost (recorded {details['recorded']})",
        ),
    )
