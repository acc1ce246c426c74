"""Idempotency-Key for POST: a retried request gets the first answer, not a second side effect.

The first request with a key claims it (a Firestore create, so two racing requests cannot both win),
runs, and stores its answer. A repeat with the same key and the same request replays that answer; a
repeat with a different request is refused (422); a repeat while the first is still running gets 409.
A claim whose owner died is taken over after `lock_seconds`. 5xx answers are not stored, so the client
can retry them.

No stored answer holds a secret: a value an answer carries once (a signing secret, a token) is an
`AnsweredOnce`, which the kernel sends but stores as null (a replay says where, in `Idempotent-Redacted`).
Every record names its tenant (`tenant_id`), so a tenant's offboarding erases its records with the rest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from shared.problems import Problem

COLLECTION = "_idempotency"


class AnsweredOnce(str):
    """A secret in an answer: sent to the caller as a plain JSON string, never stored for a replay."""

    __slots__ = ()


def without_secrets(body: Any, pointer: str = "#") -> tuple[Any, list[str]]:
    """`body` with every AnsweredOnce replaced by None, and the JSON pointers of what was replaced."""
    if isinstance(body, AnsweredOnce):
        return None, [pointer]
    found: list[str] = []
    if isinstance(body, dict):
        clean: dict[Any, Any] = {}
        for key, value in body.items():
            escaped = str(key).replace("~", "~0").replace("/", "~1")
            clean[key], inner = without_secrets(value, f"{pointer}/{escaped}")
            found += inner
        return clean, found
    if isinstance(body, list | tuple):
        items = []
        for index, value in enumerate(body):
            item, inner = without_secrets(value, f"{pointer}/{index}")
            items.append(item)
            found += inner
        return items, found
    return body, found


REDACTED_HEADER = "Idempotent-Redacted"


@dataclass(frozen=True)
class StoredReply:
    status: int
    body: str
    headers: dict[str, str]


class IdempotencyStore:
    def __init__(self, db: firestore.Client, retention: timedelta, lock_seconds: float = 60.0) -> None:
        self.db = db
        self.retention = retention
        self.lock = timedelta(seconds=lock_seconds)

    @staticmethod
    def fingerprint(method: str, path: str, body: bytes) -> str:
        return hashlib.sha256(b"\n".join([method.encode(), path.encode(), body])).hexdigest()

    def _ref(self, scope: str, key: str) -> firestore.DocumentReference:
        digest = hashlib.sha256(f"{scope}\n{key}".encode()).hexdigest()
        return self.db.collection(COLLECTION).document(digest)

    def claim(
        self, scope: str, key: str, fingerprint: str, tenant_id: str | None = None
    ) -> StoredReply | None:
        """Claim the key, or return the stored reply to replay. Raises a Problem for misuse. The record
        belongs to `tenant_id` (the route's tenant, else the caller's), for offboarding's erasure."""
        if not 1 <= len(key) <= 255:
            raise Problem(400, "bad-idempotency-key", "Idempotency-Key must be 1 to 255 characters.")
        ref = self._ref(scope, key)
        now = datetime.now(UTC)
        claim = {
            "state": "running",
            "fingerprint": fingerprint,
            "claimed_at": now,
            "expire_at": now + self.retention,
            "tenant_id": tenant_id,
        }
        try:
            ref.create(claim)
            return None
        except gexc.AlreadyExists:
            pass
        snapshot = ref.get()
        existing: dict[str, Any] = snapshot.to_dict() or {}
        if existing.get("fingerprint") != fingerprint:
            raise Problem(
                422,
                "idempotency-key-reused",
                "This Idempotency-Key was used for a different request.",
                title="Idempotency-Key reused",
            )
        if existing.get("state") == "done":
            return StoredReply(existing["status"], existing["body"], json.loads(existing["headers"]))
        claimed_at = existing.get("claimed_at")
        if isinstance(claimed_at, datetime) and now - claimed_at < self.lock:
            raise Problem(
                409,
                "idempotency-key-in-use",
                "A request with this Idempotency-Key is still being processed: retry later.",
                headers={"Retry-After": "1"},
            )
        # The first owner died mid-way: take the claim over (update fails if someone else just did).
        ref.update(claim, option=self.db.write_option(last_update_time=snapshot.update_time))
        return None

    def complete(self, scope: str, key: str, reply: StoredReply) -> None:
        ref = self._ref(scope, key)
        if reply.status >= 500:
            ref.delete()
            return
        ref.update(
            {
                "state": "done",
                "status": reply.status,
                "body": reply.body,
                "headers": json.dumps(reply.headers),
            }
        )
