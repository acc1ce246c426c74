"""Cloud Tasks emulator: the official client over real gRPC on loopback, real HTTP targets, no mocks."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from google.api_core import exceptions as gexc
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport
from google.protobuf import timestamp_pb2
from google.rpc import code_pb2

from emulators.tasks_emulator import OIDC_ISSUER, TasksEmulator, retry_delay_seconds
from tests.emulators.helpers import (
    REPO_ROOT,
    WAIT_SECONDS,
    close_grpc_client,
    grpc_client,
    run_cli_until_signal,
)

SIGNING_KEY = "local-test-signing-key-0123456789abcdef"
LOCATION = "projects/test-project/locations/europe-west1"
FAR_FUTURE = timedelta(hours=1)


# --------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class Hit:
    """One request as received by the target."""

    method: str
    raw_path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    received_ns: int


class Receiver:
    """HTTP target on 127.0.0.1 recording every request; answers per path as scripted by the test."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._hits: list[Hit] = []
        self._statuses: dict[str, list[int]] = {}
        self._delays: dict[str, float] = {}
        self._active: dict[str, int] = {}
        self.max_active: dict[str, int] = {}
        self._closing = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                receiver._serve(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_port}{path}"

    def script(self, path: str, statuses: list[int], delay: float = 0.0) -> None:
        """Answer ``path`` with these statuses in order (the last one repeats), after ``delay`` seconds."""
        with self._cond:
            self._statuses[path] = list(statuses)
            self._delays[path] = delay

    def hits(self, path: str) -> list[Hit]:
        with self._cond:
            return [h for h in self._hits if urllib.parse.urlsplit(h.raw_path).path == path]

    def wait_for(self, path: str, count: int, timeout: float = WAIT_SECONDS) -> list[Hit]:
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self._matching(path)) >= count, timeout=timeout)
            hits = self._matching(path)
        assert ok, f"expected {count} requests to {path} within {timeout}s, got {len(hits)}"
        return hits

    def _matching(self, path: str) -> list[Hit]:
        return [h for h in self._hits if urllib.parse.urlsplit(h.raw_path).path == path]

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length)
        path = urllib.parse.urlsplit(handler.path).path
        hit = Hit(
            method=handler.command,
            raw_path=handler.path,
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body,
            received_ns=time.time_ns(),
        )
        with self._cond:
            self._hits.append(hit)
            self._active[path] = self._active.get(path, 0) + 1
            self.max_active[path] = max(self.max_active.get(path, 0), self._active[path])
            statuses = self._statuses.get(path, [200])
            status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
            delay = self._delays.get(path, 0.0)
            self._cond.notify_all()
        if delay:
            self._closing.wait(delay)
        with self._cond:
            # Decrement before answering: the emulator can't start the next attempt while this one counts.
            self._active[path] -= 1
        try:
            handler.send_response(status)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        except OSError:
            pass  # the emulator gave up on us (dispatch deadline)

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT_SECONDS, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def task_gone(client: tasks_v2.CloudTasksClient, name: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            client.get_task(name=name)
        except gexc.NotFound:
            return True
        return False

    return check


def make_client(address: str) -> tasks_v2.CloudTasksClient:
    return grpc_client(tasks_v2.CloudTasksClient, CloudTasksGrpcTransport, address)


def close_client(client: tasks_v2.CloudTasksClient) -> None:
    close_grpc_client(client, CloudTasksGrpcTransport)


def timestamp(ns: int) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(ns)
    return ts


def in_future(delta: timedelta) -> timestamp_pb2.Timestamp:
    return timestamp(time.time_ns() + int(delta.total_seconds() * 1e9))


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def emulator() -> Iterator[TasksEmulator]:
    # Sub-second dispatch deadlines keep the deadline test fast; the real floor is 15 s.
    emu = TasksEmulator(signing_key=SIGNING_KEY, min_dispatch_deadline_seconds=0.1)
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def client(emulator: TasksEmulator) -> Iterator[tasks_v2.CloudTasksClient]:
    cl = make_client(emulator.address)
    yield cl
    close_client(cl)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    yield rec
    rec.close()


_queue_ids = itertools.count(1)


@pytest.fixture
def make_queue(client: tasks_v2.CloudTasksClient) -> Callable[..., tasks_v2.Queue]:
    def create(**fields: Any) -> tasks_v2.Queue:
        name = f"{LOCATION}/queues/q-{next(_queue_ids)}"
        return client.create_queue(parent=LOCATION, queue=tasks_v2.Queue(name=name, **fields))

    return create


def fast_retries(**overrides: Any) -> tasks_v2.RetryConfig:
    settings: dict[str, Any] = {
        "min_backoff": timedelta(seconds=0.05),
        "max_backoff": timedelta(seconds=1),
    }
    settings.update(overrides)
    return tasks_v2.RetryConfig(**settings)


def http_task(receiver: Receiver, path: str, **fields: Any) -> tasks_v2.Task:
    request_fields = fields.pop("http", {})
    return tasks_v2.Task(
        http_request=tasks_v2.HttpRequest(url=receiver.url(path), **request_fields), **fields
    )


# --------------------------------------------------------------------------- queues


def test_create_queue_fills_real_service_defaults(
    client: tasks_v2.CloudTasksClient, make_queue: Callable[..., tasks_v2.Queue]
) -> None:
    queue = make_queue()

    got = client.get_queue(name=queue.name)
    assert got.state == tasks_v2.Queue.State.RUNNING
    assert got.retry_config.max_attempts == 100
    assert got.retry_config.min_backoff == timedelta(seconds=0.1)
    assert got.retry_config.max_backoff == timedelta(seconds=3600)
    assert got.retry_config.max_doublings == 16
    assert got.rate_limits.max_dispatches_per_second == 500
    assert got.rate_limits.max_concurrent_dispatches == 1000
    assert queue.name in [q.name for q in client.list_queues(parent=LOCATION)]

    with pytest.raises(gexc.AlreadyExists):
        client.create_queue(parent=LOCATION, queue=tasks_v2.Queue(name=queue.name))


def test_queue_errors_are_grpc_statuses(client: tasks_v2.CloudTasksClient) -> None:
    with pytest.raises(gexc.NotFound):
        client.get_queue(name=f"{LOCATION}/queues/missing")
    with pytest.raises(gexc.InvalidArgument):
        client.create_queue(parent=LOCATION, queue=tasks_v2.Queue(name="projects/other/locations/x/queues/q"))
    with pytest.raises(gexc.InvalidArgument):
        client.create_queue(
            parent=LOCATION,
            queue=tasks_v2.Queue(
                name=f"{LOCATION}/queues/bad-backoff",
                retry_config=tasks_v2.RetryConfig(
                    min_backoff=timedelta(seconds=10), max_backoff=timedelta(seconds=1)
                ),
            ),
        )
    with pytest.raises(gexc.NotFound):
        client.create_task(
            parent=f"{LOCATION}/queues/missing", task=tasks_v2.Task(http_request={"url": "http://x/"})
        )


def test_update_queue_honours_mask_and_delete_removes_it(
    client: tasks_v2.CloudTasksClient, make_queue: Callable[..., tasks_v2.Queue]
) -> None:
    queue = make_queue(rate_limits=tasks_v2.RateLimits(max_concurrent_dispatches=7))

    updated = client.update_queue(
        queue=tasks_v2.Queue(
            name=queue.name,
            retry_config=tasks_v2.RetryConfig(max_attempts=3, max_doublings=2),
            rate_limits=tasks_v2.RateLimits(max_concurrent_dispatches=1),
        ),
        update_mask={"paths": ["retry_config.max_attempts"]},
    )
    assert updated.retry_config.max_attempts == 3
    assert updated.retry_config.max_doublings == 16  # not in the mask
    assert updated.rate_limits.max_concurrent_dispatches == 7  # not in the mask

    client.delete_queue(name=queue.name)
    with pytest.raises(gexc.NotFound):
        client.get_queue(name=queue.name)
    with pytest.raises(gexc.NotFound):
        client.delete_queue(name=queue.name)


# --------------------------------------------------------------------------- task creation and dedupe


def test_unnamed_task_gets_generated_name(
    client: tasks_v2.CloudTasksClient, receiver: Receiver, make_queue: Callable[..., tasks_v2.Queue]
) -> None:
    queue = make_queue()
    first = client.create_task(
        parent=queue.name, task=http_task(receiver, "/unnamed", schedule_time=in_future(FAR_FUTURE))
    )
    second = client.create_task(
        parent=queue.name, task=http_task(receiver, "/unnamed", schedule_time=in_future(FAR_FUTURE))
    )

    for task in (first, second):
        prefix, task_id = task.name.rsplit("/tasks/", 1)
        assert prefix == queue.name
        assert task_id.isdigit()
    assert first.name != second.name


def test_named_task_dedupe_while_pending_and_after_completion(
    client: tasks_v2.CloudTasksClient, receiver: Receiver, make_queue: Callable[..., tasks_v2.Queue]
) -> None:
    queue = make_queue()
    name = f"{queue.name}/tasks/welcome-email-42"
    client.create_task(parent=queue.name, task=http_task(receiver, "/dedupe", name=name))

    with pytest.raises(gexc.AlreadyExists):
        client.create_task(parent=queue.name, task=http_task(receiver, "/dedupe", name=name))

    receiver.wait_for("/dedupe", 1)
    wait_until(task_gone(client, name), what="completed task to disappear")
    with pytest.raises(gexc.AlreadyExists):
        client.create_task(parent=queue.name, task=http_task(receiver, "/dedupe", name=name))
    assert len(receiver.hits("/dedupe")) == 1


def test_tombstone_window_is_configurable(receiver: Receiver) -> None:
    with TasksEmulator(tombstone_seconds=0.3) as emu:
        cl = make_client(emu.address)
        queue = cl.create_queue(parent=LOCATION, queue=tasks_v2.Queue(name=f"{LOCATION}/queues/tomb"))
        name = f"{queue.name}/tasks/once"
        task = http_task(receiver, "/tomb", name=name, schedule_time=in_future(FAR_FUTURE))
        cl.create_task(parent=queue.name, task=task)
        cl.delete_task(name=name)
        with pytest.raises(gexc.AlreadyExists):
            cl.create_task(parent=queue.name, task=task)

        def recreated() -> bool:
            try:
                cl.create_task(parent=queue.name, task=task)
            except gexc.AlreadyExists:
                return False
            return True

        wait_until(recreated, what="tombstone to expire")
        close_client(cl)


def test_invalid_tasks_are_rejected(
    client: tasks_v2.CloudTasksClient, receiver: Receiver, make_queue: Callable[..., tasks_v2.Queue]
) -> None:
    queue = make_queue()
    bad_tasks = [
        http_task(receiver, "/x", http={"http_method": tasks_v2.HttpMethod.GET, "body": b"no body on GET"}),
        http_task(
            receiver, "/x", http={"oauth_token": {"service_account_email": "sa@p.iam.gserviceaccount.com"}}
        ),
        http_task(receiver, "/x", name=f"{LOCATION}/queues/other/tasks/t1"),
        http_task(receiver, "/x", dispatch_deadline=timedelta(hours=1)),
        tasks_v2.Task(http_request={"url": "ftp://127.0.0.1/x"}),
    ]
    for task in bad_tasks:
        with pytest.raises(gexc.InvalidArgument):
            client.create_task(parent=queue.name, task=task)


# --------------------------------------------------------------------------- delivery


def test_delivers_body_headers_and_verifiable_oidc_token(
    client: tasks_v2.CloudTasksClient, receiver: Receiver, make_queue: Callable[..., tasks_v2.Queue]
) -> None:
    queue = make_queue()
    email = "tasks-invoker@test-project.iam.gserviceaccount.com"
    task = client.create_task(
        parent=queue.name,
        task=http_task(
            receiver,
            "/deliver?tenant=t1",
            http={
                "body": b'{"customer": 7}',
                "headers": {
                    "Content-Type": "application/json",
                    "X-Tenant": "t1",
                    "User-Agent": "spoofed",
                    "X-CloudTasks-TaskName": "spoofed",
                },
                "oidc_token": {"service_account_email": email},
            },
        ),
    )

    (hit,) = receiver.wait_for("/deliver", 1)
    assert hit.method == "POST"
    assert hit.raw_path == "/deliver?tenant=t1"
    assert hit.body == b'{"customer": 7}'
    assert hit.headers["content-type"] == "application/json"
    assert hit.headers["x-tenant"] == "t1"
    assert hit.headers["user-agent"] == "Google-Cloud-Tasks"
    assert hit.headers["x-cloudtasks-queuename"] == queue.name.rsplit("/", 1)[-1]
    assert hit.headers["x-cloudtasks-taskname"] == task.name.rsplit("/", 1)[-1]
    assert hit.headers["x-cloudtasks-taskretrycount"] == "0"
    assert hit.headers["x-cloudtasks-taskexecutioncount"] == "0"
    assert float(hit.headers["x-cloudtasks-tasketa"]) > 0
    assert "x-cloudtasks-taskpreviousresponse" not in hit.headers

    scheme, token = hit.headers["authorization"].split(" ", 1)
    assert scheme == "Bearer"
    claims = jwt.decode(
        token, SIGNING_KEY, algorithms=["HS256"], audience=receiver.url("/deliver"), issuer=OIDC_ISSUER
    )
    assert claims["email"] == email
    assert claims["sub"] == email
    assert claims["email_verified"] is True
    assert claims["exp"] - claims["iat"] == 3600
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "x" * 40, algorithms=["HS256"], audience=receiver.url("/deliver"))


