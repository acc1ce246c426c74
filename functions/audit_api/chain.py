"""Tamper evidence of the audit trail, pure (no I/O): entry hashes, Merkle roots, blocks, verification.

- An entry's hash is sha256 over its canonical JSON (sorted keys, compact separators, times as RFC 3339
  UTC with microseconds) of every field except the seal flags (`hash`, `sealed`, `block_seq`), the only
  fields that change after an entry is written. Its `details` enter through `details_digest` (their
  own hash), so an erasure can replace them (ERASED_DETAILS) and the entry still verifies.
- Entries are independent documents: recording one touches no shared document, so the trail takes
  any event rate. A seal step batches the unsealed entries into a block whose Merkle root covers their
  hashes (sha256 of the two children's hex digests concatenated; the last node of an odd level is paired
  with itself; a single leaf is its own root).
- Blocks form a hash chain: hash = sha256(prev_hash + merkle_root + seq + count), seq and count written
  as 12-digit decimals so the concatenation is unambiguous. The first block links to GENESIS.

Verification walks blocks in seq order and reports the FIRST broken link: everything after it is
unproven, so it stops there. It then accounts for every stored entry: each is listed by a verified
block, or unsealed (and younger than `UNSEALED_GRACE`, the seal window with the sweeper's margin);
any other (a block_seq beyond the head, missing, or of the wrong type) is reported.

The chain is anchored outside the tenant's documents: each seal also writes the new head to the
platform trail's anchors (`tenants/_platform/audit_anchors/{tenant}`); verify checks that the tenant's
chain still holds the anchored block with the anchored hash, so deleting the newest blocks and
rewinding the head, or rehashing the chain, is reported.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

GENESIS = "0" * 64
# An entry's details are committed to by their digest, which the entry hash covers: erasure can then
# remove personal data from the details (ERASED_DETAILS) and the chain still verifies. Entries written
# before digests existed hash their details directly.
DETAILS_DIGEST = "details_digest"
ERASED_DETAILS: dict[str, Any] = {"erased": True}
UNSEALED_GRACE = timedelta(minutes=10)  # seals run every 2 s, the sweeper every minute
SEAL_FIELDS = frozenset({"hash", "sealed", "block_seq"})


# --------------------------------------------------------------------------------------------------------
# Hashing
# --------------------------------------------------------------------------------------------------------


def rfc3339(value: datetime) -> str:
    """One spelling per instant (UTC, microseconds), whatever offset or subclass Firestore hands back."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def json_safe(value: Any) -> Any:
    """The JSON form of a stored document: datetimes as RFC 3339; anything non-JSON is refused."""
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"not JSON-safe: {type(value).__name__}")


