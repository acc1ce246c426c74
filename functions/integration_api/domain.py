"""Outbound webhook policy. Pure: no I/O, no clients (name resolution is passed in).

Delivery rules (Standard Webhooks 1.0, Svix):

- A message is one event for one endpoint; its id (the ``webhook-id`` header) is derived from the
  endpoint and the event id, so a redelivered event creates nothing new and receivers dedupe on it.
- 2xx: delivered. 410 Gone: the endpoint is disabled and the message failed, no retry.
- Any other answer (3xx included, redirects are not followed), a timeout, or a connection error: the
  next attempt waits the schedule's next delay (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, then 24 h four
  times by default: about 5 days);
  a 429 or 503 with Retry-After waits max(schedule, Retry-After). After the last attempt the message is
  failed and the endpoint flagged "failing" (a later success sets it back to "active").
- Ordered endpoints: a message is not sent while another message of the same endpoint and the same
  aggregate (the envelope's subject) is still pending with an earlier (event time, message id); it is
  looked at again after a growing wait. A failed or delivered predecessor no longer holds it back.
- SSRF: an endpoint URL must pass shared.outbound.check_url, when the endpoint is saved and again
  before every attempt.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum

# The delay before attempt 2, 3, ...: Svix's schedule (about 28 h), then daily up to about 5 days in all.
DEFAULT_SCHEDULE: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000, 86400, 86400, 86400, 86400)
TIMEOUT_SECONDS = 15.0
ROTATION_OVERLAP_SECONDS = 24 * 3600
ORDERED_WAIT_MAX_SECONDS = 60.0


class EndpointStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"
    FAILING = "failing"


class MessageStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


def message_id(endpoint_id: str, event_id: str) -> str:
    return "msg_" + hashlib.sha256(f"{endpoint_id}\n{event_id}".encode()).hexdigest()[:32]


def secret_id(tenant_id: str, endpoint_id: str) -> str:
    # Under this API's own prefix "<api-slug>--": its IAM grant is conditioned on it (Terraform).
    return f"integration-api--webhook-{tenant_id}-{endpoint_id}"


# --- what to do after an attempt -----------------------------------------------------------------
class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"  # no attempt left
    DISABLE = "disable"  # 410: the receiver asked us to stop


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    delay_seconds: float | None = None  # before the next attempt, when outcome is RETRY


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date; None when absent or invalid."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


def decide(
    status_code: int | None, attempt: int, schedule: Sequence[float], retry_after: float | None = None
) -> Decision:
    """After attempt `attempt` (1-based) answered `status_code` (None: no answer at all)."""
    if status_code is not None and 200 <= status_code <= 299:
        return Decision(Outcome.DELIVERED)
    if status_code == 410:
        return Decision(Outcome.DISABLE)
    if attempt > len(schedule):
        return Decision(Outcome.FAILED)
    delay = float(schedule[attempt - 1])
    if status_code in (429, 503) and retry_after is not None:
        delay = max(delay, retry_after)
    return Decision(Outcome.RETRY, delay)


def ordered_wait(waits: int) -> float:
    """How long a message held back by ordering waits before it looks again (1, 2, 4, ... 60 s)."""
    return float(min(2 ** min(waits, 16), ORDERED_WAIT_MAX_SECONDS))


@dataclass(frozen=True)
class Queued:
    message_id: str
    event_time: datetime


def blocked_by(mine: Queued, pending: Sequence[Queued]) -> bool:
    """Ordered delivery: is an earlier message of the same endpoint and aggregate still pending?"""
    key = (mine.event_time, mine.message_id)
    return any(
        (other.event_time, other.message_id) < key for other in pending if other.message_id != mine.message_id
    )
