"""Service authentication fails closed in production configuration."""

from __future__ import annotations

import pytest

from shared.auth import ServiceAuthenticator, sign_local_service_token
from shared.config import Settings
from shared.problems import Problem

KEY = "k" * 48
PUSH = "pubsub-push@demo.iam.gserviceaccount.com"


def test_local_mode_with_no_allow_list_accepts_the_suite_key() -> None:
    auth = ServiceAuthenticator(Settings(service_auth="local", local_signing_key=KEY))
    principal = auth.authenticate({}, sign_local_service_token(KEY, PUSH), "http://127.0.0.1/x")
    assert principal.is_service and principal.uid == PUSH


def test_oidc_mode_without_an_audience_refuses_before_looking_at_the_token() -> None:
    auth = ServiceAuthenticator(Settings(service_auth="oidc", service_invokers=(PUSH,)))
    with pytest.raises(Problem) as refused:
        auth.authenticate({"Authorization": "Bearer x.y.z"}, None, "https://run.app/seal")
    assert refused.value.status == 401
    assert "CMP_SERVICE_AUDIENCE" in refused.value.detail


def test_an_empty_allow_list_outside_local_mode_refuses_every_caller() -> None:
    settings = Settings(service_auth="oidc", service_audience="https://f.example/fn")
    auth = ServiceAuthenticator(settings)
    # Stand in for Google's verification: the token is genuine, but no caller is allowed.
    auth._verify_oidc = lambda token, url: {"email": PUSH, "email_verified": True}  # type: ignore[method-assign]
    with pytest.raises(Problem) as refused:
        auth.authenticate({"Authorization": "Bearer x.y.z"}, None, "https://f.example/fn")
    assert refused.value.status == 401
