"""Secret Manager access with a short per-instance cache, and the writes every API shares.

Values are returned as SecretStr so that printing, logging or serializing one shows '**********'.
A secret can be gone at any time (offboarding erases a tenant's secrets while its documents still
exist): reading one that is gone raises SecretNotFound, adding a version recreates it, and deleting
one already gone does nothing, so no caller meets Secret Manager's NotFound.
"""

from __future__ import annotations

import contextlib
import threading
import time

from pydantic import SecretStr

from shared.clients import secrets_client
from shared.config import get_settings


class SecretNotFound(LookupError):
    """The secret (or that version of it) does not exist: never created, or erased."""


class SecretAccessor:
    def __init__(self, ttl_seconds: float = 300.0) -> None:
        self._ttl = ttl_seconds
        self._cache: dict[str, tuple[float, SecretStr]] = {}
        self._lock = threading.Lock()

    def _version_name(self, secret_id: str, version: str) -> str:
        return f"projects/{get_settings().project_id}/secrets/{secret_id}/versions/{version}"

    def get(self, secret_id: str, version: str = "latest") -> SecretStr:
        name = self._version_name(secret_id, version)
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(name)
            if cached and cached[0] > now:
                return cached[1]
        from google.api_core import exceptions as gexc

        try:
            response = secrets_client().access_secret_version(request={"name": name})
        except gexc.NotFound as exc:
            raise SecretNotFound(secret_id) from exc
        value = SecretStr(response.payload.data.decode("utf-8"))
        with self._lock:
            self._cache[name] = (now + self._ttl, value)
        return value

    def invalidate(self, secret_id: str | None = None) -> None:
        with self._lock:
            if secret_id is None:
                self._cache.clear()
            else:
                prefix = f"projects/{get_settings().project_id}/secrets/{secret_id}/"
                for key in [k for k in self._cache if k.startswith(prefix)]:
                    del self._cache[key]


_accessor = SecretAccessor()


def get_secret(secret_id: str, version: str = "latest") -> SecretStr:
    return _accessor.get(secret_id, version)


def add_version(secret_id: str, value: str, labels: dict[str, str]) -> int:
    """Store `value` as the newest version of the secret, creating the secret first when it does not
    exist (or was erased meanwhile); answers the version number."""
    from google.api_core import exceptions as gexc

    parent = f"projects/{get_settings().project_id}"

    def create() -> None:
        with contextlib.suppress(gexc.AlreadyExists):
            secrets_client().create_secret(
                request={
                    "parent": parent,
                    "secret_id": secret_id,
                    # Replicated in the environment's region only, like the rest of its data.
                    "secret": {
                        "replication": {
                            "user_managed": {"replicas": [{"location": get_settings().location}]}
                        },
                        "labels": labels,
                    },
                }
            )

    def add() -> int:
        version = secrets_client().add_secret_version(
            request={"parent": f"{parent}/secrets/{secret_id}", "payload": {"data": value.encode()}}
        )
        return int(str(version.name).rsplit("/", 1)[1])

    try:
        return add()
    except gexc.NotFound:
        create()
        return add()


def delete_secret(secret_id: str) -> None:
    """Delete the secret and every version; a secret already gone is no error."""
    from google.api_core import exceptions as gexc

    with contextlib.suppress(gexc.NotFound):
        secrets_client().delete_secret(
            request={"name": f"projects/{get_settings().project_id}/secrets/{secret_id}"}
        )
    _accessor.invalidate(secret_id)
