"""Secret Manager emulator: the official client over real gRPC on loopback, no mocks."""

from __future__ import annotations

import itertools
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.cloud import secretmanager_v1
from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
    SecretManagerServiceGrpcTransport,
)

from emulators.secrets_emulator import SecretsEmulator, crc32c
from tests.emulators.helpers import close_grpc_client, grpc_client, run_cli_until_signal

PROJECT = "projects/test-project"
State = secretmanager_v1.SecretVersion.State
MARKER = b"payload-marker-7f3a"

_secret_ids = itertools.count(1)


def automatic(**fields: Any) -> secretmanager_v1.Secret:
    replication = secretmanager_v1.Replication(automatic=secretmanager_v1.Replication.Automatic())
    return secretmanager_v1.Secret(replication=replication, **fields)


def payload(data: bytes, **fields: Any) -> secretmanager_v1.SecretPayload:
    return secretmanager_v1.SecretPayload(data=data, **fields)


def make_client(address: str) -> secretmanager_v1.SecretManagerServiceClient:
    return grpc_client(
        secretmanager_v1.SecretManagerServiceClient, SecretManagerServiceGrpcTransport, address
    )


def close_client(client: secretmanager_v1.SecretManagerServiceClient) -> None:
    close_grpc_client(client, SecretManagerServiceGrpcTransport)


@pytest.fixture(scope="module")
def emulator() -> Iterator[SecretsEmulator]:
    with SecretsEmulator() as emu:
        yield emu


@pytest.fixture(scope="module")
def client(emulator: SecretsEmulator) -> Iterator[secretmanager_v1.SecretManagerServiceClient]:
    cl = make_client(emulator.address)
    yield cl
    close_client(cl)


@pytest.fixture
def secret(client: secretmanager_v1.SecretManagerServiceClient) -> secretmanager_v1.Secret:
    return client.create_secret(parent=PROJECT, secret_id=f"s-{next(_secret_ids)}", secret=automatic())


def add(
    client: secretmanager_v1.SecretManagerServiceClient, parent: str, data: bytes
) -> secretmanager_v1.SecretVersion:
    return client.add_secret_version(parent=parent, payload=payload(data))


def test_crc32c_matches_the_castagnoli_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0


def test_create_get_list_delete_secret(client: secretmanager_v1.SecretManagerServiceClient) -> None:
    ids = [f"crud-{i}" for i in range(3)]
    for secret_id in ids:
        created = client.create_secret(
            parent=PROJECT, secret_id=secret_id, secret=automatic(labels={"tenant": "t1"})
        )
        assert created.name == f"{PROJECT}/secrets/{secret_id}"
        assert created.labels["tenant"] == "t1"
        assert created.create_time is not None
    with pytest.raises(gexc.AlreadyExists):
        client.create_secret(parent=PROJECT, secret_id=ids[0], secret=automatic())

    assert client.get_secret(name=f"{PROJECT}/secrets/{ids[0]}").labels["tenant"] == "t1"
    pages = list(
        client.list_secrets(request={"parent": PROJECT, "page_size": 2, "filter": "name:crud-"}).pages
    )
    assert [len(p.secrets) for p in pages] == [2, 1]
    assert sorted(s.name for p in pages for s in p.secrets) == [f"{PROJECT}/secrets/{i}" for i in ids]

    name = f"{PROJECT}/secrets/{ids[0]}"
    with pytest.raises(gexc.Aborted):
        client.delete_secret(request={"name": name, "etag": '"stale"'})
    client.delete_secret(name=name)
    with pytest.raises(gexc.NotFound):
        client.get_secret(name=name)
    with pytest.raises(gexc.NotFound):
        client.delete_secret(name=name)


def test_replication_rules(client: secretmanager_v1.SecretManagerServiceClient) -> None:
    with pytest.raises(gexc.InvalidArgument):
        client.create_secret(parent=PROJECT, secret_id="no-replication", secret=secretmanager_v1.Secret())
    with pytest.raises(gexc.InvalidArgument):
        client.create_secret(parent=PROJECT, secret_id="bad id!", secret=automatic())
    regional = client.create_secret(
        parent=f"{PROJECT}/locations/europe-west1", secret_id="regional", secret=secretmanager_v1.Secret()
    )
    assert regional.name == f"{PROJECT}/locations/europe-west1/secrets/regional"
    add(client, regional.name, b"r")
    assert client.access_secret_version(name=f"{regional.name}/versions/latest").payload.data == b"r"


def test_access_latest_and_numeric_versions(
    client: secretmanager_v1.SecretManagerServiceClient, secret: secretmanager_v1.Secret
) -> None:
    v1 = add(client, secret.name, b"one")
    v2 = add(client, secret.name, b"two")
    assert v1.name == f"{secret.name}/versions/1"
    assert v2.name == f"{secret.name}/versions/2"
    assert v2.state == State.ENABLED
    assert not v2.client_specified_payload_checksum

    latest = client.access_secret_version(name=f"{secret.name}/versions/latest")
    assert latest.name == v2.name
    assert latest.payload.data == b"two"
    assert latest.payload.data_crc32c == crc32c(b"two")
    assert client.access_secret_version(name=v1.name).payload.data == b"one"
    assert client.get_secret_version(name=f"{secret.name}/versions/latest").name == v2.name

    listed = list(client.list_secret_versions(parent=secret.name))
    assert [v.name for v in listed] == [v2.name, v1.name]  # newest first


