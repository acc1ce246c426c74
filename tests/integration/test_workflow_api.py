"""The Workflow API on the running suite: an admin creates and activates a workflow, a Contact Updated
published on its real topic fires it through Pub/Sub push, the run goes step by step through the real
Tasks emulator, calls a local webhook receiver with a signed request and publishes Workflow Executed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from google.cloud import pubsub_v1

from emulators.suite import Suite
from shared.catalog import load_catalog
from shared.contracts import PAYLOADS
from shared.events import CloudEvent, new_event
from shared.webhook_signing import verify
from tests.conftest import Api, Receiver, dump_firestore, eventually, quiescent, store_tenant

CATALOG = load_catalog()
PROBLEM = "application/problem+json"
EXECUTED = CATALOG.event("Workflow Executed").type


@pytest.fixture
def tenant(tenant_api: Api) -> dict[str, Any]:
    # Stored without Tenant Created: the tenant's onboarding would move its health score meanwhile, and a
    # built-in workflow reacting to it would add runs and Workflow Executed events to the ones counted.
    return store_tenant(f"flows-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def flows(clean: Suite, tenant: dict[str, Any], tokens: Callable[..., str]) -> Api:
    admin = tokens(f"admin@{tenant['slug']}.example", tenant["id"], ("admin",))
    return Api(clean.function_url("workflow_api") + f"/tenants/{tenant['id']}/workflows", admin)


def won_definition(url: str) -> dict[str, Any]:
    return {
        "trigger": "Contact Updated",
        "conditions": {"op": "changed", "field": "lifecycle_stage", "to": "customer"},
        "steps": [
            {"name": "tag", "type": "update_contact", "changes": {"tags": ["customer"]}},
            {"name": "tell", "type": "notify", "message": "{{contact_id}} became a customer"},
            {"name": "hook", "type": "webhook", "url": url},
        ],
    }


def contact_updated(tenant_id: str, contact_id: str, after: str, actor: str = "usr_1") -> CloudEvent:
    kind = "service" if actor.startswith("workflow:") else "user"
    payload = PAYLOADS["Contact Updated"].model_validate(
        {
            "contact_id": contact_id,
            "changes": {"lifecycle_stage": {"before": "lead", "after": after}},
            "source": "workflow" if kind == "service" else "manual",
            "actor": {"type": kind, "id": actor, "email": None},
        }
    )
    return new_event(payload, tenant_id=tenant_id, subject=contact_id, source_api_slug="customer-data-api")


def publish(suite: Suite, event: CloudEvent) -> None:
    """As the Customer Data API publishes: the catalog's topic, the kernel's message encoding."""
    publisher = pubsub_v1.PublisherClient()
    data, attributes = event.to_message()
    entry = CATALOG.event_by_type(event.type)
    assert entry is not None
    publisher.publish(publisher.topic_path(suite.project, entry.topic), data, **attributes).result(timeout=30)


def create_active(flows: Api, definition: dict[str, Any], name: str = "Won") -> dict[str, Any]:
    created = flows.post("", json={"name": name, "definition": definition})
    assert created.status_code == 201, created.text
    workflow: dict[str, Any] = created.json()
    activated = flows.post(
        f"/{workflow['id']}/activate", json={}, headers={"If-Match": created.headers["ETag"]}
    )
    assert activated.status_code == 200, activated.text
    assert activated.json()["status"] == "active" and activated.json()["active_version"] == 1
    return workflow


def runs(flows: Api, workflow_id: str) -> list[dict[str, Any]]:
    response = flows.get(f"/{workflow_id}/runs")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def stored_updates(db: Any, tenant_id: str) -> list[dict[str, Any]]:
    events = db.collection("tenants", tenant_id, "workflow_events").stream()
    return [e.to_dict() for e in events if e.get("name") == "Contact Updated"]


def executed_events(db: Any, tenant_id: str) -> list[dict[str, Any]]:
    return [
        json.loads(s.get("envelope"))
        for s in db.collection("_outbox").stream()
        if s.get("type") == EXECUTED and s.get("tenant_id") == tenant_id
    ]


def test_a_contact_won_fires_the_workflow_once_signed_and_recorded(
    clean: Suite, db: Any, flows: Api, tenant: dict[str, Any], receiver: Receiver
) -> None:
    kept = flows.post("/webhook-secret", json={}, headers={"Idempotency-Key": "k1"})
    assert kept.status_code == 400 and "secret" not in kept.json()  # never stored for a replay
    secret = flows.post("/webhook-secret", json={})
    assert secret.status_code == 201, secret.text
    assert secret.json()["secret"].startswith("whsec_")
    workflow = create_active(flows, won_definition(receiver.url))

    won = contact_updated(tenant["id"], "con_won1", "customer")
    publish(clean, won)

    def finished() -> list[dict[str, Any]] | None:
        found = runs(flows, workflow["id"])
        return found if found and found[0]["status"] in ("succeeded", "failed") else None

    [run] = eventually(finished, timeout=60, what="the run to finish")
    assert run["status"] == "succeeded", run
    assert run["input"]["version"] == 1 and run["input"]["event"]["id"] == won.id
    steps = {s["name"]: s for s in run["steps"]}
    assert steps["tell"]["output"]["notification"]["message"] == "con_won1 became a customer"
    assert steps["hook"]["status"] == "done" and steps["hook"]["output"]["status"] == 204

    # The receiver got one signed call, verifiable with the secret answered once.
    [(headers, body)] = receiver.received()
    verify(body, headers, secret.json()["secret"])
    sent = json.loads(body)
    assert sent["workflow_id"] == workflow["id"] and sent["event"]["data"]["contact_id"] == "con_won1"

    # Workflow Executed, exactly once, with the run's outcome.
    [executed] = eventually(lambda: executed_events(db, tenant["id"]), what="Workflow Executed")
    assert executed["data"]["run_id"] == run["run_id"] and executed["data"]["status"] == "succeeded"
    assert executed["data"]["workflow_version"] == 1 and executed["data"]["trigger"] == "record_updated"
    assert executed["data"]["steps_total"] == 3

    # The run is inspectable by id; another workflow's path does not show it.
    one = flows.get(f"/{workflow['id']}/runs/{run['run_id']}")
    assert one.status_code == 200 and one.json()["steps"][0]["name"] == "tag"

    # The Contact Updated its own write causes (actor workflow:<id>) does not fire it again.
    publish(clean, contact_updated(tenant["id"], "con_won1", "customer", actor=f"workflow:{workflow['id']}"))
    quiescent(db, tenant_id=tenant["id"])
    assert len(runs(flows, workflow["id"])) == 1
    assert len(receiver.received()) == 1
    stored = [s.to_dict() for s in db.collection("tenants", tenant["id"], "workflow_events").stream()]
    updates = [e for e in stored if e["name"] == "Contact Updated"]
    assert sorted(e["fired"] for e in updates) == [0, 1], stored  # both were received, one fired

    # A lead that did not become a customer fires nothing.
    publish(clean, contact_updated(tenant["id"], "con_lead", "opportunity"))
    eventually(lambda: len(stored_updates(db, tenant["id"])) == 3, what="the third event to be stored")
    quiescent(db, tenant_id=tenant["id"])
    assert len(runs(flows, workflow["id"])) == 1


@pytest.mark.usefixtures("paused_sealing")
def test_the_dry_run_reports_what_would_fire_and_changes_nothing(
    clean: Suite, db: Any, flows: Api, tenant: dict[str, Any], receiver: Receiver
) -> None:
    for contact, stage in (("con_a", "customer"), ("con_b", "opportunity"), ("con_c", "customer")):
        publish(clean, contact_updated(tenant["id"], contact, stage))
    eventually(lambda: len(stored_updates(db, tenant["id"])) == 3, what="the events to be stored")
    draft = flows.post("", json={"name": "Draft", "definition": won_definition(receiver.url)})
    assert draft.status_code == 201, draft.text
    workflow_id = draft.json()["id"]
    before = quiescent(db, tenant_id=tenant["id"])

    response = flows.post(f"/{workflow_id}/dry-run", json={"days": 7})
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["version"] == 1 and report["events_examined"] == 3 and report["would_fire"] == 2
    assert sorted(m["subject"] for m in report["matches"]) == ["con_a", "con_c"]
    assert report["not_fired"] == {"conditions not met": 1}
    actions = report["matches"][0]["actions"]
    assert [a["type"] for a in actions] == ["update_contact", "notify", "webhook"]
    assert actions[0]["changes"] == {"tags": ["customer"]} and actions[0]["contact_id"] in ("con_a", "con_c")
    assert dump_firestore(db, tenant["id"]) == before


def test_versions_edit_a_draft_activate_archives_the_previous_one(flows: Api, receiver: Receiver) -> None:
    workflow = create_active(flows, won_definition(receiver.url))
    wid = workflow["id"]
    current = flows.get(f"/{wid}")
    edited = won_definition(receiver.url)
    edited["steps"] = edited["steps"][1:]
    stale = flows.patch(f"/{wid}", json={"definition": edited}, headers={"If-Match": '"1"'})
    assert stale.status_code == 412 and stale.headers["Content-Type"] == PROBLEM
    changed = flows.patch(
        f"/{wid}", json={"definition": edited}, headers={"If-Match": current.headers["ETag"]}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["versions"] == {"1": "active", "2": "draft"}
    assert flows.get(f"/{wid}/versions/1").json()["definition"]["steps"][0]["name"] == "tag"
    again = flows.patch(f"/{wid}", json={"name": "Won v2", "definition": edited})
    assert again.json()["versions"] == {"1": "active", "2": "draft"} and again.json()["name"] == "Won v2"
    activated = flows.post(f"/{wid}/activate", json={})
    assert activated.status_code == 200 and activated.json()["versions"] == {"1": "archived", "2": "active"}
    assert flows.post(f"/{wid}/activate", json={}).json()["type"].endswith("no-draft")
    rollback = flows.post(f"/{wid}/activate", json={"version": 1})
    assert rollback.json()["versions"] == {"1": "active", "2": "archived"}
    assert flows.delete(f"/{wid}").status_code == 409
    archived = flows.post(f"/{wid}/archive", json={})
    assert archived.status_code == 200 and archived.json()["status"] == "inactive"
    assert flows.delete(f"/{wid}").status_code == 204
    assert flows.get(f"/{wid}").status_code == 404


@pytest.mark.usefixtures("paused_sealing")
@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/computeMetadata/v1/", "https://10.0.0.7/x", "https://[2002:a00:1::]/x"]
)
def test_a_webhook_step_to_a_forbidden_address_is_refused_when_saved(
    flows: Api, receiver: Receiver, url: str
) -> None:
    response = flows.post("", json={"name": "Leak", "definition": won_definition(url)})
    assert response.status_code == 422 and response.headers["Content-Type"] == PROBLEM
    assert [e["pointer"] for e in response.json()["errors"]] == ["#/definition/steps/2/url"]
    workflow = flows.post("", json={"name": "Fine", "definition": won_definition(receiver.url)}).json()
    changed = flows.patch(f"/{workflow['id']}", json={"definition": won_definition(url)})
    assert changed.status_code == 422
    assert flows.get(f"/{workflow['id']}").json()["versions"] == {"1": "draft"}
    assert [w["name"] for w in flows.get("").json()["items"]] == ["Fine"]


@pytest.mark.usefixtures("paused_sealing")
def test_bad_definitions_are_refused_and_change_nothing(db: Any, flows: Api, tenant: dict[str, Any]) -> None:
    before = quiescent(db, tenant_id=tenant["id"])
    bad = won_definition("https://hooks.example/x")
    bad["conditions"] = {"path": "x", "op": "like", "value": 1}
    bad["steps"].append(
        {"name": "back", "type": "branch", "condition": {"path": "a", "op": "exists"}, "then": "tag"}
    )
    response = flows.post("", json={"name": "Bad", "definition": bad})
    assert response.status_code == 422 and response.headers["Content-Type"] == PROBLEM
    pointers = {e["pointer"] for e in response.json()["errors"]}
    assert {"#/definition/conditions/op", "#/definition/steps/3/then"} <= pointers
    assert flows.post("", json={"name": "", "definition": {}}).status_code == 422
    assert flows.post("", data="nope", headers={"Content-Type": "application/json"}).status_code == 400
    assert flows.post("/wfl_missing/dry-run", json={}).status_code == 404
    assert dump_firestore(db, tenant["id"]) == before


def test_onboarding_installs_the_builtins_once_and_a_platform_service_can_list_them(
    clean: Suite, db: Any, flows: Api, tenant: dict[str, Any]
) -> None:
    from shared.auth import sign_local_service_token

    payload = PAYLOADS["Onboarding Started"].model_validate(
        {
            "onboarding_id": "onb_1",
            "playbook": "growth-standard",
            "trigger": "tenant_created",
            "steps": ["invite_team"],
            "actor": {"type": "system", "id": "onboarding-api", "email": None},
        }
    )
    for _ in range(2):  # two distinct events: the second installs nothing new
        publish(
            clean,
            new_event(payload, tenant_id=tenant["id"], subject="onb_1", source_api_slug="onboarding-api"),
        )
    service = sign_local_service_token(
        clean.signing_key, f"onboarding@{clean.project}.iam.gserviceaccount.com"
    )
    as_service = flows.as_(service)

    def installed() -> list[dict[str, Any]] | None:
        response = as_service.get("")
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items if len(items) >= 3 else None

    items = eventually(installed, what="the built-in workflows")
    quiescent(db, tenant_id=tenant["id"])
    listed = as_service.get("").json()["items"]
    assert sorted(w["id"] for w in listed) == sorted(w["id"] for w in items)
    assert {w["id"] for w in listed} == {
        "builtin-privacy-request",
        "builtin-critical-alert",
        "builtin-health-at-risk",
    }
    assert all(w["builtin"] and w["status"] == "active" for w in listed)
    assert as_service.post("", json={}).status_code == 403  # a service may read, not manage


def test_with_the_customer_data_api_its_own_write_does_not_fire_it_again(
    clean: Suite, db: Any, flows: Api, tenant: dict[str, Any], tokens: Callable[..., str], receiver: Receiver
) -> None:
    """The whole loop on real services: an admin moves a contact to customer in the Customer Data API,
    its Contact Updated fires the workflow, whose step tags the contact through the same API; the
    Contact Updated that write causes (source workflow) reaches the Workflow API and fires nothing."""
    crm = Api(
        clean.function_url("customer_data_api") + f"/tenants/{tenant['id']}/contacts",
        tokens(f"admin@{tenant['slug']}.example", tenant["id"], ("admin",)),
    )
    created = crm.post("", json={"first_name": "Lena", "last_name": "Fischer", "lifecycle_stage": "lead"})
    assert created.status_code == 201, created.text
    contact_id = created.json()["id"]
    assert flows.post("/webhook-secret", json={}).status_code == 201
    workflow = create_active(flows, won_definition(receiver.url))

    moved = crm.patch(f"/{contact_id}", json={"lifecycle_stage": "customer"})
    assert moved.status_code == 200, moved.text

    def tagged() -> dict[str, Any] | None:
        contact: dict[str, Any] = crm.get(f"/{contact_id}").json()
        return contact if contact.get("tags") == ["customer"] else None

    eventually(tagged, timeout=60, what="the workflow to tag the contact")
    # The Contact Updated of the workflow's own write arrives, and is stored without firing anything.
    eventually(lambda: len(stored_updates(db, tenant["id"])) == 2, timeout=60, what="both updates stored")
    quiescent(db, tenant_id=tenant["id"])
    own = next(e for e in stored_updates(db, tenant["id"]) if e["data"]["source"] == "workflow")
    assert own["data"]["actor"]["id"] == f"workflow:{workflow['id']}" and own["fired"] == 0
    [run] = runs(flows, workflow["id"])
    assert run["status"] == "succeeded", run
    assert {s["name"]: s["status"] for s in run["steps"]} == {"tag": "done", "tell": "done", "hook": "done"}
    assert len(receiver.received()) == 1


def test_privacy_requests_export_or_erase_through_the_customer_data_api(
    clean: Suite, db: Any, flows: Api, tenant: dict[str, Any], tokens: Callable[..., str]
) -> None:
    crm = Api(
        clean.function_url("customer_data_api") + f"/tenants/{tenant['id']}/contacts",
        tokens(f"admin@{tenant['slug']}.example", tenant["id"], ("admin",)),
    )
    email = f"subject-{uuid.uuid4().hex[:6]}@globex.example"
    created = crm.post("", json={"first_name": "Data", "last_name": "Subject", "emails": [email]})
    assert created.status_code == 201, created.text
    contact_id = created.json()["id"]

    def request(kind: str, request_id: str) -> None:
        payload = PAYLOADS["Privacy Request Received"].model_validate(
            {
                "request_id": request_id,
                "request_type": kind,
                "data_subject_email": email,
                "contact_id": None,  # found by email
                "channel": "web_form",
                "received_at": "2026-11-28T08:00:00Z",
                "due_at": "2026-12-28T08:00:00Z",
            }
        )
        publish(
            clean, new_event(payload, tenant_id=tenant["id"], subject=request_id, source_api_slug="privacy")
        )

    def finished(count: int) -> list[dict[str, Any]] | None:
        if flows.get("/builtin-privacy-request").status_code == 404:
            return None  # the request has not arrived yet: it installs the built-ins
        found = runs(flows, "builtin-privacy-request")
        done = [r for r in found if r["status"] in ("succeeded", "failed")]
        return done if len(done) == count else None

    request("access", "prq_1")
    [exported] = eventually(lambda: finished(1), timeout=60, what="the export run")
    fulfil = exported["steps"][0]["output"]
    assert exported["status"] == "succeeded" and fulfil["result"] == "exported"
    assert fulfil["contact_id"] == contact_id and fulfil["bytes"] > 0 and len(fulfil["sha256"]) == 64
    assert exported["steps"][1]["output"]["notification"]["message"].startswith("Privacy request prq_1")

    # A workflow run about the contact holds a copy of its event: erasure reaches it too.
    noted = create_active(
        flows,
        {
            "trigger": "Contact Updated",
            "steps": [{"name": "tell", "type": "notify", "message": "{{contact_id}}"}],
        },
        "Noted",
    )
    publish(clean, contact_updated(tenant["id"], contact_id, "customer"))
    eventually(lambda: runs(flows, noted["id"]), what="a run about the contact")

    request("erasure", "prq_2")
    done = eventually(lambda: finished(2), timeout=60, what="the erasure run")
    erased = next(r for r in done if r["input"]["event"]["data"]["request_id"] == "prq_2")
    assert erased["status"] == "succeeded" and erased["steps"][0]["output"]["result"] == "erased"
    assert crm.get(f"/{contact_id}").status_code in (404, 410)
    [about] = runs(flows, noted["id"])
    assert about["input"]["event"]["data"] == {"erased": True}
    assert not [e for e in stored_updates(db, tenant["id"]) if e["subject"] == contact_id]


def test_an_erasure_leaves_no_copy_of_the_subjects_data_anywhere(
    clean: Suite, db: Any, flows: Api, tenant: dict[str, Any], tokens: Callable[..., str]
) -> None:
    """The strict way: a unique marker in every field that can carry the subject's personal data, the
    data copied by a workflow's steps and by a privacy request, then every document searched."""
    crm = Api(
        clean.function_url("customer_data_api") + f"/tenants/{tenant['id']}/contacts",
        tokens(f"admin@{tenant['slug']}.example", tenant["id"], ("admin",)),
    )
    letters = "".join(chr(ord("a") + int(c, 16)) for c in uuid.uuid4().hex[:16])
    digits = str(uuid.uuid4().int)[:9]
    email = f"{letters}@globex.example"
    created = crm.post(
        "",
        json={
            "first_name": f"Fn{letters}",
            "last_name": f"Ln{letters}",
            "emails": [email],
            "phones": [f"+4930{digits}"],
            "job_title": f"Title {letters}",
            "custom_fields": {"note": f"note {letters}"},
        },
    )
    assert created.status_code == 201, created.text
    contact_id = created.json()["id"]
    copier = create_active(
        flows,
        {
            "trigger": "Contact Updated",
            "steps": [
                {"name": "tell", "type": "notify", "message": "now {{changes.job_title.after}}"},
                {"name": "echo", "type": "update_contact", "changes": {"tags": ["noted"]}},
            ],
        },
        "Copier",
    )
    assert crm.patch(f"/{contact_id}", json={"job_title": f"Chief {letters}"}).status_code == 200
    eventually(
        lambda: [r for r in runs(flows, copier["id"]) if r["status"] == "succeeded"],
        timeout=60,
        what="a run copying the subject's data",
    )
    payload = PAYLOADS["Privacy Request Received"].model_validate(
        {
            "request_id": "prq_strict",
            "request_type": "erasure",
            "data_subject_email": email,
            "contact_id": None,
            "channel": "web_form",
            "received_at": "2026-11-28T08:00:00Z",
            "due_at": "2026-12-28T08:00:00Z",
        }
    )
    publish(
        clean, new_event(payload, tenant_id=tenant["id"], subject="prq_strict", source_api_slug="privacy")
    )

    def erased() -> bool:
        if flows.get("/builtin-privacy-request").status_code == 404:
            return False
        return any(r["status"] == "succeeded" for r in runs(flows, "builtin-privacy-request"))

    eventually(erased, timeout=60, what="the erasure run")
    # The privacy domain confirms the erasure (Data Erasure Completed): the audit trail erases the
    # details of its entries about the contact, and still verifies.
    completed = PAYLOADS["Data Erasure Completed"].model_validate(
        {
            "request_id": "prq_strict",
            "subject_type": "contact",
            "subject_id": contact_id,
            "systems": ["crm"],
            "records_erased": 1,
            "completed_at": "2026-11-28T09:00:00Z",
        }
    )
    publish(
        clean, new_event(completed, tenant_id=tenant["id"], subject="prq_strict", source_api_slug="privacy")
    )
    audit = Api(clean.function_url("audit_api"), flows.token)
    eventually(
        lambda: any(
            e["action"] == "data.erasure.completed"
            for e in audit.get(f"/tenants/{tenant['id']}/audit/entries").json()["items"]
        ),
        timeout=60,
        what="the erasure recorded in the audit trail",
    )
    quiescent(db)
    verified = eventually(
        lambda: (r := audit.get(f"/tenants/{tenant['id']}/audit/verify").json())["unsealed"] == 0 and r,
        timeout=60,
        what="the trail sealed",
    )
    assert verified["ok"] is True, verified
    everything = dump_firestore(db)
    holding = sorted(
        path
        for path, document in everything.items()
        if letters in json.dumps(document, default=str) or digits in json.dumps(document, default=str)
    )
    assert holding == [], "\n".join(holding)


