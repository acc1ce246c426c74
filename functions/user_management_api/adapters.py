"""What the User Management API needs of other systems: Identity Platform (firebase-admin) and the Tenant
API's seat pool (over HTTP, as a platform service). Tests replace either with a small subclass.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from pydantic import SecretStr

from shared.config import Settings
from shared.problems import Problem, not_found
from shared.services import ServiceClient

log = logging.getLogger(__name__)

TENANT_API = "tenant_api"


class IdentityUnavailable(Exception):
    """Identity Platform refused or did not answer; nothing the caller sent was wrong."""


class IdentityProvider:
    """Identity Platform, one IdP tenant per customer tenant; users live inside their IdP tenant."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @staticmethod
    def _app() -> Any:
        from shared.clients import firebase_app

        return firebase_app()

    def _auth(self, idp_tenant_id: str) -> Any:
        from firebase_admin import tenant_mgt

        return tenant_mgt.auth_for_tenant(idp_tenant_id, app=self._app())

    @staticmethod
    def _emulator() -> str | None:
        return os.environ.get("FIREBASE_AUTH_EMULATOR_HOST") or None

    def _emulator_tenants_url(self, host: str) -> str:
        return f"http://{host}/identitytoolkit.googleapis.com/v2/projects/{self.settings.project_id}/tenants"

    # --- tenants -----------------------------------------------------------------------------------
    def create_tenant(self, display_name: str) -> str:
        """A new IdP tenant with email/password sign-in; returns its id."""
        host = self._emulator()
        try:
            if host:
                # firebase-admin's tenant management ignores FIREBASE_AUTH_EMULATOR_HOST (it always calls
                # identitytoolkit.googleapis.com: firebase/firebase-admin-python#910), while the Auth
                # emulator serves the same REST API: call it directly, with the emulator's owner token.
                import requests

                response = requests.post(
                    self._emulator_tenants_url(host),
                    json={"displayName": display_name, "allowPasswordSignup": True},
                    headers={"Authorization": "Bearer owner"},
                    timeout=10,
                )
                response.raise_for_status()
                return str(response.json()["tenantId"])
            from firebase_admin import tenant_mgt

            tenant = tenant_mgt.create_tenant(display_name, allow_password_sign_up=True, app=self._app())
            return str(tenant.tenant_id)
        except Exception as exc:
            raise IdentityUnavailable("creating the identity tenant failed") from exc

    def delete_tenant(self, idp_tenant_id: str) -> None:
        """Best effort (an orphan left by a lost race); failures are logged, not raised."""
        host = self._emulator()
        try:
            if host:
                import requests

                requests.delete(
                    f"{self._emulator_tenants_url(host)}/{idp_tenant_id}",
                    headers={"Authorization": "Bearer owner"},
                    timeout=10,
                ).raise_for_status()
            else:
                from firebase_admin import tenant_mgt

                tenant_mgt.delete_tenant(idp_tenant_id, app=self._app())
        except Exception:
            log.warning("could not delete an unused identity tenant", extra={"idp_tenant_id": idp_tenant_id})

    # --- users -------------------------------------------------------------------------------------
    def create_user(
        self, idp_tenant_id: str, uid: str, email: str, password: SecretStr, display_name: str | None
    ) -> None:
        """Create the user with our uid; a user left by an earlier attempt with that uid is updated."""
        from firebase_admin import auth

        client = self._auth(idp_tenant_id)
        fields: dict[str, Any] = {
            "email": email,
            "password": password.get_secret_value(),
            "email_verified": True,  # accepting the mailed invitation proved the address
            "disabled": False,
        }
        if display_name:
            fields["display_name"] = display_name
        try:
            try:
                client.create_user(uid=uid, **fields)
            except auth.UidAlreadyExistsError:
                client.update_user(uid, **fields)
        except Exception as exc:
            raise IdentityUnavailable("creating the identity failed") from exc

    def delete_user(self, idp_tenant_id: str, uid: str) -> None:
        from firebase_admin import auth

        try:
            self._auth(idp_tenant_id).delete_user(uid)
        except auth.UserNotFoundError:
            return
        except Exception as exc:
            raise IdentityUnavailable("deleting the identity failed") from exc

    def claims(self, idp_tenant_id: str, uid: str) -> dict[str, Any] | None:
        """The user's custom claims ({} when none); None when the user does not exist."""
        from firebase_admin import auth

        try:
            user = self._auth(idp_tenant_id).get_user(uid)
        except auth.UserNotFoundError:
            return None
        except Exception as exc:
            raise IdentityUnavailable("reading the identity failed") from exc
        return dict(user.custom_claims or {})

    def set_claims(self, idp_tenant_id: str, uid: str, claims: dict[str, Any]) -> None:
        try:
            self._auth(idp_tenant_id).set_custom_user_claims(uid, claims)
        except Exception as exc:
            raise IdentityUnavailable("setting the claims failed") from exc

    def revoke_sessions(self, idp_tenant_id: str, uid: str) -> None:
        """Refresh tokens revoked: ID tokens issued before now are refused (check_revoked)."""
        try:
            self._auth(idp_tenant_id).revoke_refresh_tokens(uid)
        except Exception as exc:
            raise IdentityUnavailable("revoking the sessions failed") from exc

    def set_disabled(self, idp_tenant_id: str, uid: str, disabled: bool) -> bool:
        """False when the user does not exist in the IdP tenant."""
        from firebase_admin import auth

        try:
            self._auth(idp_tenant_id).update_user(uid, disabled=disabled)
        except auth.UserNotFoundError:
            return False
        except Exception as exc:
            raise IdentityUnavailable("updating the identity failed") from exc
        return True