def test_version_aliases(client: secretmanager_v1.SecretManagerServiceClient) -> None:
    created = client.create_secret(
        parent=PROJECT, secret_id="aliased", secret=automatic(version_aliases={"current": 1})
    )
    add(client, created.name, b"first")
    add(client, created.name, b"second")
    assert client.access_secret_version(name=f"{created.name}/versions/current").payload.data == b"first"
    with pytest.raises(gexc.NotFound):
        client.access_secret_version(name=f"{created.name}/versions/unknown-alias")


def test_crc32c_is_checked_when_given(
    client: secretmanager_v1.SecretManagerServiceClient, secret: secretmanager_v1.Secret
) -> None:
    data = b"s3cr3t"
    good = client.add_secret_version(parent=secret.name, payload=payload(data, data_crc32c=crc32c(data)))
    assert good.client_specified_payload_checksum

    with pytest.raises(gexc.InvalidArgument):
        client.add_secret_version(parent=secret.name, payload=payload(data, data_crc32c=crc32c(data) ^ 1))
    # The rejected version was not stored.
    assert [v.name for v in client.list_secret_versions(parent=secret.name)] == [good.name]

    with pytest.raises(gexc.InvalidArgument):
        add(client, secret.name, b"x" * (64 * 1024 + 1))


def test_disable_enable_destroy(
    client: secretmanager_v1.SecretManagerServiceClient, secret: secretmanager_v1.Secret
) -> None:
    v1 = add(client, secret.name, b"one")
    v2 = add(client, secret.name, b"two")
    latest = f"{secret.name}/versions/latest"

    disabled = client.disable_secret_version(name=v2.name)
    assert disabled.state == State.DISABLED
    with pytest.raises(gexc.FailedPrecondition):
        client.access_secret_version(name=v2.name)
    with pytest.raises(gexc.FailedPrecondition):
        client.access_secret_version(name=latest)  # latest is the newest version, even when disabled
    assert client.access_secret_version(name=v1.name).payload.data == b"one"
    assert [
        v.name
        for v in client.list_secret_versions(request={"parent": secret.name, "filter": "state:ENABLED"})
    ] == [v1.name]

    with pytest.raises(gexc.Aborted):
        client.enable_secret_version(request={"name": v2.name, "etag": v2.etag})  # etag changed when disabled
    assert (
        client.enable_secret_version(request={"name": v2.name, "etag": disabled.etag}).state == State.ENABLED
    )
    assert client.access_secret_version(name=latest).payload.data == b"two"

    destroyed = client.destroy_secret_version(name=v2.name)
    assert destroyed.state == State.DESTROYED
    assert destroyed.destroy_time is not None
    with pytest.raises(gexc.FailedPrecondition):
        client.access_secret_version(name=v2.name)
    with pytest.raises(gexc.FailedPrecondition):
        client.enable_secret_version(name=v2.name)
    assert client.get_secret_version(name=v2.name).state == State.DESTROYED


def test_not_found(
    client: secretmanager_v1.SecretManagerServiceClient, secret: secretmanager_v1.Secret
) -> None:
    missing = f"{PROJECT}/secrets/does-not-exist"
    with pytest.raises(gexc.NotFound):
        client.access_secret_version(name=f"{missing}/versions/latest")
    with pytest.raises(gexc.NotFound):
        client.add_secret_version(parent=missing, payload=payload(b"x"))
    with pytest.raises(gexc.NotFound):
        client.access_secret_version(name=f"{secret.name}/versions/latest")  # no versions yet
    add(client, secret.name, b"x")
    with pytest.raises(gexc.NotFound):
        client.access_secret_version(name=f"{secret.name}/versions/9")
    with pytest.raises(gexc.NotFound):
        client.disable_secret_version(name=f"{secret.name}/versions/9")


def test_refuses_non_loopback_host() -> None:
    for host in ("0.0.0.0", "localhost", "192.168.1.10"):
        with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
            SecretsEmulator(host=host)


def test_cli_prints_ready_and_stops_on_sigterm() -> None:
    def exercise(address: str) -> None:
        cl = make_client(address)
        created = cl.create_secret(parent=PROJECT, secret_id="cli", secret=automatic())
        add(cl, created.name, MARKER)
        assert cl.access_secret_version(name=f"{created.name}/versions/1").payload.data == MARKER
        close_client(cl)

    stdout, stderr = run_cli_until_signal(
        "emulators.secrets_emulator",
        ["--host", "127.0.0.1", "--port", "0", "--log-level", "DEBUG"],
        exercise,
        signal.SIGINT,
    )
    assert "Traceback" not in stderr
    # Payloads are never logged, even at DEBUG.
    assert MARKER.decode() not in stdout + stderr
