"""Lazily built, per-instance clients, each with a deadline on every call.

A Cloud Functions instance pays for client creation once, on the first request that needs it, never at
import. Each getter honours the emulator variables the local suite sets.

Deadlines are set here, once, on the clients' gRPC channels (`DeadlineInterceptor`): every unary call
and every server stream to Firestore, Cloud Tasks and Secret Manager gets at most
`CMP_CALL_DEADLINE_SECONDS` (streams `CMP_STREAM_DEADLINE_SECONDS`), even where a call site passes
none or the library's default is minutes long. A connection that dies under a call so fails that
call, instead of holding its request (and whatever it locked) for as long as the process lives.
Pub/Sub publishing has the same deadline through the publisher's options and `publish_result`.
"""

from __future__ import annotations

import collections
import os
from concurrent.futures import Future
from functools import cache
from typing import TYPE_CHECKING, Any

import grpc

from shared.config import get_settings

if TYPE_CHECKING:
    from google.cloud import firestore, secretmanager, tasks_v2
    from google.cloud.pubsub_v1 import PublisherClient


class _CallDetails(
    collections.namedtuple(
        "_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")
    ),
    grpc.ClientCallDetails,  # type: ignore[misc]
):
    pass


class DeadlineInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
    """Caps the deadline of every unary call and server stream on a channel (bidirectional streams,
    such as Firestore's Listen, are long-lived by design and left alone)."""

    def __init__(self, unary_seconds: float, stream_seconds: float) -> None:
        self.unary_seconds = unary_seconds
        self.stream_seconds = stream_seconds

    @staticmethod
    def bounded(details: grpc.ClientCallDetails, cap: float) -> grpc.ClientCallDetails:
        timeout = details.timeout
        if timeout is not None and timeout <= cap:
            return details
        return _CallDetails(
            details.method,
            cap,
            details.metadata,
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self.bounded(details, self.unary_seconds), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self.bounded(details, self.stream_seconds), request)


def deadline_interceptor() -> DeadlineInterceptor:
    settings = get_settings()
    return DeadlineInterceptor(settings.call_deadline_seconds, settings.stream_deadline_seconds)


def with_deadlines(channel: grpc.Channel) -> grpc.Channel:
    return grpc.intercept_channel(channel, deadline_interceptor())


def publish_result(future: Future[str]) -> str:
    """Wait for one Pub/Sub publish, no longer than the call deadline."""
    return future.result(timeout=get_settings().call_deadline_seconds)


def new_firestore_client(project: str, **options: Any) -> firestore.Client:
    """A Firestore client whose every call has a deadline (see the module doc)."""
    from google.cloud import firestore
    from google.cloud.firestore_v1.services.firestore import client as gapic_module
    from google.cloud.firestore_v1.services.firestore.transports.grpc import FirestoreGrpcTransport

    class Transport(FirestoreGrpcTransport):
        def __init__(self, *, channel: grpc.Channel, **kwargs: Any) -> None:
            super().__init__(channel=with_deadlines(channel), **kwargs)

    class Client(firestore.Client):
        # The library builds its channel itself (keepalive, message sizes, the emulator's token); only
        # the transport is ours, and it wraps that channel.
        @property
        def _firestore_api(self) -> Any:
            return self._firestore_api_helper(Transport, gapic_module.FirestoreClient, gapic_module)

    return Client(project=project, **options)


@cache
def firestore_client() -> firestore.Client:
    return new_firestore_client(get_settings().project_id)


@cache
def publisher() -> PublisherClient:
    from google.api_core.timeout import ConstantTimeout
    from google.cloud.pubsub_v1 import PublisherClient
    from google.cloud.pubsub_v1.types import PublisherOptions

    # Ordering keys keep one aggregate's events in commit order for every subscriber.
    return PublisherClient(
        publisher_options=PublisherOptions(
            enable_message_ordering=True,
            timeout=ConstantTimeout(get_settings().call_deadline_seconds),  # type: ignore[no-untyped-call]
        )
    )


def _channel(transport: Any, emulator_variable: str) -> grpc.Channel:
    """The emulator's plain channel when its variable is set, else Google's authorized one; either way
    with the call deadline."""
    host = os.environ.get(emulator_variable)
    channel = grpc.insecure_channel(host) if host else transport.create_channel()
    return with_deadlines(channel)


@cache
def tasks_client() -> tasks_v2.CloudTasksClient:
    from google.cloud import tasks_v2
    from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

    channel = _channel(CloudTasksGrpcTransport, "CLOUD_TASKS_EMULATOR_HOST")
    return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))


@cache
def secrets_client() -> secretmanager.SecretManagerServiceClient:
    from google.cloud import secretmanager
    from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
        SecretManagerServiceGrpcTransport,
    )

    channel = _channel(SecretManagerServiceGrpcTransport, "SECRET_MANAGER_EMULATOR_HOST")
    return secretmanager.SecretManagerServiceClient(
        transport=SecretManagerServiceGrpcTransport(channel=channel)
    )


@cache
def firebase_app() -> Any:
    """The default firebase-admin app; with FIREBASE_AUTH_EMULATOR_HOST set it needs no credential."""
    import firebase_admin
    from firebase_admin import credentials

    settings = get_settings()
    if os.environ.get("FIREBASE_AUTH_EMULATOR_HOST"):

        class _EmulatorCredential(credentials.Base):  # type: ignore[misc]
            def get_credential(self) -> Any:
                from google.auth.credentials import AnonymousCredentials

                return AnonymousCredentials()  # type: ignore[no-untyped-call]

        cred: Any = _EmulatorCredential()
    else:
        cred = credentials.ApplicationDefault()
    # httpTimeout: every Identity Platform call (token revocation checks, user admin) has a deadline.
    return firebase_admin.initialize_app(
        cred, {"projectId": settings.project_id, "httpTimeout": settings.call_deadline_seconds}
    )


def call_options(seconds: float) -> dict[str, Any]:
    """`timeout` and `retry` for one google-cloud call that must finish, retries included, within
    `seconds` (the library's default retry keeps going for a minute or more)."""
    from google.api_core import retry

    return {
        "timeout": seconds,
        "retry": retry.Retry(predicate=retry.if_transient_error, initial=0.05, maximum=1.0, timeout=seconds),
    }
