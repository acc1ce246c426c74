"""Customer data: search at 100,000 contacts in one tenant, a contact import, and merge latency.

- Search: a fresh tenant is seeded with N contacts (100,000 by default) written DIRECTLY to Firestore in
  WriteBatch commits of 500, shaped exactly as the API stores them (functions.customer_data_api.domain
  builds each record, search keys included). Then, over HTTP as the tenant's admin, one after the other:
  GET /contacts?name=<prefix>, ?email=<address>, ?domain=<domain> (limit 50), against the baseline of
  a plain GET /contacts/{id} in the same tenant and run. p50 and p95. The Firestore emulator has no
  indexes: it scans the tenant's contacts for every query, so its search latency grows with the tenant
  (in production each search reads only its page through a composite index). The searches run last.
- Import: CSVs of contacts POSTed to /customer-imports of a second, empty tenant, each clocked until a
  poll sees "completed"; rows/s against the raw batched-write rate of the seeding above.
  * live: 2,000 rows with every consumer of Contact Created (Notification, Workflow and Integration
    APIs) running on the same 2 cores, each row's event pushed to all three as it is published;
  * at size: M rows (50,000 by default, the issue's size) with those three push subscriptions switched
    to pull for the duration, as if the consumers ran on machines of their own (in production they
    scale apart from the importer). Live at this size, the Pub/Sub emulator opens a thread per pending
    push (about 13,000 were seen at 3,000 rows) and the machine spends its time switching threads. The
    held subscriptions are deleted and provisioned again afterwards, dropping the bench's backlog.
  (Each chunk looks its emails up with an indexed query; in the seeded tenant the emulator would scan
  100,000 contacts for each.)
- Merge: in that second tenant, K pairs of contacts sharing an email are created over HTTP, then
  POST /merges is timed for each (one transaction: the winner, the tombstone, the merge record with
  before-images, two events), against the same GET-by-id baseline.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import requests
from google.cloud import firestore

from emulators import identity
from emulators.provision import provision
from functions.customer_data_api import domain
from shared.clients import firestore_client
from tests.bench.bulk_import import create_tenant
from tests.bench.context import HTTP_TIMEOUT, Bench, bearer, new_slug
from tests.bench.measure import Measurement, Report, Stats, ms

SECTION = "Customer data: search at scale, contact import, merge"
GET_BASELINE = "GET /contacts/{id} (same tenant, same run)"
RAW_BASELINE = "raw Firestore emulator WriteBatch of 500 contact creates (the seeding)"
BATCH = 500
FIRST = ["Anna", "Ben", "Clara", "David", "Elena", "Felix", "Greta", "Hugo", "Ida", "Jonas", "Karla", "Leo"]
LAST = ["Smith", "Miller", "Fischer", "Weber", "Wagner", "Becker", "Hoffmann", "Schulz", "Koch", "Richter"]
ACTOR = {"type": "system", "id": "bench-seed", "email": None}
LIVE_IMPORT_ROWS = 2_000
SEARCH_TIMEOUT = 300  # the emulator scans: a search at 100,000 contacts takes seconds there


def seed(db: firestore.Client, tenant_id: str, n: int) -> tuple[list[dict[str, Any]], float]:
    """N contacts in batches of BATCH; returns a sample of them and the seconds the writes took."""
    contacts = db.collection("tenants").document(tenant_id).collection("contacts")
    now = datetime.now(UTC)
    sample: list[dict[str, Any]] = []
    elapsed = 0.0
    for first in range(0, n, BATCH):
        batch = db.batch()
        for i in range(first, min(n, first + BATCH)):
            given, family = FIRST[i % len(FIRST)], LAST[(i // len(FIRST)) % len(LAST)]
            fields = {
                "first_name": given,
                "last_name": f"{family}{i:06d}",
                "emails": [f"{given.lower()}.{i:06d}@company{i % 2000:04d}.example"],
            }
            record = domain.new_record("contact", f"con_{i:020x}", fields, ACTOR, "import", now)
            batch.create(contacts.document(record["id"]), record)
            if i % 997 == 0:
                sample.append(record)
        started = time.perf_counter()
        batch.commit()
        elapsed += time.perf_counter() - started
    return sample, elapsed


def timed(
    session: requests.Session, url: str, token: str, timeout: float = HTTP_TIMEOUT, **params: Any
) -> tuple[float, int]:
    started = time.perf_counter()
    response = session.get(url, params=params, headers=bearer(token), timeout=timeout)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} answered {response.status_code}: {response.text[:300]}")
    return elapsed, len(response.json().get("items", [1]))


def get_latency(
    bench: Bench, tenant_id: str, token: str, sample: list[dict[str, Any]], n: int
) -> list[float]:
    base = f"{bench.url('customer_data_api')}/tenants/{tenant_id}/contacts"
    rng = random.Random(3)
    with requests.Session() as session:
        for _ in range(5):  # warm-up, untimed
            timed(session, f"{base}/{sample[0]['id']}", token)
        return [timed(session, f"{base}/{rng.choice(sample)['id']}", token)[0] for _ in range(n)]


def search_latency(
    bench: Bench, tenant_id: str, token: str, sample: list[dict[str, Any]], rounds: int, found: dict[str, int]
) -> dict[str, list[float]]:
    base = f"{bench.url('customer_data_api')}/tenants/{tenant_id}/contacts"
    rng = random.Random(7)
    samples: dict[str, list[float]] = {"name": [], "email": [], "domain": []}
    with requests.Session() as session:
        for _ in range(rounds):
            record = rng.choice(sample)
            queries = {
                "name": {"name": f"{record['first_name']} {record['last_name'][:-3]}"},
                "email": {"email": record["emails"][0]},
                "domain": {"domain": record["domain_keys"][0]},
            }
            for kind, params in queries.items():
                seconds, count = timed(session, base, token, SEARCH_TIMEOUT, limit=50, **params)
                samples[kind].append(seconds)
                found[kind] = found.get(kind, 0) + count
    return samples


@contextmanager
def consumers_held(bench: Bench, event_name: str) -> Iterator[None]:
    """The push subscriptions of `event_name` switched to pull while the block runs, then deleted and
    provisioned again (what piled up meanwhile is dropped: bench tenants' events only)."""
    from google.cloud.pubsub_v1 import SubscriberClient

    event = bench.catalog.event(event_name)
    subscriber = SubscriberClient()
    paths = [
        subscriber.subscription_path(bench.suite.project, event.push_subscription(bench.catalog.api(name)))
        for name in event.subscribers
    ]
    for path in paths:
        subscriber.modify_push_config(request={"subscription": path, "push_config": {}})
    try:
        yield
    finally:
        for path in paths:
            subscriber.delete_subscription(request={"subscription": path})
        provision(bench.catalog, bench.suite.project, bench.suite.functions_url, bench.suite.signing_key)


def contact_import(
    bench: Bench, tenant_id: str, token: str, n: int, timeout: float, batch: str
) -> tuple[dict[str, Any], float]:
    url = f"{bench.url('customer_data_api')}/tenants/{tenant_id}/customer-imports"
    lines = ["first_name,last_name,email,job_title"]
    lines += [f"Imported,Person{i:06d},imported.{batch}{i:06d}@importco.example,Engineer" for i in range(n)]
    with requests.Session() as session:
        started = time.perf_counter()
        response = session.post(
            url,
            data=("\n".join(lines) + "\n").encode(),
            headers={**bearer(token), "Content-Type": "text/csv"},
            timeout=300,
        )
        if response.status_code != 202:
            raise RuntimeError(
                f"POST customer-imports answered {response.status_code}: {response.text[:300]}"
            )
        job: dict[str, Any] = response.json()
        while job["status"] != "completed" and time.perf_counter() - started < timeout:
            time.sleep(0.2)
            job = session.get(f"{url}/{job['id']}", headers=bearer(token), timeout=HTTP_TIMEOUT).json()
        return job, time.perf_counter() - started


def drain(bench: Bench, tenant_id: str, deliveries: int, timeout: float) -> float:
    """Seconds until the consumers have processed `deliveries` events of the tenant (their dedupe
    records), or the timeout."""
    from shared.intake import PROCESSED

    query = (
        firestore_client()
        .collection(PROCESSED)
        .where(filter=firestore.FieldFilter("tenant_id", "==", tenant_id))
        .where(filter=firestore.FieldFilter("type", "==", bench.catalog.event("Contact Created").type))
    )
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        counted = sum(1 for _ in query.select([]).stream())
        if counted >= deliveries:
            break
        time.sleep(2)
    return time.perf_counter() - started


def merge_latency(bench: Bench, tenant_id: str, token: str, pairs: int) -> list[float]:
    base = f"{bench.url('customer_data_api')}/tenants/{tenant_id}"
    out: list[float] = []
    with requests.Session() as session:
        made = []
        for i in range(pairs):
            ids = []
            for j in range(2):
                body = {
                    "first_name": "Merge",
                    "last_name": f"Pair{i:03d}",
                    "emails": [f"m{i}.{j}@pair.example", f"m{i}@pair.example"],
                }
                response = session.post(
                    f"{base}/contacts", json=body, headers=bearer(token), timeout=HTTP_TIMEOUT
                )
                ids.append(response.json()["id"])
            made.append(ids)
        for winner, loser in made:
            started = time.perf_counter()
            response = session.post(
                f"{base}/merges",
                json={"kind": "contact", "winner_id": winner, "loser_id": loser},
                headers=bearer(token),
                timeout=HTTP_TIMEOUT,
            )
            out.append(time.perf_counter() - started)
            if response.status_code != 201:
                raise RuntimeError(f"POST merges answered {response.status_code}: {response.text[:300]}")
    return out


def run(
    bench: Bench,
    report: Report,
    contacts: int = 100_000,
    import_rows: int = 50_000,
    rounds: int = 10,
    pairs: int = 20,
    timeout: float = 3600,
) -> None:
    if not {"customer_data_api", "customer_data_api_tasks"} <= bench.served:
        report.skip(SECTION, "the Customer Data API (HTTP and tasks functions) is not there")
        return
    tenants = []
    for name in ("bench-crm", "bench-crm-import"):
        slug = new_slug(name)
        with requests.Session() as session:
            tenant_id = create_tenant(session, bench, slug, "enterprise")
        token = identity.token_for(f"admin@{slug}.example", {"tenant_id": tenant_id, "roles": ["admin"]})
        tenants.append((tenant_id, token))
    (tenant_id, token), (small_id, small_token) = tenants
    sample, seed_s = seed(firestore_client(), tenant_id, contacts)
    raw_rate = contacts / seed_s
    samples: dict[str, Any] = {"contacts": contacts, "seed_s": round(seed_s, 3)}
    report.samples["customers"] = samples
    baseline = get_latency(bench, tenant_id, token, sample, 30)
    get = Stats.of(baseline)
    samples["get_ms"] = ms(baseline)
    # Merges and the import run in a tenant of their own: their lookups are indexed queries, which the
    # emulator answers by scanning, so in the seeded tenant they would measure the emulator's scan.
    merges = merge_latency(bench, small_id, small_token, pairs)
    samples["merge_ms"] = ms(merges)
    report.add(
        Measurement(
            SECTION,
            "merge of two contacts p50",
            "ms",
            Stats.of(merges).p50 * 1000,
            get.p50 * 1000,
            GET_BASELINE,
            note=f"{pairs} merges, p95 {Stats.of(merges).p95 * 1000:.0f} ms",
        )
    )
    found: dict[str, int] = {}
    searches = search_latency(bench, tenant_id, token, sample, rounds, found)
    samples.update({f"{k}_ms": ms(v) for k, v in searches.items()}, found=found)
    for kind, label in (("name", "name prefix"), ("email", "email"), ("domain", "email domain")):
        stats = Stats.of(searches[kind])
        report.add(
            Measurement(
                SECTION,
                f"search by {label} p50 ({contacts:,} contacts)",
                "ms",
                stats.p50 * 1000,
                get.p50 * 1000,
                GET_BASELINE,
                note=f"{len(searches[kind])} searches; {found[kind]:,} results in all; the emulator has "
                "no indexes and scans the collection",
            ),
            Measurement(
                SECTION, f"search by {label} p95", "ms", stats.p95 * 1000, get.p95 * 1000, GET_BASELINE
            ),
        )
    # Held first: the live import's pushes are still arriving when it completes, and would slow the
    # other one; they are waited out at the end so the next section starts on a quiet machine.
    with consumers_held(bench, "Contact Created"):
        held = contact_import(bench, small_id, small_token, import_rows, timeout, "held")
    live = contact_import(bench, small_id, small_token, LIVE_IMPORT_ROWS, timeout, "live")
    for (job, import_s), label, consumers in (
        (live, "live", "its events pushed to the 3 consumers on the same 2 cores"),
        (held, "at size", "the 3 consumers' push subscriptions held (pull) meanwhile"),
    ):
        samples[f"import_{label.replace(' ', '_')}"] = {"job": job, "seconds": round(import_s, 3)}
        processed = int(job.get("processed", 0))
        done = job.get("status") == "completed"
        report.add(
            Measurement(
                SECTION,
                f"contact import rows/s, {label} ({int(job.get('total', 0)):,} CSV rows)",
                "/s",
                processed / import_s if done else None,
                raw_rate,
                RAW_BASELINE,
                higher_is_better=True,
                note=f"{processed:,} processed, {job.get('created', 0):,} created in {import_s:.1f} s"
                + ("" if done else f" (INCOMPLETE: {job.get('status')})")
                + f"; {consumers}; seeding wrote {contacts:,} contacts in {seed_s:.1f} s",
            )
        )
    drained = drain(bench, small_id, 3 * LIVE_IMPORT_ROWS, timeout)
    samples["live_import_events_drained_s"] = round(drained, 3)
