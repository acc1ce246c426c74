"""shared.clients: every gRPC call to Firestore, Cloud Tasks and Secret Manager carries a deadline."""

from __future__ import annotations

import socket
from typing import Any

import grpc
import pytest

from shared.clients import DeadlineInterceptor, _CallDetails


def details(timeout: float | None) -> _CallDetails:
    return _CallDetails("/google.firestore.v1.Firestore/GetDocument", timeout, None, None, None, None)


@pytest.mark.parametrize(("asked", "sent"), [(None, 15.0), (60.0, 15.0), (300.0, 15.0), (2.0, 2.0)])
def test_unary_calls_get_at_most_the_call_deadline(asked: float | None, sent: float) -> None:
    seen: list[Any] = []
    DeadlineInterceptor(15.0, 60.0).intercept_unary_unary(
        lambda d, r: seen.append(d.timeout), details(asked), object()
    )
    assert seen == [sent]


@pytest.mark.parametrize(("asked", "sent"), [(None, 60.0), (300.0, 60.0), (5.0, 5.0)])
def test_streams_get_at_most_the_stream_deadline(asked: float | None, sent: float) -> None:
    seen: list[Any] = []
    DeadlineInterceptor(15.0, 60.0).intercept_unary_stream(
        lambda d, r: seen.append(d.timeout), details(asked), object()
    )
    assert seen == [sent]


def test_a_firestore_read_against_a_server_that_never_answers_fails_with_its_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real client, built by shared.clients, against a socket that accepts and never speaks."""
    from google.api_core import exceptions as gexc

    from shared.clients import call_options, new_firestore_client

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    try:
        monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{silent.getsockname()[1]}")
        db = new_firestore_client("demo-deadline")
        with pytest.raises((gexc.DeadlineExceeded, gexc.RetryError)):
            db.collection("tenants").document("t1").get(**call_options(0.2))
    finally:
        silent.close()


def test_the_firestore_client_channel_carries_the_interceptor(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.clients import new_firestore_client

    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:9")
    db = new_firestore_client("demo-deadline")
    channel = db._firestore_api._transport.grpc_channel
    assert isinstance(channel, grpc.Channel)
    assert type(channel).__module__ == "grpc._interceptor"
