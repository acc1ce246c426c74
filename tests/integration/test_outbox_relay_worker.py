"""The outbox relay worker (workers/outbox_relay.py, the GKE container's command) as a local process
against the emulator suite: an event whose request died after the commit is published by the running
worker, it is marked published, and SIGTERM stops the worker cleanly."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.api_core import exceptions as gexc
from google.cloud import firestore, pubsub_v1

from emulators.suite import Suite
from shared.events import CloudEvent
from shared.uow import Outbox, Tx, UnitOfWork
from tests.conftest import eventually, reset_firestore
from tests.integration.test_outbox import (
    RETENTION,
    FailingPublisher,
    Inbox,
    catalog,
    new_id,
    outbox_entry,
    tenant_created,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(suite: Suite) -> str:
    """A project of this test's own: its Firestore holds only the entries this test leaves."""
    name = f"{suite.project}-relay-worker"
    reset_firestore(name)
    return name


@pytest.fixture
def inbox(project: str) -> Iterator[Inbox]:
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    topic = publisher.topic_path(project, catalog().event("Tenant Created").topic)
    with contextlib.suppress(gexc.AlreadyExists):
        publisher.create_topic(name=topic)
    path = subscriber.subscription_path(project, "relay-worker-inbox")
    with contextlib.suppress(gexc.NotFound):
        subscriber.delete_subscription(request={"subscription": path})
    subscriber.create_subscription(request={"name": path, "topic": topic, "enable_message_ordering": True})
    yield Inbox(subscriber, path)
    with contextlib.suppress(gexc.NotFound):
        subscriber.delete_subscription(request={"subscription": path})
    subscriber.close()


@pytest.fixture
def worker(suite: Suite, project: str, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    heartbeat = tmp_path / "heartbeat"
    env = {
        **os.environ,
        **suite.env,
        "CMP_PROJECT_ID": project,
        "CMP_OUTBOX_RELAY_GRACE_SECONDS": "0",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "workers.outbox_relay", "--interval", "0.2", "--heartbeat", str(heartbeat)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    yield process, heartbeat
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def test_the_worker_publishes_what_a_crashed_request_left_and_stops_on_sigterm(
    project: str, inbox: Inbox, worker: tuple[subprocess.Popen[str], Path]
) -> None:
    process, heartbeat = worker
    db = firestore.Client(project=project)
    # A request commits its aggregate and outbox entry, then its publish fails (it died): unpublished.
    outbox = Outbox(db, FailingPublisher, catalog(), project, RETENTION)
    event = tenant_created(new_id())

    def work(tx: Tx) -> None:
        tx.create(db.collection("test_aggregates").document(event.subject or event.id), {"name": "Acme"})
        tx.emit(event)

    UnitOfWork(db, outbox).run(work)
    entry = outbox_entry(db, event.id)
    assert entry is not None and entry["published"] is False

    # The running worker publishes it, once, and marks it.
    (message,) = inbox.wait_for(event.id)
    assert CloudEvent.from_message(message.data) == event
    assert eventually(lambda: (outbox_entry(db, event.id) or {}).get("published"), what="entry marked")
    assert process.poll() is None, "the worker keeps running"

    # Its liveness probe sees a fresh heartbeat.
    check = [sys.executable, "-m", "workers.outbox_relay", "--check", "--heartbeat", str(heartbeat)]
    assert subprocess.run(check, cwd=ROOT, check=False, timeout=60).returncode == 0

    # A pod stopping: SIGTERM ends it after the current pass, with exit code 0.
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "outbox relay stopped" in output
    assert inbox.ids().count(event.id) == 1


def test_the_liveness_check_fails_without_a_heartbeat(tmp_path: Path) -> None:
    check = [sys.executable, "-m", "workers.outbox_relay", "--check", "--heartbeat", str(tmp_path / "none")]
    assert subprocess.run(check, cwd=ROOT, check=False, timeout=60).returncode == 1
