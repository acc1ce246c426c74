"""6. Bulk import of users through the HTTP API (CSV), vs the emulator's raw batched-write rate.

A fresh tenant on the plan with the most seats gets one CSV of N rows (email,role,display_name) as
POST /tenants/{tid}/user-imports (its admin); the clock runs from the POST until a poll of
GET /tenants/{tid}/user-imports/{job} (every 100 ms) answers status "completed". The job's chunks of
100 rows run one after the other as Cloud Tasks on the suite's functions host.

A row beyond the tenant's free seats (plan limit - seats used - outstanding invitations) is "skipped:
no seat": when no plan has N seats (SEAT_LIMITS in functions/tenant_api/domain.py), most rows are
skipped, so the figure is rows processed per second (created and skipped both count) and both counts
are reported.

Baseline: N documents shaped like users created through the same Firestore emulator by WriteBatch
commits of 500 creates, one after the other (after one untimed batch), before and after the import
(their mean); the baseline's documents are deleted afterwards, outside the clock. The import's tenant
and its invited users stay, like every section's tenant, until the suite stops.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
from google.cloud import firestore

from emulators import identity
from functions.tenant_api.domain import SEAT_LIMITS
from shared.clients import firestore_client
from tests.bench.context import HTTP_TIMEOUT, Bench, bearer, new_slug, settle_audit
from tests.bench.measure import Measurement, Report

SECTION = "6. Bulk import of users, CSV through the HTTP API"
BASELINE = "raw Firestore emulator WriteBatch of 500 creates, one batch at a time"
POLL_INTERVAL = 0.1
STALL_S = 60.0  # no progress for this long: stop waiting
SETTLE_S = 20.0
BATCH = 500


def largest_plan() -> tuple[str, int]:
    plan = max(SEAT_LIMITS, key=lambda p: SEAT_LIMITS[p])
    return plan, SEAT_LIMITS[plan]


def csv_rows(slug: str, n: int) -> str:
    lines = ["email,role,display_name"]
    lines += [f"user{i:05d}@{slug}.example,member,Bench User {i:05d}" for i in range(n)]
    return "\n".join(lines) + "\n"


def create_tenant(session: requests.Session, bench: Bench, slug: str, plan: str) -> str:
    response = session.post(
        f"{bench.url('tenant_api')}/tenants",
        json={"name": f"Bench {slug}", "slug": slug, "plan": plan, "admin_email": f"admin@{slug}.example"},
        headers=bearer(bench.operator_token),
        timeout=HTTP_TIMEOUT,
    )
    if response.status_code != 201:
        raise RuntimeError(f"POST /tenants answered {response.status_code}: {response.text[:500]}")
    return str(response.json()["id"])


@dataclass
class Imported:
    job: dict[str, Any]  # the last job view seen
    posted_s: float  # POST -> 202
    elapsed_s: float  # POST -> the poll that saw "completed" (or the last poll)
    polls: int
    stopped: str  # "completed", "timed out" or "stalled"


def platform_import(bench: Bench, n: int, timeout: float) -> tuple[Imported, str, int]:
    """Returns what the import did, the plan and its seat limit."""
    plan, seats = largest_plan()
    slug = new_slug("bench-import")
    with requests.Session() as session:
        tenant_id = create_tenant(session, bench, slug, plan)
        token = identity.token_for(f"admin@{slug}.example", {"tenant_id": tenant_id, "roles": ["admin"]})
        imports = f"{bench.url('user_management_api')}/tenants/{tenant_id}/user-imports"
        body = csv_rows(slug, n).encode()
        headers = {**bearer(token), "Content-Type": "text/csv"}

        started = time.perf_counter()
        response = session.post(imports, data=body, headers=headers, timeout=120)
        posted = time.perf_counter() - started
        if response.status_code != 202:
            raise RuntimeError(f"POST user-imports answered {response.status_code}: {response.text[:500]}")
        job: dict[str, Any] = response.json()
        url, polls = f"{imports}/{job['id']}", 0
        progress, last_change = job.get("processed", 0), time.perf_counter()
        stopped = "completed"
        while job.get("status") != "completed":
            now = time.perf_counter()
            if now - started > timeout:
                stopped = "timed out"
                break
            if now - last_change > STALL_S:
                stopped = "stalled"
                break
            time.sleep(POLL_INTERVAL)
            polled = session.get(url, headers=bearer(token), timeout=HTTP_TIMEOUT)
            polls += 1
            if polled.status_code != 200:
                raise RuntimeError(f"GET {url} answered {polled.status_code}: {polled.text[:500]}")
            job = polled.json()
            if job.get("processed", 0) != progress:
                progress, last_change = job.get("processed", 0), time.perf_counter()
        elapsed = time.perf_counter() - started
    return Imported(job, posted, elapsed, polls, stopped), plan, seats


def write_batched(db: firestore.Client, refs: list[Any]) -> None:
    now = datetime.now(UTC)
    for first in range(0, len(refs), BATCH):
        batch = db.batch()
        for i, ref in enumerate(refs[first : first + BATCH], start=first):
            batch.create(
                ref,
                {
                    "email": f"user{i:05d}@raw.example",
                    "role": "member",
                    "display_name": f"Bench User {i:05d}",
                    "status": "invited",
                    "created_at": now,
                    "updated_at": now,
                    "version": 1,
                },
            )
        batch.commit()


def raw_batched_rate(n: int) -> tuple[float, float]:
    """N user-shaped documents in WriteBatch commits of BATCH creates, after one untimed batch; (rows/s,
    seconds). Every document is deleted afterwards, outside the clock."""
    db = firestore_client()
    collection = db.collection(f"bench_raw_import_{secrets.token_hex(4)}")
    warmup = [collection.document(f"warm_{i:03d}") for i in range(BATCH)]
    refs = [collection.document(f"usr_{i:05d}") for i in range(n)]
    try:
        write_batched(db, warmup)
        started = time.perf_counter()
        write_batched(db, refs)
        elapsed = time.perf_counter() - started
    finally:
        delete(db, warmup + refs)
    return n / elapsed, elapsed


def delete(db: firestore.Client, refs: list[Any]) -> None:
    for first in range(0, len(refs), BATCH):
        batch = db.batch()
        for ref in refs[first : first + BATCH]:
            batch.delete(ref)
        batch.commit()


def run(bench: Bench, report: Report, n: int, timeout: float) -> None:
    if "user_management_api" not in bench.served or "user_management_api_tasks" not in bench.served:
        report.skip(SECTION, "the User Management API (HTTP and tasks functions) is not there")
        return
    raw = [raw_batched_rate(n)]
    settled, unsealed = settle_audit(SETTLE_S)
    imported, plan, seats = platform_import(bench, n, timeout)
    raw.append(raw_batched_rate(n))

    job = imported.job
    processed, created, skipped, failed = (
        int(job.get(k, 0)) for k in ("processed", "created", "skipped", "failed")
    )
    rate = processed / imported.elapsed_s if processed else 0.0
    server_s = server_duration(job)
    raw_rate = sum(r for r, _ in raw) / len(raw)
    raw_s = sum(s for _, s in raw) / len(raw)
    report.samples["bulk_import"] = {
        "job": job,
        "plan": plan,
        "seat_limit": seats,
        "post_s": round(imported.posted_s, 3),
        "elapsed_s": round(imported.elapsed_s, 3),
        "polls": imported.polls,
        "server_created_to_completed_s": server_s,
        "stopped": imported.stopped,
        "settled_s": round(settled, 1),
        "unsealed_at_start": unsealed,
        "baseline_rows_per_s": [round(r, 1) for r, _ in raw],
        "baseline_s": [round(s, 3) for _, s in raw],
    }
    done = (
        f"completed in {imported.elapsed_s:.1f} s"
        if imported.stopped == "completed"
        else f"INCOMPLETE ({imported.stopped} after {imported.elapsed_s:.0f} s, status {job.get('status')})"
    )
    seat_note = (
        f"{plan} plan: {seats} seats, so rows beyond the free seats are skipped (no seat): "
        "rows/s counts created and skipped rows"
        if seats < n
        else f"{plan} plan: {seats} seats"
    )
    counts = f"{processed:,} of {n:,} processed: {created:,} created, {skipped:,} skipped, {failed:,} failed"
    report.add(
        Measurement(
            SECTION,
            f"rows processed/s ({n:,} CSV rows)",
            "/s",
            rate,
            raw_rate,
            BASELINE,
            higher_is_better=True,
            note=f"{counts}; {done}"
            + ("" if server_s is None else f" (job created_at -> completed_at {server_s:.1f} s)"),
        ),
        Measurement(
            SECTION,
            "POST -> job completed",
            "s",
            imported.elapsed_s if imported.stopped == "completed" else None,
            raw_s,
            BASELINE,
            note=f"{seat_note}; POST answered 202 in {imported.posted_s * 1000:,.0f} ms; "
            f"{imported.polls} polls, {POLL_INTERVAL * 1000:.0f} ms apart",
        ),
        Measurement(
            SECTION,
            "rows created",
            "",
            float(created),
            None,
            "",
            note=f"skipped {skipped:,} (no seat beyond {seats:,}, or existing); baseline before/after "
            f"{raw[0][0]:,.0f}/{raw[1][0]:,.0f} rows/s; {_settled(settled, unsealed)}",
        ),
    )


def server_duration(job: dict[str, Any]) -> float | None:
    """The job's own created_at -> completed_at, in seconds (None until it completed)."""
    if not job.get("completed_at"):
        return None
    created, completed = (datetime.fromisoformat(str(job[k])) for k in ("created_at", "completed_at"))
    return round((completed - created).total_seconds(), 3)


def _settled(waited: float, unsealed: int) -> str:
    if unsealed:
        return f"started with {unsealed} audit entries unsealed after {waited:.0f} s"
    return f"started quiet (waited {waited:.0f} s)"
