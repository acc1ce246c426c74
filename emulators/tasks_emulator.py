"""In-process Cloud Tasks v2 emulator spoken to by the official ``google-cloud-tasks`` client over gRPC.

Serves ``google.cloud.tasks.v2.CloudTasks`` without .proto files: the request/response classes are the
proto-plus messages shipped in ``google.cloud.tasks_v2``. Point the official client at it with::

    channel = grpc.insecure_channel(emulator.address)
    transport = tasks_v2.services.cloud_tasks.transports.CloudTasksGrpcTransport(channel=channel)
    client = tasks_v2.CloudTasksClient(transport=transport)

Behaviour copied from the real service (the third-party emulator gets these wrong):

* Named tasks are deduplicated: creating a task whose name exists, or existed and was deleted, completed
  or dropped within ``tombstone_seconds`` (default one hour), answers ``ALREADY_EXISTS``.
* The queue's ``retry_config`` drives retries: ``max_attempts`` (-1 = unlimited), ``min_backoff``,
  ``max_backoff``, ``max_doublings`` (the delay doubles ``max_doublings`` times, then grows linearly, then
  stays at ``max_backoff``) and ``max_retry_duration``. When both limits are set the task is retried until
  *both* are reached, as documented for the real API. A task past its limits is dropped (tombstoned).
* ``rate_limits.max_dispatches_per_second`` (token bucket) and ``max_concurrent_dispatches`` are enforced.
* ``schedule_time`` is honoured and ``dispatch_deadline`` is the per-attempt HTTP timeout.
* Only ``http_request`` targets are supported. 2xx deletes the task; any other status, a timeout or a
  connection error is a failed attempt. The ``X-CloudTasks-*`` headers of the real service are sent
  (``TaskRetryReason`` is ``HTTP <status>``, ``DEADLINE_EXCEEDED`` or ``UNAVAILABLE``), ``User-Agent`` is
  ``Google-Cloud-Tasks`` and a body without ``Content-Type`` is sent as ``application/octet-stream``.

Deliberate differences from production:

* OIDC: production sends a Google-signed OIDC token for ``oidc_token`` tasks. This emulator instead sends
  ``Authorization: Bearer <jwt>`` signed with HS256 using the local ``signing_key`` (constructor arg,
  ``--signing-key`` or ``CMP_LOCAL_SIGNING_KEY``); claims are ``iss`` = ``https://tasks-emulator.local``,
  ``email``/``sub`` = the service account, ``email_verified`` = true, ``aud`` = the audience or, when not
  set, the target URL without query string, ``iat`` and ``exp`` (iat + 3600). The local suite verifies this
  token with the shared local key; it must never be accepted in production.
* Durations are not truncated to whole seconds and the ``dispatch_deadline`` bounds are configurable
  (real service: 15 s .. 30 min), so tests can run with sub-second backoffs and deadlines.
* ``oauth_token``, App Engine targets and queue-level ``http_target`` are refused with
  ``INVALID_ARGUMENT``; the 7-day ban on re-creating a deleted queue name is not emulated.
* ``rate_limits.max_burst_size`` (output only) is ``min(100, ceil(max_dispatches_per_second))``; the real
  service picks its own value from the rate.

Everything is kept in memory. The server binds to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import collections
import heapq
import http.client
import itertools
import logging
import math
import os
import queue as queue_mod
import re
import secrets
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import grpc
import jwt
from google.cloud import tasks_v2
from google.protobuf import empty_pb2, field_mask_pb2
from google.rpc import code_pb2

from emulators.grpc_base import LOOPBACK_HOST, LoopbackGrpcEmulator, RpcError, serve_cli, unary_method

__all__ = [
    "DEFAULT_DISPATCH_DEADLINE_SECONDS",
    "OIDC_ISSUER",
    "SERVICE_NAME",
    "TasksEmulator",
    "main",
    "retry_delay_seconds",
]

logger = logging.getLogger(__name__)

SERVICE_NAME = "google.cloud.tasks.v2.CloudTasks"
OIDC_ISSUER = "https://tasks-emulator.local"
SIGNING_KEY_ENV = "CMP_LOCAL_SIGNING_KEY"
# PyJWT (and RFC 7518) want at least 32 bytes for HS256; shorter keys only produce warnings at every dispatch.
MIN_SIGNING_KEY_BYTES = 32

DEFAULT_DISPATCH_DEADLINE_SECONDS = 600.0
# Defaults the real service fills in when a queue leaves a field unset.
DEFAULT_MAX_ATTEMPTS = 100
DEFAULT_MIN_BACKOFF_NS = 100_000_000
DEFAULT_MAX_BACKOFF_NS = 3600 * 10**9
DEFAULT_MAX_DOUBLINGS = 16
DEFAULT_MAX_DISPATCHES_PER_SECOND = 500.0
DEFAULT_MAX_CONCURRENT_DISPATCHES = 1000
MAX_DISPATCHES_PER_SECOND = 500.0
MAX_CONCURRENT_DISPATCHES = 5000
MAX_SCHEDULE_AHEAD_NS = 30 * 24 * 3600 * 10**9
MAX_TASK_BYTES = 1024 * 1024
MAX_LIST_TASKS_PAGE = 1000
MAX_LIST_QUEUES_PAGE = 9800
OIDC_LIFETIME_SECONDS = 3600

_LOCATION_RE = re.compile(r"^projects/[^/]+/locations/[^/]+$")
_QUEUE_RE = re.compile(r"^(projects/[^/]+/locations/[^/]+)/queues/([A-Za-z0-9-]{1,100})$")
_TASK_RE = re.compile(
    r"^(projects/[^/]+/locations/[^/]+/queues/[A-Za-z0-9-]{1,100})/tasks/([A-Za-z0-9_-]{1,500})$"
)
_STATE_FILTER_RE = re.compile(r"^\s*state\s*[:=]\s*([A-Z_]+)\s*$")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Headers the real service sets itself, whatever the task asked for.
_OVERRIDDEN_HEADERS = frozenset({"host", "content-length", "user-agent"})
_RESERVED_HEADER_PREFIXES = ("x-cloudtasks-", "x-google-", "x-appengine-")
_MUTABLE_QUEUE_FIELDS = frozenset({"rate_limits", "retry_config", "stackdriver_logging_config"})

# Raw protobuf messages; proto-plus builds their classes at runtime, so there is nothing better to name.
PbMessage: TypeAlias = Any

_QueuePb = tasks_v2.Queue.pb()
_TaskPb = tasks_v2.Task.pb()
_AttemptPb = tasks_v2.Attempt.pb()
_HttpRequestPb = tasks_v2.HttpRequest.pb()
_RUNNING = int(tasks_v2.Queue.State.RUNNING)
_PAUSED = int(tasks_v2.Queue.State.PAUSED)
_VIEW_FULL = int(tasks_v2.Task.View.FULL)
_VIEW_BASIC = int(tasks_v2.Task.View.BASIC)


def retry_delay_seconds(attempts: int, min_backoff: float, max_backoff: float, max_doublings: int) -> float:
    """Delay before the next attempt after ``attempts`` failed attempts (``attempts`` >= 1).

    Follows the documented RetryConfig rule: start at ``min_backoff``, double ``max_doublings`` times, then
    grow linearly by ``2**max_doublings * min_backoff`` per retry, capped at ``max_backoff``. With 10 s,
    300 s and 3 doublings the delays are 10, 20, 40, 80, 160, 240, 300, 300, ...
    """
    retry = max(attempts, 1) - 1
    # The cap keeps 2**n finite for absurd max_doublings; max_backoff bounds the result anyway.
    doublings = min(retry, max_doublings, 60)
    delay = min_backoff * (2.0**doublings)
    if retry > max_doublings:
        delay += (retry - max_doublings) * min_backoff * (2.0 ** min(max_doublings, 60))
    return min(delay, max_backoff)


def _now_ns() -> int:
    return time.time_ns()


def _encode_page_token(last_name: str) -> str:
    return base64.urlsafe_b64encode(last_name.encode()).decode()


def _decode_page_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "invalid page_token") from exc


def _page(names: list[str], page_size: int, page_token: str, max_page: int) -> tuple[list[str], str]:
    """Page over sorted names; the token is the last name returned, so deletions don't shift pages."""
    if page_size < 0:
        raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "page_size must be >= 0")
    size = min(page_size or max_page, max_page)
    ordered = sorted(names)
    if page_token:
        after = _decode_page_token(page_token)
        ordered = [n for n in ordered if n > after]
    chunk = ordered[:size]
    next_token = _encode_page_token(chunk[-1]) if len(ordered) > size else ""
    return chunk, next_token


