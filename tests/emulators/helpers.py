"""What the emulator tests share: timeouts, official clients on a plain channel, the CLI as a child."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc

ClientT = TypeVar("ClientT")

WAIT_SECONDS = 10.0
REPO_ROOT = Path(__file__).resolve().parents[2]


def grpc_client(client_cls: Callable[..., ClientT], transport_cls: type[Any], address: str) -> ClientT:
    """An official client whose gRPC transport speaks to ``address`` over an insecure channel."""
    return client_cls(transport=transport_cls(channel=grpc.insecure_channel(address)))


def close_grpc_client(client: Any, transport_cls: type[Any]) -> None:
    transport = client.transport
    assert isinstance(transport, transport_cls)
    transport.grpc_channel.close()


def run_cli_until_signal(
    module: str,
    args: Sequence[str],
    exercise: Callable[[str], None],
    stop_signal: signal.Signals,
    env: Mapping[str, str] | None = None,
) -> tuple[str, str]:
    """Run ``python -m module args``, wait for ``READY 127.0.0.1:PORT``, call ``exercise`` with the address,
    send ``stop_signal`` and expect exit code 0. Returns what the child wrote after the READY line
    (stdout) and all of its stderr.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(WAIT_SECONDS * 2, proc.kill)  # never hang the suite on a stuck child
    watchdog.start()
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("READY 127.0.0.1:"), line
        exercise(line.split(" ", 1)[1])

        proc.send_signal(stop_signal)
        assert proc.wait(timeout=WAIT_SECONDS) == 0
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
        stdout, stderr = proc.communicate()
    return stdout, stderr
