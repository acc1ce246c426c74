"""Create, from the catalog, everything the functions expect on the emulators: topics, dead-letter
topics, push subscriptions to each API's events function, partner pull subscriptions, and queues.

Idempotent: run it again and it converges (a push subscription left pointing at an old address is
repointed). Terraform creates the same names in a real project (see terraform/).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from google.api_core import exceptions as gexc
from google.protobuf import duration_pb2

from functions.manifest import discover
from shared.auth import sign_local_service_token
from shared.catalog import Catalog

PUSH_SERVICE_ACCOUNT = "pubsub-push@{project}.iam.gserviceaccount.com"
TASKS_SERVICE_ACCOUNT = "cloud-tasks@{project}.iam.gserviceaccount.com"
# Pub/Sub's own dead-lettering is a backstop behind the intake's (which counts attempts itself).
BACKSTOP_EXTRA_ATTEMPTS = 5


def _duration(seconds: float) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=int(seconds), nanos=round(seconds % 1 * 1e9))


@dataclass
class Provisioned:
    topics: list[str] = field(default_factory=list)
    push_subscriptions: list[str] = field(default_factory=list)
    pull_subscriptions: list[str] = field(default_factory=list)
    queues: list[str] = field(default_factory=list)
    skipped_apis: list[str] = field(default_factory=list)  # subscribers with no events function yet


def provision(
    catalog: Catalog,
    project: str,
    functions_url: str,
    signing_key: str,
    max_delivery_attempts: int = 5,
    location: str = "europe-west1",
) -> Provisioned:
    from google.cloud import pubsub_v1, tasks_v2

    from shared.clients import tasks_client

    report = Provisioned()
    served = {spec.name for spec in discover()}
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()

    def topic(name: str) -> str:
        path: str = publisher.topic_path(project, name)
        with contextlib.suppress(gexc.AlreadyExists):
            publisher.create_topic(name=path)
        report.topics.append(name)
        return path

    def subscription(name: str, topic_path: str, push_endpoint: str | None, dead_letter: str | None) -> None:
        path = subscriber.subscription_path(project, name)
        request: dict[str, object] = {
            "name": path,
            "topic": topic_path,
            "ack_deadline_seconds": 60,
            "enable_message_ordering": True,
        }
        if push_endpoint:
            request["push_config"] = {"push_endpoint": push_endpoint}
            request["retry_policy"] = {
                "minimum_backoff": duration_pb2.Duration(seconds=1),
                "maximum_backoff": duration_pb2.Duration(seconds=60),
            }
        if dead_letter:
            request["dead_letter_policy"] = {
                "dead_letter_topic": dead_letter,
                "max_delivery_attempts": max_delivery_attempts + BACKSTOP_EXTRA_ATTEMPTS,
            }
        try:
            subscriber.create_subscription(request=request)
        except gexc.AlreadyExists:
            if push_endpoint:
                subscriber.modify_push_config(
                    request={"subscription": path, "push_config": {"push_endpoint": push_endpoint}}
                )

    dead_letters: dict[str, str] = {}
    for api in catalog.apis:
        dead_letters[api.name] = topic(api.dead_letter_topic)
        subscription(api.dead_letter_subscription, dead_letters[api.name], None, None)
        report.pull_subscriptions.append(api.dead_letter_subscription)

    push_token = sign_local_service_token(
        signing_key, PUSH_SERVICE_ACCOUNT.format(project=project), ttl_seconds=30 * 24 * 3600
    )
    partners = {p.name: p for p in catalog.partners}
    for event in catalog.events:
        topic_path = topic(event.topic)
        for api_name in event.subscribers:
            api = catalog.api(api_name)
            if api.events_function not in served:
                if api.name not in report.skipped_apis:
                    report.skipped_apis.append(api.name)
                continue
            endpoint = f"{functions_url}/{api.events_function}?token={push_token}"
            subscription(event.push_subscription(api), topic_path, endpoint, dead_letters[api.name])
            report.push_subscriptions.append(event.push_subscription(api))
        for partner_name in event.partner_subscribers:
            name = event.partner_subscription(partners[partner_name])
            subscription(name, topic_path, None, None)
            report.pull_subscriptions.append(name)

    tasks = tasks_client()
    parent = f"projects/{project}/locations/{location}"
    for queue in catalog.queues:
        body = tasks_v2.Queue(
            name=f"{parent}/queues/{queue.name}",
            retry_config=tasks_v2.RetryConfig(
                max_attempts=queue.max_attempts,
                min_backoff=_duration(queue.min_backoff_seconds),
                max_backoff=_duration(queue.max_backoff_seconds),
                max_doublings=queue.max_doublings,
            ),
            rate_limits=tasks_v2.RateLimits(
                max_dispatches_per_second=queue.max_dispatches_per_second,
                max_concurrent_dispatches=queue.max_concurrent_dispatches,
            ),
        )
        try:
            tasks.create_queue(parent=parent, queue=body)
        except gexc.AlreadyExists:
            tasks.update_queue(queue=body)
        report.queues.append(queue.name)
    return report


def ensure_secret(project: str, secret_id: str, value: str) -> str:
    """A Secret Manager secret with one version holding `value`, unless it exists already; answers the
    value the secret holds (its latest version)."""
    from google.api_core import exceptions as gexc

    from shared.clients import secrets_client

    client = secrets_client()
    parent = f"projects/{project}"
    try:
        client.create_secret(
            request={"parent": parent, "secret_id": secret_id, "secret": {"replication": {"automatic": {}}}}
        )
    except gexc.AlreadyExists:
        latest = f"{parent}/secrets/{secret_id}/versions/latest"
        return bytes(client.access_secret_version(request={"name": latest}).payload.data).decode()
    client.add_secret_version(
        request={"parent": f"{parent}/secrets/{secret_id}", "payload": {"data": value.encode()}}
    )
    return value
