"""Lazily built, per-instance clients.

A Cloud Functions instance pays for client creation once, on the first request that needs it, never at
import. Each getter honours the emulator variables the local suite sets.
"""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING, Any

from shared.config import get_settings

if TYPE_CHECKING:
    from google.cloud import firestore, secretmanager, tasks_v2
    from google.cloud.pubsub_v1 import PublisherClient


@cache
def firestore_client() -> firestore.Client:
    from google.cloud import firestore

    return firestore.Client(project=get_settings().project_id)


@cache
def publisher() -> PublisherClient:
    from google.cloud.pubsub_v1 import PublisherClient
    from google.cloud.pubsub_v1.types import PublisherOptions

    # Ordering keys keep one aggregate's events in commit order for every subscriber.
    return PublisherClient(publisher_options=PublisherOptions(enable_message_ordering=True))


def _emulator_channel(variable: str) -> Any:
    host = os.environ.get(variable)
    if not host:
        return None
    import grpc

    return grpc.insecure_channel(host)


@cache
def tasks_client() -> tasks_v2.CloudTasksClient:
    from google.cloud import tasks_v2
    from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

    channel = _emulator_channel("CLOUD_TASKS_EMULATOR_HOST")
    if channel is None:
        return tasks_v2.CloudTasksClient()
    return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))


@cache
def secrets_client() -> secretmanager.SecretManagerServiceClient:
    from google.cloud import secretmanager
    from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
        SecretManagerServiceGrpcTransport,
    )

    channel = _emulator_channel("SECRET_MANAGER_EMULATOR_HOST")
    if channel is None:
        return secretmanager.SecretManagerServiceClient()
    return secretmanager.SecretManagerServiceClient(
        transport=SecretManagerServiceGrpcTransport(channel=channel)
    )


@cache
def firebase_app() -> Any:
    """The default firebase-admin app; with FIREBASE_AUTH_EMULATOR_HOST set it needs no credential."""
    import firebase_admin
    from firebase_admin import credentials

    if os.environ.get("FIREBASE_AUTH_EMULATOR_HOST"):

        class _EmulatorCredential(credentials.Base):  # type: ignore[misc]
            def get_credential(self) -> Any:
                from google.auth.credentials import AnonymousCredentials

                return AnonymousCredentials()  # type: ignore[no-untyped-call]

        cred: Any = _EmulatorCredential()
    else:
        cred = credentials.ApplicationDefault()
    return firebase_admin.initialize_app(cred, {"projectId": get_settings().project_id})
