"""The audit trail's tamper evidence (functions/audit_api/chain.py): hashes, Merkle roots, blocks, and
verification that reports the FIRST broken link."""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from functions.audit_api.chain import (
    ERASED_DETAILS,
    GENESIS,
    UNSEALED_GRACE,
    Broken,
    ChainVerifier,
    block_hash,
    build_block,
    canonical_json,
    details_digest,
    entry_hash,
    entry_id,
    merkle_root,
    rfc3339,
    sealable_count,
    verify_chain,
)

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


def h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


LEAVES = [h(letter) for letter in "abcde"]


# --------------------------------------------------------------------------------------------------------
# Merkle root and block hash, against hashlib by hand
# --------------------------------------------------------------------------------------------------------


def test_merkle_root_of_one_leaf_is_the_leaf() -> None:
    assert merkle_root(LEAVES[:1]) == LEAVES[0]


def test_merkle_root_of_two_leaves() -> None:
    a, b = LEAVES[:2]
    assert merkle_root([a, b]) == h(a + b)


def test_merkle_root_of_three_leaves_pairs_the_last_with_itself() -> None:
    a, b, c = LEAVES[:3]
    assert merkle_root([a, b, c]) == h(h(a + b) + h(c + c))


def test_merkle_root_of_five_leaves_duplicates_on_every_odd_level() -> None:
    a, b, c, d, e = LEAVES
    ab, cd, ee = h(a + b), h(c + d), h(e + e)
    # Level 1 has three nodes: the last (ee) is paired with itself too.
    assert merkle_root(LEAVES) == h(h(ab + cd) + h(ee + ee))


def test_merkle_root_depends_on_order_and_needs_a_leaf() -> None:
    assert merkle_root(LEAVES[:2]) != merkle_root(LEAVES[1::-1])
    with pytest.raises(ValueError, match="at least one leaf"):
        merkle_root([])


def test_block_hash_is_prev_root_seq_count_with_fixed_width_numbers() -> None:
    root = merkle_root(LEAVES)
    assert block_hash(GENESIS, root, 1, 5) == h(GENESIS + root + "000000000001" + "000000000005")
    # Fixed width: seq 1 + count 23 never collides with seq 12 + count 3.
    assert block_hash(GENESIS, root, 1, 23) != block_hash(GENESIS, root, 12, 3)


def test_canonical_json_sorts_keys_is_compact_and_spells_one_instant_one_way() -> None:
    paris = timezone(timedelta(hours=1))
    assert canonical_json({"b": 1, "a": [T0, None]}) == b'{"a":["2025-03-01T09:30:00.000000Z",null],"b":1}'
    assert rfc3339(T0.astimezone(paris)) == rfc3339(T0) == "2025-03-01T09:30:00.000000Z"
    with pytest.raises(TypeError):
        canonical_json({"a": b"bytes"})


