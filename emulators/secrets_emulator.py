"""In-process Secret Manager v1 emulator spoken to by the official ``google-cloud-secret-manager`` client.

Serves ``google.cloud.secretmanager.v1.SecretManagerService`` over gRPC without .proto files, using the
proto-plus classes shipped in ``google.cloud.secretmanager_v1``. Point the official client at it with::

    channel = grpc.insecure_channel(emulator.address)
    transport = secretmanager_v1.services.secret_manager_service.transports.SecretManagerServiceGrpcTransport(
        channel=channel
    )
    client = secretmanager_v1.SecretManagerServiceClient(transport=transport)

Implemented: CreateSecret, GetSecret, ListSecrets, DeleteSecret, AddSecretVersion, GetSecretVersion,
AccessSecretVersion, ListSecretVersions, DisableSecretVersion, EnableSecretVersion, DestroySecretVersion.
Semantics follow the real service:

* Version ids are 1, 2, 3, ... per secret; ``latest`` is the most recently created version whatever its
  state, and ``Secret.version_aliases`` work for Get/Access. Disable/Enable/Destroy take numeric ids.
* ``payload.data_crc32c``, when given, must match the data (``INVALID_ARGUMENT``); Access always returns it.
  Payloads are limited to 64 KiB.
* Accessing a DISABLED or DESTROYED version answers ``FAILED_PRECONDITION``; a missing secret or version
  answers ``NOT_FOUND``. Destroying wipes the payload and cannot be undone. A mismatched ``etag`` on
  Delete/Disable/Enable/Destroy answers ``ABORTED``.
* Global secrets (``projects/P``) need a replication policy; regional ones (``projects/P/locations/L``)
  must not set one.

Not emulated: UpdateSecret, IAM, rotation, TTL/expiry, delayed destruction (``version_destroy_ttl``), and
list filters other than ``state:`` (versions) and ``name:`` (secrets).

Secret payloads live in memory only: never written to disk and never logged. The server binds to
127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import re
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import grpc
from google.cloud import secretmanager_v1
from google.protobuf import empty_pb2

from emulators.grpc_base import LOOPBACK_HOST, LoopbackGrpcEmulator, RpcError, serve_cli, unary_method

__all__ = ["SERVICE_NAME", "SecretsEmulator", "crc32c", "main"]

SERVICE_NAME = "google.cloud.secretmanager.v1.SecretManagerService"
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_PAGE_SIZE = 25000

_PARENT_RE = re.compile(r"^projects/[^/]+(?:/locations/[^/]+)?$")
_SECRET_RE = re.compile(r"^(projects/[^/]+(?:/locations/([^/]+))?)/secrets/([A-Za-z0-9_-]{1,255})$")
_VERSION_RE = re.compile(
    r"^(projects/[^/]+(?:/locations/[^/]+)?/secrets/[A-Za-z0-9_-]{1,255})/versions/([^/]+)$"
)
_SECRET_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_STATE_FILTER_RE = re.compile(r"^\s*state\s*[:=]\s*([A-Z_]+)\s*$")
_NAME_FILTER_RE = re.compile(r"^\s*name\s*:\s*(\S+)\s*$")

# Raw protobuf messages; proto-plus builds their classes at runtime.
PbMessage: TypeAlias = Any

_SecretPb = secretmanager_v1.Secret.pb()
_VersionPb = secretmanager_v1.SecretVersion.pb()
_State = secretmanager_v1.SecretVersion.State
_ENABLED = int(_State.ENABLED)
_DISABLED = int(_State.DISABLED)
_DESTROYED = int(_State.DESTROYED)

# CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum Secret Manager uses.
_CRC32C_TABLE: list[int] = []
for _byte in range(256):
    _crc = _byte
    for _ in range(8):
        _crc = (_crc >> 1) ^ 0x82F63B78 if _crc & 1 else _crc >> 1
    _CRC32C_TABLE.append(_crc)


def crc32c(data: bytes) -> int:
    """CRC-32C of ``data`` as the unsigned int Secret Manager puts in ``data_crc32c``."""
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _page(keys: list[str], page_size: int, page_token: str) -> tuple[list[str], str]:
    """Page over already ordered keys; the token is the last key returned (opaque to callers)."""
    if page_size < 0:
        raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "page_size must be >= 0")
    size = min(page_size or MAX_PAGE_SIZE, MAX_PAGE_SIZE)
    start = 0
    if page_token:
        try:
            after = base64.urlsafe_b64decode(page_token.encode()).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "invalid page_token") from exc
        if after not in keys:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "invalid page_token")
        start = keys.index(after) + 1
    chunk = keys[start : start + size]
    more = start + size < len(keys)
    return chunk, base64.urlsafe_b64encode(chunk[-1].encode()).decode() if more and chunk else ""


@dataclass(eq=False)
class _Version:
    number: int
    create_ns: int
    state: int
    payload: bytes | None
    crc: int
    client_checksum: bool
    destroy_ns: int | None = None
    revision: int = 1

    @property
    def etag(self) -> str:
        return f'"{self.create_ns:x}{self.revision:x}"'


@dataclass(eq=False)
class _Secret:
    pb: PbMessage
    versions: dict[int, _Version] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.pb.name)


class SecretsEmulator(LoopbackGrpcEmulator):
    """Secret Manager v1 gRPC emulator. ``start()`` returns the bound port; ``stop()`` shuts it down."""

    service_name = SERVICE_NAME
    display_name = "Secret Manager"

    def __init__(self, host: str = LOOPBACK_HOST, port: int = 0) -> None:
        super().__init__(host, port)
        self._lock = threading.Lock()
        self._secrets: dict[str, _Secret] = {}

    def _on_stop(self) -> None:
        with self._lock:
            # Drop payloads promptly; nothing outlives the process anyway.
            self._secrets.clear()

    # ------------------------------------------------------------------ gRPC plumbing

    def method_handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        unary = unary_method
        sm = secretmanager_v1
        secret_out = sm.Secret.serialize
        version_out = sm.SecretVersion.serialize
        return {
            "CreateSecret": unary(self._create_secret, sm.CreateSecretRequest, secret_out),
            "GetSecret": unary(self._get_secret, sm.GetSecretRequest, secret_out),
            "ListSecrets": unary(self._list_secrets, sm.ListSecretsRequest, sm.ListSecretsResponse.serialize),
            "DeleteSecret": unary(
                self._delete_secret, sm.DeleteSecretRequest, empty_pb2.Empty.SerializeToString
            ),
            "AddSecretVersion": unary(self._add_version, sm.AddSecretVersionRequest, version_out),
            "GetSecretVersion": unary(self._get_version, sm.GetSecretVersionRequest, version_out),
            "AccessSecretVersion": unary(
                self._access_version,
                sm.AccessSecretVersionRequest,
                sm.AccessSecretVersionResponse.serialize,
            ),
            "ListSecretVersions": unary(
                self._list_versions, sm.ListSecretVersionsRequest, sm.ListSecretVersionsResponse.serialize
            ),
            "DisableSecretVersion": unary(self._disable_version, sm.DisableSecretVersionRequest, version_out),
            "EnableSecretVersion": unary(self._enable_version, sm.EnableSecretVersionRequest, version_out),
            "DestroySecretVersion": unary(self._destroy_version, sm.DestroySecretVersionRequest, version_out),
        }

    # ------------------------------------------------------------------ lookups (caller holds _lock)

    def _secret_or_404(self, name: str) -> _Secret:
        if not _SECRET_RE.match(name):
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"invalid secret name {name!r}")
        secret = self._secrets.get(name)
        if secret is None:
            raise RpcError(grpc.StatusCode.NOT_FOUND, f"Secret [{name}] not found.")
        return secret

    def _version_or_404(self, name: str, *, aliases: bool) -> tuple[_Secret, _Version]:
        match = _VERSION_RE.match(name)
        if not match:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"invalid secret version name {name!r}")
        secret = self._secret_or_404(match.group(1))
        version_id = match.group(2)
        number: int | None = None
        if version_id.isdigit():
            number = int(version_id)
        elif not aliases:
            raise RpcError(
                grpc.StatusCode.INVALID_ARGUMENT, f"version id must be numeric, got {version_id!r}"
            )
        elif version_id == "latest":
            # "latest" is the most recently created version, whatever its state (documented).
            number = max(secret.versions, default=None)
        elif version_id in secret.pb.version_aliases:
            number = int(secret.pb.version_aliases[version_id])
        version = secret.versions.get(number) if number is not None else None
        if version is None:
            raise RpcError(grpc.StatusCode.NOT_FOUND, f"Secret Version [{name}] not found.")
        return secret, version

    @staticmethod
    def _check_etag(given: str, current: str) -> None:
        if given and given != current:
            raise RpcError(grpc.StatusCode.ABORTED, "etag does not match the current etag of the resource")

    # ------------------------------------------------------------------ views

    @staticmethod
    def _secret_view(secret: _Secret) -> Any:
        out = _SecretPb()
        out.CopyFrom(secret.pb)
        return secretmanager_v1.Secret.wrap(out)

    @staticmethod
    def _version_view(secret: _Secret, version: _Version) -> Any:
        out = _VersionPb()
        out.name = f"{secret.name}/versions/{version.number}"
        out.create_time.FromNanoseconds(version.create_ns)
        if version.destroy_ns is not None:
            out.destroy_time.FromNanoseconds(version.destroy_ns)
        out.state = version.state
        out.etag = version.etag
        out.client_specified_payload_checksum = version.client_checksum
        replication = secret.pb.replication
        if replication.HasField("automatic"):
            out.replication_status.automatic.SetInParent()
        elif replication.HasField("user_managed"):
            for replica in replication.user_managed.replicas:
                out.replication_status.user_managed.replicas.add(location=replica.location)
        return secretmanager_v1.SecretVersion.wrap(out)

    # ------------------------------------------------------------------ secret RPCs

    def _create_secret(self, request: Any) -> Any:
        parent = str(request.parent)
        secret_id = str(request.secret_id)
        if not _PARENT_RE.match(parent):
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"invalid parent {parent!r}")
        if not _SECRET_ID_RE.match(secret_id):
            raise RpcError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "secret_id must be 1-255 letters, digits, underscores or hyphens",
            )
        requested = secretmanager_v1.Secret.pb(request.secret)
        regional = "/locations/" in parent
        has_replication = requested.HasField("replication")
        if not regional and not has_replication:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "Secret.replication must be specified.")
        if regional and has_replication:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "regional secrets must not set replication")
        for alias, number in requested.version_aliases.items():
            if alias == "latest" or alias.isdigit() or number < 1:
                raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"invalid version alias {alias!r}")
        name = f"{parent}/secrets/{secret_id}"
        pb = _SecretPb()
        pb.CopyFrom(requested)
        pb.name = name
        now = time.time_ns()
        pb.create_time.FromNanoseconds(now)
        pb.etag = f'"{now:x}"'
        with self._lock:
            if name in self._secrets:
                raise RpcError(grpc.StatusCode.ALREADY_EXISTS, f"Secret [{name}] already exists.")
            secret = _Secret(pb=pb)
            self._secrets[name] = secret
            return self._secret_view(secret)

    def _get_secret(self, request: Any) -> Any:
        with self._lock:
            return self._secret_view(self._secret_or_404(str(request.name)))

    def _list_secrets(self, request: Any) -> Any:
        parent = str(request.parent)
        if not _PARENT_RE.match(parent):
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"invalid parent {parent!r}")
        name_filter: str | None = None
        if request.filter:
            match = _NAME_FILTER_RE.match(request.filter)
            if not match:
                raise RpcError(
                    grpc.StatusCode.INVALID_ARGUMENT, "only 'name:SUBSTRING' filters are supported"
                )
            name_filter = match.group(1)
        with self._lock:
            names = sorted(
                n
                for n in self._secrets
                if n.startswith(parent + "/secrets/")
                and (name_filter is None or name_filter in n.rsplit("/", 1)[-1])
            )
            chunk, token = _page(names, request.page_size, request.page_token)
            return secretmanager_v1.ListSecretsResponse(
                secrets=[self._secret_view(self._secrets[n]) for n in chunk],
                next_page_token=token,
                total_size=len(names),
            )

    def _delete_secret(self, request: Any) -> Any:
        with self._lock:
            secret = self._secret_or_404(str(request.name))
            self._check_etag(str(request.etag), str(secret.pb.etag))
            del self._secrets[secret.name]
            return empty_pb2.Empty()

    # ------------------------------------------------------------------ version RPCs

    def _add_version(self, request: Any) -> Any:
        payload = secretmanager_v1.SecretPayload.pb(request.payload)
        data = bytes(payload.data)
        if len(data) > MAX_PAYLOAD_BYTES:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"payload exceeds {MAX_PAYLOAD_BYTES} bytes")
        checksum = crc32c(data)
        client_checksum = payload.HasField("data_crc32c")
        if client_checksum and payload.data_crc32c != checksum:
            raise RpcError(
                grpc.StatusCode.INVALID_ARGUMENT, "Checksum mismatch: data_crc32c does not match data"
            )
        with self._lock:
            secret = self._secret_or_404(str(request.parent))
            number = max(secret.versions, default=0) + 1
            version = _Version(
                number=number,
                create_ns=time.time_ns(),
                state=_ENABLED,
                payload=data,
                crc=checksum,
                client_checksum=client_checksum,
            )
            secret.versions[number] = version
            return self._version_view(secret, version)

    def _get_version(self, request: Any) -> Any:
        with self._lock:
            return self._version_view(*self._version_or_404(str(request.name), aliases=True))

    def _access_version(self, request: Any) -> Any:
        with self._lock:
            secret, version = self._version_or_404(str(request.name), aliases=True)
            if version.state != _ENABLED or version.payload is None:
                state = _State(version.state).name
                raise RpcError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"Secret Version [{secret.name}/versions/{version.number}] is in {state} state.",
                )
            return secretmanager_v1.AccessSecretVersionResponse(
                name=f"{secret.name}/versions/{version.number}",
                payload=secretmanager_v1.SecretPayload(data=version.payload, data_crc32c=version.crc),
            )

    def _list_versions(self, request: Any) -> Any:
        state_filter: int | None = None
        if request.filter:
            match = _STATE_FILTER_RE.match(request.filter)
            if not match or match.group(1) not in _State.__members__:
                raise RpcError(
                    grpc.StatusCode.INVALID_ARGUMENT, "only 'state:ENABLED|DISABLED|DESTROYED' filters"
                )
            state_filter = int(_State.__members__[match.group(1)])
        with self._lock:
            secret = self._secret_or_404(str(request.parent))
            # Newest first, as the real service lists them.
            numbers = [
                str(n)
                for n in sorted(secret.versions, reverse=True)
                if state_filter is None or secret.versions[n].state == state_filter
            ]
            chunk, token = _page(numbers, request.page_size, request.page_token)
            return secretmanager_v1.ListSecretVersionsResponse(
                versions=[self._version_view(secret, secret.versions[int(n)]) for n in chunk],
                next_page_token=token,
                total_size=len(numbers),
            )

    def _set_state(self, request: Any, state: int) -> Any:
        with self._lock:
            secret, version = self._version_or_404(str(request.name), aliases=False)
            self._check_etag(str(request.etag), version.etag)
            if version.state == _DESTROYED:
                raise RpcError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"Secret Version [{secret.name}/versions/{version.number}] is in DESTROYED state.",
                )
            if version.state != state:
                version.state = state
                version.revision += 1
                if state == _DESTROYED:
                    # Destruction is irreversible: the material is gone from memory.
                    version.payload = None
                    version.destroy_ns = time.time_ns()
            return self._version_view(secret, version)

    def _disable_version(self, request: Any) -> Any:
        return self._set_state(request, _DISABLED)

    def _enable_version(self, request: Any) -> Any:
        return self._set_state(request, _ENABLED)

    def _destroy_version(self, request: Any) -> Any:
        return self._set_state(request, _DESTROYED)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: serve until SIGTERM/SIGINT, printing ``READY 127.0.0.1:PORT`` once the port is bound."""
    return serve_cli(
        argv,
        prog="python -m emulators.secrets_emulator",
        description="Local Secret Manager v1 gRPC emulator.",
        build_emulator=_emulator_from_args,
    )


def _emulator_from_args(args: argparse.Namespace) -> SecretsEmulator:
    return SecretsEmulator(args.host, args.port)


if __name__ == "__main__":
    sys.exit(main())
