"""Workflow API use cases: workflows and their versions, event intake, runs on the step engine.

Layout, all under the tenant so isolation and erasure are structural:
    tenants/{tid}/workflows/{workflow_id}                  the workflow: name, version statuses, and a
                                                           snapshot of the active definition (matching
                                                           reads only this document)
    tenants/{tid}/workflows/{workflow_id}/versions/{n}     every version's definition and status
    tenants/{tid}/workflow_runs/{run_id}                   runs (the step engine's documents)
    tenants/{tid}/workflow_events/{key}                    events received, for dry runs (TTL expire_at)
    tenants/{tid}/workflow_hops/{contact_id}               the depth of the last run that wrote a contact
    tenants/{tid}/workflow_settings/webhooks               which Secret Manager version signs webhooks

A run is started per (workflow, event) with a deterministic id, so a redelivered event starts nothing
new. Its input holds a snapshot of the version's definition: editing or archiving the workflow never
changes a run in flight, and the run records the version it used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import quote

import requests
from google.cloud import firestore
from google.cloud.firestore_v1.field_path import FieldPath

from functions.workflow_api import domain
from functions.workflow_api.builtins import BUILTINS, PRIVACY
from shared import outbound
from shared import webhook_signing as signing
from shared.contracts.base import Actor
from shared.contracts.payloads import WorkflowExecuted
from shared.events import new_event
from shared.intake import Delivered
from shared.platform import Platform
from shared.problems import Problem, conflict, not_found, validation_failed
from shared.secrets import SecretAccessor, SecretNotFound, add_version
from shared.services import ServiceClient
from shared.steps import FinishContext, Process, Step, StepContext, StepEngine, StepOutcome
from shared.uow import Tx

log = logging.getLogger(__name__)

API_NAME = "Workflow API"
TENANTS = "tenants"
WORKFLOWS = "workflows"
VERSIONS = "versions"
RUNS = "workflow_runs"
EVENTS = "workflow_events"
HOPS = "workflow_hops"
SETTINGS = "workflow_settings"
QUEUE = "workflow-steps"
TASKS_FUNCTION = "workflow_api_tasks"
CUSTOMER_DATA = "customer_data_api"
STEPS_PATH = "/steps"
PROCESS_PREFIX = "workflow:"
EVENT_RETENTION = timedelta(days=30)  # how far back a dry run can look
HOP_RETENTION = timedelta(hours=1)
DRY_RUN_LIMIT = 1000
RULES_CACHE_SIZE = 10_000
WEBHOOK_TIMEOUT_SECONDS = 15.0
SYSTEM_ACTOR = {"type": "system", "id": "workflow-api", "email": None}


class StepFailed(Exception):
    """A step's action was refused or could not be done (the queue retries, then the run fails)."""


def secret_id(tenant_id: str) -> str:
    # Under this API's own prefix "<api-slug>--": its IAM grant is conditioned on it (Terraform).
    return f"workflow-api--webhook-{tenant_id}"


def as_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, Mapping):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    return value


def _statuses(workflow: Mapping[str, Any]) -> dict[int, str]:
    return {int(k): str(v) for k, v in (workflow.get("versions") or {}).items()}