def _forwarded(response: Any, what: str) -> Problem:
    """The Tenant API's refusal, passed on to our caller as the same problem (409 seat-limit-reached,
    410 tenant-erased)."""
    try:
        body: dict[str, Any] = response.json()
    except ValueError:
        body = {}
    if response.status_code == 404:
        return not_found(what)
    if response.status_code in (409, 410) and isinstance(body, dict):
        kind = str(body.get("type", "conflict")).rsplit("/", 1)[-1]
        extensions = {
            k: v for k, v in body.items() if k not in ("type", "title", "status", "detail", "instance")
        }
        detail = str(body.get("detail", "The Tenant API refused."))
        return Problem(response.status_code, kind, detail, **extensions)
    log.error("the Tenant API failed", extra={"status": response.status_code})
    return Problem(
        503, "dependency-unavailable", "The Tenant API did not answer.", headers={"Retry-After": "1"}
    )


class SeatPool:
    """The tenant's seats, held by the Tenant API; we call it as a platform service."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    def take(self, tenant_id: str, user_id: str, email: str) -> bool:
        """True when a seat was taken now, False when the user already held one; 409 problem when the
        tenant has no free seat (seat-limit-reached) or is not active."""
        response = self.client.call(
            TENANT_API, "POST", f"/tenants/{tenant_id}/seats", {"user_id": user_id, "email": email}
        )
        if response.status_code in (200, 201):
            return response.status_code == 201
        raise _forwarded(response, f"Tenant {tenant_id}")

    def release(self, tenant_id: str, user_id: str) -> bool:
        """True when a seat was released, False when the user held none."""
        response = self.client.call(TENANT_API, "DELETE", f"/tenants/{tenant_id}/seats/{user_id}")
        if response.status_code in (204, 404):
            return response.status_code == 204
        raise _forwarded(response, f"Tenant {tenant_id}")

    def capacity(self, tenant_id: str) -> tuple[int, int]:
        """(seat_limit, seats_used) of the tenant; 404 problem for an unknown tenant."""
        response = self.client.call(TENANT_API, "GET", f"/tenants/{tenant_id}")
        if response.status_code != 200:
            raise _forwarded(response, f"Tenant {tenant_id}")
        body = response.json()
        return int(body["seat_limit"]), int(body["seats_used"])
