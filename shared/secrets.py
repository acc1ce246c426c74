"""Secret Manager access with a short per-instance cache.

Values are returned as SecretStr so that printing, logging or serializing one shows '**********'.
"""

from __future__ import annotations

import threading
import time

from pydantic import SecretStr

from shared.clients import secrets_client
from shared.config import get_settings


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
        response = secrets_client().access_secret_version(request={"name": name})
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