def test_explicit_audience_method_and_default_content_type(
    client: tasks_v2.CloudTasksClient, receiver: Receiver, make_queue: Callable[..., tasks_v2.Queue]
) -> None:
    queue = make_queue()
    client.create_task(
        parent=queue.name,
        task=http_task(
            receiver,
            "/put",
            http={
                "http_method": tasks_v2.HttpMethod.PUT,
                "body": b"\x00\x01",
                "oidc_token": {
                    "service_account_email": "sa@p.iam.gserviceaccount.com",
                    "audience": "https://api",
                },
            },
        ),
    )

    (hit,) = receiver.wait_for("/put", 1)
    assert hit.method == "PUT"
    assert hit.headers["content-type"] == "application/octet-stream"
    claims = jwt.decode(
        hit.headers["authorization"].split(" ", 1)[1],
        SIGNING_KEY,
        algorithms=["HS256"],
        audience="https://api",
    )
    assert claims["aud"] == "https://api"


def test_oidc_needs_a_signing_key(receiver: Receiver) -> None:
    with TasksEmulator() as emu:
        cl = make_client(emu.address)
        queue = cl.create_queue(parent=LOCATION, queue=tasks_v2.Queue(name=f"{LOCATION}/queues/nokey"))
        task = http_task(
            receiver, "/nokey", http={"oidc_token": {"service_account_email": "sa@p.iam.gserviceaccount.com"}}
        )
        with pytest.raises(gexc.FailedPrecondition):
            cl.create_task(parent=queue.name, task=task)
        close_client(cl)