def _http_status_to_rpc_code(status: int) -> int:
    """google.rpc.Code for an HTTP status, following the mapping in google/rpc/code.proto."""
    if 200 <= status < 300:
        return int(code_pb2.OK)
    mapping = {
        400: code_pb2.INVALID_ARGUMENT,
        401: code_pb2.UNAUTHENTICATED,
        403: code_pb2.PERMISSION_DENIED,
        404: code_pb2.NOT_FOUND,
        409: code_pb2.ABORTED,
        412: code_pb2.FAILED_PRECONDITION,
        416: code_pb2.OUT_OF_RANGE,
        429: code_pb2.RESOURCE_EXHAUSTED,
        499: code_pb2.CANCELLED,
        501: code_pb2.UNIMPLEMENTED,
        503: code_pb2.UNAVAILABLE,
        504: code_pb2.DEADLINE_EXCEEDED,
    }
    if status in mapping:
        return int(mapping[status])
    if 400 <= status < 500:
        return int(code_pb2.FAILED_PRECONDITION)
    if 500 <= status < 600:
        return int(code_pb2.INTERNAL)
    return int(code_pb2.UNKNOWN)


def _format_eta(ns: int) -> str:
    return f"{ns // 10**9}.{(ns % 10**9) // 1000:06d}"


