"""9. Offboarding: exporting and erasing a tenant of 5,000 documents.

Two throwaway tenants get the same N documents (users, and webhook messages each with two attempts
in a subcollection, so the recursive walk is exercised), written with batched writes. Figures, each
beside a baseline measured in the same run on the same data:
- export (`offboarding.export_tenant`: paged recursive reads, NDJSON encoding, SHA-256 per file, 256 KiB
  chunks written to Firestore, the manifest), documents/s, against reading the same documents alone
  (the same paged recursive queries, nothing encoded or written); the fastest of 3 runs of each,
  interleaved;
- hard erase (`offboarding.erase_tenant`: pages of 300 deleted in one batch with their counters in the
  proof document), documents/s, against the client's own `recursive_delete` (BulkWriter) of the twin
  tenant, which counts nothing and proves nothing.
The tenants, their export and proof are deleted afterwards.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Any

from google.cloud import firestore

from functions.tenant_api import offboarding
from shared.clients import firestore_client
from tests.bench.context import Bench
from tests.bench.measure import Measurement, Report

SECTION = "9. Offboarding: export and hard erase of a 5,000-document tenant"
BASELINE_EXPORT = "the same paged recursive reads alone (no encoding, hashing or writing)"
BASELINE_ERASE = "the client's recursive_delete (BulkWriter) of an identical tenant, no counts"


def seed(db: firestore.Client, tenant_id: str, count: int) -> None:
    tenant = db.collection("tenants").document(tenant_id)
    now = datetime.now(UTC)
    batch, pending = db.batch(), 0

    def put(ref: firestore.DocumentReference, data: dict[str, Any]) -> None:
        nonlocal batch, pending
        batch.set(ref, data)
        pending += 1
        if pending == 500:
            batch.commit()
            batch, pending = db.batch(), 0

    messages = count // 4
    for i in range(count - 3 * messages):
        put(tenant.collection("users").document(f"u{i:06d}"), {"email": f"u{i}@bench.example", "at": now})
    for i in range(messages):
        message = tenant.collection("webhook_messages").document(f"m{i:06d}")
        put(message, {"status": "delivered", "body": "x" * 400, "at": now})
        for n in (1, 2):
            put(message.collection("attempts").document(f"{n:04d}"), {"status": 200, "at": now})
    batch.commit()


def run(bench: Bench, report: Report, count: int = 5_000, runs: int = 3) -> None:
    db = firestore_client()
    data = offboarding.FirestoreTenantData(db)
    ours, twin = f"t_bench_off_{secrets.token_hex(4)}", f"t_bench_twin_{secrets.token_hex(4)}"
    for tenant_id in (ours, twin):
        seed(db, tenant_id, count)
    try:
        reads: list[float] = []
        exports: list[float] = []
        for _ in range(runs):  # interleaved, the fastest of each: the machine's load varies
            started = time.perf_counter()
            read = sum(1 for _ in offboarding.walk(data, ours))
            reads.append(time.perf_counter() - started)
            started = time.perf_counter()
            manifest = offboarding.export_tenant(
                data, offboarding.FirestoreChunks(db, ours), ours, datetime.now(UTC)
            )
            exports.append(time.perf_counter() - started)
        read_s, export_s = min(reads), min(exports)
        if manifest["documents"] != count or read != count:
            raise RuntimeError(f"exported {manifest['documents']}, read {read}, seeded {count}")

        db.collection(offboarding.PROOFS).document(ours).set({"tenant_id": ours, "deleted": {}})
        started = time.perf_counter()
        deleted = sum(offboarding.erase_tenant(data, ours).values())
        erase_s = time.perf_counter() - started

        started = time.perf_counter()
        raw = db.recursive_delete(db.collection("tenants").document(twin))
        raw_s = time.perf_counter() - started
        if deleted != count or raw < count:
            raise RuntimeError(f"erased {deleted}, recursive_delete {raw}, seeded {count}")
    finally:
        for tenant_id in (ours, twin):
            db.recursive_delete(db.collection("tenants").document(tenant_id))
            db.recursive_delete(db.collection(offboarding.EXPORTS).document(tenant_id))
            db.collection(offboarding.PROOFS).document(tenant_id).delete()
    report.samples["offboarding"] = {
        "documents": count,
        "files": len(manifest["files"]),
        "export_bytes": manifest["bytes"],
        "read_s": [round(s, 3) for s in reads],
        "export_s": [round(s, 3) for s in exports],
        "erase_s": round(erase_s, 3),
        "recursive_delete_s": round(raw_s, 3),
    }
    report.add(
        Measurement(
            SECTION,
            "export",
            "docs/s",
            count / export_s,
            count / read_s,
            BASELINE_EXPORT,
            higher_is_better=True,
            note=f"{count:,} documents in {export_s:.1f} s (best of {runs}, interleaved), "
            f"{manifest['bytes'] / 1e6:.1f} MB of NDJSON, {len(manifest['files'])} files",
        ),
        Measurement(
            SECTION,
            "hard erase",
            "docs/s",
            count / erase_s,
            count / raw_s,
            BASELINE_ERASE,
            higher_is_better=True,
            note=f"{count:,} documents in {erase_s:.1f} s, counted in the proof page by page",
        ),
    )
