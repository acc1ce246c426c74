"""Customer Health API use cases: signals from events, scores per organization and per tenant, the
tenant's scoring model, recomputation and preview.

Layout, all under the tenant so isolation and erasure are structural:
    tenants/{tid}/health_signals/{signal_id}                     one per consumed event, kept to recompute
    tenants/{tid}/health_models/current, .../v{version:06d}      the live model and every saved version
    tenants/{tid}/health_tenant/score                            the tenant-level score and its explanation
    tenants/{tid}/health_organizations/{organization_id}         one organization's score and explanation
    .../score/history/{seq:08d}, .../{organization_id}/history/{seq:08d}   every change of score or grade

Concurrency: every signal rewrites the score document(s) of its scope(s) in the intake's transaction,
after reading them in it. A rescore reads the score document first and the signals after, so any other
writer of the same scope either committed before (its signal is read) or waits on / aborts against
this transaction (and is retried, then reads ours). Recompute follows the same path.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from google.cloud import firestore

from functions.customer_health_api import domain
from functions.customer_health_api.domain import Model, Signal
from shared.contracts.payloads import HealthMeasure, HealthScoreChanged, NotificationBounced
from shared.events import CloudEvent, new_event
from shared.intake import Delivered
from shared.platform import Platform
from shared.problems import Problem, not_found
from shared.services import ServiceClient
from shared.uow import Tx, UnitOfWork

log = logging.getLogger(__name__)

API_NAME = "Customer Health API"
CUSTOMER_DATA = "customer_data_api"
TENANTS = "tenants"
SIGNALS = "health_signals"
MODELS = "health_models"
TENANT_SCORE = "health_tenant"
ORGANIZATIONS = "health_organizations"
HISTORY = "history"
CURRENT = "current"
# Preview scores at most this many organizations (the worst first when there are more).
PREVIEW_LIMIT = 1000


class DependencyUnavailable(Exception):
    """The Customer Data API failed (5xx, refused): the event is retried, never decided on."""


class OrganizationDirectory:
    """Which organization a bounced recipient belongs to, from the Customer Data API (as a platform
    service). A 404 or a contact without organization is an answer (tenant-level only); a 5xx, an
    authorization failure or no answer is retried. Tests replace it with a small subclass."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    def _get(self, path: str) -> Any:
        response = self.client.call(CUSTOMER_DATA, "GET", path)
        if response.status_code == 404:
            return None
        if response.status_code >= 500 or response.status_code in (401, 403, 408, 429):
            raise DependencyUnavailable(f"the Customer Data API answered {response.status_code}")
        if response.status_code != 200:
            log.warning(
                "unexpected answer from the Customer Data API", extra={"status": response.status_code}
            )
            return None
        try:
            return response.json()
        except ValueError:
            log.warning("the Customer Data API answered no JSON")
            return None

    def organization_of(
        self, tenant_id: str, contact_id: str | None, email: str | None
    ) -> tuple[str | None, str]:
        """(organization id or None, how it was decided)."""
        if contact_id:
            contact = self._get(f"/tenants/{quote(tenant_id, safe='')}/contacts/{quote(contact_id, safe='')}")
            if isinstance(contact, dict):
                org = contact.get("organization_id")
                return (
                    (org, "contact")
                    if isinstance(org, str) and org
                    else (None, "contact-without-organization")
                )
        if email:
            found = self._get(f"/tenants/{quote(tenant_id, safe='')}/contacts?email={quote(email, safe='')}")
            items = found.get("items") if isinstance(found, dict) else None
            orgs = {
                i["organization_id"]
                for i in items or []
                if isinstance(i, dict) and isinstance(i.get("organization_id"), str) and i["organization_id"]
            }
            if len(orgs) == 1:
                return orgs.pop(), "email"
            if len(orgs) > 1:
                return None, "ambiguous-email"
        return None, "unknown-recipient"


def signal_id(source: str, event_id: str) -> str:
    return "sig_" + hashlib.sha256(f"{source}\n{event_id}".encode()).hexdigest()[:32]


def signal_to_doc(signal: Signal, received_at: datetime, attribution: str | None) -> dict[str, Any]:
    return {
        "id": signal.id,
        "event_id": signal.event_id,
        "event_name": signal.event_name,
        "occurred_at": signal.occurred_at,
        "factor": signal.factor,
        "kind": "state" if signal.factor in domain.STATE_FACTORS else "count",
        "organization_id": signal.organization_id,
        "amount": signal.amount,
        "state": signal.state,
        "due_at": signal.due_at,
        "attribution": attribution,
        "received_at": received_at,
    }


