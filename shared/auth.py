"""Who is calling: Firebase / Identity Platform ID tokens for users, OIDC tokens for Pub/Sub and Tasks.

User tokens carry the custom claims `tenant_id`, `roles` and `platform_operator` (set by the User
Management API, or by the local suite for its demo users). Service calls (Pub/Sub push, Cloud Tasks)
carry a Google-signed OIDC token in production; the Pub/Sub emulator cannot mint one, so locally the
suite signs an HS256 token with a key only it and the functions share (`CMP_LOCAL_SIGNING_KEY`), passed
as a bearer header by the Tasks emulator and as the `token` query parameter of push endpoints.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from shared.authz import SERVICE_ROLE, Principal
from shared.config import Settings
from shared.problems import unauthenticated


def bearer_token(headers: Mapping[str, str]) -> str | None:
    value = headers.get("Authorization") or headers.get("authorization") or ""
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def principal_from_claims(claims: Mapping[str, Any]) -> Principal:
    roles = claims.get("roles") or []
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise unauthenticated("The token's roles claim is malformed.")
    tenant = claims.get("tenant_id")
    auth_time = claims.get("auth_time")
    return Principal(
        uid=str(claims.get("uid") or claims.get("sub") or ""),
        tenant_id=tenant if isinstance(tenant, str) and tenant else None,
        roles=frozenset(roles),
        email=claims.get("email") if isinstance(claims.get("email"), str) else None,
        is_operator=claims.get("platform_operator") is True,
        authenticated_at=datetime.fromtimestamp(auth_time, UTC)
        if isinstance(auth_time, int | float)
        else None,
    )


def unverified_claims(token: str) -> dict[str, Any]:
    """Only to route a token to the right verifier; never trusted before verification."""
    import jwt

    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise unauthenticated("The bearer token is not a JWT.") from exc
    return claims


def is_id_token(claims: Mapping[str, Any]) -> bool:
    """Identity Platform / Firebase ID tokens carry a `firebase` claim; service OIDC tokens do not."""
    return isinstance(claims.get("firebase"), dict)


class UserAuthenticator:
    """Verifies ID tokens. `check_revoked` asks Identity Platform whether the user's sessions were
    revoked (one user lookup: a network round trip and quota per call).

    Where the caller says the access decision checks revocation itself (`access_checks_revocation`: a
    tenant-scoped request, whose principal's `tokens_valid_after` the access snapshot holds, see
    shared.access), a token is looked up at most once per `recheck_seconds` in this instance: the events
    that revoke sessions reach the snapshot within seconds, and the lookup still catches, within that
    time, a revocation no event announces (User Management's claims resync). A platform operator, whom
    no tenant's access state describes, is looked up on every request."""

    def __init__(
        self,
        check_revoked: bool = True,
        *,
        recheck_seconds: float = 300.0,
        max_remembered: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.check_revoked = check_revoked
        self.recheck_seconds = recheck_seconds
        self.max_remembered = max_remembered
        self._clock = clock
        self._lock = threading.Lock()
        self._looked_up: OrderedDict[str, float] = OrderedDict()  # token digest -> last clean lookup

    def authenticate(
        self, headers: Mapping[str, str], *, access_checks_revocation: bool = False
    ) -> Principal:
        token = bearer_token(headers)
        if token is None:
            raise unauthenticated()
        return self.verify(token, access_checks_revocation=access_checks_revocation)

    def verify(self, token: str, *, access_checks_revocation: bool = False) -> Principal:
        digest = hashlib.sha256(token.encode()).hexdigest()
        # The unverified operator claim only adds a lookup: a forged token fails its signature anyway.
        unverified = unverified_claims(token)
        operator = unverified.get("platform_operator") is True
        lookup = self.check_revoked and (not access_checks_revocation or operator or self._due(digest))
        principal = principal_from_claims(self.verified_claims(token, unverified, check_revoked=lookup))
        if lookup and access_checks_revocation:
            self._remember(digest)
        return principal

    def _due(self, digest: str) -> bool:
        with self._lock:
            at = self._looked_up.get(digest)
            return at is None or self._clock() - at >= self.recheck_seconds

    def _remember(self, digest: str) -> None:
        with self._lock:
            self._looked_up[digest] = self._clock()
            self._looked_up.move_to_end(digest)
            while len(self._looked_up) > self.max_remembered:
                self._looked_up.popitem(last=False)

    def verified_claims(
        self, token: str, unverified: Mapping[str, Any], *, check_revoked: bool
    ) -> dict[str, Any]:
        from firebase_admin import auth, tenant_mgt

        from shared.clients import firebase_app

        # A user of an Identity Platform tenant is verified by that tenant's client (its revocation
        # check looks the user up inside the tenant).
        idp_tenant = (unverified.get("firebase") or {}).get("tenant")
        verify = (
            tenant_mgt.auth_for_tenant(idp_tenant, app=firebase_app()).verify_id_token
            if isinstance(idp_tenant, str) and idp_tenant
            else lambda t, check_revoked: auth.verify_id_token(
                t, app=firebase_app(), check_revoked=check_revoked
            )
        )
        try:
            claims: dict[str, Any] = verify(token, check_revoked=check_revoked)
        except auth.RevokedIdTokenError as exc:
            raise unauthenticated("The token was revoked: sign in again.") from exc
        except auth.UserDisabledError as exc:
            raise unauthenticated("This user is disabled.") from exc
        except auth.UserNotFoundError as exc:
            raise unauthenticated("This user no longer exists.") from exc
        except (ValueError, auth.InvalidIdTokenError, auth.CertificateFetchError) as exc:
            raise unauthenticated("The bearer token is not a valid ID token.") from exc
        except tenant_mgt.TenantNotFoundError as exc:
            raise unauthenticated("The token's identity tenant does not exist.") from exc
        return claims


class ServiceAuthenticator:
    """Verifies that a push or task request comes from an allowed service account."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def authenticate(
        self,
        headers: Mapping[str, str],
        query_token: str | None,
        url: str,
        allowed: tuple[str, ...] | None = None,
    ) -> Principal:
        """`allowed`: the accounts that may call (default: the invokers of push, task and scheduler
        endpoints); an empty list allows any account only in local mode."""
        token = bearer_token(headers) or query_token
        if token is None:
            raise unauthenticated("Service requests must carry an OIDC token.")
        claims = (
            self._verify_local(token)
            if self.settings.service_auth == "local"
            else self._verify_oidc(token, url)
        )
        accounts = self.settings.service_invokers if allowed is None else allowed
        email = claims.get("email")
        # In production an empty allow-list would accept any Google-signed token: fail closed.
        open_list = not accounts and self.settings.service_auth == "local"
        if not isinstance(email, str) or not (open_list or email in accounts):
            raise unauthenticated("This service account may not call this endpoint.")
        return Principal(uid=email, tenant_id=None, email=email, is_service=True)

    def _verify_local(self, token: str) -> dict[str, Any]:
        import jwt

        key = self.settings.local_signing_key
        if key is None:
            raise unauthenticated("Local service auth is on but no signing key is configured.")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.get_secret_value(),
                algorithms=["HS256"],
                options={"verify_aud": self.settings.service_audience is not None},
                audience=self.settings.service_audience,
            )
        except jwt.PyJWTError as exc:
            raise unauthenticated("The service token is not valid.") from exc
        return claims

    def _audience(self, url: str) -> str:
        """Tasks, push and scheduler tokens are minted for the function's URL (shared.tasks, Terraform),
        which Terraform also gives each function as CMP_SERVICE_AUDIENCE; a request behind another URL
        (run.app) cannot tell it, so without it the check fails closed."""
        if not self.settings.service_audience:
            raise unauthenticated("This function has no CMP_SERVICE_AUDIENCE to check OIDC tokens against.")
        return self.settings.service_audience

    def _verify_oidc(self, token: str, url: str) -> dict[str, Any]:
        from google.auth.transport import requests as google_requests
        from google.oauth2 import id_token

        audience = self._audience(url)
        try:
            claims: dict[str, Any] = id_token.verify_oauth2_token(  # type: ignore[no-untyped-call]
                token, google_requests.Request(), audience=audience
            )
        except ValueError as exc:
            raise unauthenticated("The OIDC token is not valid.") from exc
        if not claims.get("email_verified"):
            raise unauthenticated("The OIDC token's email is not verified.")
        return claims


def sign_local_service_token(
    key: str, email: str, audience: str | None = None, ttl_seconds: int = 3600
) -> str:
    """The local suite's stand-in for a Google-signed OIDC token (see the module docstring)."""
    import time

    import jwt

    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "https://local-suite.cmp.example",
        "sub": email,
        "email": email,
        "email_verified": True,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, key, algorithm="HS256")


class CallerAuthenticator:
    """Who calls an HTTP API: a signed-in user (ID token), or another function of the platform (OIDC
    token of an account in CMP_SERVICE_CALLERS), which acts with the platform-service role."""

    def __init__(self, users: UserAuthenticator, services: ServiceAuthenticator) -> None:
        self.users = users
        self.services = services

    def authenticate(
        self, headers: Mapping[str, str], *, access_checks_revocation: bool = False
    ) -> Principal:
        token = bearer_token(headers)
        if token is None:
            raise unauthenticated()
        if is_id_token(unverified_claims(token)):
            return self.users.verify(token, access_checks_revocation=access_checks_revocation)
        settings = self.services.settings
        if settings.service_auth == "oidc" and not settings.service_callers:
            raise unauthenticated("This API accepts no service callers.")
        service = self.services.authenticate(headers, None, "", allowed=settings.service_callers)
        return Principal(
            uid=service.uid,
            tenant_id=None,
            email=service.email,
            roles=frozenset({SERVICE_ROLE}),
            is_service=True,
        )
