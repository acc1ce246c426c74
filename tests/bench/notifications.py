"""11. Notifications: a burst of N events into in-app notifications and queued emails, and the emails sent.

A fresh tenant with one active admin (a users document, as the User Management API writes it). N
Capacity Limit Approaching events (high priority, for the admins, in-app and email) are pushed through the
real push endpoint (notification_api_events, with the push service token) by `threads` threads. Each
creates, in the intake's transaction, one in-app notification and one email document, and enqueues one
named Cloud Task; the figure is notifications created (in-app + email) per second, from the first push
until the last push was answered (and the count() of both collections says every one exists). Then the
send tasks deliver through the Tasks emulator and SMTP to the suite's SMTP sink: emails sent per second,
from the first push until the last email document is marked sent (bounded by `timeout`).

Baseline: the same N push bodies POSTed by the same number of threads to a bare recording function (a
functions-framework process that only notes the arrival), pushes/s in the same run.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from google.cloud import firestore

from shared.clients import firestore_client
from tests.bench.context import (
    HTTP_TIMEOUT,
    Bench,
    count,
    create_tenant,
    example_envelope,
    new_slug,
    push_body,
)
from tests.bench.measure import Measurement, Report
from tests.bench.procs import Probe, first_answer, write_baseline

SECTION = "11. Notifications: a burst of events into in-app + email notifications"
BASELINE = "the same push bodies POSTed to a bare recording function, same threads"
EVENT = "Capacity Limit Approaching"  # external: nothing else in the suite publishes it
API_NAME = "Notification API"


def post_all(url: str, bodies: list[dict[str, Any]], threads: int) -> tuple[float, list[int]]:
    """POST every body by `threads` threads (a session each); seconds and the statuses."""
    local = threading.local()

    def post(i: int) -> int:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        return int(session.post(url, json=bodies[i], timeout=HTTP_TIMEOUT).status_code)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        statuses = list(pool.map(post, range(len(bodies))))
    return time.perf_counter() - started, statuses


def bodies(bench: Bench, tenant_id: str, n: int) -> list[dict[str, Any]]:
    event = bench.catalog.event(EVENT)
    api = bench.catalog.api(API_NAME)
    return [
        push_body(bench.suite.project, event, api, example_envelope(bench.catalog, event, tenant_id))
        for _ in range(n)
    ]


def raw_push_rate(bench: Bench, payloads: list[dict[str, Any]], threads: int) -> float:
    recorder = bench.fleet.spawn("recorder", write_baseline(bench.workdir / "baselines", "recorder"))
    try:
        first_answer(recorder, Probe("GET", "/", "GET /"))
        elapsed, statuses = post_all(recorder.url + "/", payloads, threads)
    finally:
        bench.fleet.stop(recorder)
    if any(s != 204 for s in statuses):
        raise RuntimeError("the recording function did not answer every push with 204")
    return len(payloads) / elapsed


def run(bench: Bench, report: Report, n: int, threads: int, timeout: float) -> None:
    if "notification_api_events" not in bench.served:
        report.skip(SECTION, "notification_api_events is not served")
        return
    db = firestore_client()
    slug = new_slug("bench-ntf")
    with requests.Session() as session:
        tenant_id = create_tenant(session, bench.url("tenant_api"), bench.operator_token, slug)
    tenant = db.collection("tenants").document(tenant_id)
    tenant.collection("users").document("bench-admin").set(
        {"id": "bench-admin", "email": f"admin@{slug}.example", "role": "admin", "status": "active"}
    )
    # Only this section's event: creating the tenant sets off others (onboarding, health) that notify too.
    of_event = firestore.FieldFilter("event_name", "==", EVENT)
    inbox = tenant.collection("inbox").document("bench-admin").collection("items").where(filter=of_event)
    emails = tenant.collection("notification_emails").where(filter=of_event)
    ours = bodies(bench, tenant_id, n)
    baseline = raw_push_rate(bench, bodies(bench, "t_raw", n), threads)

    url = bench.url("notification_api_events") + bench.push_query()
    in_app_before, emails_before = count(inbox), count(emails)
    started = time.perf_counter()
    pushed_s, statuses = post_all(url, ours, threads)
    failed = sum(1 for s in statuses if s != 200)
    created = count(inbox) - in_app_before + count(emails) - emails_before
    sent_query = emails.where(filter=firestore.FieldFilter("status", "==", "sent"))
    deadline = started + timeout
    sent = count(sent_query)
    while sent < n and time.perf_counter() < deadline:
        time.sleep(0.5)
        sent = count(sent_query)
    sent_s = time.perf_counter() - started
    rate = created / pushed_s
    report.samples["notifications"] = {
        "tenant_id": tenant_id,
        "events": n,
        "threads": threads,
        "push_failures": failed,
        "created": created,
        "push_s": round(pushed_s, 3),
        "emails_sent": sent,
        "sent_s": round(sent_s, 3),
        "baseline_pushes_per_s": round(baseline, 1),
    }
    complete = "" if created == 2 * n and not failed else f" (INCOMPLETE: {failed} pushes failed)"
    report.add(
        Measurement(
            SECTION,
            f"notifications created/s ({n:,} events, in-app + email queued)",
            "/s",
            rate,
            baseline,
            BASELINE,
            higher_is_better=True,
            note=f"{created:,} notifications ({n:,} in-app, {n:,} emails with their send task) in "
            f"{pushed_s:,.1f} s = {n / pushed_s:,.0f} events/s{complete}; "
            f"baseline pushes/s, {threads} threads",
        ),
        Measurement(
            SECTION,
            "emails sent over SMTP/s",
            "/s",
            sent / sent_s if sent else 0.0,
            baseline,
            BASELINE,
            higher_is_better=True,
            note=f"{sent:,} of {n:,} sent to the SMTP sink through the Tasks emulator in {sent_s:,.1f} s"
            + ("" if sent >= n else f" (INCOMPLETE after {timeout:.0f} s)"),
        ),
    )