class _TokenBucket:
    """Token bucket for max_dispatches_per_second; starts full like a freshly created queue."""

    def __init__(self, rate: float, burst: int, now_ns: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.updated_ns = now_ns

    def reconfigure(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = min(self.tokens, float(burst))

    def take(self, now_ns: int) -> int:
        """Take a token and return 0, or return the nanoseconds until one is available."""
        elapsed = max(0, now_ns - self.updated_ns) / 1e9
        self.tokens = min(float(self.burst), self.tokens + elapsed * self.rate)
        self.updated_ns = now_ns
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0
        # At least 1 ms so float rounding can't turn the wait into a spin.
        return max(math.ceil((1.0 - self.tokens) / self.rate * 1e9), 1_000_000)


def _burst_for_rate(rate: float) -> int:
    # The real service derives max_burst_size from the rate (100 at the default 500/s); this approximates it.
    return max(1, min(100, math.ceil(rate)))


@dataclass(eq=False)
class _Queue:
    pb: PbMessage
    bucket: _TokenBucket
    inflight: int = 0
    # Tasks that were due while the queue was paused or at max_concurrent_dispatches, in due order.
    waiting: collections.deque[str] = field(default_factory=collections.deque)
    tasks: dict[str, _Task] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.pb.name)

    @property
    def max_concurrent(self) -> int:
        return int(self.pb.rate_limits.max_concurrent_dispatches)


@dataclass(eq=False)
class _Task:
    name: str
    queue: _Queue
    http_request: PbMessage
    create_ns: int
    schedule_ns: int
    dispatch_deadline_ns: int
    dispatch_count: int = 0
    response_count: int = 0
    # Responses other than 5xx, which is what X-CloudTasks-TaskExecutionCount reports.
    execution_count: int = 0
    first_dispatch_ns: int | None = None
    last_attempt: PbMessage | None = None
    previous_status: int | None = None
    retry_reason: str | None = None
    heap_seq: int = 0
    inflight: int = 0
    parked: bool = False


@dataclass(frozen=True)
class _AttemptPlan:
    task: _Task
    queue: _Queue
    counted: bool
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    deadline_s: float
    oidc_email: str | None
    oidc_audience: str | None


@dataclass(frozen=True)
class _Outcome:
    status: int | None
    rpc_code: int
    message: str
    retry_reason: str


class _WorkerPool:
    """A few daemon threads running HTTP attempts; daemon so a slow target never blocks process exit."""

    def __init__(self, size: int) -> None:
        self._jobs: queue_mod.SimpleQueue[Callable[[], None] | None] = queue_mod.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, name=f"tasks-emulator-worker-{i}", daemon=True)
            for i in range(size)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)

    def shutdown(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except Exception:
                logger.exception("tasks emulator worker failed")


class TasksEmulator(LoopbackGrpcEmulator):
    """Cloud Tasks v2 gRPC emulator. ``start()`` returns the bound port; ``stop()`` shuts it down."""

    service_name = SERVICE_NAME
    display_name = "Cloud Tasks"

    def __init__(
        self,
        host: str = LOOPBACK_HOST,
        port: int = 0,
        signing_key: str | None = None,
        tombstone_seconds: float = 3600.0,
        *,
        min_dispatch_deadline_seconds: float = 15.0,
        max_dispatch_deadline_seconds: float = 1800.0,
        default_dispatch_deadline_seconds: float = DEFAULT_DISPATCH_DEADLINE_SECONDS,
        workers: int = 16,
    ) -> None:
        super().__init__(host, port)
        if signing_key is not None and len(signing_key.encode()) < MIN_SIGNING_KEY_BYTES:
            raise ValueError(f"signing_key must be at least {MIN_SIGNING_KEY_BYTES} bytes for HS256")
        if not 0 < min_dispatch_deadline_seconds <= max_dispatch_deadline_seconds:
            raise ValueError("need 0 < min_dispatch_deadline_seconds <= max_dispatch_deadline_seconds")
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self._signing_key = signing_key
        self._tombstone_ns = int(tombstone_seconds * 1e9)
        self._min_deadline_ns = int(min_dispatch_deadline_seconds * 1e9)
        self._max_deadline_ns = int(max_dispatch_deadline_seconds * 1e9)
        default_ns = int(default_dispatch_deadline_seconds * 1e9)
        self._default_deadline_ns = min(max(default_ns, self._min_deadline_ns), self._max_deadline_ns)
        self._workers = workers

        self._cond = threading.Condition()
        self._queues: dict[str, _Queue] = {}
        self._tasks: dict[str, _Task] = {}
        self._tombstones: dict[str, int] = {}
        self._heap: list[tuple[int, int, str]] = []
        self._seq = itertools.count(1)
        self._stopping = False

        self._dispatcher: threading.Thread | None = None
        self._pool: _WorkerPool | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def oidc_enabled(self) -> bool:
        """Whether tasks with ``oidc_token`` are accepted (a signing key was given)."""
        return self._signing_key is not None

    def _on_start(self) -> None:
        self._pool = _WorkerPool(self._workers)
        self._stopping = False
        self._dispatcher = threading.Thread(
            target=self._dispatch_loop, name="tasks-emulator-dispatcher", daemon=True
        )
        self._dispatcher.start()

    def _on_stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._dispatcher is not None:
            self._dispatcher.join(timeout=5)
            self._dispatcher = None
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    # ------------------------------------------------------------------ gRPC plumbing

    def method_handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        unary = unary_method
        queue_out = tasks_v2.Queue.serialize
        task_out = tasks_v2.Task.serialize
        empty_out = empty_pb2.Empty.SerializeToString
        return {
            "CreateQueue": unary(self._create_queue, tasks_v2.CreateQueueRequest, queue_out),
            "GetQueue": unary(self._get_queue, tasks_v2.GetQueueRequest, queue_out),
            "ListQueues": unary(
                self._list_queues, tasks_v2.ListQueuesRequest, tasks_v2.ListQueuesResponse.serialize
            ),
            "UpdateQueue": unary(self._update_queue, tasks_v2.UpdateQueueRequest, queue_out),
            "DeleteQueue": unary(self._delete_queue, tasks_v2.DeleteQueueRequest, empty_out),
            "PauseQueue": unary(self._pause_queue, tasks_v2.PauseQueueRequest, queue_out),
            "ResumeQueue": unary(self._resume_queue, tasks_v2.ResumeQueueRequest, queue_out),
            "PurgeQueue": unary(self._purge_queue, tasks_v2.PurgeQueueRequest, queue_out),
            "CreateTask": unary(self._create_task, tasks_v2.CreateTaskRequest, task_out),
            "GetTask": unary(self._get_task, tasks_v2.GetTaskRequest, task_out),
            "ListTasks": unary(
                self._list_tasks, tasks_v2.ListTasksRequest, tasks_v2.ListTasksResponse.serialize
            ),
            "DeleteTask": unary(self._delete_task, tasks_v2.DeleteTaskRequest, empty_out),
            "RunTask": unary(self._run_task, tasks_v2.RunTaskRequest, task_out),
        }

    # ------------------------------------------------------------------ queue RPCs

    def _queue_or_404(self, name: str) -> _Queue:
        if not _QUEUE_RE.match(name):
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"invalid queue name {name!r}")
        found = self._queues.get(name)
        if found is None:
            raise RpcError(grpc.StatusCode.NOT_FOUND, f"Queue {name} not found")
        return found

    def _queue_view(self, q: _Queue) -> Any:
        out = _QueuePb()
        out.CopyFrom(q.pb)
        return tasks_v2.Queue.wrap(out)

    @staticmethod
    def _normalise_queue_config(pb: PbMessage) -> None:
        """Validate a queue config and fill in the real service's defaults for unset (zero) fields."""
        if pb.HasField("app_engine_routing_override") or pb.HasField("http_target"):
            raise RpcError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "app_engine_routing_override/http_target on queues are not supported by this emulator",
            )
        rc = pb.retry_config
        if rc.max_attempts < -1:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "retry_config.max_attempts must be >= -1")
        if rc.max_doublings < 0:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "retry_config.max_doublings must be >= 0")
        for name in ("min_backoff", "max_backoff", "max_retry_duration"):
            if getattr(rc, name).ToNanoseconds() < 0:
                raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"retry_config.{name} must be >= 0")
        # proto3 cannot tell "unset" from 0, so 0 means "use the default", exactly as in the real API.
        if rc.max_attempts == 0:
            rc.max_attempts = DEFAULT_MAX_ATTEMPTS
        if rc.min_backoff.ToNanoseconds() == 0:
            rc.min_backoff.FromNanoseconds(DEFAULT_MIN_BACKOFF_NS)
        if rc.max_backoff.ToNanoseconds() == 0:
            rc.max_backoff.FromNanoseconds(max(DEFAULT_MAX_BACKOFF_NS, rc.min_backoff.ToNanoseconds()))
        if rc.max_doublings == 0:
            rc.max_doublings = DEFAULT_MAX_DOUBLINGS
        if rc.min_backoff.ToNanoseconds() > rc.max_backoff.ToNanoseconds():
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "min_backoff must be <= max_backoff")
        rl = pb.rate_limits
        if rl.max_dispatches_per_second < 0 or rl.max_dispatches_per_second > MAX_DISPATCHES_PER_SECOND:
            raise RpcError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"rate_limits.max_dispatches_per_second must be in (0, {MAX_DISPATCHES_PER_SECOND:g}]",
            )
        if rl.max_concurrent_dispatches < 0 or rl.max_concurrent_dispatches > MAX_CONCURRENT_DISPATCHES:
            raise RpcError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"rate_limits.max_concurrent_dispatches must be in (0, {MAX_CONCURRENT_DISPATCHES}]",
            )
        if rl.max_dispatches_per_second == 0:
            rl.max_dispatches_per_second = DEFAULT_MAX_DISPATCHES_PER_SECOND
        if rl.max_concurrent_dispatches == 0:
            rl.max_concurrent_dispatches = DEFAULT_MAX_CONCURRENT_DISPATCHES
        # max_burst_size is output only.
        rl.max_burst_size = _burst_for_rate(rl.max_dispatches_per_second)

    def _new_queue(self, requested: PbMessage) -> _Queue:
        pb = _QueuePb()
        pb.CopyFrom(requested)
        for output_only in ("state", "purge_time"):
            pb.ClearField(output_only)
        self._normalise_queue_config(pb)
        pb.state = _RUNNING
        rl = pb.rate_limits
        return _Queue(pb=pb, bucket=_TokenBucket(rl.max_dispatches_per_second, rl.max_burst_size, _now_ns()))

    def _create_queue(self, request: Any) -> Any:
        parent = str(request.parent)
        requested = tasks_v2.Queue.pb(request.queue)
        if not _LOCATION_RE.match(parent):
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"invalid parent {parent!r}")
        match = _QUEUE_RE.match(requested.name)
        if not match or match.group(1) != parent:
            raise RpcError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"queue.name must be {parent}/queues/QUEUE_ID, got {requested.name!r}",
            )
        with self._cond:
            if requested.name in self._queues:
                raise RpcError(grpc.StatusCode.ALREADY_EXISTS, f"Queue {requested.name} already exists")
            q = self._new_queue(requested)
            self._queues[q.name] = q
            return self._queue_view(q)

    def _get_queue(self, request: Any) -> Any:
        with self._cond:
            return self._queue_view(self._queue_or_404(str(request.name)))

    def _list_queues(self, request: Any) -> Any:
        parent = str(request.parent)
        if not _LOCATION_RE.match(parent):
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"invalid parent {parent!r}")
        state_filter: int | None = None
        if request.filter:
            match = _STATE_FILTER_RE.match(request.filter)
            if not match or match.group(1) not in tasks_v2.Queue.State.__members__:
                raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "only 'state: RUNNING|PAUSED' filters")
            state_filter = int(tasks_v2.Queue.State.__members__[match.group(1)])
        with self._cond:
            names = [
                n
                for n, q in self._queues.items()
                if n.startswith(parent + "/") and (state_filter is None or q.pb.state == state_filter)
            ]
            chunk, token = _page(names, request.page_size, request.page_token, MAX_LIST_QUEUES_PAGE)
            return tasks_v2.ListQueuesResponse(
                queues=[self._queue_view(self._queues[n]) for n in chunk], next_page_token=token
            )

    def _update_queue(self, request: Any) -> Any:
        requested = tasks_v2.Queue.pb(request.queue)
        mask = tasks_v2.UpdateQueueRequest.pb(request).update_mask
        match = _QUEUE_RE.match(requested.name)
        if not match:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"invalid queue name {requested.name!r}")
        paths = list(mask.paths)
        for path in paths:
            if path.split(".")[0] not in _MUTABLE_QUEUE_FIELDS:
                raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"update_mask path {path!r} not updatable")
        if paths and not mask.IsValidForDescriptor(_QueuePb.DESCRIPTOR):
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"invalid update_mask {paths}")
        with self._cond:
            existing = self._queues.get(requested.name)
            if existing is None:
                # The real UpdateQueue creates missing queues.
                q = self._new_queue(requested)
                self._queues[q.name] = q
                return self._queue_view(q)
            candidate = _QueuePb()
            candidate.CopyFrom(existing.pb)
            if paths:
                field_mask_pb2.FieldMask(paths=paths).MergeMessage(
                    requested, candidate, replace_message_field=True
                )
            else:
                for name in _MUTABLE_QUEUE_FIELDS:
                    candidate.ClearField(name)
                    if requested.HasField(name):
                        getattr(candidate, name).CopyFrom(getattr(requested, name))
            self._normalise_queue_config(candidate)
            existing.pb = candidate
            rl = candidate.rate_limits
            existing.bucket.reconfigure(rl.max_dispatches_per_second, rl.max_burst_size)
            self._release_waiting_locked(existing)
            self._cond.notify_all()
            return self._queue_view(existing)

    def _delete_queue(self, request: Any) -> Any:
        with self._cond:
            q = self._queue_or_404(str(request.name))
            self._drop_all_tasks_locked(q)
            del self._queues[q.name]
            return empty_pb2.Empty()

    def _pause_queue(self, request: Any) -> Any:
        with self._cond:
            q = self._queue_or_404(str(request.name))
            q.pb.state = _PAUSED
            return self._queue_view(q)

    def _resume_queue(self, request: Any) -> Any:
        with self._cond:
            q = self._queue_or_404(str(request.name))
            q.pb.state = _RUNNING
            self._release_waiting_locked(q)
            self._cond.notify_all()
            return self._queue_view(q)

    def _purge_queue(self, request: Any) -> Any:
        with self._cond:
            q = self._queue_or_404(str(request.name))
            self._drop_all_tasks_locked(q)
            q.pb.purge_time.FromNanoseconds(_now_ns())
            return self._queue_view(q)

    # ------------------------------------------------------------------ task RPCs

    def _task_or_404(self, name: str) -> _Task:
        if not _TASK_RE.match(name):
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"invalid task name {name!r}")
        found = self._tasks.get(name)
        if found is None:
            raise RpcError(grpc.StatusCode.NOT_FOUND, f"Task {name} not found")
        return found

    def _task_view(self, task: _Task, view: int) -> Any:
        full = view == _VIEW_FULL
        out = _TaskPb()
        out.name = task.name
        out.http_request.CopyFrom(task.http_request)
        if not full:
            # BASIC omits the payload, like the real service.
            out.http_request.ClearField("body")
        out.schedule_time.FromNanoseconds(task.schedule_ns)
        out.create_time.FromNanoseconds(task.create_ns)
        out.dispatch_deadline.FromNanoseconds(task.dispatch_deadline_ns)
        out.dispatch_count = task.dispatch_count
        out.response_count = task.response_count
        if task.first_dispatch_ns is not None:
            # Only dispatch_time is retained for the first attempt (documented).
            out.first_attempt.dispatch_time.FromNanoseconds(task.first_dispatch_ns)
        if task.last_attempt is not None:
            out.last_attempt.CopyFrom(task.last_attempt)
        out.view = _VIEW_FULL if full else _VIEW_BASIC
        return tasks_v2.Task.wrap(out)

    def _validate_http_request(self, hp: PbMessage) -> None:
        parts = urllib.parse.urlsplit(hp.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "http_request.url must be http(s)://...")
        method = tasks_v2.HttpMethod(hp.http_method or int(tasks_v2.HttpMethod.POST)).name
        if hp.body and method not in _BODY_METHODS:
            raise RpcError(
                grpc.StatusCode.INVALID_ARGUMENT, f"body is only allowed with POST, PUT, PATCH (not {method})"
            )
        auth = hp.WhichOneof("authorization_header")
        if auth == "oauth_token":
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "oauth_token is not supported by this emulator")
        if auth == "oidc_token":
            if not hp.oidc_token.service_account_email:
                raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "oidc_token needs service_account_email")
            if self._signing_key is None:
                raise RpcError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"oidc_token needs a signing key: start with --signing-key or {SIGNING_KEY_ENV}",
                )

    def _create_task(self, request: Any) -> Any:
        parent = str(request.parent)
        requested = tasks_v2.Task.pb(request.task)
        if not _QUEUE_RE.match(parent):
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"invalid parent {parent!r}")
        if requested.WhichOneof("message_type") != "http_request":
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "only http_request tasks are supported")
        if requested.ByteSize() > MAX_TASK_BYTES:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "task exceeds the 1 MiB size limit")
        self._validate_http_request(requested.http_request)
        if requested.name:
            match = _TASK_RE.match(requested.name)
            if not match or match.group(1) != parent:
                raise RpcError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"task.name must be {parent}/tasks/TASK_ID, got {requested.name!r}",
                )
        now = _now_ns()
        deadline_ns = self._default_deadline_ns
        if requested.HasField("dispatch_deadline"):
            deadline_ns = requested.dispatch_deadline.ToNanoseconds()
            if not self._min_deadline_ns <= deadline_ns <= self._max_deadline_ns:
                raise RpcError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"dispatch_deadline must be between {self._min_deadline_ns / 1e9:g}s and "
                    f"{self._max_deadline_ns / 1e9:g}s",
                )
        schedule_ns = now
        if requested.HasField("schedule_time"):
            schedule_ns = max(now, requested.schedule_time.ToNanoseconds())
            if schedule_ns > now + MAX_SCHEDULE_AHEAD_NS:
                raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "schedule_time is more than 30 days ahead")
        http_request = _HttpRequestPb()
        http_request.CopyFrom(requested.http_request)
        if not http_request.http_method:
            http_request.http_method = int(tasks_v2.HttpMethod.POST)

        with self._cond:
            q = self._queue_or_404(parent)
            self._sweep_tombstones_locked(now)
            if requested.name:
                name = str(requested.name)
                if name in self._tasks or self._tombstones.get(name, 0) > now:
                    raise RpcError(grpc.StatusCode.ALREADY_EXISTS, f"Task {name} already exists")
            else:
                name = self._generate_task_name_locked(parent)
            task = _Task(
                name=name,
                queue=q,
                http_request=http_request,
                create_ns=now,
                schedule_ns=schedule_ns,
                dispatch_deadline_ns=deadline_ns,
            )
            self._tasks[name] = task
            q.tasks[name] = task
            self._push_locked(task, schedule_ns)
            return self._task_view(task, request.response_view)

    def _generate_task_name_locked(self, parent: str) -> str:
        while True:
            # The real service generates long numeric ids.
            name = f"{parent}/tasks/{secrets.randbits(63)}"
            if name not in self._tasks and name not in self._tombstones:
                return name

    def _get_task(self, request: Any) -> Any:
        with self._cond:
            return self._task_view(self._task_or_404(str(request.name)), request.response_view)

    def _list_tasks(self, request: Any) -> Any:
        with self._cond:
            q = self._queue_or_404(str(request.parent))
            chunk, token = _page(list(q.tasks), request.page_size, request.page_token, MAX_LIST_TASKS_PAGE)
            return tasks_v2.ListTasksResponse(
                tasks=[self._task_view(q.tasks[n], request.response_view) for n in chunk],
                next_page_token=token,
            )

    def _delete_task(self, request: Any) -> Any:
        with self._cond:
            task = self._task_or_404(str(request.name))
            self._remove_task_locked(task)
            return empty_pb2.Empty()

    def _run_task(self, request: Any) -> Any:
        with self._cond:
            task = self._task_or_404(str(request.name))
            # RunTask ignores pause state, rate limits and schedule_time (documented); the pending slot goes.
            task.heap_seq = 0
            self._start_attempt_locked(task, counted=False)
            return self._task_view(task, request.response_view)

    # ------------------------------------------------------------------ bookkeeping (caller holds _cond)

    def _push_locked(self, task: _Task, due_ns: int) -> None:
        seq = next(self._seq)
        task.heap_seq = seq
        heapq.heappush(self._heap, (due_ns, seq, task.name))
        self._cond.notify_all()

    def _remove_task_locked(self, task: _Task) -> None:
        """Forget a task (deleted, completed, dropped or purged) and keep its name as a dedupe tombstone."""
        self._tasks.pop(task.name, None)
        task.queue.tasks.pop(task.name, None)
        task.heap_seq = 0
        self._tombstones[task.name] = _now_ns() + self._tombstone_ns

    def _drop_all_tasks_locked(self, q: _Queue) -> None:
        for task in list(q.tasks.values()):
            self._remove_task_locked(task)
        q.waiting.clear()

    def _sweep_tombstones_locked(self, now: int) -> None:
        if len(self._tombstones) < 1024:
            return
        for name in [n for n, expiry in self._tombstones.items() if expiry <= now]:
            del self._tombstones[name]

    def _release_waiting_locked(self, q: _Queue) -> None:
        """Put parked tasks back on the heap, as many as the queue can run now."""
        if q.pb.state != _RUNNING:
            return
        free = q.max_concurrent - q.inflight
        while q.waiting and free > 0:
            task = q.tasks.get(q.waiting.popleft())
            if task is None or not task.parked:
                continue
            task.parked = False
            if task.heap_seq or task.inflight:
                continue
            self._push_locked(task, task.schedule_ns)
            free -= 1

    def _park_locked(self, task: _Task) -> None:
        if not task.parked:
            task.parked = True
            task.queue.waiting.append(task.name)

    # ------------------------------------------------------------------ dispatcher

    def _dispatch_loop(self) -> None:
        with self._cond:
            while not self._stopping:
                timeout = self._dispatch_due_locked()
                # Sleeps until the next due time or until a new task / state change notifies us.
                self._cond.wait(timeout=timeout)

    def _dispatch_due_locked(self) -> float | None:
        """Start every attempt that is due now; return seconds until the next one (None: nothing queued)."""
        while self._heap:
            due, seq, name = self._heap[0]
            task = self._tasks.get(name)
            if task is None or task.heap_seq != seq:
                heapq.heappop(self._heap)
                continue
            now = _now_ns()
            if due > now:
                return (due - now) / 1e9
            heapq.heappop(self._heap)
            task.heap_seq = 0
            q = task.queue
            if q.pb.state != _RUNNING or q.inflight >= q.max_concurrent:
                self._park_locked(task)
                continue
            wait_ns = q.bucket.take(now)
            if wait_ns:
                # Same seq keeps FIFO order among tasks throttled to the same instant.
                task.heap_seq = seq
                heapq.heappush(self._heap, (now + wait_ns, seq, name))
                continue
            self._start_attempt_locked(task, counted=True)
        return None

    def _start_attempt_locked(self, task: _Task, *, counted: bool) -> None:
        assert self._pool is not None
        now = _now_ns()
        hp = task.http_request
        method = tasks_v2.HttpMethod(hp.http_method).name
        short_queue = task.queue.name.rsplit("/", 1)[-1]
        short_task = task.name.rsplit("/", 1)[-1]
        oidc = hp.oidc_token if hp.WhichOneof("authorization_header") == "oidc_token" else None

        headers = {
            k: v
            for k, v in hp.headers.items()
            if k.lower() not in _OVERRIDDEN_HEADERS
            and not k.lower().startswith(_RESERVED_HEADER_PREFIXES)
            and not (oidc is not None and k.lower() == "authorization")
        }
        if hp.body and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/octet-stream"
        headers["User-Agent"] = "Google-Cloud-Tasks"
        headers["X-CloudTasks-QueueName"] = short_queue
        headers["X-CloudTasks-TaskName"] = short_task
        headers["X-CloudTasks-TaskRetryCount"] = str(task.dispatch_count)
        headers["X-CloudTasks-TaskExecutionCount"] = str(task.execution_count)
        headers["X-CloudTasks-TaskETA"] = _format_eta(task.schedule_ns)
        if task.previous_status is not None:
            headers["X-CloudTasks-TaskPreviousResponse"] = str(task.previous_status)
        if task.retry_reason:
            headers["X-CloudTasks-TaskRetryReason"] = task.retry_reason

        attempt = _AttemptPb()
        attempt.schedule_time.FromNanoseconds(task.schedule_ns)
        attempt.dispatch_time.FromNanoseconds(now)
        task.last_attempt = attempt
        if task.first_dispatch_ns is None:
            task.first_dispatch_ns = now
        task.dispatch_count += 1
        task.inflight += 1
        if counted:
            task.queue.inflight += 1

        plan = _AttemptPlan(
            task=task,
            queue=task.queue,
            counted=counted,
            method=method,
            url=str(hp.url),
            headers=headers,
            body=bytes(hp.body),
            deadline_s=task.dispatch_deadline_ns / 1e9,
            oidc_email=str(oidc.service_account_email) if oidc is not None else None,
            oidc_audience=str(oidc.audience) if oidc is not None else None,
        )
        self._pool.submit(lambda: self._run_attempt(plan))

    def _oidc_token(self, plan: _AttemptPlan) -> str:
        assert self._signing_key is not None
        assert plan.oidc_email is not None
        parts = urllib.parse.urlsplit(plan.url)
        audience = plan.oidc_audience or urllib.parse.urlunsplit(
            (parts.scheme, parts.netloc, parts.path, "", "")
        )
        iat = int(time.time())
        claims = {
            "iss": OIDC_ISSUER,
            "aud": audience,
            "sub": plan.oidc_email,
            "email": plan.oidc_email,
            "email_verified": True,
            "iat": iat,
            "exp": iat + OIDC_LIFETIME_SECONDS,
        }
        return jwt.encode(claims, self._signing_key, algorithm="HS256")

    def _run_attempt(self, plan: _AttemptPlan) -> None:
        headers = dict(plan.headers)
        if plan.oidc_email is not None:
            headers["Authorization"] = f"Bearer {self._oidc_token(plan)}"
        outcome = _send_http(plan.method, plan.url, headers, plan.body, plan.deadline_s)
        with self._cond:
            self._finish_attempt_locked(plan, outcome)

    def _finish_attempt_locked(self, plan: _AttemptPlan, outcome: _Outcome) -> None:
        task, q = plan.task, plan.queue
        now = _now_ns()
        task.inflight -= 1
        if plan.counted:
            q.inflight -= 1
            self._release_waiting_locked(q)
        self._cond.notify_all()
        if self._tasks.get(task.name) is not task:
            return  # deleted or purged while in flight: the real service ignores the result too
        if task.last_attempt is not None:
            task.last_attempt.response_time.FromNanoseconds(now)
            task.last_attempt.response_status.code = outcome.rpc_code
            task.last_attempt.response_status.message = outcome.message
        if outcome.status is not None:
            task.response_count += 1
            task.previous_status = outcome.status
            if outcome.status < 500:
                task.execution_count += 1
        if outcome.rpc_code == code_pb2.OK:
            self._remove_task_locked(task)
            return
        task.retry_reason = outcome.retry_reason
        rc = q.pb.retry_config
        if self._exhausted(task, rc, now):
            logger.info("task %s dropped after %d attempts", task.name, task.dispatch_count)
            self._remove_task_locked(task)
            return
        if task.inflight:
            return  # a concurrent RunTask attempt will reschedule when it finishes
        delay = retry_delay_seconds(
            task.dispatch_count,
            rc.min_backoff.ToNanoseconds() / 1e9,
            rc.max_backoff.ToNanoseconds() / 1e9,
            rc.max_doublings,
        )
        task.schedule_ns = now + int(delay * 1e9)
        self._push_locked(task, task.schedule_ns)

    @staticmethod
    def _exhausted(task: _Task, rc: PbMessage, now: int) -> bool:
        """True when no further attempt is allowed; both limits must be reached when both are set."""
        max_duration_ns = rc.max_retry_duration.ToNanoseconds()
        attempts_done = bool(rc.max_attempts != -1 and task.dispatch_count >= rc.max_attempts)
        first = task.first_dispatch_ns if task.first_dispatch_ns is not None else now
        duration_done = bool(max_duration_ns > 0 and now - first >= max_duration_ns)
        if max_duration_ns <= 0:
            return attempts_done
        if rc.max_attempts == -1:
            return duration_done
        return attempts_done and duration_done


