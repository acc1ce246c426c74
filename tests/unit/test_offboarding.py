"""Offboarding's pure pieces: NDJSON encoding, chunked export with checksums and manifest, walking and
erasing a tenant through the TenantData port (an in-memory fake), and support ticket building."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from functions.tenant_api import offboarding, tickets
from functions.tenant_api.offboarding import ExportWriter, collection_of, erase_tenant, export_tenant, walk

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


class MemoryData:
    """A tenant's documents by path relative to the tenant document."""

    def __init__(self, documents: dict[str, dict[str, Any]]) -> None:
        self.documents = dict(documents)
        self.pages = 0
        self.proof: dict[str, int] = {}

    def collections(self, tenant_id: str) -> list[str]:
        return sorted({path.split("/")[0] for path in self.documents})

    def _under(self, collection: str) -> list[str]:
        return sorted(p for p in self.documents if p.split("/")[0] == collection)

    def page(
        self, tenant_id: str, collection: str, after: str | None, limit: int
    ) -> list[tuple[str, dict[str, Any]]]:
        self.pages += 1
        paths = [p for p in self._under(collection) if after is None or p > after]
        return [(p, self.documents[p]) for p in paths[:limit]]

    def delete_page(self, tenant_id: str, collection: str, limit: int) -> dict[str, int]:
        counts: dict[str, int] = {}
        for path in self._under(collection)[:limit]:
            del self.documents[path]
            name = collection_of(path)
            counts[name] = counts.get(name, 0) + 1
            self.proof[name] = self.proof.get(name, 0) + 1
        return counts


class MemorySink:
    def __init__(self) -> None:
        self.chunks: dict[str, dict[int, bytes]] = {}

    def write(self, file: str, index: int, data: bytes) -> None:
        self.chunks.setdefault(file, {})[index] = data

    def content(self, file: str) -> bytes:
        return b"".join(self.chunks[file][i] for i in sorted(self.chunks[file]))


def tenant_documents(users: int = 7) -> dict[str, dict[str, Any]]:
    documents: dict[str, dict[str, Any]] = {
        f"users/u{i:03d}": {"email": f"u{i}@acme.example", "created_at": NOW} for i in range(users)
    }
    documents["webhook_messages/m1"] = {"status": "delivered", "body": b"\x00\x01"}
    documents["webhook_messages/m1/attempts/0001"] = {"status": 200}
    documents["webhook_messages/m1/attempts/0002"] = {"status": 500}
    documents["tenant_runs/offboard-v2"] = {"status": "running"}
    return documents


def test_collection_of_keeps_the_collection_ids_of_a_path() -> None:
    assert collection_of("users/u1") == "users"
    assert collection_of("webhook_messages/m1/attempts/0001") == "webhook_messages/attempts"
    assert offboarding.file_name("webhook_messages/attempts") == "webhook_messages.attempts.ndjson"


def test_encode_makes_every_firestore_value_json() -> None:
    class Ref:
        path = "tenants/t/users/u1"
        id = "u1"

    encoded = offboarding.encode({"at": NOW, "raw": b"ab", "ref": Ref(), "list": [NOW]})
    assert encoded == {
        "at": "2026-11-28T12:00:00Z",
        "raw": {"$bytes": "YWI="},
        "ref": {"$ref": "tenants/t/users/u1"},
        "list": ["2026-11-28T12:00:00Z"],
    }
    json.dumps(encoded)


def test_export_chunks_each_collection_and_the_manifest_checksums_verify() -> None:
    data = MemoryData(tenant_documents(users=40))
    sink = MemorySink()
    manifest = export_tenant(data, sink, "t1", NOW, exclude={"tenant_runs"}, chunk_bytes=512)
    files = {f["name"]: f for f in manifest["files"]}
    assert set(files) == {"users.ndjson", "webhook_messages.ndjson", "webhook_messages.attempts.ndjson"}
    assert files["users.ndjson"]["documents"] == 40
    assert files["users.ndjson"]["chunks"] > 1  # small chunks: the file was written in pieces
    assert files["webhook_messages.attempts.ndjson"]["documents"] == 2
    assert manifest["documents"] == 43 and manifest["generated_at"] == "2026-11-28T12:00:00Z"
    for name, entry in files.items():
        content = sink.content(name)
        assert len(sink.chunks[name]) == entry["chunks"]
        assert len(content) == entry["bytes"]
        assert hashlib.sha256(content).hexdigest() == entry["sha256"]
        lines = [json.loads(line) for line in content.splitlines()]
        assert len(lines) == entry["documents"]
    first = json.loads(sink.content("users.ndjson").splitlines()[0])
    assert first == {
        "path": "users/u000",
        "data": {"email": "u0@acme.example", "created_at": "2026-11-28T12:00:00Z"},
    }
    assert "tenant_runs" not in {f["collection"] for f in manifest["files"]}


