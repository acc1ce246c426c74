"""The outbox relay worker's loop (workers/outbox_relay.py run) with a fake relay pass: no I/O, no sleep."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from workers.outbox_relay import MAX_BACKOFF_SECONDS, PAGE, fresh, run


class Stop(threading.Event):
    """The loop's stop event, recording every wait instead of sleeping."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        return self.is_set()


def passes(stop: Stop, *outcomes: int | Exception) -> Callable[[], int]:
    """A relay pass answering `outcomes` in turn, then stopping the loop."""
    queue = list(outcomes)

    def relay_pass() -> int:
        outcome = queue.pop(0)
        if not queue:
            stop.set()
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return relay_pass


def test_a_full_page_is_followed_at_once_then_the_interval(tmp_path: Path) -> None:
    stop, heartbeat = Stop(), tmp_path / "heartbeat"
    total = run(passes(stop, PAGE, 3, 0), interval=2.0, heartbeat=heartbeat, stop=stop)
    assert total == PAGE + 3
    assert stop.waits == [2.0, 2.0]  # no wait after the full page
    assert fresh(heartbeat, max_age=60)


def test_a_failed_pass_backs_off_and_the_loop_goes_on(tmp_path: Path) -> None:
    stop, heartbeat = Stop(), tmp_path / "heartbeat"
    unreachable = ConnectionError("Firestore is unreachable")
    relay_pass = passes(stop, unreachable, unreachable, unreachable, unreachable, unreachable, unreachable, 1)
    assert run(relay_pass, interval=2.0, heartbeat=heartbeat, stop=stop) == 1
    assert stop.waits[:6] == [4.0, 8.0, 16.0, MAX_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS]


def test_no_heartbeat_while_every_pass_fails(tmp_path: Path) -> None:
    stop, heartbeat = Stop(), tmp_path / "heartbeat"
    run(passes(stop, ConnectionError("down"), ConnectionError("down")), 1.0, heartbeat, stop)
    assert not fresh(heartbeat, max_age=60)