# --------------------------------------------------------------------------- retries


def test_retry_delay_follows_documented_doubling_then_linear_growth() -> None:
    # The example from the RetryConfig reference: min 10 s, max 300 s, 3 doublings.
    delays = [retry_delay_seconds(n, 10, 300, 3) for n in range(1, 9)]
    assert delays == [10, 20, 40, 80, 160, 240, 300, 300]
    assert retry_delay_seconds(1000, 0.1, 3600, 16) == 3600


def test_failed_attempts_are_retried_with_growing_backoff(
    client: tasks_v2.CloudTasksClient, receiver: Receiver, make_queue: Callable[..., tasks_v2.Queue]
) -> None:
    queue = make_queue(
        retry_config=fast_retries(min_backoff=timedelta(seconds=0.2), max_backoff=timedelta(seconds=5))
    )
    receiver.script("/flaky", [503, 404, 200])
    task = client.create_task(parent=queue.name, task=http_task(receiver, "/flaky"))

    hits = receiver.wait_for("/flaky", 3)
    wait_until(task_gone(client, task.name), what="task to be deleted after success")
    assert len(receiver.hits("/flaky")) == 3

    assert [h.headers["x-cloudtasks-taskretrycount"] for h in hits] == ["0", "1", "2"]
    # A 5xx is not an execution; the 404 is.
    assert [h.headers["x-cloudtasks-taskexecutioncount"] for h in hits] == ["0", "0", "1"]
    assert [h.headers.get("x-cloudtasks-taskpreviousresponse") for h in hits] == [None, "503", "404"]
    assert "x-cloudtasks-taskretryreason" not in hits[0].headers
    assert hits[1].headers["x-cloudtasks-taskretryreason"]
    etas = [float(h.headers["x-cloudtasks-tasketa"]) for h in hits]
    assert etas == sorted(etas)

    first_gap = hits[1].received_ns - hits[0].received_ns
    second_gap = hits[2].received_ns - hits[1].received_ns
    assert first_gap >= 0.2e9  # never earlier than min_backoff
    assert second_gap > first_gap  # doubled


