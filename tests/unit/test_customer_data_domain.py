"""The Customer Data API's pure domain: validation, normalization and search keys, duplicate scoring,
merge preview/apply/undo checks, bounces, and import row mapping."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from functions.customer_data_api import domain
from functions.customer_data_api.domain import DomainError

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
ACTOR = {"type": "user", "id": "u_1", "email": "admin@acme.example"}


def contact(record_id: str = "con_1", **fields: Any) -> dict[str, Any]:
    base = {"first_name": "Lena", "last_name": "Fischer", "emails": ["lena@globex.example"]}
    valid = domain.validate_fields("contact", {**base, **fields})
    return domain.new_record("contact", record_id, valid, ACTOR, "manual", NOW)


def org(record_id: str = "org_1", **fields: Any) -> dict[str, Any]:
    valid = domain.validate_fields("organization", {"name": "Globex", **fields})
    return domain.new_record("organization", record_id, valid, ACTOR, "api", NOW)


# --- validation and normalization --------------------------------------------------------------------
def test_fields_are_normalized_and_search_keys_derived() -> None:
    record = contact(first_name="Léna ", emails=["Lena@Globex.Example", "lena@globex.example", "l@gmail.com"])
    assert record["emails"] == ["lena@globex.example", "l@gmail.com"]
    assert record["name_key"] == "lena fischer" and record["last_name_key"] == "fischer"
    assert record["email_keys"] == record["emails"]
    assert record["domain_keys"] == ["globex.example", "gmail.com"]
    assert record["email_status"] == "valid" and record["version"] == 1
    assert record["created"] == {"actor": ACTOR, "source": "manual", "at": NOW}
    organization = org(domains=["https://www.Globex.example/about", "globex.io", "GLOBEX.io"])
    assert organization["domains"] == ["globex.example", "globex.io"]
    assert organization["name_key"] == "globex"


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        ("contact", {"first_name": "A", "last_name": "B", "emails": ["not-an-email"]}),
        ("contact", {"first_name": "", "last_name": "B"}),
        ("contact", {"first_name": "A", "last_name": "B", "phones": ["call me"]}),
        ("contact", {"first_name": "A", "last_name": "B", "custom_fields": {"Bad Key": 1}}),
        ("contact", {"first_name": "A", "last_name": "B", "surprise": 1}),
        ("organization", {"name": "N", "domains": ["not a domain"]}),
        ("organization", {"name": "N", "size": "huge"}),
        ("organization", {"name": "N", "address": {"country": "Germany"}}),
    ],
)
def test_invalid_fields_are_refused(kind: domain.Kind, fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        domain.validate_fields(kind, fields)


def test_merge_patch_removes_with_null_merges_objects_and_refuses_read_only_fields() -> None:
    record = org(
        address={"city": "Berlin", "country": "DE"}, custom_fields={"a": 1, "b": 2}, industry="Retail"
    )
    patched = domain.merge_patch("organization", record, {"address": {"city": "Hamburg"}, "industry": None,
                                                          "custom_fields": {"a": None, "c": 3}})  # fmt: skip
    assert patched["address"] == {
        "street": None,
        "city": "Hamburg",
        "postal_code": None,
        "region": None,
        "country": "DE",
    }
    assert patched["industry"] is None and patched["custom_fields"] == {"b": 2, "c": 3}
    with pytest.raises(DomainError) as refused:
        domain.merge_patch("organization", record, {"version": 9})
    assert refused.value.status == 422


def test_apply_fields_reports_changes_and_bumps_the_version_only_when_something_changed() -> None:
    record = contact(job_title="CTO")
    fields = {k: record[k] for k in domain.field_names("contact") if k in record}
    same, none = domain.apply_fields("contact", record, fields, ACTOR, "api", NOW)
    assert none == {} and same["version"] == 1
    after, diff = domain.apply_fields(
        "contact", record, {**fields, "job_title": "CEO"}, ACTOR, "workflow", NOW
    )
    assert diff == {"job_title": {"before": "CTO", "after": "CEO"}}
    assert after["version"] == 2 and after["updated"]["source"] == "workflow"


def test_soft_delete_and_restore_are_transitions() -> None:
    deleted = domain.soft_delete(contact(), ACTOR, "manual", NOW)
    assert deleted["deleted"] is True and deleted["version"] == 2
    with pytest.raises(DomainError):
        domain.soft_delete(deleted, ACTOR, "manual", NOW)
    restored = domain.restore(deleted, ACTOR, "manual", NOW)
    assert restored["deleted"] is False and restored["version"] == 3
    with pytest.raises(DomainError):
        domain.restore({**deleted, "merged_into": "con_2"}, ACTOR, "manual", NOW)


# --- bounces -----------------------------------------------------------------------------------------
def test_a_hard_bounce_marks_bounced_and_suppressed_and_the_primary_sets_the_status() -> None:
    record = contact(emails=["lena@globex.example", "backup@globex.example"])
    after, diff = domain.record_bounce(record, "LENA@globex.example", "hard", NOW)
    assert after["bounced_emails"] == after["suppressed_emails"] == ["lena@globex.example"]
    assert after["email_status"] == "bounced" and diff["email_status"] == {
        "before": "valid",
        "after": "bounced",
    }
    again, nothing = domain.record_bounce(after, "lena@globex.example", "hard", NOW)
    assert nothing == {} and again["version"] == after["version"]
    backup, _ = domain.record_bounce(record, "backup@globex.example", "complaint", NOW)
    assert backup["email_status"] == "valid" and backup["suppressed_emails"] == ["backup@globex.example"]
    unknown, none = domain.record_bounce(record, "other@globex.example", "hard", NOW)
    assert none == {} and unknown == record


def test_the_third_soft_bounce_counts_as_hard() -> None:
    record = contact()
    for _ in range(2):
        record, diff = domain.record_bounce(record, "lena@globex.example", "soft", NOW)
        assert diff == {} and record["email_status"] == "valid"
    record, diff = domain.record_bounce(record, "lena@globex.example", "soft", NOW)
    assert record["email_status"] == "bounced" and "bounced_emails" in diff


def test_a_name_is_guessed_from_an_address() -> None:
    assert domain.name_from_email("jonas.berg@acme.example") == ("Jonas", "Berg")
    assert domain.name_from_email("mary-jane_watson+crm@x.example") == ("Mary", "Jane Watson")
    assert domain.name_from_email("admin@x.example") == ("Admin", "Unknown")


# --- duplicates --------------------------------------------------------------------------------------
def test_duplicate_scores_rank_email_then_similar_names_and_ignore_free_mail_domains() -> None:
    me = contact("con_1", first_name="Jonathan", last_name="Miller", emails=["jon@stark.example"])
    same_email = contact("con_2", first_name="J", last_name="M", emails=["JON@stark.example"])
    typo = contact("con_3", first_name="Jonathan", last_name="Millar", emails=["jm@other.example"])
    colleague = contact("con_4", first_name="Jonathon", last_name="Miller", emails=["jm@stark.example"])
    stranger = contact("con_5", first_name="Zoe", last_name="Quinn", emails=["zoe@stark.example"])
    gmail_a = contact("con_6", first_name="Ann", last_name="Lee", emails=["ann@gmail.com"])
    gmail_b = contact("con_7", first_name="Bob", last_name="Ray", emails=["bob@gmail.com"])
    deleted = {**contact("con_8", emails=["jon@stark.example"]), "deleted": True}
    ranked = domain.rank_duplicates("contact", me, [same_email, typo, colleague, stranger, deleted, me, typo])
    assert [c.id for c in ranked] == ["con_2", "con_4", "con_3"]
    assert ranked[0].score == 1.0 and ranked[0].reasons[0] == "same email"
    assert "same company domain" in ranked[1].reasons and ranked[1].score > ranked[2].score
    assert domain.duplicate_score("contact", gmail_a, gmail_b).score < domain.DUPLICATE_THRESHOLD
    assert domain.duplicate_score("organization", org("org_1", domains=["a.example"]),
                                  org("org_2", name="Other", domains=["a.example"])).score == 1.0  # fmt: skip


# --- merge -------------------------------------------------------------------------------------------
def test_a_merge_plan_unions_lists_fills_gaps_and_follows_the_choices() -> None:
    winner = contact("con_1", job_title="CTO", emails=["a@x.example"], custom_fields={"tier": "silver"})
    loser = contact(
        "con_2", job_title="Chief Technology Officer", emails=["b@x.example", "a@x.example"],
        phones=["+1 555 0100"], custom_fields={"tier": "gold", "region": "EU"},
    )  # fmt: skip
    plan = domain.plan_merge("contact", winner, loser, {})
    assert plan.result["job_title"] == "CTO" and plan.field_sources["job_title"] == "con_1"
    assert plan.result["emails"] == ["a@x.example", "b@x.example"] and plan.result["phones"] == [
        "+1 555 0100"
    ]
    assert plan.result["custom_fields"] == {"tier": "silver", "region": "EU"}
    assert set(plan.conflicts) == {"job_title", "custom_fields"}
    chosen = domain.plan_merge("contact", winner, loser, {"job_title": "loser", "custom_fields": "loser"})
    assert chosen.result["job_title"] == "Chief Technology Officer"
    assert chosen.result["custom_fields"] == {"tier": "gold", "region": "EU"}
    assert chosen.changes["job_title"] == {"before": "CTO", "after": "Chief Technology Officer"}
    with pytest.raises(DomainError):
        domain.plan_merge("contact", winner, winner, {})
    with pytest.raises(DomainError):
        domain.plan_merge("contact", winner, loser, {"version": "loser"})
    with pytest.raises(DomainError):
        domain.plan_merge("contact", winner, {**loser, "deleted": True}, {})


def test_apply_merge_tombstones_the_loser_and_undo_requires_unchanged_records() -> None:
    winner = contact("con_1", emails=["a@x.example"])
    loser = {**contact("con_2", emails=["b@x.example"]), "bounced_emails": ["b@x.example"],
             "suppressed_emails": ["b@x.example"]}  # fmt: skip
    plan = domain.plan_merge("contact", winner, loser, {})
    merged, tomb = domain.apply_merge(plan, winner, loser, "mrg_1", ACTOR, NOW)
    assert merged["emails"] == ["a@x.example", "b@x.example"] and merged["bounced_emails"] == ["b@x.example"]
    assert merged["email_status"] == "valid" and merged["merged_from"] == ["con_2"] and merged["version"] == 2
    assert tomb["deleted"] and tomb["merged_into"] == "con_1" and tomb["merge_id"] == "mrg_1"
    merge = {"status": "applied", "after_versions": {"con_1": 2, "con_2": 2}}
    domain.check_undo(merge, {"con_1": merged, "con_2": tomb})
    with pytest.raises(DomainError) as changed:
        domain.check_undo(merge, {"con_1": {**merged, "version": 3}, "con_2": tomb})
    assert changed.value.kind == "changed-since-merge"
    with pytest.raises(DomainError):
        domain.check_undo({**merge, "status": "undone"}, {"con_1": merged, "con_2": tomb})


# --- import ------------------------------------------------------------------------------------------
def test_csv_rows_map_to_fields_with_list_and_custom_columns() -> None:
    text = (
        "\ufefffirst_name,last_name,email,phone,custom.tier,job_title\n"
        "Lena,Fischer,Lena@Globex.example;lf@globex.example,+49 30 1,gold,CTO\n"
        "\n"
        "Bad,Email,nope,,,\n"
        "Short,Row\n"
        "Again,Dup,LENA@globex.example,,,\n"
    )
    rows = domain.parse_import("contact", text, "csv", "create_only", "email")
    assert [r["row"] for r in rows] == [1, 2, 3, 4]
    first = rows[0]
    assert first["status"] == "pending" and first["key"] == "lena@globex.example"
    assert first["fields"]["emails"] == ["lena@globex.example", "lf@globex.example"]
    assert first["fields"]["custom_fields"] == {"tier": "gold"}
    assert rows[1]["status"] == "failed" and rows[1]["reason"].startswith("invalid emails")
    assert rows[2]["reason"] == "invalid row: 2 fields where the header has 6"
    assert (rows[3]["status"], rows[3]["reason"]) == ("skipped", "duplicate of row 1")


def test_organization_rows_claim_domains_within_the_file_and_update_only_needs_the_match_column() -> None:
    text = (
        '{"name": "A", "domains": ["a.example"]}\n{"name": "B", "domains": ["b.example", "a.example"]}\n[1]\n'
    )
    rows = domain.parse_import("organization", text, "ndjson", "create_or_update", "domain")
    assert rows[0]["status"] == "pending"
    assert (rows[1]["status"], rows[1]["reason"]) == ("failed", "domain a.example is also in row 1")
    assert rows[2]["reason"] == "invalid row: not a JSON object"
    text = "domain,industry,address.city\na.example,Banking,Berlin\n"
    update = domain.parse_import("organization", text, "csv", "update_only", "domain")
    assert set(update[0]["fields"]) == {"domains", "industry", "address"}  # only what the row sets
    assert update[0]["fields"]["industry"] == "Banking" and update[0]["fields"]["address"]["city"] == "Berlin"
    missing = domain.parse_import("contact", "first_name,last_name\nA,B\n", "csv", "create_only", "email")
    assert missing[0]["reason"] == "missing match value: email"
    with pytest.raises(DomainError):
        domain.parse_import("contact", "first_name\nA\n", "csv", "create_only", "phone")
    with pytest.raises(domain.ImportFileError):
        domain.parse_import("contact", "", "csv", "create_only", "email")


def test_row_decisions_follow_the_mode() -> None:
    live, gone = {"id": "con_1"}, {"id": "con_2", "deleted": True}
    assert domain.decide_row("create_only", None) == ("create", None)
    assert domain.decide_row("create_only", live) == ("skip", "exists: con_1")
    assert domain.decide_row("create_or_update", live) == ("update", None)
    assert domain.decide_row("update_only", None) == ("skip", "no record matches")
    assert domain.decide_row("create_or_update", gone)[0] == "skip"
    rows = [{"row": n} for n in range(1, 6)]
    assert [[r["row"] for r in c] for c in domain.chunked(rows, 2)] == [[1, 2], [3, 4], [5]]
    assert domain.count_rows([{"status": "created"}, {"status": "failed"}, {"status": "created"}]) == {
        "processed": 3, "created": 2, "updated": 0, "unchanged": 0, "skipped": 0, "failed": 1,
    }  # fmt: skip
    assert (
        domain.import_outcome(2, 0, 0, 1) == "partially_failed"
        and domain.import_outcome(0, 0, 0, 1) == "failed"
    )
