"""The generic event -> audit entry mapping, over every event the Audit API consumes, built from the
documented examples exactly as publishers build envelopes (shared.events.new_event)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore

from functions.audit_api.chain import entry_hash, rfc3339
from functions.audit_api.entries import API_NAME, FAILURE_EVENTS, audit_entry
from functions.audit_api.service import AuditService, SealScheduler
from functions.audit_api.subscriptions import build_handlers
from shared.catalog import Event, load_catalog, schemas_dir
from shared.config import Settings
from shared.contracts import PAYLOADS
from shared.events import CloudEvent, new_event
from shared.intake import Delivered
from shared.platform import Platform
from shared.tasks import TaskQueue
from shared.uow import Tx

CATALOG = load_catalog()
AUDITED = CATALOG.consumed_by(API_NAME)
TENANT = "tnt_7Hc2kQ9x"
OCCURRED = datetime(2025, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)
RECORDED = datetime(2025, 3, 1, 9, 30, 16, tzinfo=UTC)


def example(event: Event) -> dict[str, Any]:
    schema = json.loads((schemas_dir() / event.schema_path).read_text(encoding="utf-8"))
    found: dict[str, Any] = schema["examples"][0]
    return found


def delivered(event: Event, event_id: str = "evt-1", time: datetime = OCCURRED) -> Delivered:
    payload = PAYLOADS[event.name].model_validate(example(event))
    source = None if not event.is_external else "//billing.example/events"
    slug = CATALOG.api(event.publisher).slug if not event.is_external else "external"
    envelope = new_event(
        payload,
        tenant_id=TENANT,
        subject=f"agg-{event.slug}",
        source_api_slug=slug,
        event_id=event_id,
        time=time,
        source=source,
    )
    return Delivered(envelope, payload, event)


def entry_of(d: Delivered, recorded_at: datetime = RECORDED) -> dict[str, Any]:
    return audit_entry(d.envelope, d.entry, d.payload, recorded_at)


def test_the_audit_api_consumes_eighteen_events() -> None:
    assert len(AUDITED) == 18
    assert {e.name for e in AUDITED} >= FAILURE_EVENTS


@pytest.mark.parametrize("event", AUDITED, ids=lambda e: e.slug)
def test_every_audited_event_maps_to_one_entry(event: Event) -> None:
    d = delivered(event)
    entry = entry_of(d)
    data = example(event)
    source = d.envelope.source

    assert set(entry) == {
        "id",
        "tenant_id",
        "action",
        "actor",
        "target",
        "outcome",
        "occurred_at",
        "recorded_at",
        "source_event",
        "details",
        "details_digest",
        "hash",
        "sealed",
        "block_seq",
    }
    assert entry["id"] == hashlib.sha256(f"{source}\nevt-1".encode()).hexdigest()[:32]
    assert entry["tenant_id"] == TENANT
    assert entry["action"] == event.slug.replace("-", ".")
    if "actor" in data:
        assert entry["actor"] == {"email": None, **data["actor"]}
    else:
        assert entry["actor"] == {"type": "system", "id": source}
    assert entry["target"] == {"type": event.aggregate, "id": f"agg-{event.slug}"}
    assert entry["outcome"] == ("failure" if event.name in FAILURE_EVENTS else "success")
    assert entry["occurred_at"] == OCCURRED and entry["recorded_at"] == RECORDED
    assert entry["source_event"] == {"id": "evt-1", "type": event.type, "source": source}
    assert entry["details"] == {k: v for k, v in d.payload.model_dump(mode="json").items() if k != "actor"}
    assert entry["sealed"] is False and entry["block_seq"] is None

    # The details are committed through their digest (so erasure can remove them), the rest directly.
    details = json.dumps(entry["details"], sort_keys=True, separators=(",", ":"))
    assert entry["details_digest"] == hashlib.sha256(details.encode()).hexdigest()
    content = {k: v for k, v in entry.items() if k not in ("hash", "sealed", "block_seq", "details")}
    content |= {"occurred_at": rfc3339(OCCURRED), "recorded_at": rfc3339(RECORDED)}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    assert entry["hash"] == hashlib.sha256(canonical.encode()).hexdigest()
    json.dumps(entry["details"])  # JSON-safe as stored


@pytest.mark.parametrize(
    ("name", "action", "actor"),
    [
        ("Tenant Created", "tenant.created", {"type": "service", "id": "self-signup", "email": None}),
        (
            "User Role Changed",
            "user.role.changed",
            {"type": "user", "id": "usr_2Kq8ZbW1", "email": "maya.lopez@acme.example"},
        ),
        ("Bulk Import Completed", "bulk.import.completed", None),
        ("Webhook Failed", "webhook.failed", {"type": "system", "id": "/apis/integration-api"}),
        ("Notification Bounced", "notification.bounced", {"type": "system", "id": "/apis/notification-api"}),
        (
            "Data Erasure Completed",
            "data.erasure.completed",
            {"type": "system", "id": "//billing.example/events"},
        ),
    ],
)
def test_actions_and_actors_by_hand(name: str, action: str, actor: dict[str, Any] | None) -> None:
    entry = entry_of(delivered(CATALOG.event(name)))
    assert entry["action"] == action
    if actor is not None:
        assert entry["actor"] == actor


def test_only_failures_are_failures() -> None:
    outcomes = {e.name: entry_of(delivered(e))["outcome"] for e in AUDITED}
    assert {name for name, outcome in outcomes.items() if outcome == "failure"} == {
        "Webhook Failed",
        "Notification Bounced",
    }


def test_the_id_is_deterministic_per_source_and_event_id() -> None:
    event = CATALOG.event("User Role Changed")
    first, again = entry_of(delivered(event)), entry_of(delivered(event), RECORDED + timedelta(minutes=5))
    assert first["id"] == again["id"]  # a redelivery maps to the same entry
    assert entry_of(delivered(event, event_id="evt-2"))["id"] != first["id"]


def test_the_hash_is_stable() -> None:
    event = CATALOG.event("Contact Updated")
    entry = entry_of(delivered(event))
    assert entry_of(delivered(event))["hash"] == entry["hash"]
    # The same instant written with another offset (or read back from Firestore) hashes the same.
    paris = timezone(timedelta(hours=1))
    assert entry_of(delivered(event, time=OCCURRED.astimezone(paris)))["hash"] == entry["hash"]
    assert entry_hash({**entry, "occurred_at": OCCURRED.astimezone(paris)}) == entry["hash"]
    # Sealing changes only the flags, which the hash leaves out.
    assert entry_hash({**entry, "sealed": True, "block_seq": 3}) == entry["hash"]
    assert entry_of(delivered(event), RECORDED + timedelta(microseconds=1))["hash"] != entry["hash"]


# --------------------------------------------------------------------------------------------------------
# The handler table and the record handler, with small fakes of the real abstractions
# --------------------------------------------------------------------------------------------------------


class FakeQueue(TaskQueue):
    def __init__(self, log: list[tuple[str, Any]], fail: bool = False) -> None:
        self.log = log
        self.fail = fail

    def enqueue(
        self,
        path: str,
        payload: dict[str, Any],
        *,
        name: str | None = None,
        schedule_time: datetime | None = None,
    ) -> bool:
        if self.fail:
            raise RuntimeError("Cloud Tasks is down")
        self.log.append(("enqueue", (path, payload, name, schedule_time)))
        return True


class FakeTx(Tx):
    def __init__(self, log: list[tuple[str, Any]], existing: dict[str, Any] | None = None) -> None:
        self.events: list[CloudEvent] = []
        self.log = log
        self.existing = existing

    def get(self, ref: firestore.DocumentReference) -> dict[str, Any] | None:
        return self.existing

    def create(self, ref: firestore.DocumentReference, data: dict[str, Any]) -> None:
        self.log.append(("create", (ref.path, data)))


def offline_service(queue: TaskQueue) -> AuditService:
    db = firestore.Client(project="demo-cmp", credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
    return AuditService(db, None, CATALOG, SealScheduler(queue))  # type: ignore[arg-type]


def test_the_handler_table_is_one_handler_for_exactly_the_catalogs_events() -> None:
    platform = Platform(Settings())
    platform.__dict__["db"] = platform.__dict__["uow"] = None  # never touched while wiring
    handlers = build_handlers(platform)
    assert set(handlers) == {e.name for e in AUDITED}
    assert len({getattr(h, "__func__", h) for h in handlers.values()}) == 1


def test_recording_asks_for_a_seal_before_it_writes_the_entry() -> None:
    log: list[tuple[str, Any]] = []
    service = offline_service(FakeQueue(log))
    d = delivered(CATALOG.event("User Invited"))
    service.record(d, FakeTx(log))
    assert [kind for kind, _ in log] == ["enqueue", "create"]
    path, payload, name, due = log[0][1]
    assert path == "/seal" and payload == {"tenant_id": TENANT}
    assert f"-seal-{TENANT}-" in name
    now = log[1][1][1]["recorded_at"].timestamp()
    bucket_end = (int(now) // 2 + 1) * 2
    assert due.timestamp() == bucket_end + 1  # one second after the 2 s bucket ends
    ref_path, entry = log[1][1]
    assert ref_path == f"tenants/{TENANT}/audit_entries/{entry['id']}"


def test_a_second_entry_in_the_same_bucket_asks_once_per_instance() -> None:
    log: list[tuple[str, Any]] = []
    service = offline_service(FakeQueue(log))
    now = datetime.now(UTC)
    service.scheduler.schedule(TENANT, now.replace(microsecond=0, second=now.second // 2 * 2))
    service.scheduler.schedule(TENANT, now.replace(microsecond=500_000, second=now.second // 2 * 2))
    service.scheduler.schedule("another-tenant", now)
    assert len(log) == 2


def test_an_entry_already_recorded_is_left_alone() -> None:
    log: list[tuple[str, Any]] = []
    service = offline_service(FakeQueue(log))
    service.record(delivered(CATALOG.event("User Invited")), FakeTx(log, existing={"id": "x"}))
    assert log == []


def test_a_failed_enqueue_fails_the_handler_and_writes_nothing() -> None:
    log: list[tuple[str, Any]] = []
    service = offline_service(FakeQueue(log, fail=True))
    with pytest.raises(RuntimeError, match="Cloud Tasks is down"):
        service.record(delivered(CATALOG.event("User Invited")), FakeTx(log))
    assert log == []


def test_a_platform_entry_verifies_like_an_event_entry_and_its_key_makes_its_id() -> None:
    from functions.audit_api.chain import entry_problem
    from functions.audit_api.entries import platform_entry

    at = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)

    def make(key: str, details: dict[str, Any]) -> dict[str, Any]:
        actor = {"type": "service", "id": "tenant-api"}
        target = {"type": "Tenant", "id": "t_1"}
        return platform_entry(key, "tenant.erased", actor, target, details, at, at)

    entry = make("tenant-erased:t_1:run", {"documents_deleted": 12})
    assert entry_problem(entry, entry["id"]) is None
    assert entry["tenant_id"] is None and entry["sealed"] is False
    assert make("tenant-erased:t_1:run", {"documents_deleted": 12}) == entry
    assert make("tenant-erased:t_1:other", {"documents_deleted": 12})["id"] != entry["id"]
    tampered = {**entry, "details": {"documents_deleted": 11}}
    assert entry_problem(tampered, entry["id"]) == "entry hash mismatch: its content changed"
