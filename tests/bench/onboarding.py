"""13. Onboarding: from POST /tenants to Onboarding Completed, against the steps' own work.

RUNS tenants are created one after the other through the Tenant API. For each, the figure is the time
from just before POST /tenants to the commit that finished its onboarding run (the run's `finished_at`,
written in the transaction that raises Onboarding Completed): the Tenant API's request, Tenant Created
through the outbox and Pub/Sub push, the onboarding intake, and every step dispatched as a Cloud Task
by the step engine. Baseline, from the same runs: the sum of the steps' recorded durations (each step's
successful attempt: its calls to the other APIs and its attempt record), i.e. the work without the
engine and the event path around it. The difference is the overhead of the platform around the steps.
A run whose verification step had to wait for another API (a retry with the queue's backoff) is counted
in the note; its wait is in both figures, since a retried attempt is not in the step's duration.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import requests

from functions.onboarding_api import domain
from functions.onboarding_api.service import RUNS
from shared.clients import firestore_client
from tests.bench.context import Bench, create_tenant, new_slug
from tests.bench.measure import Measurement, Report, Stats, ms

SECTION = "13. Onboarding: POST /tenants to Onboarding Completed (local suite)"
BASELINE = "the sum of the steps' recorded durations in the same runs"


def _finished(tenant_id: str, timeout: float) -> dict[str, Any]:
    ref = (
        firestore_client()
        .collection("tenants", tenant_id, RUNS)
        .document(domain.onboarding_run_id(tenant_id))
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snapshot = ref.get()
        run = snapshot.to_dict() if snapshot.exists else None
        if run is not None and run["status"] in ("succeeded", "failed"):
            return run
        time.sleep(0.05)
    raise RuntimeError(f"the onboarding of {tenant_id} did not finish within {timeout:.0f} s")


def run(bench: Bench, report: Report, runs: int = 20, timeout: float = 120) -> None:
    if "onboarding_api_tasks" not in bench.served:
        report.skip(SECTION, "no onboarding_api_tasks function in this tree")
        return
    session = requests.Session()
    tenant_api = bench.url("tenant_api")
    totals: list[float] = []
    work: list[float] = []
    retried = 0
    skipped: set[str] = set()
    for _ in range(runs):
        began = datetime.now(UTC)
        tenant_id = create_tenant(session, tenant_api, bench.operator_token, new_slug("bench-onb"))
        finished = _finished(tenant_id, timeout)
        if finished["status"] != "succeeded":
            raise RuntimeError(
                f"onboarding {tenant_id} failed at {finished.get('failed_step')}: {finished['error']}"
            )
        steps = finished["steps"]
        totals.append((finished["finished_at"] - began).total_seconds())
        work.append(sum(float(s.get("duration_ms") or 0) for s in steps.values()) / 1000)
        retried += any(int(s.get("attempts", 0)) > 1 for s in steps.values())
        skipped |= {name for name, s in steps.items() if s["status"] == "skipped"}
    total, own = Stats.of(ms(totals)), Stats.of(ms(work))
    report.samples["onboarding"] = {
        "runs": runs,
        "to_completed_ms": ms(totals),
        "steps_work_ms": ms(work),
        "runs_with_a_retried_step": retried,
        "skipped_steps": sorted(skipped),
    }
    report.add(
        Measurement(
            SECTION,
            "POST /tenants to Onboarding Completed, p50",
            "ms",
            total.p50,
            own.p50,
            BASELINE,
            note=f"{runs} runs of {len(domain.ONBOARD_STEPS)} steps; p95 {total.p95:.0f} ms; "
            f"overhead p50 {total.p50 - own.p50:.0f} ms; {retried} run(s) with a retried step"
            + (f"; skipped: {', '.join(sorted(skipped))}" if skipped else ""),
        )
    )