def test_max_attempts_stops_retries_and_keeps_a_tombstone(
    client: tasks_v2.CloudTasksClient, receiver: Receiver, make_queue: Callable[..., tasks_v2.Queue]
) -> None:
    queue = make_queue(retry_config=fast_retries(max_attempts=3))
    receiver.script("/always-500", [500])
    name = f"{queue.name}/tasks/doomed"
    client.create_task(parent=queue.name, task=http_task(receiver, "/always-500", name=name))

    receiver.wait_for("/always-500", 3)
    wait_until(task_gone(client, name), what="task to be dropped")
    # Dropped only after its last attempt finished, so nothing else can be in flight.
    assert len(receiver.hits("/always-500")) == 3
    with pytest.raises(gexc.AlreadyExists):
        client.create_task(parent=queue.name, task=http_task(receiver, "/always-500", name=name))


def test_max_retry_duration_bounds_unlimited_attempts(
    client: tasks_v2.CloudTasksClient, receiver: Receiver, make_queue: Callable[..., tasks_v2.Queue]
) -> None:
    queue = make_queue(
        retry_config=fast_retries(
            max_attempts=-1, max_retry_duration=timedelta(seconds=0.4), max_backoff=timedelta(seconds=0.1)
        )
    )
    assert queue.retry_config.max_attempts == -1
    receiver.script("/aging", [500])
    task = client.create_task(parent=queue.name, task=http_task(receiver, "/aging"))

    wait_until(task_gone(client, task.name), what="task to age out")
    hits = receiver.hits("/aging")
    assert len(hits) >= 2
    assert hits[-1].received_ns - hits[0].received_ns >= 0.4e9 - 0.2e9  # retried for about the duration


