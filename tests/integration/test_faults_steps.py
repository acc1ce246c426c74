"""Faults injected under a real workflow run (Workflow API, Pub/Sub push, the Tasks emulator, the
functions host), each asserting that the run's work completes and its effects happen once:

- the webhook a step calls answers 503 for a while: the queue retries the step with backoff, and the
  step succeeds once the receiver recovers;
- the functions host is killed (SIGKILL) while a step waits on its webhook, then started again: the
  queue retries the step that got no answer, and the run completes once;
- the functions host is killed while it handles a burst of events (once a delivery is in flight), then
  started again: each event starts exactly one run;
- a run that exhausted its retries is listed by the Operations API and resumed from there (the
  Operations API calls the Workflow API's resume route as a platform service).

Effects that leave the platform (webhook calls) are at least once, with one message id on every retry
so the receiver can dedupe; inside the platform each step is done once and Workflow Executed is raised
once.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from emulators.suite import Suite
from shared.webhook_signing import ID_HEADER
from tests.conftest import Api, Receiver, eventually, requests_in_flight, store_tenant
from tests.integration.test_workflow_api import contact_updated, create_active, executed_events, publish, runs


class ScriptedReceiver(Receiver):
    """A webhook receiver that answers 503 to its first `failures` calls (all of them while `down`),
    and holds its first call until `released` when `hold_first` is set."""

    def __init__(self, failures: int = 0, hold_first: bool = False) -> None:
        self.failures = failures
        self.down = False
        self.hold_first = hold_first
        self.holding = threading.Event()
        self.released = threading.Event()
        super().__init__()

    @property
    def status(self) -> int:  # read by the handler, under the lock, after the call is recorded
        calls = len(self.requests)
        if self.hold_first and calls == 1:
            self.holding.set()
            self.released.wait(timeout=120)
        return 503 if self.down or calls <= self.failures else 204

    @status.setter
    def status(self, _value: int) -> None:
        pass

    def message_ids(self) -> list[str]:
        return [headers[ID_HEADER.lower()] for headers, _ in self.received()]


@pytest.fixture
def tenant(clean: Suite) -> dict[str, Any]:
    return store_tenant(f"faults-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def flows(clean: Suite, tenant: dict[str, Any], tokens: Callable[..., str]) -> Api:
    admin = tokens(f"admin@{tenant['slug']}.example", tenant["id"], ("admin",))
    api = Api(clean.function_url("workflow_api") + f"/tenants/{tenant['id']}/workflows", admin)
    assert api.post("/webhook-secret", json={}).status_code == 201
    return api


@contextlib.contextmanager
def scripted(receiver: ScriptedReceiver) -> Iterator[ScriptedReceiver]:
    try:
        yield receiver
    finally:
        receiver.released.set()
        receiver.close()


def definition(url: str) -> dict[str, Any]:
    return {
        "trigger": "Contact Updated",
        "conditions": {"op": "changed", "field": "lifecycle_stage", "to": "customer"},
        "steps": [
            {"name": "tell", "type": "notify", "message": "{{contact_id}} became a customer"},
            {"name": "hook", "type": "webhook", "url": url},
        ],
    }


def fire(clean: Suite, flows: Api, tenant_id: str, url: str) -> dict[str, Any]:
    workflow = create_active(flows, definition(url))
    publish(clean, contact_updated(tenant_id, f"con_{uuid.uuid4().hex[:8]}", "customer"))
    return workflow


def settled_run(flows: Api, workflow_id: str, status: str, timeout: float = 90) -> dict[str, Any]:
    def settled() -> dict[str, Any] | None:
        found = runs(flows, workflow_id)
        return found[0] if found and found[0]["status"] == status else None

    run: dict[str, Any] = eventually(settled, timeout=timeout, what=f"the run to be {status}")
    return run


def done_once(db: Any, flows: Api, tenant_id: str, workflow_id: str, run: dict[str, Any]) -> None:
    """The run's steps each done, the notify step once, Workflow Executed raised once."""
    steps = {s["name"]: s for s in run["steps"]}
    assert [(s["name"], s["status"]) for s in run["steps"]] == [("tell", "done"), ("hook", "done")]
    assert steps["tell"]["attempts"] == 1
    assert len(runs(flows, workflow_id)) == 1
    [executed] = eventually(lambda: executed_events(db, tenant_id), what="Workflow Executed")
    assert executed["data"]["run_id"] == run["run_id"] and executed["data"]["status"] == "succeeded"


def test_a_webhook_answering_503_for_a_while_is_retried_until_it_recovers_and_called_once_more(
    clean: Suite, db: Any, flows: Api, tenant: dict[str, Any]
) -> None:
    with scripted(ScriptedReceiver(failures=2)) as receiver:
        workflow = fire(clean, flows, tenant["id"], receiver.url)
        run = settled_run(flows, workflow["id"], "succeeded")

        hook = run["steps"][1]
        assert hook["attempts"] == 3 and hook["output"]["status"] == 204
        ids = receiver.message_ids()
        assert len(ids) == 3 and len(set(ids)) == 1  # one message id: the receiver dedupes retries
        done_once(db, flows, tenant["id"], workflow["id"], run)