def test_entry_hash_covers_everything_but_the_seal_flags() -> None:
    entry = make_entry(1)
    content = {k: v for k, v in entry.items() if k not in ("hash", "sealed", "block_seq")}
    expected = hashlib.sha256(
        json.dumps(
            {
                **content,
                "occurred_at": rfc3339(content["occurred_at"]),
                "recorded_at": rfc3339(content["recorded_at"]),
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
    ).hexdigest()
    assert entry["hash"] == expected
    assert entry_hash({**entry, "sealed": True, "block_seq": 7}) == expected
    assert entry_hash({**entry, "outcome": "failure"}) != expected


def test_sealable_count_keeps_a_seal_within_the_write_budget() -> None:
    assert sealable_count(400, [], 500) == 400
    # 2 (block, head) + 400 entries + 2 per alert: 49 alerts fit, 50 do not.
    assert sealable_count(400, list(range(49)), 500) == 400
    # An alert every 4th entry: 2 + 332 entries + 2 * 83 alerts = 500.
    assert sealable_count(400, list(range(0, 400, 4)), 500) == 332
    assert sealable_count(3, [0], 4) == 0


# --------------------------------------------------------------------------------------------------------
# A chain in memory
# --------------------------------------------------------------------------------------------------------


def make_entry(n: int) -> dict[str, Any]:
    source = "/apis/tenant-api"
    entry: dict[str, Any] = {
        "id": entry_id(source, f"evt-{n}"),
        "tenant_id": "tnt_1",
        "action": "tenant.suspended",
        "actor": {"type": "user", "id": f"usr_{n}", "email": None},
        "target": {"type": "Tenant", "id": "tnt_1"},
        "outcome": "success",
        "occurred_at": T0 + timedelta(seconds=n),
        "recorded_at": T0 + timedelta(seconds=n, milliseconds=5),
        "source_event": {"id": f"evt-{n}", "type": "com.cmp.tenant.suspended.v1", "source": source},
        "details": {"tenant_id": "tnt_1", "reason": f"reason {n}", "score": 1.5, "tags": ["a", n]},
    }
    entry["hash"] = entry_hash(entry)
    entry["sealed"] = False
    entry["block_seq"] = None
    return entry


class Chain:
    """Entries sealed into blocks of the given sizes, plus `unsealed` entries not sealed yet."""

    def __init__(self, sizes: list[int], unsealed: int = 0) -> None:
        self.entries: dict[str, dict[str, Any]] = {}
        self.blocks: list[dict[str, Any] | None] = []
        self.unsealed: list[dict[str, Any]] = []
        prev, n = GENESIS, 0
        for seq, size in enumerate(sizes, start=1):
            batch = [make_entry(n + i) for i in range(size)]
            n += size
            block = build_block(seq, prev, [(e["id"], e["hash"]) for e in batch], T0)
            for entry in batch:
                self.entries[entry["id"]] = {**entry, "sealed": True, "block_seq": seq}
            self.blocks.append(block)
            prev = block["hash"]
        self.head: dict[str, Any] | None = {"seq": len(sizes), "hash": prev} if sizes else None
        self.unsealed = [make_entry(n + i) for i in range(unsealed)]

    def block(self, seq: int) -> dict[str, Any]:
        block = self.blocks[seq - 1]
        assert block is not None
        return block

    def listed(self, seq: int, i: int = 0) -> dict[str, Any]:
        return self.entries[self.block(seq)["entry_ids"][i]]

    def verify(self) -> dict[str, Any]:
        return verify_chain(self.head, self.blocks, self.entries, self.unsealed, len(self.entries)).to_dict()


def rehash_block(block: dict[str, Any]) -> None:
    block["hash"] = block_hash(block["prev_hash"], block["merkle_root"], block["seq"], block["count"])


def test_an_intact_chain_verifies() -> None:
    chain = Chain([3, 2, 4], unsealed=2)
    assert chain.verify() == {
        "ok": True,
        "blocks_checked": 3,
        "entries_checked": 11,
        "unsealed": 2,
        "first_broken": None,
    }
    assert chain.block(1)["prev_hash"] == GENESIS
    assert chain.block(2)["prev_hash"] == chain.block(1)["hash"]


def test_an_empty_trail_verifies() -> None:
    assert verify_chain(None, [], {}).to_dict()["ok"] is True


def test_an_edited_entry_field_is_detected_at_its_entry() -> None:
    chain = Chain([3, 2, 4])
    edited = chain.listed(2, 1)
    edited["details"]["reason"] = "nothing to see"
    report = chain.verify()
    assert report["ok"] is False
    assert report["blocks_checked"] == 1
    assert report["first_broken"] == {
        "block_seq": 2,
        "entry_id": edited["id"],
        "reason": "entry hash mismatch: its content changed",
    }


def test_an_edited_entry_with_a_recomputed_hash_breaks_the_merkle_root() -> None:
    chain = Chain([3, 2, 4])
    edited = chain.listed(3, 2)
    edited["actor"] = {"type": "user", "id": "someone_else", "email": None}
    edited["hash"] = entry_hash(edited)
    assert chain.verify()["first_broken"] == {
        "block_seq": 3,
        "entry_id": None,
        "reason": "merkle root mismatch",
    }


def test_a_removed_entry_is_detected() -> None:
    chain = Chain([3, 2, 4])
    removed = chain.listed(2, 0)["id"]
    del chain.entries[removed]
    assert chain.verify()["first_broken"] == {"block_seq": 2, "entry_id": removed, "reason": "entry missing"}


def test_an_entry_struck_from_its_block_is_detected() -> None:
    chain = Chain([3, 2, 4])
    block = chain.block(1)
    dropped = block["entry_ids"].pop()
    del chain.entries[dropped]
    broken = chain.verify()["first_broken"]
    assert broken == {
        "block_seq": 1,
        "entry_id": None,
        "reason": "entry list does not match the block's count",
    }
    # Fixing the count up moves the break to the block's hash, then to the next block's link.
    block["count"] = 2
    assert chain.verify()["first_broken"]["reason"] == "block hash mismatch"
    block["merkle_root"] = merkle_root([chain.entries[i]["hash"] for i in block["entry_ids"]])
    rehash_block(block)
    assert chain.verify()["first_broken"] == {
        "block_seq": 2,
        "entry_id": None,
        "reason": "prev_hash does not link to the previous block",
    }


def test_swapped_blocks_are_detected() -> None:
    chain = Chain([3, 2, 4])
    chain.blocks[1], chain.blocks[2] = chain.blocks[2], chain.blocks[1]
    assert chain.verify()["first_broken"] == {
        "block_seq": 2,
        "entry_id": None,
        "reason": "block out of sequence: position 2 holds seq 3",
    }


def test_a_broken_prev_hash_is_detected_even_when_the_block_hash_is_recomputed() -> None:
    chain = Chain([3, 2, 4])
    block = chain.block(3)
    block["prev_hash"] = "f" * 64
    rehash_block(block)
    assert chain.verify()["first_broken"] == {
        "block_seq": 3,
        "entry_id": None,
        "reason": "prev_hash does not link to the previous block",
    }


def test_the_first_broken_link_is_reported() -> None:
    chain = Chain([3, 2, 4])
    chain.block(3)["prev_hash"] = "f" * 64
    chain.listed(2, 0)["outcome"] = "failure"
    report = chain.verify()
    assert report["blocks_checked"] == 1
    assert report["first_broken"]["block_seq"] == 2
    assert report["first_broken"]["entry_id"] == chain.listed(2, 0)["id"]


def test_a_missing_last_block_and_a_stale_head_are_detected() -> None:
    chain = Chain([3, 2])
    last = chain.blocks.pop()
    assert chain.verify()["first_broken"] == {"block_seq": 2, "entry_id": None, "reason": "block missing"}
    chain.blocks.append(last)
    assert chain.head is not None
    chain.head["hash"] = chain.block(1)["hash"]
    assert chain.verify()["first_broken"]["reason"] == "chain head does not match the last block"


def test_a_forged_entry_claiming_a_block_is_detected_by_the_sealed_total() -> None:
    chain = Chain([3, 2])
    report = verify_chain(chain.head, chain.blocks, chain.entries, (), marked_sealed=6)
    assert report.first_broken is not None
    assert report.first_broken.reason == "6 entries claim to be sealed but the blocks list 5"


def test_entry_seal_flags_must_match_the_block() -> None:
    chain = Chain([3, 2])
    moved = chain.listed(1, 1)
    moved["block_seq"] = 2
    assert chain.verify()["first_broken"] == {
        "block_seq": 1,
        "entry_id": moved["id"],
        "reason": "entry seal flags do not match the block",
    }


def test_unsealed_entries_are_checked_one_by_one() -> None:
    chain = Chain([2], unsealed=3)
    chain.unsealed[1]["action"] = "tenant.created"
    report = chain.verify()
    assert report["unsealed"] == 1
    assert report["first_broken"] == {
        "block_seq": None,
        "entry_id": chain.unsealed[1]["id"],
        "reason": "entry hash mismatch: its content changed",
    }


def test_an_entry_whose_id_does_not_come_from_its_event_is_detected() -> None:
    chain = Chain([], unsealed=1)
    forged = copy.deepcopy(chain.unsealed[0])
    forged["source_event"]["id"] = "evt-other"
    forged["hash"] = entry_hash(forged)
    chain.unsealed = [forged]
    assert chain.verify()["first_broken"]["reason"] == "entry id does not match its source event"


# Every stored entry is accounted for, and the chain is checked against its anchor.


def _never() -> int:
    raise AssertionError("the head is re-read only for an entry claiming a block beyond it")


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        ({"sealed": True}, "entry has no block_seq: neither sealed nor unsealed"),
        ({"sealed": True, "block_seq": "1"}, "entry block_seq has the wrong type (str)"),
        ({"sealed": True, "block_seq": 1.0}, "entry block_seq has the wrong type (float)"),
        ({"sealed": True, "block_seq": True}, "entry block_seq has the wrong type (bool)"),
        ({"sealed": True, "block_seq": 9}, "entry claims block 9 beyond the chain head 2"),
        ({"sealed": True, "block_seq": 0}, "entry claims block 0 beyond the chain head 2"),
    ],
)
def test_an_entry_that_fits_no_block_and_is_not_unsealed_is_reported(
    flags: dict[str, Any], reason: str
) -> None:
    verifier = ChainVerifier({"seq": 2, "hash": "h"})
    assert verifier.account("forged", flags, lambda: 2) is None
    broken = verifier.report().first_broken
    assert broken is not None and broken.entry_id == "forged" and broken.reason == reason