def test_task_fields_track_attempts(
    client: tasks_v2.CloudTasksClient, receiver: Receiver, make_queue: Callable[..., tasks_v2.Queue]
) -> None:
    queue = make_queue(
        retry_config=fast_retries(min_backoff=timedelta(seconds=30), max_backoff=timedelta(seconds=30))
    )
    receiver.script("/once-500", [500])
    task = client.create_task(parent=queue.name, task=http_task(receiver, "/once-500"))

    def answered() -> bool:
        return client.get_task(name=task.name).response_count == 1

    wait_until(answered, what="first response to be recorded")
    got = client.get_task(name=task.name)
    assert got.dispatch_count == 1
    assert got.first_attempt.dispatch_time == got.last_attempt.dispatch_time
    assert got.last_attempt.response_status.code == code_pb2.INTERNAL  # HTTP 500 maps to INTERNAL
    assert got.last_attempt.response_time >= got.last_attempt.dispatch_time
    assert got.schedule_time > got.last_attempt.response_time  # next retry is in the future
    client.delete_task(name=task.name)


# --------------------------------------------------------------------------- scheduling and rate limits


def test_schedule_time_delays_dispatch(
    client: tasks_v2.CloudTasksClient, receiver: Receiver, make_queue: Callable[..., tasks_v2.Queue]
) -> None:
    queue = make_queue()
    scheduled_ns = time.time_ns() + 700_000_000
    task = client.create_task(
        parent=queue.name, task=http_task(receiver, "/later", schedule_time=timestamp(scheduled_ns))
    )
    assert task.schedule_time.timestamp_pb().ToNanoseconds() == scheduled_ns

    (hit,) = receiver.wait_for("/later", 1)
    assert hit.received_ns >= scheduled_ns
    assert abs(float(hit.headers["x-cloudtasks-tasketa"]) - scheduled_ns / 1e9) < 1e-5