def test_the_same_data_exports_to_the_same_bytes_and_manifest_digest() -> None:
    one, two = MemorySink(), MemorySink()
    first = export_tenant(MemoryData(tenant_documents()), one, "t1", NOW)
    second = export_tenant(MemoryData(tenant_documents()), two, "t1", NOW)
    assert offboarding.digest_of(first) == offboarding.digest_of(second)
    assert one.chunks == two.chunks
    changed = tenant_documents()
    changed["users/u001"]["email"] = "other@acme.example"
    third = export_tenant(MemoryData(changed), MemorySink(), "t1", NOW)
    assert offboarding.digest_of(third) != offboarding.digest_of(first)


def test_walk_pages_through_every_collection_without_loading_one_whole() -> None:
    data = MemoryData(tenant_documents(users=25))
    paths = [path for path, _ in walk(data, "t1", page_size=10)]
    assert paths == sorted(tenant_documents(users=25))
    assert data.pages >= 4  # users alone took three pages of 10
    assert "tenant_runs/offboard-v2" not in [p for p, _ in walk(data, "t1", exclude={"tenant_runs"})]


def test_writer_flushes_only_full_chunks_until_finish() -> None:
    sink = MemorySink()
    writer = ExportWriter(sink, chunk_bytes=10_000)
    writer.add("users/u1", {"a": 1})
    assert sink.chunks == {}
    manifest = writer.finish("t1", NOW)
    assert manifest["files"][0]["chunks"] == 1 and len(sink.chunks["users.ndjson"]) == 1


def test_erase_deletes_everything_but_the_excluded_and_counts_each_collection() -> None:
    data = MemoryData(tenant_documents(users=12))
    deleted = erase_tenant(data, "t1", exclude={"tenant_runs"}, page_size=5)
    assert deleted == {"users": 12, "webhook_messages": 1, "webhook_messages/attempts": 2}
    assert list(data.documents) == ["tenant_runs/offboard-v2"]
    # Again (a re-run after a crash): nothing more to delete, the counts in the proof do not move.
    assert erase_tenant(data, "t1", exclude={"tenant_runs"}, page_size=5) == {}
    assert data.proof == deleted


def test_erase_resumes_after_a_crash_mid_way() -> None:
    data = MemoryData(tenant_documents(users=12))

    class Crash(Exception):
        pass

    original = data.delete_page
    calls = {"n": 0}

    def crashing(tenant_id: str, collection: str, limit: int) -> dict[str, int]:
        calls["n"] += 1
        if calls["n"] == 2:
            raise Crash
        return original(tenant_id, collection, limit)

    data.delete_page = crashing  # type: ignore[method-assign]
    with pytest.raises(Crash):
        erase_tenant(data, "t1", page_size=5)
    data.delete_page = original  # type: ignore[method-assign]
    erase_tenant(data, "t1", page_size=5)
    assert data.documents == {}
    assert data.proof == {
        "users": 12,
        "webhook_messages": 1,
        "webhook_messages/attempts": 2,
        "tenant_runs": 1,
    }


def test_a_ticket_carries_reason_health_and_open_items_and_its_priority() -> None:
    tenant = {"id": "t1", "name": "Acme", "plan": "growth", "deactivated_at": NOW, "retention_until": NOW}
    quiet = tickets.build_ticket(
        tenant=tenant,
        run_id="ticket-v3",
        reason="churned",
        health={"status": "unknown"},
        open_items={"pending_invitations": 0},
        now=NOW,
    )
    assert quiet["id"] == tickets.ticket_id("t1", "ticket-v3") and quiet["id"].startswith("tk_")
    assert quiet["status"] == "open" and quiet["priority"] == "normal" and quiet["reason"] == "churned"
    busy = tickets.build_ticket(
        tenant=tenant,
        run_id="ticket-v3",
        reason="churned",
        health={"status": "unknown"},
        open_items={"failing_webhooks": 1},
        now=NOW,
    )
    assert busy["priority"] == "high"
    risky = tickets.build_ticket(
        tenant=tenant, run_id="r", reason="x", health={"status": "at_risk"}, open_items={}, now=NOW
    )
    assert risky["priority"] == "high"


def test_health_is_unknown_unless_the_health_api_answered() -> None:
    assert tickets.health_summary(None, None)["status"] == "unknown"
    assert tickets.health_summary(404, {"type": "not-found"})["status"] == "unknown"
    assert tickets.health_summary(403, {})["http_status"] == 403
    known = tickets.health_summary(200, {"score": 42, "grade": "at_risk", "trend": "down", "secret": "x"})
    assert known["status"] == "at_risk" and known["score"] == 42 and "secret" not in known
    assert known["grade"] == "at_risk" and known["trend"] == "down"


def test_ticket_status_changes_are_kept_in_its_history() -> None:
    ticket = tickets.build_ticket(
        tenant={"id": "t1"}, run_id="r", reason="x", health={"status": "unknown"}, open_items={}, now=NOW
    )
    working = tickets.change_status(ticket, "in_progress", "op@platform.test", "called the customer", NOW)
    done = tickets.change_status(working, "resolved", "op@platform.test", None, NOW)
    assert done["status"] == "resolved"
    assert [h["status"] for h in done["history"]] == ["open", "in_progress", "resolved"]
    assert tickets.change_status(done, "resolved", "op", None, NOW) == done  # no change, no entry
    with pytest.raises(ValueError, match="closed"):
        tickets.change_status(done, "closed", "op", None, NOW)
