"""Calling another function of the platform over HTTP, as a service (for example User Management
taking a seat from the Tenant API), with an OIDC token for the callee's URL.

In production the token comes from the metadata server for this function's service account; locally
the suite's signing key stands in for it (see shared.auth).
"""

from __future__ import annotations

from typing import Any

import requests

from shared.auth import sign_local_service_token
from shared.config import Settings
from shared.problems import Problem


class ServiceClient:
    def __init__(self, settings: Settings, timeout: float = 10.0) -> None:
        self.settings = settings
        self.timeout = timeout
        self._session = requests.Session()

    def _token(self, audience: str) -> str:
        if self.settings.service_auth == "local":
            key = self.settings.local_signing_key
            if key is None:
                raise RuntimeError("local service auth needs CMP_LOCAL_SIGNING_KEY")
            account = (
                self.settings.service_account
                or f"platform@{self.settings.project_id}.iam.gserviceaccount.com"
            )
            return sign_local_service_token(key.get_secret_value(), account, ttl_seconds=300)
        from google.auth.transport.requests import Request
        from google.oauth2 import id_token

        token: str = id_token.fetch_id_token(Request(), audience)  # type: ignore[no-untyped-call]
        return token

    def call(
        self, function: str, method: str, path: str, body: dict[str, Any] | None = None
    ) -> requests.Response:
        audience = self.settings.function_url(function)
        headers = {"Authorization": f"Bearer {self._token(audience)}"}
        try:
            return self._session.request(
                method, audience + path, json=body, headers=headers, timeout=self.timeout
            )
        except requests.RequestException as exc:
            # The caller's own client gets a 503 it may retry, never the transport error.
            raise Problem(
                503,
                "dependency-unavailable",
                f"The {function} function did not answer.",
                headers={"Retry-After": "1"},
            ) from exc