def canonical_json(value: Any) -> bytes:
    return json.dumps(json_safe(value), sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def sha256_hex(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def entry_id(source: str, event_id: str) -> str:
    """CloudEvents identify an event by source + id: a redelivered event maps to the same entry."""
    return sha256_hex(f"{source}\n{event_id}")[:32]


def details_digest(details: Any) -> str:
    return sha256_hex(canonical_json(details))


def entry_hash(entry: Mapping[str, Any]) -> str:
    content = {k: v for k, v in entry.items() if k not in SEAL_FIELDS}
    if DETAILS_DIGEST in content:
        content.pop("details", None)  # committed through its digest
    return sha256_hex(canonical_json(content))


def merkle_root(leaves: Sequence[str]) -> str:
    if not leaves:
        raise ValueError("a Merkle root needs at least one leaf")
    level = list(leaves)
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [sha256_hex(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def block_hash(prev_hash: str, root: str, seq: int, count: int) -> str:
    return sha256_hex(f"{prev_hash}{root}{seq:012d}{count:012d}")


def build_block(
    seq: int, prev_hash: str, leaves: Sequence[tuple[str, str]], sealed_at: datetime
) -> dict[str, Any]:
    """The block sealing `leaves` (entry id, stored entry hash), in order, after the block `prev_hash`."""
    root = merkle_root([leaf_hash for _, leaf_hash in leaves])
    return {
        "seq": seq,
        "prev_hash": prev_hash,
        "merkle_root": root,
        "entry_ids": [leaf_id for leaf_id, _ in leaves],
        "count": len(leaves),
        "sealed_at": sealed_at,
        "hash": block_hash(prev_hash, root, seq, len(leaves)),
    }


def sealable_count(entries: int, alert_triggers: Sequence[int], max_writes: int, per_alert: int = 2) -> int:
    """How many of the oldest `entries` one seal can take within a transaction's write budget.

    A seal writes the block, the head and each entry, plus `per_alert` documents (the alert and its
    outbox event) for every alert; `alert_triggers` are the batch positions of the entries that raised
    one. Entries left out stay unsealed for the next seal, which evaluates them then.
    """
    for count in range(entries, 0, -1):
        alerts = sum(1 for position in alert_triggers if position < count)
        if 2 + count + per_alert * alerts <= max_writes:
            return count
    return 0


# --------------------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Broken:
    block_seq: int | None
    entry_id: str | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"block_seq": self.block_seq, "entry_id": self.entry_id, "reason": self.reason}


@dataclass(frozen=True)
class VerifyReport:
    blocks_checked: int
    entries_checked: int
    unsealed: int
    first_broken: Broken | None

    @property
    def ok(self) -> bool:
        return self.first_broken is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "blocks_checked": self.blocks_checked,
            "entries_checked": self.entries_checked,
            "unsealed": self.unsealed,
            "first_broken": self.first_broken.to_dict() if self.first_broken else None,
        }


def entry_problem(entry: Mapping[str, Any], doc_id: str) -> str | None:
    """Why an entry's content cannot be trusted, or None: its hash, and its id against its source event."""
    try:
        recomputed = entry_hash(entry)
    except (TypeError, ValueError):
        return "entry content is not canonical JSON"
    if entry.get("hash") != recomputed:
        return "entry hash mismatch: its content changed"
    details = entry.get("details")
    if DETAILS_DIGEST in entry and details != ERASED_DETAILS:
        try:
            if details_digest(details) != entry[DETAILS_DIGEST]:
                return "entry hash mismatch: its content changed"
        except (TypeError, ValueError):
            return "entry content is not canonical JSON"
    source = entry.get("source_event")
    if not isinstance(source, Mapping) or entry.get("id") != entry_id(
        str(source.get("source")), str(source.get("id"))
    ):
        return "entry id does not match its source event"
    if doc_id != entry.get("id"):
        return "entry stored under another id"
    return None


class ChainVerifier:
    """Incremental, so the caller can stream blocks from storage one at a time.

    Call `check_block` for seq 1..head_seq, then `check_head`, `check_sealed_total` and `check_unsealed`
    for each unsealed entry; each answers False once the chain is broken (keep the first break only).
    """

    def __init__(self, head: Mapping[str, Any] | None) -> None:
        self.head_seq = int((head or {}).get("seq", 0))
        self.head_hash = str((head or {}).get("hash", GENESIS))
        self._prev = GENESIS
        self._listed = 0
        self.blocks_checked = 0
        self.entries_checked = 0
        self.unsealed = 0
        self.claimed = 0  # stored entries whose block_seq names a verified block
        self.first_broken: Broken | None = None

    def _break(self, block_seq: int | None, entry: str | None, reason: str) -> bool:
        if self.first_broken is None:
            self.first_broken = Broken(block_seq, entry, reason)
        return False

    def check_block(
        self, seq: int, block: Mapping[str, Any] | None, entries: Mapping[str, Mapping[str, Any]]
    ) -> bool:
        """`entries` maps entry id to stored entry for (at least) the ids the block lists."""
        if self.first_broken is not None:
            return False
        if block is None:
            return self._break(seq, None, "block missing")
        if block.get("seq") != seq:
            return self._break(
                seq, None, f"block out of sequence: position {seq} holds seq {block.get('seq')}"
            )
        if block.get("prev_hash") != self._prev:
            return self._break(seq, None, "prev_hash does not link to the previous block")
        ids = block.get("entry_ids")
        if (
            not isinstance(ids, list)
            or not ids
            or block.get("count") != len(ids)
            or len(set(ids)) != len(ids)
        ):
            return self._break(seq, None, "entry list does not match the block's count")
        root = block.get("merkle_root")
        if block.get("hash") != block_hash(self._prev, str(root), seq, len(ids)):
            return self._break(seq, None, "block hash mismatch")
        for listed in ids:
            entry = entries.get(listed)
            if entry is None:
                return self._break(seq, listed, "entry missing")
            problem = entry_problem(entry, listed)
            if problem is None and (entry.get("sealed") is not True or entry.get("block_seq") != seq):
                problem = "entry seal flags do not match the block"
            if problem is not None:
                return self._break(seq, listed, problem)
        if merkle_root([str(entries[i].get("hash")) for i in ids]) != root:
            return self._break(seq, None, "merkle root mismatch")
        self._prev = str(block["hash"])
        self._listed += len(ids)
        self.blocks_checked += 1
        self.entries_checked += len(ids)
        return True

    def check_head(self) -> bool:
        if self.first_broken is not None:
            return False
        if self._prev != self.head_hash:
            return self._break(self.head_seq or None, None, "chain head does not match the last block")
        return True

    def check_sealed_total(self, marked_sealed: int) -> bool:
        """`marked_sealed`: stored entries claiming a block up to head_seq. Catches forged insertions."""
        if self.first_broken is not None:
            return False
        if marked_sealed != self._listed:
            return self._break(
                None, None, f"{marked_sealed} entries claim to be sealed but the blocks list {self._listed}"
            )
        return True

    def account(self, doc_id: str, flags: Mapping[str, Any], newest_seq: Callable[[], int]) -> str | None:
        """Classify one stored entry by its seal flags: "sealed" (claims a verified block: counted for
        `check_sealed_total`), "unsealed" (check it with `check_unsealed`), "newer" (sealed after the
        head was read), or None when it fits nowhere (reported: the chain is broken)."""
        if self.first_broken is not None:
            return None
        if "block_seq" not in flags:
            self._break(None, doc_id, "entry has no block_seq: neither sealed nor unsealed")
            return None
        seq = flags["block_seq"]
        if seq is None:
            return "unsealed"
        if isinstance(seq, bool) or not isinstance(seq, int):
            self._break(None, doc_id, f"entry block_seq has the wrong type ({type(seq).__name__})")
            return None
        if 1 <= seq <= self.head_seq:
            self.claimed += 1
            return "sealed"
        if self.head_seq < seq <= newest_seq():
            return "newer"
        self._break(seq, doc_id, f"entry claims block {seq} beyond the chain head {self.head_seq}")
        return None

    def check_anchor(self, anchor: Mapping[str, Any] | None, anchored_hash: str | None) -> bool:
        """`anchor`: the platform trail's record of this tenant's head; `anchored_hash`: the hash of the
        block at the anchor's seq in the verified chain (None when the chain has no such block)."""
        if self.first_broken is not None:
            return False
        if anchor is None:
            if self.head_seq:
                return self._break(None, None, "the chain has no anchor in the platform trail")
            return True
        seq = anchor.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq > self.head_seq:
            return self._break(
                seq if isinstance(seq, int) else None,
                None,
                f"the chain head ({self.head_seq}) is behind its anchor in the platform trail ({seq})",
            )
        if anchored_hash != anchor.get("hash"):
            return self._break(seq, None, "the block does not match its anchor in the platform trail")
        return True

    def check_unsealed(self, entry: Mapping[str, Any], doc_id: str, now: datetime | None = None) -> bool:
        if self.first_broken is not None:
            return False
        problem = entry_problem(entry, doc_id)
        if problem is None and (entry.get("sealed") is not False or entry.get("block_seq") is not None):
            problem = "entry seal flags are inconsistent"
        recorded = entry.get("recorded_at")
        if (
            problem is None
            and now is not None
            and isinstance(recorded, datetime)
            and recorded.replace(tzinfo=recorded.tzinfo or UTC) < now - UNSEALED_GRACE
        ):
            problem = "entry left unsealed past the seal window"
        if problem is not None:
            return self._break(None, doc_id, problem)
        self.unsealed += 1
        self.entries_checked += 1
        return True

    def report(self) -> VerifyReport:
        return VerifyReport(self.blocks_checked, self.entries_checked, self.unsealed, self.first_broken)


def verify_chain(
    head: Mapping[str, Any] | None,
    blocks: Sequence[Mapping[str, Any] | None],
    entries: Mapping[str, Mapping[str, Any]],
    unsealed: Sequence[Mapping[str, Any]] = (),
    marked_sealed: int | None = None,
) -> VerifyReport:
    """Verify a whole chain held in memory; `blocks[i]` is what is stored at position seq = i + 1."""
    verifier = ChainVerifier(head)
    intact = all(
        verifier.check_block(seq, blocks[seq - 1] if seq <= len(blocks) else None, entries)
        for seq in range(1, verifier.head_seq + 1)
    )
    intact = intact and verifier.check_head()
    if marked_sealed is not None:
        intact = intact and verifier.check_sealed_total(marked_sealed)
    for entry in unsealed:
        if not intact or not verifier.check_unsealed(entry, str(entry.get("id"))):
            break
    return verifier.report()
