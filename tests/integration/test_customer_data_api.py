"""The Customer Data API over HTTP, Pub/Sub push and Cloud Tasks, on the real emulators."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from google.cloud import pubsub_v1

from emulators.suite import Suite
from shared.auth import sign_local_service_token
from shared.catalog import load_catalog
from shared.contracts.payloads import HealthMeasure, HealthScoreChanged, NotificationBounced, UserInvited
from shared.events import new_event
from tests.conftest import (
    Api,
    BadRequest,
    bad_requests_change_nothing,
    dump_firestore,
    eventually,
    quiescent,
    send,
    store_tenant,
)
from tests.integration.test_user_management_api import Subscription, subscribe

PROBLEM = "application/problem+json"
CATALOG = load_catalog()
PROFILE_COLLECTIONS = ("contacts", "organizations", "organization_domains")
# Everything this API stores (other APIs keep their own copies of the events they consume).
OUR_COLLECTIONS = (
    *PROFILE_COLLECTIONS,
    "customer_merges",
    "customer_imports",
    "customer_import_rows",
    "customer_settings",
    "customer_user_imports",
    "customer_erasures",
    "contact_emails",
)


# --- helpers -----------------------------------------------------------------------------------------
__all__ = ["subscribe"]  # the fixture: pull subscriptions of our own on event topics


def create_tenant(tenant_api: Api, slug: str) -> str:
    response = tenant_api.post(
        "/tenants",
        json={"name": f"T {slug}", "slug": slug, "plan": "growth", "admin_email": f"a@{slug}.example"},
    )
    assert response.status_code == 201, response.text
    tenant_id: str = response.json()["id"]
    return tenant_id


def admin_client(clean: Suite, tokens: Callable[..., str], tenant: str) -> Api:
    return Api(clean.function_url("customer_data_api"), tokens(f"admin@{tenant}.example", tenant, ("admin",)))


@pytest.fixture
def crm(clean: Suite, tokens: Callable[..., str]) -> tuple[str, Api]:
    """A tenant and its admin's client of the Customer Data API. The tenant is stored without Tenant
    Created: its onboarding (a seat, an invitation and the admin's profile, mails, scores) is not what
    these tests are about, and each would wait for all of it to settle."""
    tenant = str(store_tenant(f"crm-{uuid.uuid4().hex[:6]}")["id"])
    return tenant, admin_client(clean, tokens, tenant)


@pytest.fixture
def crm_onboarded(tenant_api: Api, clean: Suite, tokens: Callable[..., str]) -> tuple[str, Api]:
    """A tenant created through the Tenant API, Tenant Created and all."""
    tenant = create_tenant(tenant_api, f"crm-{uuid.uuid4().hex[:6]}")
    return tenant, admin_client(clean, tokens, tenant)


def service_client(clean: Suite, name: str = "workflow") -> Api:
    token = sign_local_service_token(clean.signing_key, f"{name}@{clean.project}.iam.gserviceaccount.com")
    return Api(clean.function_url("customer_data_api"), token)


def contact(api: Api, tenant: str, first: str, last: str, *emails: str, **extra: Any) -> dict[str, Any]:
    body = {"first_name": first, "last_name": last, "emails": list(emails), **extra}
    response = api.post(f"/tenants/{tenant}/contacts", json=body)
    assert response.status_code == 201, response.text
    record: dict[str, Any] = response.json()
    return record


def organization(api: Api, tenant: str, name: str, *domains: str, **extra: Any) -> dict[str, Any]:
    response = api.post(
        f"/tenants/{tenant}/organizations", json={"name": name, "domains": list(domains), **extra}
    )
    assert response.status_code == 201, response.text
    record: dict[str, Any] = response.json()
    return record


def profiles(db: Any, tenant: str) -> dict[str, Any]:
    """The tenant's organizations, contacts and domain claims, by path; less the profile of the first
    admin, which the Onboarding API's invitation (User Invited) creates whenever it arrives."""
    return {
        path: data
        for path, data in dump_firestore(db, tenant).items()
        if path.startswith(f"tenants/{tenant}/")
        and path.split("/")[2] in PROFILE_COLLECTIONS
        and not data.get("user_id")
    }


def stored(db: Any, tenant: str) -> dict[str, Any]:
    """Everything this API stores for the tenant, by path."""
    return {
        path: data
        for path, data in dump_firestore(db, tenant).items()
        if path.startswith(f"tenants/{tenant}/") and path.split("/")[2] in OUR_COLLECTIONS
    }


def publish(suite: Suite, payload: Any, tenant: str, subject: str) -> None:
    """Publish on the event's real topic: the emulator pushes it to the subscribers' functions."""
    event = new_event(payload, tenant_id=tenant, subject=subject, source_api_slug="test")
    data, attributes = event.to_message()
    client = pubsub_v1.PublisherClient()
    topic = client.topic_path(suite.project, CATALOG.event(payload.EVENT_NAME).topic)
    client.publish(topic, data, **attributes).result(timeout=30)


def audited(clean: Suite, tokens: Callable[..., str], tenant: str, action: str) -> list[dict[str, Any]]:
    audit = Api(clean.function_url("audit_api"), tokens(f"admin@{tenant}.example", tenant, ("admin",)))
    items: list[dict[str, Any]] = audit.get(
        f"/tenants/{tenant}/audit/entries", params={"action": action, "limit": 200}
    ).json()["items"]
    return items


# --- CRUD, contract, concurrency, isolation ----------------------------------------------------------
def test_contacts_and_organizations_crud_with_etags_and_the_service_contract(
    crm: tuple[str, Api], clean: Suite, db: Any, subscribe: Callable[[str], Subscription]
) -> None:
    tenant, api = crm
    created_events = subscribe("Contact Created")
    updated_events = subscribe("Contact Updated")
    org = organization(api, tenant, "Globex", "globex.example", "https://www.Globex.io/")
    assert org["domains"] == ["globex.example", "globex.io"] and org["created"]["source"] == "manual"
    lena = contact(
        api, tenant, "Léna", "Fischer", "Lena.Fischer@Globex.example", "lena@home.example",
        organization_id=org["id"], phones=["+49 30 1234567"], job_title="Head of Procurement",
    )  # fmt: skip
    assert lena["emails"] == ["lena.fischer@globex.example", "lena@home.example"]
    assert lena["email_status"] == "valid" and lena["version"] == 1

    # The contract other APIs rely on, read as a platform service.
    service = service_client(clean)
    got = service.get(f"/tenants/{tenant}/contacts/{lena['id']}")
    assert got.status_code == 200 and got.headers["ETag"] == '"1"'
    body = got.json()
    assert (body["id"], body["organization_id"], body["emails"], body["email_status"]) == (
        lena["id"], org["id"], lena["emails"], "valid",
    )  # fmt: skip
    listed = service.get(f"/tenants/{tenant}/contacts", params={"email": "LENA@home.example"}).json()["items"]
    assert [c["id"] for c in listed] == [lena["id"]]

    # If-Match: a stale version is refused with 412 and changes nothing.
    path = f"/tenants/{tenant}/contacts/{lena['id']}"
    ok = api.patch(path, json={"job_title": "VP Procurement"}, headers={"If-Match": '"1"'})
    assert (
        ok.status_code == 200 and ok.headers["ETag"] == '"2"' and ok.json()["job_title"] == "VP Procurement"
    )
    before = profiles(db, tenant)
    stale = api.patch(path, json={"job_title": "Intern"}, headers={"If-Match": '"1"'})
    assert stale.status_code == 412 and stale.headers["Content-Type"] == PROBLEM
    assert stale.json()["current_version"] == 2 and profiles(db, tenant) == before

    # A workflow acting through the platform service is recorded as such.
    by_workflow = service.patch(
        path, json={"lifecycle_stage": "customer"}, headers={"X-Workflow-Id": "wf_42"}
    )
    assert by_workflow.status_code == 200, by_workflow.text
    assert by_workflow.json()["updated"]["source"] == "workflow"

    def events() -> list[dict[str, Any]] | None:
        seen = updated_events.received(tenant)
        return seen if len(seen) >= 2 else None

    updates = eventually(events, what="two Contact Updated")
    assert updates[0]["data"]["changes"] == {
        "job_title": {"before": "Head of Procurement", "after": "VP Procurement"}
    }
    assert updates[0]["data"]["source"] == "manual" and updates[0]["data"]["actor"]["type"] == "user"
    assert updates[1]["data"]["source"] == "workflow"
    assert updates[1]["data"]["actor"] == {"type": "service", "id": "workflow:wf_42", "email": None}
    created = eventually(lambda: created_events.received(tenant), what="Contact Created")
    assert created[0]["subject"] == lena["id"] and created[0]["data"]["organization_id"] == org["id"]

    # Soft delete hides the contact; restore brings it back; deleting an organization keeps its domains.
    assert api.delete(path).status_code == 200
    assert api.get(path).status_code == 404
    assert api.get(path, params={"include_deleted": "true"}).json()["deleted"] is True
    assert api.post(f"{path}/restore", json={}).status_code == 200 and api.get(path).status_code == 200
    assert api.delete(f"/tenants/{tenant}/organizations/{org['id']}").status_code == 200
    taken = api.post(f"/tenants/{tenant}/organizations", json={"name": "Other", "domains": ["globex.io"]})
    assert taken.status_code == 409 and taken.json()["organization_id"] == org["id"]


def test_domains_are_unique_within_a_tenant_and_not_across_tenants(
    crm: tuple[str, Api], tenant_api: Api, clean: Suite, tokens: Callable[..., str], db: Any
) -> None:
    tenant, api = crm
    org = organization(api, tenant, "Initech", "initech.example")
    before = profiles(db, tenant)
    clash = api.post(
        f"/tenants/{tenant}/organizations", json={"name": "Initech 2", "domains": ["INITECH.example"]}
    )
    assert clash.status_code == 409 and clash.json()["type"].endswith("/domain-taken")
    assert profiles(db, tenant) == before
    other = organization(api, tenant, "Hooli", "hooli.example")
    moved = api.patch(f"/tenants/{tenant}/organizations/{other['id']}", json={"domains": ["initech.example"]})
    assert moved.status_code == 409 and profiles(db, tenant)[f"tenants/{tenant}/organizations/{other['id']}"][
        "domains"
    ] == ["hooli.example"]
    # Renaming frees the old domain in the same transaction.
    assert (
        api.patch(
            f"/tenants/{tenant}/organizations/{org['id']}", json={"domains": ["initech.io"]}
        ).status_code
        == 200
    )
    organization(api, tenant, "New Initech", "initech.example")

    away = create_tenant(tenant_api, f"away-{uuid.uuid4().hex[:6]}")
    outsider = api.as_(tokens(f"admin@{away}.example", away, ("admin",)))
    organization(outsider, away, "Initech elsewhere", "initech.example")  # another tenant's namespace
    assert outsider.get(f"/tenants/{tenant}/organizations/{org['id']}").status_code == 404
    assert outsider.get(f"/tenants/{away}/organizations/{org['id']}").status_code == 404
    assert outsider.get(f"/tenants/{tenant}/contacts").status_code == 404


def test_search_by_name_prefix_email_and_domain_with_filters_and_cursors(crm: tuple[str, Api]) -> None:
    tenant, api = crm
    org = organization(api, tenant, "Umbrella", "umbrella.example")
    made = [
        contact(api, tenant, "Anna", f"Smith{i:02d}", f"anna{i}@umbrella.example", organization_id=org["id"])
        for i in range(7)
    ]
    contact(api, tenant, "Ånders", "Berg", "anders@other.example", lifecycle_stage="lead")
    contact(api, tenant, "Bob", "Stone", "bob@umbrella.example")

    def ids(**params: Any) -> list[str]:
        out: list[str] = []
        cursor = None
        while True:
            page = api.get(
                f"/tenants/{tenant}/contacts",
                params={"limit": 3, **params, **({"cursor": cursor} if cursor else {})},
            )
            assert page.status_code == 200, page.text
            out += [c["id"] for c in page.json()["items"]]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                return out

    assert ids(name="anna smith") == [c["id"] for c in made]  # paged 3 by 3, in name order
    assert len(ids(name="An")) == 8  # "Ånders" folds to "anders"
    assert len(ids(domain="umbrella.example")) == 8
    assert ids(email="ANNA3@umbrella.example") == [made[3]["id"]]
    assert len(ids(organization_id=org["id"])) == 7
    assert len(ids(lifecycle_stage="lead")) == 1
    two = api.get(f"/tenants/{tenant}/contacts", params={"name": "a", "email": "bob@umbrella.example"})
    assert two.status_code == 422 and two.headers["Content-Type"] == PROBLEM
    orgs = api.get(f"/tenants/{tenant}/organizations", params={"domain": "umbrella.example"}).json()["items"]
    assert [o["id"] for o in orgs] == [org["id"]]


# --- duplicates and merges -----------------------------------------------------------------------------
def test_duplicates_merge_with_preview_then_undo_restores_everything(
    crm: tuple[str, Api],
    db: Any,
    clean: Suite,
    tokens: Callable[..., str],
    subscribe: Callable[[str], Subscription],
) -> None:
    tenant, api = crm
    merged_events = subscribe("Customer Profile Merged")
    org = organization(api, tenant, "Stark", "stark.example")
    winner = contact(
        api, tenant, "Jonathan", "Miller", "jon@stark.example", job_title="CTO", organization_id=org["id"]
    )
    loser = contact(
        api, tenant, "Jonathon", "Miller", "j.miller@stark.example", "jon@stark.example",
        job_title="Chief Technology Officer", phones=["+1 555 0100"], custom_fields={"tier": "gold"},
    )  # fmt: skip
    similar = contact(api, tenant, "Jonathan", "Millar", "jm@gmail.com")
    contact(api, tenant, "Zoe", "Quinn", "zoe@elsewhere.example")

    found = api.get(f"/tenants/{tenant}/contacts/{winner['id']}/duplicates").json()["items"]
    by_id = {c["id"]: c for c in found}
    assert set(by_id) == {loser["id"], similar["id"]}
    assert by_id[loser["id"]]["score"] == 1.0 and "same email" in by_id[loser["id"]]["reasons"]
    assert 0.8 <= by_id[similar["id"]]["score"] < 1.0 and "similar name" in by_id[similar["id"]]["reasons"]

    before = profiles(db, tenant)
    request = {
        "kind": "contact",
        "winner_id": winner["id"],
        "loser_id": loser["id"],
        "choices": {"job_title": "loser"},
    }
    preview = api.post(f"/tenants/{tenant}/merges/preview", json=request)
    assert preview.status_code == 200, preview.text
    plan = preview.json()
    assert plan["conflicts"]["job_title"] == {"winner": "CTO", "loser": "Chief Technology Officer"}
    assert plan["result"]["job_title"] == "Chief Technology Officer"
    assert plan["result"]["emails"] == ["jon@stark.example", "j.miller@stark.example"]
    assert plan["result"]["phones"] == ["+1 555 0100"] and plan["result"]["organization_id"] == org["id"]
    assert plan["field_sources"]["job_title"] == loser["id"]
    assert profiles(db, tenant) == before  # a preview changes nothing

    applied = api.post(f"/tenants/{tenant}/merges", json=request)
    assert applied.status_code == 201, applied.text
    merge = applied.json()
    survivor = api.get(f"/tenants/{tenant}/contacts/{winner['id']}").json()
    assert survivor["job_title"] == "Chief Technology Officer" and survivor["custom_fields"] == {
        "tier": "gold"
    }
    assert survivor["merged_from"] == [loser["id"]]
    assert api.get(f"/tenants/{tenant}/contacts/{loser['id']}").status_code == 404
    tomb = api.get(f"/tenants/{tenant}/contacts/{loser['id']}", params={"include_deleted": "true"}).json()
    assert tomb["merged_into"] == winner["id"]

    event = eventually(lambda: merged_events.received(tenant), what="Customer Profile Merged")[0]
    assert event["data"]["profile_type"] == "contact" and event["data"]["contact_id"] == winner["id"]
    assert event["data"]["merged_contact_ids"] == [loser["id"]] and event["data"]["merge_id"] == merge["id"]
    assert event["data"]["organization_id"] == org["id"]

    undone = api.post(f"/tenants/{tenant}/merges/{merge['id']}/undo", json={})
    assert undone.status_code == 200 and undone.json()["status"] == "undone"
    assert profiles(db, tenant) == before
    again = api.post(f"/tenants/{tenant}/merges/{merge['id']}/undo", json={})
    assert again.status_code == 409 and again.json()["type"].endswith("/already-undone")

    # The Audit API records the merge and the contact updates it caused.
    eventually(lambda: audited(clean, tokens, tenant, "customer.profile.merged"), what="the merge audited")
    entries = eventually(lambda: audited(clean, tokens, tenant, "contact.updated"), what="updates audited")
    assert any(e["target"]["id"] == winner["id"] for e in entries)


def test_an_organization_merge_moves_contacts_and_domains_and_undo_needs_unchanged_records(
    crm: tuple[str, Api], db: Any
) -> None:
    tenant, api = crm
    keep = organization(api, tenant, "Wayne Enterprises", "wayne.example", industry="Conglomerate")
    drop = organization(api, tenant, "Wayne Ent.", "wayne-ent.example", size="1001-5000")
    people = [
        contact(api, tenant, "P", f"Person{i}", f"p{i}@wayne-ent.example", organization_id=drop["id"])
        for i in range(3)
    ]
    before = profiles(db, tenant)
    body = {"kind": "organization", "winner_id": keep["id"], "loser_id": drop["id"]}
    preview = api.post(f"/tenants/{tenant}/merges/preview", json=body).json()
    assert preview["moved_contact_count"] == 3 and preview["result"]["size"] == "1001-5000"
    merge = api.post(f"/tenants/{tenant}/merges", json=body)
    assert merge.status_code == 201, merge.text
    winner = api.get(f"/tenants/{tenant}/organizations/{keep['id']}").json()
    assert winner["domains"] == ["wayne.example", "wayne-ent.example"]
    for person in people:
        assert api.get(f"/tenants/{tenant}/contacts/{person['id']}").json()["organization_id"] == keep["id"]
    clash = api.post(f"/tenants/{tenant}/organizations", json={"name": "X", "domains": ["wayne-ent.example"]})
    assert clash.status_code == 409 and clash.json()["organization_id"] == keep["id"]

    # A contact changed after the merge: undo refuses rather than lose that change.
    api.patch(f"/tenants/{tenant}/contacts/{people[0]['id']}", json={"job_title": "New"})
    refused = api.post(f"/tenants/{tenant}/merges/{merge.json()['id']}/undo", json={})
    assert refused.status_code == 409 and refused.json()["type"].endswith("/changed-since-merge")
    api.patch(f"/tenants/{tenant}/contacts/{people[0]['id']}", json={"job_title": None})
    # Still refused: the version moved on even though the value is back.
    assert api.post(f"/tenants/{tenant}/merges/{merge.json()['id']}/undo", json={}).status_code == 409
    assert profiles(db, tenant) != before


# --- bulk import -------------------------------------------------------------------------------------
def import_file(api: Api, tenant: str, text: str, media: str = "text/csv", **params: str) -> dict[str, Any]:
    response = api.post(
        f"/tenants/{tenant}/customer-imports",
        params=params,
        data=text.encode(),
        headers={"Content-Type": media},
    )
    assert response.status_code == 202, response.text
    assert response.headers["Location"] == f"/tenants/{tenant}/customer-imports/{response.json()['id']}"
    body: dict[str, Any] = response.json()
    return body


def settled(api: Api, tenant: str, job_id: str, status: str = "completed") -> dict[str, Any]:
    progress: list[int] = []

    def done() -> dict[str, Any] | None:
        job: dict[str, Any] = api.get(f"/tenants/{tenant}/customer-imports/{job_id}").json()
        progress.append(job["processed"])
        return job if job["status"] == status else None

    result: dict[str, Any] = eventually(done, timeout=90, what=f"import {job_id} to be {status}")
    assert progress == sorted(progress)  # progress only moves forward
    return result


def rows_of(api: Api, tenant: str, job_id: str, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {"limit": 200, **params, **({"cursor": cursor} if cursor else {})}
        page = api.get(f"/tenants/{tenant}/customer-imports/{job_id}/rows", params=query).json()
        rows += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return rows


def test_a_csv_contact_import_reports_rows_updates_on_a_second_run_and_reverts(
    crm: tuple[str, Api], db: Any, clean: Suite, subscribe: Callable[[str], Subscription]
) -> None:
    tenant, api = crm
    created_events = subscribe("Contact Created")
    existing = contact(api, tenant, "Exists", "Already", "exists@acme.example", job_title="Old")
    before = profiles(db, tenant)
    lines = ["first_name,last_name,email,phone,job_title,custom.tier"]
    lines += [f"First{i},Last{i},person{i}@acme.example,+1 555 01{i:02d},Engineer,gold" for i in range(150)]
    lines += ["Exists,Already,EXISTS@acme.example,,New title,"]  # row 151: exists
    lines += ["Again,Dup,person3@acme.example,,,"]  # row 152: a duplicate in the file
    lines += [
        "No,Email,not-an-email,,,",
        ",Nameless,nameless@acme.example,,,",
        "Short,Row",
    ]  # 153-155 invalid
    text = "\n".join(lines) + "\n"

    job = import_file(api, tenant, text)
    assert job["total"] == 155 and job["chunk_count"] == 2
    done = settled(api, tenant, job["id"])
    counts = {k: done[k] for k in ("processed", "created", "updated", "skipped", "failed")}
    assert counts == {"processed": 155, "created": 150, "updated": 0, "skipped": 2, "failed": 3}
    rows = {r["row"]: r for r in rows_of(api, tenant, job["id"])}
    assert len(rows) == 155 and rows[1]["status"] == "created" and rows[1]["record_id"].startswith("con_")
    assert rows[151]["status"] == "skipped" and rows[151]["reason"] == f"exists: {existing['id']}"
    assert rows[152]["reason"] == "duplicate of row 4"
    failed = rows_of(api, tenant, job["id"], status="failed")
    assert [r["row"] for r in failed] == [153, 154, 155] and "emails" in failed[0]["reason"]
    imported = api.get(f"/tenants/{tenant}/contacts", params={"email": "person7@acme.example"}).json()[
        "items"
    ][0]
    assert imported["custom_fields"] == {"tier": "gold"} and imported["created"]["source"] == "import"
    events = eventually(
        lambda: (seen := created_events.received(tenant)) and len(seen) >= 151 and seen,
        what="151 Contact Created",
    )
    assert sum(e["data"]["source"] == "import" for e in events) == 150

    # A chunk's task delivered again (Cloud Tasks is at-least-once) changes nothing.
    account = f"cloud-tasks@{clean.project}.iam.gserviceaccount.com"
    tasks = Api(
        clean.function_url("customer_data_api_tasks"), sign_local_service_token(clean.signing_key, account)
    )
    snapshot = stored(db, tenant)
    chunk = {"tenant_id": tenant, "job_id": job["id"], "phase": "import", "chunk": 1}
    redelivered = tasks.post("/import-chunk", json=chunk)
    assert redelivered.status_code == 200 and redelivered.json()["result"] == "already-done"
    assert stored(db, tenant) == snapshot

    # The same file again, create-or-update: only the row whose values differ changes.
    second = settled(api, tenant, import_file(api, tenant, text, mode="create_or_update")["id"])
    outcome = [second[k] for k in ("created", "updated", "unchanged", "skipped", "failed")]
    assert outcome == [0, 1, 150, 1, 3]
    assert api.get(f"/tenants/{tenant}/contacts/{existing['id']}").json()["job_title"] == "New title"

    # Revert both, newest first: everything is as before the first import.
    assert api.post(f"/tenants/{tenant}/customer-imports/{second['id']}/revert", json={}).status_code == 202
    settled(api, tenant, second["id"], "reverted")
    assert api.post(f"/tenants/{tenant}/customer-imports/{job['id']}/revert", json={}).status_code == 202
    reverted = settled(api, tenant, job["id"], "reverted")
    assert reverted["reverted"] == 150
    assert profiles(db, tenant) == before
    assert api.post(f"/tenants/{tenant}/customer-imports/{job['id']}/revert", json={}).status_code == 409


def test_an_import_whose_tasks_were_lost_is_resumed_and_creates_each_row_once(
    crm: tuple[str, Api], db: Any, clean: Suite
) -> None:
    """Chunks run side by side; tasks that gave up (here: purged from the paused queue) leave the job
    where it was, and `resume` finishes it: each row once, a chunk done before the resume not redone."""
    from shared.clients import tasks_client
    from shared.config import get_settings

    tenant, api = crm
    queue = f"projects/{clean.project}/locations/{get_settings().location}/queues/customer-import"
    lines = ["first_name,last_name,email"] + [f"R{i},Resumed,r{i}@resume.example" for i in range(401)]
    tasks_client().pause_queue(name=queue)
    try:
        job = import_file(api, tenant, "\n".join(lines) + "\n")
        assert job["chunk_count"] == 5
        tasks_client().purge_queue(name=queue)  # the first window's tasks are gone
    finally:
        tasks_client().resume_queue(name=queue)
    # Chunk 2's task had run before the others were lost.
    account = f"cloud-tasks@{clean.project}.iam.gserviceaccount.com"
    tasks = Api(
        clean.function_url("customer_data_api_tasks"), sign_local_service_token(clean.signing_key, account)
    )
    ran = tasks.post(
        "/import-chunk", json={"tenant_id": tenant, "job_id": job["id"], "phase": "import", "chunk": 2}
    )
    assert ran.status_code == 200 and ran.json()["result"] == "recorded"
    halfway = api.get(f"/tenants/{tenant}/customer-imports/{job['id']}").json()
    assert (halfway["status"], halfway["processed"], halfway["chunks_done"]) == ("running", 100, 1)

    assert api.post(f"/tenants/{tenant}/customer-imports/{job['id']}/resume", json={}).status_code == 202
    done = settled(api, tenant, job["id"])
    assert (done["processed"], done["created"], done["chunks_done"]) == (401, 401, 5)
    imported = [
        d for p, d in dump_firestore(db, tenant).items()
        if p.startswith(f"tenants/{tenant}/contacts/") and d.get("last_name") == "Resumed"
    ]  # fmt: skip
    assert sorted(e for d in imported for e in d["emails"]) == sorted(
        f"r{i}@resume.example" for i in range(401)
    )
    assert {r["status"] for r in rows_of(api, tenant, job["id"])} == {"created"}


def test_an_import_matches_contacts_by_the_emails_they_have_now(crm: tuple[str, Api], db: Any) -> None:
    """Imports look emails up in the email index: every write that changes a contact's emails (edit,
    merge, merge undone) moves it there too."""
    tenant, api = crm
    moved = contact(api, tenant, "Old", "Address", "old@move.example")
    edited = api.patch(f"/tenants/{tenant}/contacts/{moved['id']}", json={"emails": ["new@move.example"]})
    assert edited.status_code == 200, edited.text

    def merge(winner: dict[str, Any], loser: dict[str, Any]) -> str:
        pair = {"kind": "contact", "winner_id": winner["id"], "loser_id": loser["id"]}
        response = api.post(f"/tenants/{tenant}/merges", json=pair)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    winner = contact(api, tenant, "Win", "Ner", "win@merge.example")
    merge(winner, contact(api, tenant, "Lo", "Ser", "lose@merge.example"))
    kept = contact(api, tenant, "Kept", "Apart", "kept@undo.example")
    undone = merge(contact(api, tenant, "Took", "Over", "took@undo.example"), kept)
    undo = api.post(f"/tenants/{tenant}/merges/{undone}/undo", json={})
    assert undo.status_code == 200, undo.text

    lines = ["old@move.example", "new@move.example", "lose@merge.example", "kept@undo.example"]
    text = "first_name,last_name,email,job_title\n" + "".join(f"A,B,{e},Imported\n" for e in lines)
    job = settled(api, tenant, import_file(api, tenant, text, mode="create_or_update")["id"])
    rows = {r["row"]: r for r in rows_of(api, tenant, job["id"])}
    assert rows[1]["status"] == "created"  # nobody has the old address any more
    assert (rows[2]["status"], rows[2]["record_id"]) == ("updated", moved["id"])
    assert (rows[3]["status"], rows[3]["record_id"]) == ("updated", winner["id"])  # the merge brought it
    assert (rows[4]["status"], rows[4]["record_id"]) == ("updated", kept["id"])  # the undo took it back
    # The index holds exactly who has which address.
    stored_now = dump_firestore(db, tenant)
    holders: dict[str, set[str]] = {}
    for path, data in stored_now.items():
        if path.startswith(f"tenants/{tenant}/contacts/"):
            for key in data.get("email_keys") or []:
                holders.setdefault(key, set()).add(data["id"])
    index = [
        set(data["contact_ids"])
        for path, data in stored_now.items()
        if path.startswith(f"tenants/{tenant}/contact_emails/") and data["contact_ids"]
    ]
    assert sorted(map(sorted, index)) == sorted(map(sorted, holders.values()))


def test_an_ndjson_organization_import_checks_domains_in_the_batch_and_update_only_matches(
    crm: tuple[str, Api],
) -> None:
    tenant, api = crm
    taken = organization(api, tenant, "Taken", "taken.example")
    rows = [{"name": f"Org {i}", "domains": [f"org{i}.example"], "industry": "Retail"} for i in range(30)]
    rows += [{"name": "Clash", "domains": ["org0.example"]}]  # 31: the same domain as row 1 → duplicate
    rows += [{"name": "Twice", "domains": ["x.example", "org1.example"]}]  # 32: a domain row 2 claims
    rows += [{"name": "Taken 2", "domain": "taken.example"}]  # 33: belongs to an existing organization
    text = "\n".join(json.dumps(r) for r in rows) + "\nnot json\n"
    job = settled(
        api, tenant, import_file(api, tenant, text, "application/x-ndjson", kind="organization")["id"]
    )
    assert (job["created"], job["skipped"], job["failed"]) == (30, 2, 2)
    reasons = {r["row"]: r["reason"] for r in rows_of(api, tenant, job["id"])}
    assert reasons[31] == "duplicate of row 1"
    assert reasons[32] == "domain org1.example is also in row 2"
    assert reasons[33] == f"exists: {taken['id']}"
    assert reasons[34] == "invalid row: not a JSON object"

    # Idempotency-Key: a retried POST answers the first job, and starts no second one.
    url, key = f"/tenants/{tenant}/customer-imports", str(uuid.uuid4())
    headers = {"Content-Type": "text/csv", "Idempotency-Key": key}
    body = b"name,domain\nKeyed,keyed.example\n"
    first = api.post(url, params={"kind": "organization"}, data=body, headers=headers)
    retry = api.post(url, params={"kind": "organization"}, data=body, headers=headers)
    assert first.status_code == retry.status_code == 202 and retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["id"] == first.json()["id"]
    settled(api, tenant, first.json()["id"])
    assert (
        len(api.get(f"/tenants/{tenant}/organizations", params={"domain": "keyed.example"}).json()["items"])
        == 1
    )

    update = "domain,industry\norg5.example,Banking\nnobody.example,Banking\n"
    done = settled(
        api, tenant, import_file(api, tenant, update, kind="organization", mode="update_only")["id"]
    )
    assert (done["updated"], done["skipped"]) == (1, 1)
    org5 = api.get(f"/tenants/{tenant}/organizations", params={"domain": "org5.example"}).json()["items"][0]
    assert org5["industry"] == "Banking" and org5["name"] == "Org 5"


# --- events consumed ---------------------------------------------------------------------------------
def test_a_bounce_pushed_through_pubsub_marks_the_email_bounced_and_suppressed(
    crm: tuple[str, Api], clean: Suite, tokens: Callable[..., str]
) -> None:
    tenant, api = crm
    lena = contact(api, tenant, "Lena", "Fischer", "lena@globex.example", "backup@globex.example")
    bounce = NotificationBounced(
        notification_id="ntf_1", channel="email", recipient="LENA@globex.example", contact_id=None,
        bounce_type="hard", provider="smtp", bounced_at=datetime.now(UTC),
    )  # fmt: skip
    publish(clean, bounce, tenant, "ntf_1")

    def marked() -> dict[str, Any] | None:
        body: dict[str, Any] = api.get(f"/tenants/{tenant}/contacts/{lena['id']}").json()
        return body if body["email_status"] == "bounced" else None

    body = eventually(marked, what="the bounce to reach the contact")
    assert body["bounced_emails"] == ["lena@globex.example"]
    assert body["suppressed_emails"] == ["lena@globex.example"]
    listed = api.get(f"/tenants/{tenant}/contacts", params={"email_status": "bounced"}).json()["items"]
    assert [c["id"] for c in listed] == [lena["id"]]
    entries = eventually(lambda: audited(clean, tokens, tenant, "contact.updated"), what="the update audited")
    assert entries[0]["target"]["id"] == lena["id"]


def test_an_invited_user_gets_one_contact_profile_and_tenant_settings_exist(
    crm_onboarded: tuple[str, Api], clean: Suite, db: Any
) -> None:
    tenant, api = crm_onboarded
    settings = eventually(lambda: db.document(f"tenants/{tenant}/customer_settings/defaults").get().to_dict())
    assert "lead" in settings["lifecycle_stages"]
    existing = contact(api, tenant, "Known", "Person", "known@acme.example")
    actor = {"type": "user", "id": "u_admin", "email": "admin@acme.example"}
    for email, user_id in (("jonas.berg@acme.example", "u_1"), ("known@acme.example", "u_2")):
        invited = UserInvited(
            user_id=user_id, invitation_id=f"inv_{user_id}", email=email, role="member",
            expires_at=datetime.now(UTC), actor=actor,
        )  # fmt: skip
        publish(clean, invited, tenant, user_id)

    def made() -> list[dict[str, Any]] | None:
        items: list[dict[str, Any]] = api.get(f"/tenants/{tenant}/contacts", params={"limit": 50}).json()[
            "items"
        ]
        linked = [c for c in items if c.get("user_id") in ("u_1", "u_2")]
        return linked if len(linked) == 2 else None

    items = eventually(made, what="the invited users' profiles")
    mine = api.get(f"/tenants/{tenant}/contacts", params={"domain": "acme.example"}).json()["items"]
    assert len(mine) == 2  # the known person was linked, not duplicated
    jonas = next(c for c in items if c["emails"] == ["jonas.berg@acme.example"])
    assert (jonas["first_name"], jonas["last_name"], jonas["created"]["source"]) == ("Jonas", "Berg", "api")
    assert next(c for c in items if c["id"] == existing["id"])["user_id"] == "u_2"


def test_health_scores_land_on_the_organization_or_the_tenant_profile_and_late_ones_change_nothing(
    crm: tuple[str, Api], clean: Suite, db: Any
) -> None:
    tenant, api = crm
    org = organization(api, tenant, "Soylent", "soylent.example")
    measures = [HealthMeasure(measure="active_seats", weight=100.0, score=40.0)]

    def score(value: int, hour: int, organization_id: str | None) -> HealthScoreChanged:
        return HealthScoreChanged(
            tenant_id=tenant, organization_id=organization_id, score=value, grade="watch", model_version=1,
            measures=measures, computed_at=datetime(2026, 3, 1, hour, tzinfo=UTC),
        )  # fmt: skip

    publish(clean, score(61, 9, org["id"]), tenant, org["id"])

    def health() -> dict[str, Any] | None:
        held: dict[str, Any] | None = (
            api.get(f"/tenants/{tenant}/organizations/{org['id']}").json().get("health")
        )
        return held

    assert eventually(health, what="the organization's score")["score"] == 61
    publish(clean, score(20, 8, org["id"]), tenant, org["id"])  # computed earlier, delivered later
    # The tenant's own score (the Customer Health API may publish one too: ours is the newest).
    tenant_score = score(77, 10, None).model_copy(
        update={"computed_at": datetime.now(UTC) + timedelta(days=1)}
    )
    publish(clean, tenant_score, tenant, tenant)
    ref = db.document(f"tenants/{tenant}/customer_settings/health")
    eventually(
        lambda: (ref.get().to_dict() or {}).get("health", {}).get("score") == 77, what="the tenant score"
    )
    quiescent(db, tenant_id=tenant)
    assert health() is not None and (health() or {})["score"] == 61


# --- GDPR --------------------------------------------------------------------------------------------
def test_export_then_erasure_of_a_contact_and_its_traces(crm: tuple[str, Api], clean: Suite, db: Any) -> None:
    tenant, api = crm
    keep = contact(api, tenant, "Mia", "Wong", "mia@acme.example")
    other = contact(api, tenant, "Mia", "Wong", "mia.wong@acme.example", "mia@acme.example")
    api.post(
        f"/tenants/{tenant}/merges",
        json={"kind": "contact", "winner_id": keep["id"], "loser_id": other["id"]},
    )
    job = import_file(
        api, tenant, "first_name,last_name,email\nMia,Wong,mia@acme.example\nSam,Ray,sam@acme.example\n"
    )
    settled(api, tenant, job["id"])

    service = service_client(clean, "privacy")
    bundle = service.get(f"/tenants/{tenant}/contacts/{keep['id']}/export")
    assert bundle.status_code == 200, bundle.text
    data = bundle.json()
    assert data["contact"]["id"] == keep["id"] and len(data["merges"]) == 1
    assert [p["id"] for p in data["merged_profiles"]] == [other["id"]]
    assert [r["row"] for r in data["import_rows"]] == [1] and data["import_rows"][0]["submitted"][
        "emails"
    ] == ["mia@acme.example"]

    erased = service.post(f"/tenants/{tenant}/contacts/{keep['id']}/erasure", json={})
    assert erased.status_code == 200, erased.text
    summary = erased.json()
    assert summary["deleted"] == {
        "contacts": 2,
        "merges": 1,
        "import_rows": 1,
        "submitted_import_rows_scrubbed": 1,
    }
    again = service.post(f"/tenants/{tenant}/contacts/{keep['id']}/erasure", json={})
    assert again.status_code == 200 and again.json() == summary
    ours = stored(db, tenant)
    assert not [p for p, d in ours.items() if "mia@acme.example" in json.dumps(d, default=str)]
    named = [
        path
        for path, data in ours.items()
        if keep["id"] in json.dumps(data, default=str) or other["id"] in json.dumps(data, default=str)
    ]
    assert named == [f"tenants/{tenant}/customer_erasures/{keep['id']}"]  # the receipt alone
    assert "sam@acme.example" in json.dumps(ours, default=str)  # another person's import row stays
    assert api.get(f"/tenants/{tenant}/contacts/{keep['id']}").status_code == 404


# --- bad input ---------------------------------------------------------------------------------------
BAD: list[BadRequest] = [
    ("POST", "/contacts", {"first_name": "A", "last_name": "B", "emails": ["nope"]}, 422),
    ("POST", "/contacts", {"first_name": "A", "last_name": "B", "organization_id": "org_" + "0" * 20}, 422),
    ("POST", "/contacts", {"first_name": "A", "last_name": "B", "lifecycle_stage": "martian"}, 422),
    ("POST", "/contacts", "not json", 400),
    ("PATCH", "/contacts/{cid}", {"version": 7}, 422),
    ("PATCH", "/contacts/{cid}", {"emails": ["x@y.example"] * 11}, 422),
    ("POST", "/organizations", {"name": "N", "domains": ["not a domain"]}, 422),
    ("POST", "/organizations", {"name": "N", "domains": ["acme.example"]}, 409),
    ("POST", "/merges", {"kind": "contact", "winner_id": "{cid}", "loser_id": "{cid}"}, 422),
    ("POST", "/merges", {"kind": "organization", "winner_id": "{cid}", "loser_id": "{oid}"}, 422),
    ("POST", "/customer-imports", ("application/json", "{}"), 415),
    ("POST", "/customer-imports", ("text/csv", ""), 422),
    ("POST", "/customer-imports", ("text/csv", 'a,b\n"unterminated'), 422),
    ("POST", "/customer-imports?match=phone", ("text/csv", "first_name\nA\n"), 422),
    ("GET", "/contacts?limit=0", None, 422),
    ("GET", "/contacts?cursor=@@@", None, 400),
]


@pytest.mark.usefixtures("paused_sealing")
def test_bad_input_gets_a_problem_and_changes_nothing(
    crm: tuple[str, Api], db: Any, subtests: pytest.Subtests
) -> None:
    tenant, api = crm
    org = organization(api, tenant, "Acme", "acme.example")
    person = contact(api, tenant, "Ada", "Lovelace", "ada@acme.example")

    def request(method: str, path: str, body: Any) -> requests.Response:
        url = f"/tenants/{tenant}" + path.replace("{cid}", person["id"]).replace("{oid}", org["id"])
        if isinstance(body, dict):
            body = json.loads(json.dumps(body).replace("{cid}", person["id"]).replace("{oid}", org["id"]))
        return send(api, method, url, body)

    bad_requests_change_nothing(db, subtests, BAD, request, tenant_id=tenant)
