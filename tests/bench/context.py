"""What every section shares: the running suite, tokens, a tenant, and valid events to send."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from google.cloud import firestore, pubsub_v1

from emulators import identity
from emulators.provision import PUSH_SERVICE_ACCOUNT
from emulators.suite import Suite
from functions.manifest import FunctionSpec
from shared.auth import sign_local_service_token
from shared.catalog import Api, Catalog, schemas_dir
from shared.catalog import Event as CatalogEvent
from shared.clients import firestore_client
from shared.contracts import PAYLOADS, EventPayload
from shared.events import CloudEvent, new_event
from tests.bench.procs import Fleet

OPERATOR_EMAIL = "operator@bench.local"
TASKS_ACCOUNT = "cloud-tasks@{project}.iam.gserviceaccount.com"
SCHEDULER_ACCOUNT = "cloud-scheduler@{project}.iam.gserviceaccount.com"
HTTP_TIMEOUT = 30
AUDIT_ENTRIES = "audit_entries"  # tenants/{tid}/audit_entries, one per audited event


@dataclass
class Bench:
    suite: Suite
    catalog: Catalog
    functions: list[FunctionSpec]
    fleet: Fleet
    workdir: Path
    operator_token: str
    tenant_id: str  # a tenant created through the Tenant API for the bench
    admin_token: str  # that tenant's admin

    @property
    def served(self) -> set[str]:
        return {spec.name for spec in self.functions}

    def url(self, function: str) -> str:
        """The function as the suite's functions host serves it (what push subscriptions point at)."""
        return self.suite.function_url(function)

    def service_token(self, account: str) -> str:
        return sign_local_service_token(self.suite.signing_key, account.format(project=self.suite.project))

    def push_query(self) -> str:
        return "?token=" + self.service_token(PUSH_SERVICE_ACCOUNT)


def redirected_push_endpoints(suite: Suite, functions: list[FunctionSpec]) -> list[str]:
    """The events functions whose push endpoint as provisioned (`<host>/<function>?token=...`, no
    trailing slash) answers a redirect: Pub/Sub push does not follow redirects, so nothing arrives."""
    redirected = []
    for spec in functions:
        if spec.kind == "pubsub-push":
            response = requests.post(
                suite.function_url(spec.name) + "?token=x", json={}, allow_redirects=False, timeout=30
            )
            if response.is_redirect:
                redirected.append(spec.name)
    return redirected


def count(query: Any) -> int:
    """A Firestore count() aggregation of the query."""
    return int(query.count().get()[0][0].value)


def settle_audit(timeout: float) -> tuple[float, int]:
    """Wait (at most `timeout`) until no audit entry anywhere is left unsealed, so a section starts
    from a quiet platform; returns the seconds waited and how many were still unsealed."""
    unsealed = (
        firestore_client()
        .collection_group(AUDIT_ENTRIES)
        .where(filter=firestore.FieldFilter("sealed", "==", False))
    )
    started = time.perf_counter()
    while True:
        left = count(unsealed)
        waited = time.perf_counter() - started
        if left == 0 or waited > timeout:
            return waited, left
        time.sleep(0.2)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_slug(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def create_tenant(session: requests.Session, tenant_api: str, operator_token: str, slug: str) -> str:
    """POST /tenants as the operator; returns the new tenant's id."""
    response = session.post(
        f"{tenant_api}/tenants",
        json={
            "name": f"Bench {slug}",
            "slug": slug,
            "plan": "growth",
            "admin_email": f"admin@{slug}.example",
        },
        headers=bearer(operator_token),
        timeout=HTTP_TIMEOUT,
    )
    if response.status_code != 201:
        raise RuntimeError(f"POST /tenants answered {response.status_code}: {response.text[:500]}")
    return str(response.json()["id"])


def prepare(
    suite: Suite, catalog: Catalog, functions: list[FunctionSpec], fleet: Fleet, workdir: Path
) -> Bench:
    operator_token = identity.token_for(OPERATOR_EMAIL, {"platform_operator": True, "roles": []})
    slug = new_slug("bench")
    with requests.Session() as session:
        tenant_id = create_tenant(session, suite.function_url("tenant_api"), operator_token, slug)
    admin_token = identity.token_for(f"admin@{slug}.example", {"tenant_id": tenant_id, "roles": ["admin"]})
    return Bench(suite, catalog, functions, fleet, workdir, operator_token, tenant_id, admin_token)


# --- events ---------------------------------------------------------------------------------------------


def example_data(event: CatalogEvent) -> dict[str, Any]:
    """The documented example of the event's payload (schemas/events/<slug>/v1.json)."""
    schema = json.loads((schemas_dir() / event.schema_path).read_text(encoding="utf-8"))
    example: dict[str, Any] = schema["examples"][0]
    return example


def envelope(
    catalog: Catalog, event: CatalogEvent, payload: EventPayload, tenant_id: str, subject: str
) -> CloudEvent:
    """A CloudEvent as the event's publisher would send it (unique id)."""
    if event.is_external:
        return new_event(
            payload, tenant_id=tenant_id, subject=subject, source_api_slug="", source="//bench.local/external"
        )
    publisher = catalog.api(event.publisher)
    return new_event(payload, tenant_id=tenant_id, subject=subject, source_api_slug=publisher.slug)


def example_envelope(catalog: Catalog, event: CatalogEvent, tenant_id: str) -> CloudEvent:
    """The event's documented example, for `tenant_id`. The payload keeps the example's own ids (so a
    handler reacting to a `tenant_id` in the payload finds no such tenant and changes nothing)."""
    payload = PAYLOADS[event.name].model_validate(example_data(event))
    return envelope(catalog, event, payload, tenant_id, subject=f"bench-{secrets.token_hex(6)}")


def push_body(project: str, event: CatalogEvent, api: Api, cloud_event: CloudEvent) -> dict[str, Any]:
    """A Pub/Sub push request body, as Pub/Sub sends it to the API's subscription of the event."""
    data, attributes = cloud_event.to_message()
    return {
        "message": {
            "data": base64.b64encode(data).decode(),
            "attributes": attributes,
            "messageId": secrets.token_hex(8),
            "publishTime": cloud_event.time.isoformat(),
        },
        "subscription": f"projects/{project}/subscriptions/{event.push_subscription(api)}",
    }


@contextmanager
def push_topic(project: str, endpoint: str) -> Iterator[str]:
    """A fresh topic and push subscription (ordering on, as provision() makes them), deleted after."""
    name = f"bench-raw-{secrets.token_hex(4)}"
    topic = f"projects/{project}/topics/{name}"
    subscription = f"projects/{project}/subscriptions/{name}"
    publisher_admin, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    publisher_admin.create_topic(name=topic)
    subscriber.create_subscription(
        request={
            "name": subscription,
            "topic": topic,
            "ack_deadline_seconds": 60,
            "enable_message_ordering": True,
            "push_config": {"push_endpoint": endpoint},
        }
    )
    try:
        yield topic
    finally:
        subscriber.delete_subscription(subscription=subscription)
        publisher_admin.delete_topic(topic=topic)