class CallingService(ServiceClient):
    """The platform's service client, with extra headers (X-Workflow-Id marks our writes)."""

    def call_with(
        self,
        function: str,
        method: str,
        path: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        audience = self.settings.function_url(function)
        try:
            return self._session.request(
                method,
                audience + path,
                json=body,
                headers={"Authorization": f"Bearer {self._token(audience)}", **(headers or {})},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise StepFailed(f"the {function} function did not answer") from exc


class WorkflowService:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.db: firestore.Client = platform.db
        self.uow = platform.uow
        self.settings = platform.settings
        self.api_slug = platform.catalog.api(API_NAME).slug
        self.engine = StepEngine(
            platform,
            queue=QUEUE,
            function=TASKS_FUNCTION,
            collection=RUNS,
            resolve=self.process,
            path=STEPS_PATH,
        )
        self.secrets = SecretAccessor()
        self._services: CallingService | None = None
        # Checks every URL again at each call and connects to the address it checked.
        self._http = outbound.session(self.settings.webhooks_allow_loopback)
        # Active rules per (tenant, trigger), valid while the tenant's rules revision is unchanged:
        # an event then reads one small document instead of every active workflow.
        self._rules: dict[tuple[str, str], tuple[int, dict[str, dict[str, Any]]]] = {}
        self._rules_lock = threading.Lock()

    # --- persistence -------------------------------------------------------------------------------
    def _tenant(self, tenant_id: str) -> firestore.DocumentReference:
        return self.db.collection(TENANTS).document(tenant_id)

    def workflows(self, tenant_id: str) -> firestore.CollectionReference:
        collection: firestore.CollectionReference = self._tenant(tenant_id).collection(WORKFLOWS)
        return collection

    def versions(self, tenant_id: str, workflow_id: str) -> firestore.CollectionReference:
        collection: firestore.CollectionReference = (
            self.workflows(tenant_id).document(workflow_id).collection(VERSIONS)
        )
        return collection

    def events(self, tenant_id: str) -> firestore.CollectionReference:
        collection: firestore.CollectionReference = self._tenant(tenant_id).collection(EVENTS)
        return collection

    def _hop(self, tenant_id: str, contact_id: str) -> firestore.DocumentReference:
        ref: firestore.DocumentReference = self._tenant(tenant_id).collection(HOPS).document(contact_id)
        return ref

    def _rules_revision(self, tenant_id: str) -> firestore.DocumentReference:
        ref: firestore.DocumentReference = self._tenant(tenant_id).collection(SETTINGS).document("rules")
        return ref

    def _bump_rules(self, tx: Tx, tenant_id: str) -> None:
        """Every change of what is active moves the revision: instances drop their cached rules."""
        tx.set(self._rules_revision(tenant_id), {"revision": firestore.Increment(1)}, merge=True)

    def active_rules(self, tenant_id: str, trigger: str) -> dict[str, dict[str, Any]]:
        """The tenant's active workflows for a trigger, by id (cached per instance by revision)."""
        snapshot = self._rules_revision(tenant_id).get()
        revision = int((snapshot.to_dict() or {}).get("revision", 0)) if snapshot.exists else 0
        with self._rules_lock:
            cached = self._rules.get((tenant_id, trigger))
        if cached is not None and cached[0] == revision:
            return cached[1]
        # Read after the revision: what is read is at least as new as the revision it is kept under.
        query = self.workflows(tenant_id).where(filter=firestore.FieldFilter("active_trigger", "==", trigger))
        rules = {s.id: s.to_dict() or {} for s in query.stream()}
        with self._rules_lock:
            if len(self._rules) > RULES_CACHE_SIZE:
                self._rules.clear()
            self._rules[(tenant_id, trigger)] = (revision, rules)
        return rules

    def _webhook_settings(self, tenant_id: str) -> firestore.DocumentReference:
        ref: firestore.DocumentReference = self._tenant(tenant_id).collection(SETTINGS).document("webhooks")
        return ref

    @property
    def services(self) -> CallingService:
        if self._services is None:
            self._services = CallingService(self.settings)
        return self._services

    # --- workflows ---------------------------------------------------------------------------------
    def check(self, definition: Mapping[str, Any], builtin: bool = False) -> None:
        """The definition's rules, and the SSRF guard on every webhook step's URL when it is saved (it is
        checked again at every call)."""
        errors = domain.validate(definition, builtin)
        if not errors:
            for index, step in enumerate(definition["steps"]):
                if step.get("type") == "webhook":
                    try:
                        outbound.check_url(
                            step["url"], outbound.resolve, self.settings.webhooks_allow_loopback
                        )
                    except outbound.UnsafeUrl as exc:
                        errors.append(domain.Invalid(f"#/steps/{index}/url", str(exc)))
        if errors:
            raise validation_failed(
                [
                    {
                        "pointer": "#/definition" + e.pointer[1:],
                        "detail": e.detail,
                        "type": "invalid",
                        "in": "body",
                    }
                    for e in errors
                ]
            )

    def workflow(self, tenant_id: str, workflow_id: str) -> dict[str, Any]:
        if "/" in workflow_id:
            raise not_found(f"Workflow {workflow_id}")
        snapshot = self.workflows(tenant_id).document(workflow_id).get()
        if not snapshot.exists:
            raise not_found(f"Workflow {workflow_id}")
        return snapshot.to_dict() or {}

    def version(self, tenant_id: str, workflow_id: str, version: int) -> dict[str, Any]:
        self.workflow(tenant_id, workflow_id)
        snapshot = self.versions(tenant_id, workflow_id).document(str(version)).get()
        if not snapshot.exists:
            raise not_found(f"Version {version} of workflow {workflow_id}")
        return snapshot.to_dict() or {}

    def version_list(self, tenant_id: str, workflow_id: str) -> list[dict[str, Any]]:
        self.workflow(tenant_id, workflow_id)
        found = [s.to_dict() or {} for s in self.versions(tenant_id, workflow_id).stream()]
        return sorted(found, key=lambda v: int(v["version"]))

    def _new_workflow(
        self,
        tx: Tx,
        tenant_id: str,
        workflow_id: str,
        name: str,
        description: str | None,
        definition: Mapping[str, Any],
        actor: Mapping[str, Any],
        builtin: bool = False,
        active: bool = False,
    ) -> dict[str, Any]:
        now = datetime.now(UTC)
        status = domain.VersionStatus.ACTIVE.value if active else domain.VersionStatus.DRAFT.value
        workflow = {
            "id": workflow_id,
            "name": name,
            "description": description,
            "builtin": builtin,
            "revision": 1,
            "versions": {"1": status},
            "active_version": 1 if active else None,
            "active_trigger": definition["trigger"] if active else None,
            "active": {"version": 1, "definition": dict(definition)} if active else None,
            "created_at": now,
            "updated_at": now,
            "created_by": dict(actor),
        }
        tx.create(self.workflows(tenant_id).document(workflow_id), workflow)
        tx.create(
            self.versions(tenant_id, workflow_id).document("1"),
            {
                "version": 1,
                "status": status,
                "definition": dict(definition),
                "created_at": now,
                "updated_at": now,
                "activated_at": now if active else None,
                "archived_at": None,
                "created_by": dict(actor),
            },
        )
        return workflow

    def create(
        self,
        tenant_id: str,
        name: str,
        description: str | None,
        definition: Mapping[str, Any],
        actor: Mapping[str, Any],
    ) -> dict[str, Any]:
        self.check(definition)
        workflow_id = "wfl_" + uuid.uuid4().hex[:20]
        return self.uow.run(
            lambda tx: self._new_workflow(tx, tenant_id, workflow_id, name, description, definition, actor)
        )

    def _locked(self, tx: Tx, tenant_id: str, workflow_id: str, if_match: int | None) -> dict[str, Any]:
        workflow = tx.get(self.workflows(tenant_id).document(workflow_id))
        if workflow is None:
            raise not_found(f"Workflow {workflow_id}")
        if if_match is not None and if_match != workflow["revision"]:
            raise Problem(
                412,
                "precondition-failed",
                "The workflow changed since it was read; read it again.",
                current_etag=f'"{workflow["revision"]}"',
            )
        return workflow

    def update(
        self,
        tenant_id: str,
        workflow_id: str,
        changes: Mapping[str, Any],
        actor: Mapping[str, Any],
        if_match: int | None,
    ) -> dict[str, Any]:
        """Name and description change in place; a definition goes to the draft (a new draft version
        when there is none, so the active version never changes under its runs)."""
        workflow = self.workflow(tenant_id, workflow_id)
        if "definition" in changes:
            self.check(changes["definition"], bool(workflow.get("builtin")))

        def work(tx: Tx) -> dict[str, Any]:
            current = self._locked(tx, tenant_id, workflow_id, if_match)
            now = datetime.now(UTC)
            update: dict[str, Any] = {key: changes[key] for key in ("name", "description") if key in changes}
            if "definition" in changes:
                version, new = domain.edit_target(_statuses(current))
                ref = self.versions(tenant_id, workflow_id).document(str(version))
                if new:
                    tx.create(
                        ref,
                        {
                            "version": version,
                            "status": domain.VersionStatus.DRAFT.value,
                            "definition": dict(changes["definition"]),
                            "created_at": now,
                            "updated_at": now,
                            "activated_at": None,
                            "archived_at": None,
                            "created_by": dict(actor),
                        },
                    )
                    update["versions"] = {
                        **current["versions"],
                        str(version): domain.VersionStatus.DRAFT.value,
                    }
                else:
                    tx.update(ref, {"definition": dict(changes["definition"]), "updated_at": now})
            update |= {"revision": current["revision"] + 1, "updated_at": now}
            tx.update(self.workflows(tenant_id).document(workflow_id), update)
            return {**current, **update}

        return self.uow.run(work)

    def _apply_statuses(
        self, tx: Tx, tenant_id: str, workflow: dict[str, Any], changes: Mapping[int, str]
    ) -> dict[str, Any]:
        workflow_id = workflow["id"]
        now = datetime.now(UTC)
        refs = {v: self.versions(tenant_id, workflow_id).document(str(v)) for v in changes}
        activated = next((v for v, s in changes.items() if s == domain.VersionStatus.ACTIVE), None)
        definition = None
        if activated is not None:
            found = tx.get(refs[activated])
            if found is None:
                raise not_found(f"Version {activated} of workflow {workflow_id}")
            definition = found["definition"]
        for version, status in changes.items():
            stamp = "activated_at" if status == domain.VersionStatus.ACTIVE else "archived_at"
            tx.update(refs[version], {"status": status, stamp: now, "updated_at": now})
        statuses = {**workflow["versions"], **{str(v): s for v, s in changes.items()}}
        update: dict[str, Any] = {
            "versions": statuses,
            "active_version": activated,
            "active_trigger": definition["trigger"] if definition else None,
            "active": {"version": activated, "definition": definition} if definition else None,
            "revision": workflow["revision"] + 1,
            "updated_at": now,
        }
        tx.update(self.workflows(tenant_id).document(workflow_id), update)
        self._bump_rules(tx, tenant_id)
        return {**workflow, **update}

    def activate(
        self, tenant_id: str, workflow_id: str, version: int | None, if_match: int | None
    ) -> dict[str, Any]:
        def work(tx: Tx) -> dict[str, Any]:
            workflow = self._locked(tx, tenant_id, workflow_id, if_match)
            with refused():
                changes = domain.activation(_statuses(workflow), version)
            return self._apply_statuses(tx, tenant_id, workflow, changes)

        return self.uow.run(work)

    def archive(self, tenant_id: str, workflow_id: str, if_match: int | None) -> dict[str, Any]:
        def work(tx: Tx) -> dict[str, Any]:
            workflow = self._locked(tx, tenant_id, workflow_id, if_match)
            with refused():
                changes = domain.archival(_statuses(workflow))
            return self._apply_statuses(tx, tenant_id, workflow, changes)

        return self.uow.run(work)

    def delete(self, tenant_id: str, workflow_id: str, if_match: int | None) -> None:
        """Only a workflow that is not active (archive it first); its runs are kept."""
        workflow = self.workflow(tenant_id, workflow_id)
        refs = [self.versions(tenant_id, workflow_id).document(str(v)) for v in _statuses(workflow)]

        def work(tx: Tx) -> None:
            current = self._locked(tx, tenant_id, workflow_id, if_match)
            if current.get("active_version") is not None:
                raise conflict("workflow-active", "Archive the workflow before deleting it.")
            for ref in refs:
                tx.delete(ref)
            tx.delete(self.workflows(tenant_id).document(workflow_id))

        self.uow.run(work)

    # --- built-ins -----------------------------------------------------------------------------------
    def install_builtins(self, tx: Tx, tenant_id: str) -> list[str]:
        """Create the built-in workflows the tenant does not have yet (all reads before writes)."""
        refs = [self.workflows(tenant_id).document(wid) for wid in BUILTINS]
        missing = [wid for wid, found in tx.get_all(refs) if found is None]
        for wid in missing:
            spec = BUILTINS[wid]
            self._new_workflow(
                tx,
                tenant_id,
                wid,
                spec["name"],
                spec["description"],
                spec["definition"],
                SYSTEM_ACTOR,
                True,
                True,
            )
        if missing:
            self._bump_rules(tx, tenant_id)
        return missing

    # --- events --------------------------------------------------------------------------------------
    def on_event(self, delivered: Delivered, tx: Tx) -> None:
        """Store the event (for dry runs), then start a run of every active workflow it fires."""
        envelope = delivered.envelope
        tenant_id = envelope.tenantid
        event = domain.EventView(
            envelope.id, delivered.entry.name, envelope.subject, envelope.data, envelope.source
        )
        # Reads first (a Firestore transaction reads before it writes). The active rules are read
        # outside the transaction: an edit racing with an event need not block it.
        candidates = self.active_rules(tenant_id, event.name)
        builtin_missing = False
        if event.name == "Privacy Request Received" and PRIVACY not in candidates:
            # The request must be answered even before onboarding installed the built-ins; a tenant
            # that archived its privacy workflow has chosen to answer by other means.
            builtin_missing = tx.get(self.workflows(tenant_id).document(PRIVACY)) is None
        causing_depth = None
        caused_by = event.workflow_caused
        if caused_by is not None:
            hop = tx.get(self._hop(tenant_id, envelope.subject))
            causing_depth = int(hop["depth"]) if hop else None
        # Onboarding installs the built-ins; so does a privacy request arriving before onboarding did.
        onboarding = event.name == "Onboarding Started"
        installed = self.install_builtins(tx, tenant_id) if onboarding or builtin_missing else []
        depth = domain.depth_of(event, causing_depth)
        to_run: list[tuple[str, str, int, Mapping[str, Any], bool]] = []
        for workflow_id, workflow in candidates.items():
            active = workflow.get("active") or {}
            to_run.append(
                (
                    workflow_id,
                    workflow.get("name", ""),
                    int(active["version"]),
                    active["definition"],
                    bool(workflow.get("builtin")),
                )
            )
        if builtin_missing or (PRIVACY in installed and event.name == "Privacy Request Received"):
            spec = BUILTINS[PRIVACY]
            to_run.append((PRIVACY, spec["name"], 1, spec["definition"], True))
        fired: list[str] = []
        for workflow_id, name, version, definition, builtin in to_run:
            verdict = domain.judge(workflow_id, definition, event, depth)
            if not verdict.fires:
                if verdict.reason in ("caused by itself", "hop limit"):
                    log.info(
                        "workflow not fired", extra={"workflow_id": workflow_id, "reason": verdict.reason}
                    )
                continue
            run_input = {
                "workflow_id": workflow_id,
                "workflow_name": name,
                "version": version,
                "builtin": builtin,
                "definition": dict(definition),
                "depth": depth,
                "event": {
                    "id": envelope.id,
                    "name": event.name,
                    "type": envelope.type,
                    "source": envelope.source,
                    "subject": envelope.subject,
                    "time": as_json(envelope.time),
                    "data": dict(envelope.data),
                },
            }
            # Its own transaction: the run id is derived from the event, so a redelivery (or this
            # transaction's retry) finds the run and starts nothing.
            run_id = domain.run_id(workflow_id, envelope.source, envelope.id)
            self.engine.start(
                None,
                tenant_id=tenant_id,
                process=PROCESS_PREFIX + workflow_id,
                run_id=run_id,
                input=run_input,
            )
            fired.append(run_id)
        tx.set(
            self.events(tenant_id).document(event_key(envelope.source, envelope.id)),
            {
                "event_id": envelope.id,
                "name": event.name,
                "type": envelope.type,
                "source": envelope.source,
                "subject": envelope.subject,
                "time": envelope.time,
                "data": dict(envelope.data),
                "fired": len(fired),
                "runs": fired,  # so an erasure of the subject reaches the runs' copies of the event
                # A privacy request, found again by its subject's erasure (`data` is not indexed).
                **(
                    {"data_subject": subject_key(str(envelope.data.get("data_subject_email")))}
                    if event.name == "Privacy Request Received"
                    else {}
                ),
                "received_at": datetime.now(UTC),
                "expire_at": envelope.time + EVENT_RETENTION,
            },
        )

    # --- dry run -------------------------------------------------------------------------------------
    def dry_run(self, tenant_id: str, workflow_id: str, version: int | None, days: int) -> dict[str, Any]:
        workflow = self.workflow(tenant_id, workflow_id)
        statuses = _statuses(workflow)
        if version is None:
            version, _ = domain.edit_target(statuses)
            if version not in statuses:  # no draft: the active (or latest) version
                version = workflow.get("active_version") or max(statuses)
        definition = self.version(tenant_id, workflow_id, version)["definition"]
        since = datetime.now(UTC) - timedelta(days=days)
        query = (
            self.events(tenant_id)
            .where(filter=firestore.FieldFilter("name", "==", definition["trigger"]))
            .where(filter=firestore.FieldFilter("time", ">=", since))
            .order_by("time", direction=firestore.Query.DESCENDING)
            .limit(DRY_RUN_LIMIT + 1)
        )
        found = [s.to_dict() or {} for s in query.stream()]
        events = [
            (
                domain.EventView(e["event_id"], e["name"], e["subject"], e["data"], e["source"]),
                as_json(e["time"]),
            )
            for e in found[:DRY_RUN_LIMIT]
        ]
        result = domain.dry_run(workflow_id, definition, events)
        return {
            "workflow_id": workflow_id,
            "version": version,
            "trigger": definition["trigger"],
            "days": days,
            "since": as_json(since),
            "events_examined": result.examined,
            "truncated": len(found) > DRY_RUN_LIMIT,
            "would_fire": len(result.matched),
            "not_fired": result.skipped,
            "matches": [
                {
                    "event_id": m.event_id,
                    "event_time": m.event_time,
                    "subject": m.subject,
                    "actions": [{"step": p.step, **p.action} for p in m.actions],
                }
                for m in result.matched
            ],
        }

    # --- runs ----------------------------------------------------------------------------------------
    def process(self, name: str, run_input: Mapping[str, Any]) -> Process:
        """The process of one run, from the definition snapshot in its input."""
        definition = run_input["definition"]
        steps = [Step(step["name"], self._runner(step)) for step in definition["steps"]]
        return Process(name, steps, on_finish=self._finished)

    def _runner(self, step: Mapping[str, Any]) -> Any:
        def run(ctx: StepContext) -> StepOutcome:
            return self.run_step(step, ctx)

        return run

    def run_step(self, step: Mapping[str, Any], ctx: StepContext) -> StepOutcome:
        event = ctx.input["event"]
        document = domain.step_document(event["data"], ctx.outputs)
        kind = step["type"]
        if kind == "branch":
            target = domain.branch_target(step, document)
            if target == domain.END:
                return StepOutcome(output={"next": domain.END}, finish=True)
            return StepOutcome(output={"next": target or "following"}, next_step=target)
        if kind == "wait":
            return StepOutcome(output={"seconds": step["seconds"]}, delay=timedelta(seconds=step["seconds"]))
        if kind == "notify":
            # Recorded in the run; the Notification API reads it from the run Workflow Executed names.
            return StepOutcome(output={"notification": domain.action(step, document)})
        if kind == "update_contact":
            return self._update_contact(ctx, domain.action(step, document))
        if kind == "webhook":
            return self._webhook(ctx, step["url"])
        if kind == "privacy_request":
            return self._privacy_request(ctx, event["data"])
        raise StepFailed(f"unknown step type {kind}")

    def _update_contact(self, ctx: StepContext, planned: Mapping[str, Any]) -> StepOutcome:
        contact_id = planned.get("contact_id")
        if not contact_id or "/" in contact_id:
            return StepOutcome(output={"reason": "the event names no contact"}, skipped=True)
        workflow_id = ctx.input["workflow_id"]
        # Recorded before the write: the Contact Updated it causes is one hop deeper than this run.
        now = datetime.now(UTC)
        self._hop(ctx.tenant_id, contact_id).set(
            {
                "depth": int(ctx.input.get("depth", 1)),
                "workflow_id": workflow_id,
                "run_id": ctx.run_id,
                "at": now,
                "expire_at": now + HOP_RETENTION,
            }
        )
        response = self.services.call_with(
            CUSTOMER_DATA,
            "PATCH",
            f"/tenants/{ctx.tenant_id}/contacts/{contact_id}",
            planned["changes"],
            {"X-Workflow-Id": workflow_id, "Content-Type": "application/json"},
        )
        if response.status_code == 404:
            return StepOutcome(output={"contact_id": contact_id, "reason": "no such contact"}, skipped=True)
        if not response.ok:
            raise StepFailed(f"the Customer Data API answered {response.status_code}: {response.text[:300]}")
        return StepOutcome(
            output={
                "contact_id": contact_id,
                "status": response.status_code,
                "fields": sorted(planned["changes"]),
            }
        )

    # --- webhooks ------------------------------------------------------------------------------------
    def rotate_webhook_secret(self, tenant_id: str) -> tuple[str, int]:
        """A new signing secret for the tenant's workflow webhooks (answered once, never stored here)."""
        value = signing.generate_secret()
        number = add_version(secret_id(tenant_id), value, {"purpose": "workflow-webhook-signing"})
        self._webhook_settings(tenant_id).set({"secret_version": number, "rotated_at": datetime.now(UTC)})
        return value, number

    def _webhook(self, ctx: StepContext, url: str) -> StepOutcome:
        settings = self._webhook_settings(ctx.tenant_id).get()
        if not settings.exists:
            raise StepFailed("the tenant has no workflow webhook secret (POST .../workflows/webhook-secret)")
        version = str((settings.to_dict() or {})["secret_version"])
        try:
            secret = self.secrets.get(secret_id(ctx.tenant_id), version).get_secret_value()
        except SecretNotFound as exc:
            raise StepFailed("the workflow webhook secret was erased: rotate it again") from exc
        event = ctx.input["event"]
        message_id = f"{ctx.run_id}.{ctx.step}"  # the same on every retry: receivers dedupe on it
        body = json.dumps(
            {
                "workflow_id": ctx.input["workflow_id"],
                "workflow_version": ctx.input["version"],
                "run_id": ctx.run_id,
                "step": ctx.step,
                "event": {k: event[k] for k in ("id", "name", "type", "subject", "time", "data")},
                "outputs": dict(ctx.outputs),
            },
            default=str,
        ).encode()
        headers = {
            "Content-Type": "application/json",
            **signing.sign(message_id, int(time.time()), body, [secret]),
        }
        try:
            response = self._http.post(
                url, data=body, headers=headers, timeout=WEBHOOK_TIMEOUT_SECONDS, allow_redirects=False
            )
        except outbound.UnsafeUrl as exc:  # checked at every call: DNS may have changed since it was saved
            raise StepFailed(f"the webhook URL is refused: {exc}") from exc
        except requests.RequestException as exc:
            raise StepFailed(f"the webhook did not answer: {type(exc).__name__}") from exc
        if not 200 <= response.status_code < 300:
            raise StepFailed(f"the webhook answered {response.status_code}")
        return StepOutcome(output={"url": url, "status": response.status_code, "message_id": message_id})

    # --- privacy -------------------------------------------------------------------------------------
    def _privacy_request(self, ctx: StepContext, data: Mapping[str, Any]) -> StepOutcome:
        """Export (access, portability) or erase (erasure) the data subject's contact. Other request
        types are recorded for a person to answer."""
        kind = data.get("request_type")
        base = f"/tenants/{ctx.tenant_id}/contacts"
        contact_id = data.get("contact_id")
        if contact_id:
            found = self.services.call_with(CUSTOMER_DATA, "GET", f"{base}/{contact_id}")
            if found.status_code == 404:
                contact_id = None
            elif not found.ok:
                raise StepFailed(f"the Customer Data API answered {found.status_code}")
        if not contact_id and data.get("data_subject_email"):
            found = self.services.call_with(
                CUSTOMER_DATA, "GET", f"{base}?email={quote(str(data['data_subject_email']))}"
            )
            if found.ok:
                items = found.json().get("items") or []
                contact_id = items[0].get("id") if items else None
            elif found.status_code != 404:
                raise StepFailed(f"the Customer Data API answered {found.status_code}")
        if not contact_id:
            return StepOutcome(output={"request_type": kind, "result": "no matching contact"}, skipped=True)
        if kind in ("access", "portability"):
            response = self.services.call_with(CUSTOMER_DATA, "GET", f"{base}/{contact_id}/export")
            if not response.ok:
                raise StepFailed(f"the export answered {response.status_code}")
            bundle = response.content
            # The bundle is the subject's personal data: the run records its digest and size, not it.
            return StepOutcome(
                output={
                    "request_type": kind,
                    "contact_id": contact_id,
                    "result": "exported",
                    "bytes": len(bundle),
                    "sha256": hashlib.sha256(bundle).hexdigest(),
                }
            )
        if kind == "erasure":
            response = self.services.call_with(CUSTOMER_DATA, "POST", f"{base}/{contact_id}/erasure", {})
            if not response.ok:
                raise StepFailed(f"the erasure answered {response.status_code}")
            self._forget(ctx, str(contact_id), str(data.get("data_subject_email") or ""))
            summary = response.json() if response.content else {}
            return StepOutcome(
                output={
                    "request_type": kind,
                    "contact_id": contact_id,
                    "result": "erased",
                    "summary": summary,
                }
            )
        return StepOutcome(
            output={"request_type": kind, "contact_id": contact_id, "result": "recorded for manual handling"}
        )

    def _forget(self, ctx: StepContext, contact_id: str, email: str) -> None:
        """Erasure reaches every copy this API holds: the stored events about the contact and the
        privacy requests naming the subject's e-mail (this one included) are deleted; each run they
        started keeps its record but not the event's data nor any step output built from it; this run
        keeps only the request's id, type and dates."""
        tenant_id = ctx.tenant_id
        about = self.events(tenant_id).where(filter=firestore.FieldFilter("subject", "==", contact_id))
        events = {s.reference.path: s for s in about.stream()}
        if email:
            named = self.events(tenant_id).where(
                filter=firestore.FieldFilter("data_subject", "==", subject_key(email))
            )
            events.update({s.reference.path: s for s in named.stream()})
        request = self.events(tenant_id).document(
            event_key(ctx.input["event"]["source"], ctx.input["event"]["id"])
        )
        run_ids = {r for e in events.values() for r in (e.to_dict() or {}).get("runs", [])} - {ctx.run_id}
        run_refs = [self.engine.ref(tenant_id, r) for r in sorted(run_ids)]
        runs = [s for s in self.db.get_all(run_refs) if s.exists] if run_refs else []
        batch = self.db.batch()
        for run in runs:
            erased: dict[str, Any] = {"input.event.data": {"erased": True}}
            for step, record in ((run.to_dict() or {}).get("steps") or {}).items():
                if isinstance(record, Mapping) and record.get("output"):
                    erased[FieldPath("steps", step, "output").to_api_repr()] = {"erased": True}
            batch.update(run.reference, erased)
        batch.update(
            self.engine.ref(tenant_id, ctx.run_id),
            {f"input.event.data.{field}": ERASED for field in PRIVACY_PERSONAL_FIELDS},
        )
        for ref in {*(e.reference for e in events.values()), request}:
            batch.delete(ref)
        batch.delete(self._hop(tenant_id, contact_id))
        batch.commit()

    # --- finishing -----------------------------------------------------------------------------------
    def _finished(self, finish: FinishContext) -> None:
        """Workflow Executed, exactly once: inside the transaction that finishes the run."""
        run_input = finish.input
        payload = WorkflowExecuted(
            workflow_id=run_input["workflow_id"],
            workflow_version=int(run_input["version"]),
            run_id=finish.run_id,
            trigger=cast(Any, domain.run_trigger(run_input["event"]["name"])),
            status="succeeded" if finish.status == "succeeded" else "failed",
            steps_total=len(finish.steps),
            steps_succeeded=len(finish.steps_with("done", "skipped")),
            steps_failed=len(finish.steps_with("failed")),
            started_at=finish.started_at,
            finished_at=finish.finished_at,
            error=(f"Step '{finish.failed_step}': {finish.error}"[:2000] if finish.error else None),
            actor=Actor.model_validate(SYSTEM_ACTOR),
        )
        finish.tx.emit(
            new_event(
                payload, tenant_id=finish.tenant_id, subject=finish.run_id, source_api_slug=self.api_slug
            )
        )


ERASED = "[erased]"
# What a Privacy Request Received carries about the data subject (its ids and dates say nothing of them).
PRIVACY_PERSONAL_FIELDS = ("data_subject_email",)


def subject_key(email: str) -> str:
    """A data subject's e-mail as stored events are found by it: a hash, not the address."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def event_key(source: str, event_id: str) -> str:
    """The stored event's document id: one per event, whatever the redeliveries."""
    return hashlib.sha256(f"{source}\n{event_id}".encode()).hexdigest()[:40]


@contextlib.contextmanager
def refused() -> Iterator[None]:
    """The domain's refusals as 409 problems."""
    try:
        yield
    except domain.Refused as exc:
        raise conflict(exc.kind, exc.detail) from exc


_services: dict[int, WorkflowService] = {}


def build_service(platform: Platform) -> WorkflowService:
    """One service per platform (each function builds it once, on its first request)."""
    found = _services.get(id(platform))
    if found is None:
        found = _services[id(platform)] = WorkflowService(platform)
    return found