def test_the_functions_host_killed_mid_step_completes_the_run_once_when_it_comes_back(
    clean: Suite, db: Any, flows: Api, tenant: dict[str, Any]
) -> None:
    with scripted(ScriptedReceiver(hold_first=True)) as receiver:
        workflow = fire(clean, flows, tenant["id"], receiver.url)
        eventually(receiver.holding.is_set, timeout=60, what="the webhook step to be in flight")
        try:
            clean.kill("functions host")  # mid-step: the step waits on its webhook call
        finally:
            clean.restart_functions()
        receiver.released.set()  # the killed attempt's call ends; the queue's retry gets its answer
        run = settled_run(flows, workflow["id"], "succeeded")

        assert run["steps"][1]["attempts"] >= 2  # the killed attempt counts
        ids = receiver.message_ids()
        assert len(ids) == 2 and len(set(ids)) == 1
        done_once(db, flows, tenant["id"], workflow["id"], run)


def test_a_failed_run_is_resumed_from_the_operations_api_and_completes_once(
    clean: Suite, db: Any, flows: Api, tenant: dict[str, Any], operator: str
) -> None:
    ops = Api(clean.function_url("operations_api"), operator)
    with scripted(ScriptedReceiver()) as receiver:
        receiver.down = True
        workflow = fire(clean, flows, tenant["id"], receiver.url)
        failed = settled_run(flows, workflow["id"], "failed", timeout=120)
        assert failed["steps"][1]["status"] == "failed"
        calls_while_down = len(receiver.received())

        listed = ops.get("/operations/runs", params={"state": "failed"})
        assert listed.status_code == 200, listed.text
        [item] = [i for i in listed.json()["items"] if i["run_id"] == failed["run_id"]]
        assert item["step"] == "hook" and item["resume_here"]

        # Only operators resume; an unknown run or collection is not found.
        admin = Api(ops.base, flows.token)
        assert admin.post(item["resume_here"], json={}).status_code in (403, 404)
        unknown = item["resume_here"].replace(failed["run_id"], "wfr_unknown")
        assert ops.post(unknown, json={}).status_code == 404
        elsewhere = item["resume_here"].replace("workflow_runs", "other_runs")
        assert ops.post(elsewhere, json={}).status_code == 404
        assert len(receiver.received()) == calls_while_down

        receiver.down = False
        resumed = ops.post(item["resume_here"], json={})
        assert resumed.status_code == 202, resumed.text
        assert resumed.json()["resumed"] is True and resumed.json()["audit_entry"]
        run = settled_run(flows, workflow["id"], "succeeded")

        assert len(receiver.received()) == calls_while_down + 1
        assert len(set(receiver.message_ids())) == 1
        assert [(s["name"], s["status"]) for s in run["steps"]] == [("tell", "done"), ("hook", "done")]
        assert run["steps"][0]["attempts"] == 1  # the step done before the failure is not done again
        assert len(runs(flows, workflow["id"])) == 1


@pytest.mark.xfail(
    strict=False,
    reason="Flaky on a loaded machine (one failure in three clean-clone runs): while the host restarts, the "
    "Pub/Sub emulator redelivers without backoff, and Pub/Sub's delivery count can pass the intake's "
    "transient budget, so the intake parks the event as 'no answer' instead of running it. Open defect: "
    "the intake should count the deliveries that reached a handler, not Pub/Sub's count.",
)
def test_the_functions_host_killed_while_handling_events_starts_each_run_once(
    clean: Suite, db: Any, flows: Api, tenant: dict[str, Any]
) -> None:
    count = 8
    workflow = create_active(
        flows,
        {
            "trigger": "Contact Updated",
            "conditions": {"op": "changed", "field": "lifecycle_stage", "to": "customer"},
            "steps": [{"name": "tell", "type": "notify", "message": "{{contact_id}} became a customer"}],
        },
    )
    contacts = [f"con_{n}_{uuid.uuid4().hex[:6]}" for n in range(count)]
    for contact in contacts:
        publish(clean, contact_updated(tenant["id"], contact, "customer"))
    # Killed while a push (or the task it led to) is being handled: Pub/Sub redelivers what got no
    # answer once the host is back, and the intake and the run ids make each event start one run.
    eventually(lambda: requests_in_flight() > 0, what="a delivery in flight")
    try:
        clean.kill("functions host")
    finally:
        clean.restart_functions()

    def all_done() -> list[dict[str, Any]] | None:
        found = runs(flows, workflow["id"])
        return found if len(found) >= count and all(r["status"] == "succeeded" for r in found) else None

    done = eventually(all_done, timeout=120, what="a run per event")
    assert sorted(r["input"]["event"]["data"]["contact_id"] for r in done) == sorted(contacts)
    assert all(r["steps"][0]["status"] == "done" for r in done)
    executed = eventually(
        lambda: (found := executed_events(db, tenant["id"])) and len(found) >= count and found,
        what="Workflow Executed for every run",
    )
    assert len(runs(flows, workflow["id"])) == count
    assert len(executed_events(db, tenant["id"])) == count
    assert sorted(e["data"]["run_id"] for e in executed) == sorted(r["run_id"] for r in done)