def test_max_concurrent_dispatches_one_never_overlaps(
    client: tasks_v2.CloudTasksClient, receiver: Receiver, make_queue: Callable[..., tasks_v2.Queue]
) -> None:
    serial = make_queue(rate_limits=tasks_v2.RateLimits(max_concurrent_dispatches=1))
    parallel = make_queue()
    receiver.script("/serial", [200], delay=0.15)
    receiver.script("/parallel", [200], delay=0.3)
    for _ in range(4):
        client.create_task(parent=serial.name, task=http_task(receiver, "/serial"))
        client.create_task(parent=parallel.name, task=http_task(receiver, "/parallel"))

    receiver.wait_for("/serial", 4)
    receiver.wait_for("/parallel", 4)
    assert receiver.max_active["/serial"] == 1
    assert receiver.max_active["/parallel"] > 1  # the receiver can observe overlap at all


def test_max_dispatches_per_second_spreads_dispatches(
    client: tasks_v2.CloudTasksClient, receiver: Receiver, make_queue: Callable[..., tasks_v2.Queue]
) -> None:
    queue = make_queue(rate_limits=tasks_v2.RateLimits(max_dispatches_per_second=4))
    burst = queue.rate_limits.max_burst_size
    count = burst + 2
    for _ in range(count):
        client.create_task(parent=queue.name, task=http_task(receiver, "/rate"))

    hits = receiver.wait_for("/rate", count)
    times = sorted(h.received_ns for h in hits)
    # After the burst, 2 more tokens take 0.5 s at 4/s; margin for receive-side jitter.
    assert times[-1] - times[0] >= 0.75 * 2 / 4 * 1e9


def test_dispatch_deadline_cuts_slow_target(
    client: tasks_v2.CloudTasksClient, receiver: Receiver, make_queue: Callable[..., tasks_v2.Queue]
) -> None:
    queue = make_queue(retry_config=fast_retries(max_attempts=2))
    receiver.script("/slow", [200], delay=3.0)
    task = client.create_task(
        parent=queue.name, task=http_task(receiver, "/slow", dispatch_deadline=timedelta(seconds=0.3))
    )
    assert task.dispatch_deadline == timedelta(seconds=0.3)

    first, second = receiver.wait_for("/slow", 2)
    # The retry came before the target would have answered the first attempt: the attempt was cut.
    assert second.received_ns - first.received_ns < 3.0e9
    assert second.headers["x-cloudtasks-taskretrycount"] == "1"
    assert second.headers["x-cloudtasks-taskexecutioncount"] == "0"
    assert "x-cloudtasks-taskpreviousresponse" not in second.headers
    assert second.headers["x-cloudtasks-taskretryreason"] == "DEADLINE_EXCEEDED"
    # Both attempts timed out (counted as failures), so max_attempts=2 drops the task.
    wait_until(task_gone(client, task.name), what="timed-out task to be dropped")


# --------------------------------------------------------------------------- queue state and task management


def test_pause_and_resume(
    client: tasks_v2.CloudTasksClient, receiver: Receiver, make_queue: Callable[..., tasks_v2.Queue]
) -> None:
    queue = make_queue()
    assert client.pause_queue(name=queue.name).state == tasks_v2.Queue.State.PAUSED
    task = client.create_task(parent=queue.name, task=http_task(receiver, "/paused"))

    # Proving a negative needs some wall time; 0.3 s is ample for an immediate task on loopback.
    time.sleep(0.3)
    assert receiver.hits("/paused") == []
    assert client.get_task(name=task.name).dispatch_count == 0

    assert client.resume_queue(name=queue.name).state == tasks_v2.Queue.State.RUNNING
    receiver.wait_for("/paused", 1)


def test_deleted_task_is_never_dispatched(
    client: tasks_v2.CloudTasksClient, receiver: Receiver, make_queue: Callable[..., tasks_v2.Queue]
) -> None:
    queue = make_queue()
    doomed = client.create_task(
        parent=queue.name,
        task=http_task(receiver, "/deleted", schedule_time=in_future(timedelta(seconds=0.3))),
    )
    client.create_task(
        parent=queue.name,
        task=http_task(receiver, "/sentinel", schedule_time=in_future(timedelta(seconds=0.4))),
    )
    client.delete_task(name=doomed.name)

    with pytest.raises(gexc.NotFound):
        client.get_task(name=doomed.name)
    with pytest.raises(gexc.NotFound):
        client.delete_task(name=doomed.name)
    # The sentinel was due after the deleted task, so once it arrives the deleted one would have too.
    receiver.wait_for("/sentinel", 1)
    assert receiver.hits("/deleted") == []