def _send_http(method: str, url: str, headers: dict[str, str], body: bytes, deadline_s: float) -> _Outcome:
    """One HTTP attempt bounded by ``deadline_s`` overall (connect, send, headers and body)."""
    deadline = time.monotonic() + deadline_s

    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("dispatch deadline exceeded")
        return left

    parts = urllib.parse.urlsplit(url)
    conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn = conn_cls(parts.hostname or "", parts.port, timeout=remaining())
    try:
        conn.request(method, path, body=body if body or method in _BODY_METHODS else None, headers=headers)
        sock = conn.sock
        if sock is not None:
            sock.settimeout(remaining())
        response = conn.getresponse()
        status = response.status
        # Drain the body under the same deadline: a target that trickles its answer is still too slow.
        while True:
            # A "Connection: close" answer closes the socket once its body is read: stop there.
            if response.isclosed():
                break
            if sock is not None:
                sock.settimeout(remaining())
            if not response.read(65536):
                break
    except TimeoutError:
        return _Outcome(
            None, int(code_pb2.DEADLINE_EXCEEDED), "dispatch deadline exceeded", "DEADLINE_EXCEEDED"
        )
    except (OSError, http.client.HTTPException) as exc:
        return _Outcome(None, int(code_pb2.UNAVAILABLE), f"target unreachable: {exc}", "UNAVAILABLE")
    finally:
        conn.close()
    reason = "" if 200 <= status < 300 else f"HTTP {status}"
    return _Outcome(status, _http_status_to_rpc_code(status), f"HTTP status code {status}", reason)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: serve until SIGTERM/SIGINT, printing ``READY 127.0.0.1:PORT`` once the port is bound."""
    return serve_cli(
        argv,
        prog="python -m emulators.tasks_emulator",
        description="Local Cloud Tasks v2 gRPC emulator.",
        build_emulator=_emulator_from_args,
        extra_arguments=_add_arguments,
    )


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--signing-key",
        default=os.environ.get(SIGNING_KEY_ENV),
        help=f"HS256 key for OIDC bearer tokens (default: ${SIGNING_KEY_ENV}; >= 32 bytes)",
    )
    parser.add_argument("--tombstone-seconds", type=float, default=3600.0, help="named-task dedupe window")
    parser.add_argument("--min-dispatch-deadline", type=float, default=15.0, help="seconds")
    parser.add_argument("--max-dispatch-deadline", type=float, default=1800.0, help="seconds")
    parser.add_argument("--workers", type=int, default=16, help="HTTP dispatch threads")


def _emulator_from_args(args: argparse.Namespace) -> TasksEmulator:
    emulator = TasksEmulator(
        args.host,
        args.port,
        signing_key=args.signing_key or None,
        tombstone_seconds=args.tombstone_seconds,
        min_dispatch_deadline_seconds=args.min_dispatch_deadline,
        max_dispatch_deadline_seconds=args.max_dispatch_deadline,
        workers=args.workers,
    )
    if not emulator.oidc_enabled:
        print("tasks emulator: no signing key, tasks with oidc_token will be refused", file=sys.stderr)
    return emulator


if __name__ == "__main__":
    sys.exit(main())
