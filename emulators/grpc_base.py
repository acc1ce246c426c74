"""What the in-process gRPC emulators share: loopback-only binding, server lifecycle and the CLI.

A subclass names its service (``service_name``), answers its RPCs (``method_handlers()``, built with
``unary_method``; handlers raise ``RpcError`` for a gRPC status) and may hook ``_on_start()`` /
``_on_stop()``. ``serve_cli`` is its ``main()``: ``--host``/``--port``/``--log-level`` plus its own
flags, ``READY 127.0.0.1:PORT`` on stdout once bound, then serving until SIGTERM/SIGINT (exit 0;
1 when the port cannot be bound, 2 for bad arguments).
"""

from __future__ import annotations

import abc
import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, Self

import grpc

__all__ = ["LOOPBACK_HOST", "LoopbackGrpcEmulator", "RpcError", "serve_cli", "unary_method"]

LOOPBACK_HOST = "127.0.0.1"


class RpcError(Exception):
    """Raised inside handlers; turned into a real gRPC status by the handler wrapper."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def unary_method(
    fn: Callable[[Any], Any], request_cls: Any, response_serializer: Callable[[Any], bytes]
) -> grpc.RpcMethodHandler:
    """A unary-unary handler for ``fn``: proto-plus ``request_cls`` in, ``RpcError`` out as a status."""

    def handler(request: Any, context: Any) -> Any:
        try:
            return fn(request)
        except RpcError as err:
            context.abort(err.code, err.message)
            raise AssertionError("unreachable: context.abort raises") from err

    return grpc.unary_unary_rpc_method_handler(
        handler,
        request_deserializer=request_cls.deserialize,
        response_serializer=response_serializer,
    )


class LoopbackGrpcEmulator(abc.ABC):
    """A gRPC service on 127.0.0.1. ``start()`` returns the bound port; ``stop()`` shuts it down."""

    service_name: ClassVar[str]
    """Fully qualified gRPC service, e.g. ``google.cloud.tasks.v2.CloudTasks``."""
    display_name: ClassVar[str]
    """Human name for the log line, e.g. ``Cloud Tasks``."""

    def __init__(self, host: str = LOOPBACK_HOST, port: int = 0) -> None:
        # Refuse anything but 127.0.0.1: the emulators have no auth and must never be reachable remotely.
        if host != LOOPBACK_HOST:
            raise ValueError(
                f"emulator must bind to {LOOPBACK_HOST} only (got {host!r}); it has no authentication"
            )
        self._host = host
        self._requested_port = port
        self._server: Any = None
        self._port: int | None = None

    @abc.abstractmethod
    def method_handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        """RPC method name -> handler (see ``unary_method``)."""

    # Optional hooks, deliberately not abstract (hence the noqa): most emulators need neither.
    def _on_start(self) -> None:  # noqa: B027
        """Called once the port is bound, just before the server starts answering."""

    def _on_stop(self) -> None:  # noqa: B027
        """Called after the server has stopped answering."""

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("emulator not started")
        return self._port

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, ready for ``grpc.insecure_channel``."""
        return f"{self._host}:{self.port}"

    def start(self) -> int:
        if self._server is not None:
            raise RuntimeError("emulator already started")
        # so_reuseport off: otherwise a second emulator could silently share the port.
        server = grpc.server(ThreadPoolExecutor(max_workers=8), options=[("grpc.so_reuseport", 0)])
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(self.service_name, self.method_handlers()),)
        )
        try:
            port = server.add_insecure_port(f"{self._host}:{self._requested_port}")
        except RuntimeError as exc:
            raise OSError(f"cannot bind {self._host}:{self._requested_port}: {exc}") from exc
        if not port:
            raise OSError(f"cannot bind {self._host}:{self._requested_port}")
        self._on_start()
        server.start()
        self._server = server
        self._port = int(port)
        # Logged under the subclass's module, so its log level settings apply.
        logging.getLogger(type(self).__module__).info(
            "%s emulator serving on %s:%d", self.display_name, self._host, port
        )
        return self._port

    def stop(self, grace: float = 0.5) -> None:
        if self._server is None:
            return
        self._server.stop(grace).wait()
        self._server = None
        self._on_stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve_cli(
    argv: Sequence[str] | None,
    *,
    prog: str,
    description: str,
    build_emulator: Callable[[argparse.Namespace], LoopbackGrpcEmulator],
    extra_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """CLI: serve until SIGTERM/SIGINT, printing ``READY 127.0.0.1:PORT`` once the port is bound.

    ``extra_arguments`` adds the emulator's own flags; ``build_emulator`` turns the parsed arguments into
    an emulator, and a ``ValueError`` from it is a usage error (exit 2).
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--host", default=LOOPBACK_HOST, help="must be 127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (see the READY line)")
    if extra_arguments is not None:
        extra_arguments(parser)
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    try:
        emulator = build_emulator(args)
    except ValueError as exc:
        parser.error(str(exc))

    stopped = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        emulator.start()
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"READY {emulator.address}", flush=True)
    try:
        stopped.wait()
    finally:
        emulator.stop()
    return 0