def test_get_and_list_tasks(
    client: tasks_v2.CloudTasksClient, receiver: Receiver, make_queue: Callable[..., tasks_v2.Queue]
) -> None:
    queue = make_queue()
    names = [f"{queue.name}/tasks/t{i}" for i in range(5)]
    for name in names:
        client.create_task(
            parent=queue.name,
            task=http_task(
                receiver, "/listed", name=name, schedule_time=in_future(FAR_FUTURE), http={"body": b"p"}
            ),
        )

    basic = client.get_task(name=names[0])
    assert basic.name == names[0]
    assert basic.http_request.url == receiver.url("/listed")
    assert basic.http_request.body == b""  # BASIC view hides the payload
    assert basic.dispatch_deadline == timedelta(minutes=10)
    assert basic.dispatch_count == 0
    assert basic.response_count == 0
    assert basic.create_time <= basic.schedule_time
    full = client.get_task(request={"name": names[0], "response_view": tasks_v2.Task.View.FULL})
    assert full.http_request.body == b"p"

    pages = list(client.list_tasks(request={"parent": queue.name, "page_size": 2}).pages)
    assert [len(p.tasks) for p in pages] == [2, 2, 1]
    assert sorted(t.name for p in pages for t in p.tasks) == names


def test_run_task_dispatches_now(
    client: tasks_v2.CloudTasksClient, receiver: Receiver, make_queue: Callable[..., tasks_v2.Queue]
) -> None:
    queue = make_queue()
    client.pause_queue(name=queue.name)  # RunTask ignores pause and schedule_time
    task = client.create_task(
        parent=queue.name, task=http_task(receiver, "/run-now", schedule_time=in_future(FAR_FUTURE))
    )

    ran = client.run_task(name=task.name)
    assert ran.dispatch_count == 1
    receiver.wait_for("/run-now", 1)
    wait_until(task_gone(client, task.name), what="run task to complete")


def test_purge_queue_deletes_all_tasks(
    client: tasks_v2.CloudTasksClient, receiver: Receiver, make_queue: Callable[..., tasks_v2.Queue]
) -> None:
    queue = make_queue()
    name = f"{queue.name}/tasks/purged"
    client.create_task(
        parent=queue.name, task=http_task(receiver, "/purged", name=name, schedule_time=in_future(FAR_FUTURE))
    )
    client.create_task(
        parent=queue.name, task=http_task(receiver, "/purged", schedule_time=in_future(FAR_FUTURE))
    )

    purged = client.purge_queue(name=queue.name)
    assert purged.purge_time is not None
    assert list(client.list_tasks(parent=queue.name)) == []
    with pytest.raises(gexc.AlreadyExists):
        client.create_task(parent=queue.name, task=http_task(receiver, "/purged", name=name))


# --------------------------------------------------------------------------- binding and CLI


def test_refuses_non_loopback_host() -> None:
    for host in ("0.0.0.0", "localhost", "::", "10.0.0.1"):
        with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
            TasksEmulator(host=host)


def test_refuses_short_signing_key() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        TasksEmulator(signing_key="short")


def test_port_in_use_is_an_error(emulator: TasksEmulator) -> None:
    with pytest.raises(OSError, match="cannot bind"):
        TasksEmulator(port=emulator.port).start()


def test_cli_prints_ready_and_stops_on_sigterm() -> None:
    def exercise(address: str) -> None:
        cl = make_client(address)
        queue = cl.create_queue(parent=LOCATION, queue=tasks_v2.Queue(name=f"{LOCATION}/queues/cli"))
        assert cl.get_queue(name=queue.name).name == queue.name
        close_client(cl)

    run_cli_until_signal(
        "emulators.tasks_emulator",
        ["--host", "127.0.0.1", "--port", "0"],
        exercise,
        signal.SIGTERM,
        env={**os.environ, "CMP_LOCAL_SIGNING_KEY": SIGNING_KEY},
    )


def test_cli_rejects_non_loopback_host() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "emulators.tasks_emulator", "--host", "0.0.0.0"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS * 2,
        check=False,
    )
    assert result.returncode == 2
    assert "127.0.0.1" in result.stderr
    assert "READY" not in result.stdout
