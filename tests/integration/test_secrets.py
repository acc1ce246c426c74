"""The kernel's Secret Manager accessor against our Secret Manager emulator (official client)."""

from __future__ import annotations

import contextlib
import logging

import pytest
from google.api_core import exceptions as gexc

from emulators.suite import Suite
from shared.clients import secrets_client
from shared.secrets import SecretAccessor, SecretNotFound


def add_secret(project: str, secret_id: str, value: str) -> None:
    client = secrets_client()
    with contextlib.suppress(gexc.AlreadyExists):
        client.create_secret(
            request={
                "parent": f"projects/{project}",
                "secret_id": secret_id,
                "secret": {"replication": {"automatic": {}}},
            }
        )
    client.add_secret_version(
        request={"parent": f"projects/{project}/secrets/{secret_id}", "payload": {"data": value.encode()}}
    )


def test_reads_the_latest_version_caches_it_and_never_prints_it(
    suite: Suite, caplog: pytest.LogCaptureFixture
) -> None:
    add_secret(suite.project, "webhook-signing", "first-value")
    accessor = SecretAccessor(ttl_seconds=300)
    with caplog.at_level(logging.DEBUG):
        value = accessor.get("webhook-signing")
    assert value.get_secret_value() == "first-value"
    assert "first-value" not in str(value) and "first-value" not in repr(value)
    assert "first-value" not in caplog.text

    add_secret(suite.project, "webhook-signing", "second-value")
    assert accessor.get("webhook-signing").get_secret_value() == "first-value"  # cached
    accessor.invalidate("webhook-signing")
    assert accessor.get("webhook-signing").get_secret_value() == "second-value"
    assert accessor.get("webhook-signing", "1").get_secret_value() == "first-value"


def test_a_missing_secret_raises_not_found(suite: Suite) -> None:
    with pytest.raises(SecretNotFound):
        SecretAccessor().get("no-such-secret")