def signal_from_doc(doc: dict[str, Any]) -> Signal:
    return Signal(
        id=doc["id"],
        event_id=doc["event_id"],
        event_name=doc["event_name"],
        occurred_at=doc["occurred_at"],
        factor=doc["factor"],
        organization_id=doc.get("organization_id"),
        amount=float(doc.get("amount") or 0.0),
        state=doc.get("state"),
        due_at=doc.get("due_at"),
    )


@dataclass(frozen=True)
class Rescored:
    document: dict[str, Any]
    changed: bool
    published: bool


class HealthService:
    def __init__(
        self, db: firestore.Client, uow: UnitOfWork, directory: OrganizationDirectory, api_slug: str
    ) -> None:
        self.db = db
        self.uow = uow
        self.directory = directory
        self.api_slug = api_slug

    # --- persistence -------------------------------------------------------------------------------
    def tenant(self, tenant_id: str) -> firestore.DocumentReference:
        ref: firestore.DocumentReference = self.db.collection(TENANTS).document(tenant_id)
        return ref

    def signals(self, tenant_id: str) -> firestore.CollectionReference:
        collection: firestore.CollectionReference = self.tenant(tenant_id).collection(SIGNALS)
        return collection

    def organizations(self, tenant_id: str) -> firestore.CollectionReference:
        collection: firestore.CollectionReference = self.tenant(tenant_id).collection(ORGANIZATIONS)
        return collection

    def model_ref(self, tenant_id: str, version: int | None = None) -> firestore.DocumentReference:
        name = CURRENT if version is None else f"v{version:06d}"
        ref: firestore.DocumentReference = self.tenant(tenant_id).collection(MODELS).document(name)
        return ref

    def score_ref(self, tenant_id: str, organization_id: str | None) -> firestore.DocumentReference:
        if organization_id is None:
            ref: firestore.DocumentReference = (
                self.tenant(tenant_id).collection(TENANT_SCORE).document("score")
            )
            return ref
        return self.organizations(tenant_id).document(organization_id)

    def history(self, tenant_id: str, organization_id: str | None) -> firestore.CollectionReference:
        collection: firestore.CollectionReference = self.score_ref(tenant_id, organization_id).collection(
            HISTORY
        )
        return collection

    def lane(self, tenant_id: str) -> str:
        # The intake's lane for this tenant (serialize_by_tenant): recompute queues behind deliveries.
        return f"{self.api_slug}:{tenant_id}"

    def load_signals(
        self, tenant_id: str, organization_id: str | None, model: Model, as_of: datetime
    ) -> list[Signal]:
        """The scope's signals that can count at `as_of`: those inside the window, and every state signal."""
        since = as_of - timedelta(days=model.window_days)
        base: Any = self.signals(tenant_id)
        if organization_id is not None:
            base = base.where(filter=firestore.FieldFilter("organization_id", "==", organization_id))
        found: dict[str, Signal] = {}
        window = base.where(filter=firestore.FieldFilter("occurred_at", ">=", since))
        states = base.where(filter=firestore.FieldFilter("kind", "==", "state"))
        for query in (window, states):
            for snapshot in query.stream():
                doc = snapshot.to_dict() or {}
                found[snapshot.id] = signal_from_doc(doc)
        return list(found.values())

    # --- the model ---------------------------------------------------------------------------------
    def model_document(self, tenant_id: str) -> dict[str, Any] | None:
        snapshot = self.model_ref(tenant_id).get()
        return snapshot.to_dict() if snapshot.exists else None

    def _model_in(self, tx: Tx, tenant_id: str) -> tuple[Model, bool]:
        """The tenant's model, and whether it is stored (the default stands in until it is)."""
        doc = tx.get(self.model_ref(tenant_id))
        return (Model.from_dict(doc), True) if doc is not None else (domain.default_model(), False)

    def _store_model(self, tx: Tx, tenant_id: str, model: Model, now: datetime) -> dict[str, Any]:
        doc = {**model.to_dict(), "updated_at": now}
        tx.set(self.model_ref(tenant_id), doc)
        tx.set(self.model_ref(tenant_id, model.version), doc)
        return doc

    def save_model(self, tenant_id: str, model: Model, expected_version: int | None) -> dict[str, Any]:
        """Store `model` as the next version; the tenant score is recomputed with it in the same write.
        Organization scores take it at their next signal or recompute (preview shows them first)."""

        def work(tx: Tx) -> dict[str, Any]:
            current = tx.get(self.model_ref(tenant_id))
            version = int(current["version"]) if current else 0
            if expected_version is not None and expected_version != version:
                raise Problem(
                    412,
                    "precondition-failed",
                    f"The model is at version {version}, not {expected_version}: read it again.",
                    current_version=version,
                )
            stored = tx.get(self.score_ref(tenant_id, None))
            saved = model.with_version(version + 1)
            now = datetime.now(UTC)
            self._rescore(tx, tenant_id, None, saved, stored, [], now, cause=None)
            return self._store_model(tx, tenant_id, saved, now)

        return self.uow.run(work, serialize_on=self.lane(tenant_id))

    # --- events ------------------------------------------------------------------------------------
    def handle(self, event: Delivered, tx: Tx) -> None:
        """Any consumed event: store its signal, rescore the tenant and, when attributed, the organization."""
        tenant_id = event.tenant_id
        payload = event.payload
        organization_id: str | None = None
        attribution: str | None = None
        if isinstance(payload, NotificationBounced):
            email = payload.recipient if payload.channel == "email" else None
            organization_id, attribution = self.directory.organization_of(
                tenant_id, payload.contact_id, email
            )
        signal = domain.signal_for(
            signal_id(event.envelope.source, event.envelope.id),
            event.entry.name,
            event.envelope.id,
            payload.model_dump(),
            event.envelope.time,
            organization_id,
        )
        # Reads first (a transaction's reads precede its writes): the model, then every score touched.
        model, stored_model = self._model_in(tx, tenant_id)
        scopes: list[str | None] = [None] if organization_id is None else [None, organization_id]
        stored = {scope: tx.get(self.score_ref(tenant_id, scope)) for scope in scopes}
        now = datetime.now(UTC)
        if not stored_model:
            # Tenant Created creates the default model; any event arriving before it does the same.
            self._store_model(tx, tenant_id, model, now)
        tx.set(self.signals(tenant_id).document(signal.id), signal_to_doc(signal, now, attribution))
        for scope in scopes:
            self._rescore(tx, tenant_id, scope, model, stored[scope], [signal], now, cause=signal)

    # --- scoring -----------------------------------------------------------------------------------
    def _rescore(
        self,
        tx: Tx,
        tenant_id: str,
        organization_id: str | None,
        model: Model,
        stored: dict[str, Any] | None,
        extra: Iterable[Signal],
        now: datetime,
        cause: Signal | None,
        write_unchanged: bool = True,
    ) -> Rescored:
        signals = {s.id: s for s in self.load_signals(tenant_id, organization_id, model, now)}
        signals.update({s.id: s for s in extra})
        result = domain.compute(signals.values(), model, now)
        explanation = result.explanation()
        changed = (
            stored is None
            or stored.get("score") != result.score
            or stored.get("grade") != result.grade
            or stored.get("model_version") != result.model_version
        )
        if (
            not changed
            and stored is not None
            and not write_unchanged
            and stored.get("factors") == explanation
        ):
            return Rescored(stored, False, False)
        last_score = None if stored is None else stored.get("published_score")
        last_grade = None if stored is None else stored.get("published_grade")
        publish = domain.should_publish(
            last_score, last_grade, result.score, result.grade, model.publish_delta
        )
        previous_score = (stored or {}).get("score") if changed else (stored or {}).get("previous_score")
        previous_grade = (stored or {}).get("grade") if changed else (stored or {}).get("previous_grade")
        seq = int((stored or {}).get("seq", 0)) + (1 if changed else 0)
        document: dict[str, Any] = {
            "scope": "tenant" if organization_id is None else "organization",
            "organization_id": organization_id,
            "score": result.score,
            "grade": result.grade,
            "previous_score": previous_score,
            "previous_grade": previous_grade,
            "trend": domain.trend(previous_score, result.score),
            "model_version": result.model_version,
            "window_days": model.window_days,
            "as_of": now,
            "computed_at": now,
            "factors": explanation,
            "signal_count": len(signals),
            "last_signal_id": cause.id if cause else (stored or {}).get("last_signal_id"),
            "last_event_id": cause.event_id if cause else (stored or {}).get("last_event_id"),
            "seq": seq,
            "published_score": result.score if publish else last_score,
            "published_grade": result.grade if publish else last_grade,
            "published_at": now if publish else (stored or {}).get("published_at"),
        }
        tx.set(self.score_ref(tenant_id, organization_id), document)
        if changed:
            tx.set(
                self.history(tenant_id, organization_id).document(f"{seq:08d}"),
                {
                    "seq": seq,
                    "score": result.score,
                    "grade": result.grade,
                    "previous_score": previous_score,
                    "previous_grade": previous_grade,
                    "model_version": result.model_version,
                    "as_of": now,
                    "computed_at": now,
                    "factors": explanation,
                    "cause_signal_id": cause.id if cause else None,
                    "cause_event_id": cause.event_id if cause else None,
                    "cause_event_name": cause.event_name if cause else "recompute",
                    "published": publish,
                },
            )
        if publish:
            tx.emit(self._event(tenant_id, organization_id, result, last_score, last_grade, model))
        return Rescored(document, changed, publish)

    def _event(
        self,
        tenant_id: str,
        organization_id: str | None,
        result: domain.Score,
        last_score: int | None,
        last_grade: str | None,
        model: Model,
    ) -> CloudEvent:
        payload = HealthScoreChanged(
            tenant_id=tenant_id,
            organization_id=organization_id,
            score=result.score,
            previous_score=last_score,
            grade=result.grade,
            previous_grade=last_grade,
            model_version=model.version,
            measures=[
                HealthMeasure(
                    measure=f.factor,
                    weight=float(f.weight),
                    score=None if f.points is None else float(f.points),
                )
                for f in result.factors
            ],
            computed_at=result.as_of,
        )
        return new_event(
            payload, tenant_id=tenant_id, subject=organization_id or tenant_id, source_api_slug=self.api_slug
        )

    # --- queries and commands ----------------------------------------------------------------------
    def score(self, tenant_id: str, organization_id: str | None) -> dict[str, Any]:
        snapshot = self.score_ref(tenant_id, organization_id).get()
        if not snapshot.exists:
            what = (
                "The tenant's health score"
                if organization_id is None
                else f"Organization {organization_id}'s health score"
            )
            raise not_found(what)
        return snapshot.to_dict() or {}

    def recompute(self, tenant_id: str, organization_id: str | None) -> tuple[dict[str, Any], bool]:
        """Recompute from the stored signals and the current model; writes (and may publish) only what
        changed. Returns the score document and whether it changed."""

        def work(tx: Tx) -> tuple[dict[str, Any], bool]:
            model, _ = self._model_in(tx, tenant_id)
            stored = tx.get(self.score_ref(tenant_id, organization_id))
            if stored is None and organization_id is not None:
                raise not_found(f"Organization {organization_id}'s health score")
            done = self._rescore(
                tx,
                tenant_id,
                organization_id,
                model,
                stored,
                [],
                datetime.now(UTC),
                None,
                write_unchanged=False,
            )
            return done.document, done.changed

        return self.uow.run(work, serialize_on=self.lane(tenant_id))

    def preview(self, tenant_id: str, proposed: Model) -> dict[str, Any]:
        """Old (current model) and new (proposed) scores of the tenant and its organizations, computed
        now from the stored signals. Writes nothing."""
        doc = self.model_document(tenant_id)
        current = Model.from_dict(doc) if doc else domain.default_model()
        proposed = proposed.with_version(current.version + 1)
        now = datetime.now(UTC)
        widest = current if current.window_days >= proposed.window_days else proposed
        signals = self.load_signals(tenant_id, None, widest, now)
        by_org: dict[str, list[Signal]] = {}
        for signal in signals:
            if signal.organization_id is not None:
                by_org.setdefault(signal.organization_id, []).append(signal)
        for snapshot in self.organizations(tenant_id).select(["score"]).limit(PREVIEW_LIMIT).stream():
            by_org.setdefault(snapshot.id, [])

        def both(scope: list[Signal]) -> dict[str, Any]:
            old, new = domain.compute(scope, current, now), domain.compute(scope, proposed, now)
            return {
                "current": {"score": old.score, "grade": old.grade},
                "proposed": {"score": new.score, "grade": new.grade, "factors": new.explanation()},
                "delta": new.score - old.score,
                "grade_changed": old.grade != new.grade,
            }

        organizations = [{"organization_id": org, **both(scope)} for org, scope in by_org.items()]
        organizations.sort(key=lambda o: (o["proposed"]["score"], o["organization_id"]))
        truncated = len(organizations) > PREVIEW_LIMIT
        organizations = organizations[:PREVIEW_LIMIT]
        return {
            "as_of": now,
            "current_model_version": current.version,
            "tenant": both(signals),
            "organizations": organizations,
            "grade_changes": sum(1 for o in organizations if o["grade_changed"]),
            "truncated": truncated,
        }


def build_service(platform: Platform) -> HealthService:
    return HealthService(
        platform.db,
        platform.uow,
        OrganizationDirectory(platform.services),
        platform.catalog.api(API_NAME).slug,
    )
