"""8. Customer health: recomputing one organization's score from 10,000 stored signals.

N hard-bounce signals of one organization are written straight into the bench tenant's
`health_signals` (batched writes, event times spread over the last 20 days, inside the default model's
30-day window), with a score document to recompute. Figures, each beside the same baseline measured in
the same run, interleaved: reading the organization's N signal documents alone (the same query the
service runs, no scoring).
- the pure scoring (`domain.compute`) over the N signals, already in memory;
- `POST /tenants/{tid}/health/organizations/{org}/recompute` over HTTP as the tenant's admin: reading
  the model, the score and the N signals, scoring, and the transaction (nothing is written when the
  score is unchanged, which is the case after the first call; the first call is not sampled).
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta

import requests
from google.cloud import firestore

from functions.customer_health_api import domain
from functions.customer_health_api.service import signal_from_doc
from shared.clients import firestore_client
from tests.bench.context import HTTP_TIMEOUT, Bench, bearer
from tests.bench.measure import Measurement, Report, Stats, ms

SECTION = "8. Customer health: recompute one organization from 10,000 signals"
BASELINE = "reading the organization's signal documents alone (same query, no scoring)"


def seed(db: firestore.Client, tenant_id: str, organization_id: str, count: int) -> None:
    tenant = db.collection("tenants").document(tenant_id)
    signals = tenant.collection("health_signals")
    now = datetime.now(UTC)
    batch = db.batch()
    for i in range(count):
        signal_id = f"sig_bench_{organization_id}_{i:06d}"
        batch.set(
            signals.document(signal_id),
            {
                "id": signal_id,
                "event_id": f"evt_bench_{i:06d}",
                "event_name": "Notification Bounced",
                "occurred_at": now - timedelta(seconds=(i * 20 * 86400) // count),
                "factor": domain.EMAIL_DELIVERABILITY,
                "kind": "count",
                "organization_id": organization_id,
                "amount": 1.0,
                "state": None,
                "due_at": None,
                "attribution": "contact",
                "received_at": now,
            },
        )
        if (i + 1) % 500 == 0:
            batch.commit()
            batch = db.batch()
    batch.commit()
    tenant.collection("health_organizations").document(organization_id).set(
        {
            "organization_id": organization_id,
            "scope": "organization",
            "score": 100,
            "grade": "healthy",
            "seq": 0,
        }
    )


def run(bench: Bench, report: Report, count: int = 10_000, runs: int = 5) -> None:
    db = firestore_client()
    organization_id = f"org_bench_{secrets.token_hex(4)}"
    started = time.perf_counter()
    seed(db, bench.tenant_id, organization_id, count)
    seed_s = time.perf_counter() - started
    query = (
        db.collection("tenants")
        .document(bench.tenant_id)
        .collection("health_signals")
        .where(filter=firestore.FieldFilter("organization_id", "==", organization_id))
    )
    url = (
        bench.url("customer_health_api")
        + f"/tenants/{bench.tenant_id}/health/organizations/{organization_id}/recompute"
    )
    model = domain.default_model()
    reads: list[float] = []
    computes: list[float] = []
    recomputes: list[float] = []
    with requests.Session() as session:

        def recompute() -> dict[str, object]:
            response = session.post(url, headers=bearer(bench.admin_token), timeout=HTTP_TIMEOUT * 4)
            if response.status_code != 200:
                raise RuntimeError(f"recompute answered {response.status_code}: {response.text[:500]}")
            body: dict[str, object] = response.json()
            return body

        first = recompute()  # writes the full score once; the sampled calls find it unchanged
        if first["signal_count"] != count:
            raise RuntimeError(f"recompute counted {first['signal_count']} signals, not {count}")
        signals = []
        for _ in range(runs):
            t = time.perf_counter()
            docs = [s.to_dict() or {} for s in query.stream()]
            reads.append(time.perf_counter() - t)
            signals = [signal_from_doc(d) for d in docs]
            t = time.perf_counter()
            result = domain.compute(signals, model, datetime.now(UTC))
            computes.append(time.perf_counter() - t)
            t = time.perf_counter()
            again = recompute()
            recomputes.append(time.perf_counter() - t)
            if again["score"] != result.score:
                raise RuntimeError(f"HTTP recompute gave {again['score']}, the domain {result.score}")
    r, c, h = Stats.of(reads), Stats.of(computes), Stats.of(recomputes)
    report.samples["health"] = {
        "signals": count,
        "seed_s": round(seed_s, 2),
        "read_ms": ms(reads),
        "compute_ms": ms(computes),
        "recompute_http_ms": ms(recomputes),
    }
    report.add(
        Measurement(
            SECTION,
            "domain.compute p50",
            "ms",
            c.p50 * 1000,
            r.p50 * 1000,
            BASELINE,
            note=f"{count:,} signals, {runs} runs, p95 {c.p95 * 1000:,.1f} ms; score {first['score']}",
        ),
        Measurement(
            SECTION,
            "HTTP recompute p50",
            "ms",
            h.p50 * 1000,
            r.p50 * 1000,
            BASELINE,
            note=f"{count:,} signals, {runs} runs, p95 {h.p95 * 1000:,.1f} ms; "
            f"read p95 {r.p95 * 1000:,.1f} ms; seeded in {seed_s:,.1f} s",
        ),
    )