def test_a_chain_of_workflows_triggering_each_other_stops_at_the_hop_limit(
    clean: Suite, db: Any, flows: Api, tenant: dict[str, Any], tokens: Callable[..., str]
) -> None:
    """Workflow A appends "a" to the job title of a contact whose title changed, B appends "b" when the
    change came from a workflow: each one's write fires the other. The chain stops after 5 hops."""
    crm = Api(
        clean.function_url("customer_data_api") + f"/tenants/{tenant['id']}/contacts",
        tokens(f"admin@{tenant['slug']}.example", tenant["id"], ("admin",)),
    )
    created = crm.post("", json={"first_name": "Ping", "last_name": "Pong", "job_title": "start"})
    assert created.status_code == 201, created.text
    contact_id = created.json()["id"]

    def appender(letter: str, only_from_workflows: bool) -> dict[str, Any]:
        changed: dict[str, Any] = {"op": "changed", "field": "job_title"}
        return {
            "trigger": "Contact Updated",
            "conditions": {"all": [changed, {"path": "source", "op": "eq", "value": "workflow"}]}
            if only_from_workflows
            else changed,
            "steps": [
                {
                    "name": "append",
                    "type": "update_contact",
                    "changes": {"job_title": "{{changes.job_title.after}}" + letter},
                }
            ],
        }

    a = create_active(flows, appender("a", False), "A")
    b = create_active(flows, appender("b", True), "B")
    assert crm.patch(f"/{contact_id}", json={"job_title": "x"}).status_code == 200

    # Hops: the person's edit (A, depth 1), then B 2, A 3, B 4, A 5; B would be depth 6 and does not fire.
    eventually(lambda: crm.get(f"/{contact_id}").json()["job_title"] == "xababa", timeout=90, what="5 hops")
    eventually(lambda: len(stored_updates(db, tenant["id"])) == 6, timeout=60, what="the last update stored")
    quiescent(db, tenant_id=tenant["id"])
    assert crm.get(f"/{contact_id}").json()["job_title"] == "xababa"
    depths = sorted(r["input"]["depth"] for r in runs(flows, a["id"]) + runs(flows, b["id"]))
    assert depths == [1, 2, 3, 4, 5]
    assert all(r["status"] == "succeeded" for r in runs(flows, a["id"]) + runs(flows, b["id"]))