def test_entries_are_classified_sealed_unsealed_or_sealed_since_the_head_was_read() -> None:
    verifier = ChainVerifier({"seq": 2, "hash": "h"})
    assert verifier.account("a", {"sealed": True, "block_seq": 1}, _never) == "sealed"
    assert verifier.account("b", {"sealed": False, "block_seq": None}, _never) == "unsealed"
    assert verifier.account("c", {"sealed": True, "block_seq": 3}, lambda: 3) == "newer"
    assert verifier.claimed == 1 and verifier.report().ok


def test_an_entry_left_unsealed_past_the_seal_window_is_reported() -> None:
    entry = make_entry(1)
    recorded = entry["recorded_at"]
    fresh = ChainVerifier(None)
    assert fresh.check_unsealed(entry, entry["id"], recorded + UNSEALED_GRACE / 2)
    late = ChainVerifier(None)
    assert not late.check_unsealed(entry, entry["id"], recorded + UNSEALED_GRACE * 2)
    assert late.report().first_broken == Broken(None, entry["id"], "entry left unsealed past the seal window")


def test_the_chain_is_checked_against_its_anchor() -> None:
    head = {"seq": 3, "hash": "h3"}
    assert ChainVerifier(head).check_anchor({"seq": 2, "hash": "h2"}, "h2")
    rewound = ChainVerifier({"seq": 1, "hash": "h1"})
    assert not rewound.check_anchor({"seq": 2, "hash": "h2"}, None)
    assert "behind its anchor" in str(rewound.report().first_broken)
    rehashed = ChainVerifier(head)
    assert not rehashed.check_anchor({"seq": 2, "hash": "h2"}, "other")
    assert "does not match its anchor" in str(rehashed.report().first_broken)
    unanchored = ChainVerifier(head)
    assert not unanchored.check_anchor(None, None)
    assert ChainVerifier(None).check_anchor(None, None)  # an empty chain needs none


def test_erased_details_still_verify_and_changed_details_do_not() -> None:
    entry = make_entry(1)
    entry["details_digest"] = details_digest(entry["details"])
    entry["hash"] = entry_hash(entry)
    erased = {**entry, "details": ERASED_DETAILS}
    assert ChainVerifier(None).check_unsealed(erased, entry["id"])
    changed = {**entry, "details": {**entry["details"], "reason": "forged"}}
    verifier = ChainVerifier(None)
    assert not verifier.check_unsealed(changed, entry["id"])
    assert verifier.report().first_broken == Broken(
        None, entry["id"], "entry hash mismatch: its content changed"
    )
    digest_changed = {**entry, "details_digest": "0" * 64}
    assert not ChainVerifier(None).check_unsealed(digest_changed, entry["id"])
