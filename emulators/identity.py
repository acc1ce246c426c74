"""Users and ID tokens on the Firebase Auth emulator, for `make run`'s demo users and for the tests.

The claims are the ones the User Management API sets in production: tenant_id, roles, platform_operator.
"""

from __future__ import annotations

import json
import os
import urllib.request
from typing import Any

from firebase_admin import auth

from shared.clients import firebase_app


def ensure_user(email: str, password: str, claims: dict[str, Any]) -> str:
    """Create the user (or find it) and set its custom claims; returns the uid."""
    app = firebase_app()
    try:
        user = auth.get_user_by_email(email, app=app)
    except auth.UserNotFoundError:
        user = auth.create_user(email=email, password=password, email_verified=True, app=app)
    auth.set_custom_user_claims(user.uid, claims, app=app)
    return str(user.uid)


def sign_in(email: str, password: str) -> str:
    """An ID token from the emulator's REST endpoint, exactly as a client app would get one."""
    host = os.environ["FIREBASE_AUTH_EMULATOR_HOST"]
    url = f"http://{host}/identitytoolkit.googleapis.com/v1/accounts:signInWithPassword?key=local-api-key"
    body = json.dumps({"email": email, "password": password, "returnSecureToken": True}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        return str(json.load(response)["idToken"])


def sign_in_tenant(email: str, password: str, idp_tenant_id: str) -> str:
    """An ID token of a user of an Identity Platform tenant (as the portal's sign-in gets one)."""
    host = os.environ["FIREBASE_AUTH_EMULATOR_HOST"]
    url = f"http://{host}/identitytoolkit.googleapis.com/v1/accounts:signInWithPassword?key=local-api-key"
    body = {"email": email, "password": password, "returnSecureToken": True, "tenantId": idp_tenant_id}
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        return str(json.load(response)["idToken"])


def token_for(email: str, claims: dict[str, Any], password: str = "local-password-1") -> str:  # noqa: S107
    ensure_user(email, password, claims)
    return sign_in(email, password)


def reset(project: str) -> None:
    """Delete every account on the emulator (between tests)."""
    host = os.environ["FIREBASE_AUTH_EMULATOR_HOST"]
    url = f"http://{host}/emulator/v1/projects/{project}/accounts"
    request = urllib.request.Request(url, method="DELETE")
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - loopback
        pass
