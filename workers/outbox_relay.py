"""The outbox relay as a continuous worker: a crashed request's events are published within seconds.

The scheduled `outbox_relay` function (every minute) stays as the backstop; this worker runs the same
relay (`shared.uow.Outbox.relay`, through the platform's composition root) in a loop: right away again
while a pass finds a full page, else after `--interval` seconds. SIGTERM (a pod stopping) ends it after
the current pass. Each pass touches a heartbeat file; `--check` exits 0 while it is fresh (the pod's
liveness probe).

    python -m workers.outbox_relay [--interval 2] [--heartbeat /tmp/outbox-relay.heartbeat]
    python -m workers.outbox_relay --check [--heartbeat ...] [--max-age 60]
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import FrameType

PAGE = 500  # entries per pass (Outbox.relay's limit): a full page means more are waiting
HEARTBEAT = Path("/tmp/outbox-relay.heartbeat")  # noqa: S108 (the container's own tmpfs)
MAX_BACKOFF_SECONDS = 30.0

log = logging.getLogger("workers.outbox_relay")


def run(relay_pass: Callable[[], int], interval: float, heartbeat: Path, stop: threading.Event) -> int:
    """Relay until `stop` is set; returns how many events were republished in all."""
    total, failures = 0, 0
    while not stop.is_set():
        try:
            republished = relay_pass()
        except Exception:  # a failed pass (Firestore or Pub/Sub unreachable) is retried, with backoff
            failures += 1
            log.exception("outbox relay pass failed", extra={"failures": failures})
            stop.wait(min(interval * 2**failures, MAX_BACKOFF_SECONDS))
            continue
        failures = 0
        total += republished
        heartbeat.touch()
        if republished:
            log.info("outbox entries republished", extra={"republished": republished})
        if republished < PAGE:
            stop.wait(interval)
    return total


def fresh(heartbeat: Path, max_age: float) -> bool:
    try:
        return time.time() - heartbeat.stat().st_mtime <= max_age
    except FileNotFoundError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between passes (default 2)")
    parser.add_argument("--heartbeat", type=Path, default=HEARTBEAT)
    parser.add_argument("--check", action="store_true", help="exit 0 if the heartbeat is fresh (liveness)")
    parser.add_argument("--max-age", type=float, default=60.0, help="seconds a heartbeat stays fresh")
    args = parser.parse_args(argv)
    if args.check:
        return 0 if fresh(args.heartbeat, args.max_age) else 1

    from shared.platform import platform  # the composition root: settings, clients, logging

    p = platform()
    grace = timedelta(seconds=p.settings.outbox_relay_grace_seconds)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("outbox relay stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    settings = {"interval_seconds": args.interval, "grace_seconds": grace.total_seconds()}
    log.info("outbox relay started", extra=settings)
    total = run(lambda: p.outbox.relay(older_than=grace, limit=PAGE), args.interval, args.heartbeat, stop)
    log.info("outbox relay stopped", extra={"republished": total})
    return 0


if __name__ == "__main__":
    sys.exit(main())
