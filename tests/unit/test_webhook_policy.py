"""Webhook delivery policy: retry schedule, Retry-After, 410, ordering, and SSRF classification."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from functions.integration_api.domain import (
    DEFAULT_SCHEDULE,
    Outcome,
    Queued,
    blocked_by,
    decide,
    message_id,
    parse_retry_after,
)
from shared.config import Settings
from shared.outbound import UnsafeUrl, address_refusal, check_url

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_the_default_schedule_starts_as_svix_and_lasts_about_five_days() -> None:
    assert DEFAULT_SCHEDULE[:7] == (5, 300, 1800, 7200, 18000, 36000, 36000)
    assert 4.5 * 86400 < sum(DEFAULT_SCHEDULE) < 5.5 * 86400
    assert Settings.model_fields["webhook_retry_schedule"].default == DEFAULT_SCHEDULE


def test_a_2xx_is_delivered() -> None:
    for code in (200, 201, 204, 299):
        assert decide(code, 1, DEFAULT_SCHEDULE).outcome is Outcome.DELIVERED


def test_failures_follow_the_schedule_then_fail() -> None:
    last = len(DEFAULT_SCHEDULE) + 1
    delays = [decide(500, attempt, DEFAULT_SCHEDULE).delay_seconds for attempt in range(1, last)]
    assert delays == list(DEFAULT_SCHEDULE)
    assert decide(500, last, DEFAULT_SCHEDULE).outcome is Outcome.FAILED
    assert decide(None, last, DEFAULT_SCHEDULE).outcome is Outcome.FAILED
    short = (0.2, 0.4, 0.6)
    assert [decide(None, a, short).delay_seconds for a in (1, 2, 3)] == [0.2, 0.4, 0.6]
    assert decide(None, 4, short).outcome is Outcome.FAILED


def test_redirects_are_failures() -> None:
    assert decide(301, 1, DEFAULT_SCHEDULE).outcome is Outcome.RETRY


def test_410_disables_whatever_the_attempt() -> None:
    assert decide(410, 1, DEFAULT_SCHEDULE).outcome is Outcome.DISABLE
    assert decide(410, 8, DEFAULT_SCHEDULE).outcome is Outcome.DISABLE


def test_retry_after_on_429_and_503_waits_at_least_that_long() -> None:
    assert decide(429, 1, DEFAULT_SCHEDULE, retry_after=120).delay_seconds == 120
    assert decide(503, 1, DEFAULT_SCHEDULE, retry_after=1).delay_seconds == 5
    assert decide(503, 2, DEFAULT_SCHEDULE, retry_after=900).delay_seconds == 900
    # Other statuses keep the schedule.
    assert decide(500, 1, DEFAULT_SCHEDULE, retry_after=900).delay_seconds == 5


def test_retry_after_parsing() -> None:
    assert parse_retry_after("120", NOW) == 120
    assert parse_retry_after("Thu, 01 Jan 2026 00:02:00 GMT", NOW) == 120
    assert parse_retry_after("Wed, 31 Dec 2025 00:00:00 GMT", NOW) == 0
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after(None, NOW) is None


def test_message_ids_are_deterministic_per_endpoint_and_event() -> None:
    assert message_id("ep_1", "ev_1") == message_id("ep_1", "ev_1")
    assert message_id("ep_1", "ev_1") != message_id("ep_2", "ev_1")
    assert message_id("ep_1", "ev_1") != message_id("ep_1", "ev_2")


def test_ordering_holds_a_message_behind_an_earlier_pending_one() -> None:
    first = Queued("msg_b", NOW)
    second = Queued("msg_a", NOW + timedelta(seconds=1))
    assert blocked_by(second, [first, second])
    assert not blocked_by(first, [first, second])
    # Same event time: the message id breaks the tie.
    assert blocked_by(Queued("msg_z", NOW), [Queued("msg_a", NOW)])
    assert not blocked_by(second, [second])


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("10.1.2.3", "a private address"),
        ("172.16.0.1", "a private address"),
        ("192.168.1.1", "a private address"),
        ("100.64.0.1", "a private address"),
        ("127.0.0.1", "a loopback address"),
        ("::1", "a loopback address"),
        ("169.254.169.254", "the metadata server"),
        ("169.254.10.10", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("fd12::1", "a private address"),
        ("::ffff:10.0.0.1", "a private address"),
        ("0.0.0.0", "a private address"),
        ("224.0.0.1", "a non-public address"),
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
    ],
)
def test_address_classification(address: str, reason: str | None) -> None:
    assert address_refusal(address) == reason


def test_the_local_switch_allows_loopback_only() -> None:
    assert address_refusal("127.0.0.1", allow_loopback=True) is None
    assert address_refusal("10.0.0.1", allow_loopback=True) == "a private address"
    assert address_refusal("169.254.169.254", allow_loopback=True) == "the metadata server"


def resolver(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError("no such host")
        return table[host]

    return resolve


def test_urls_must_be_https_and_public() -> None:
    resolve = resolver({"hooks.example": ["93.184.216.34"], "inside.example": ["8.8.8.8", "10.0.0.5"]})
    check_url("https://hooks.example/cmp", resolve)
    for url, match in [
        ("http://hooks.example/cmp", "https"),
        ("ftp://hooks.example/cmp", "https"),
        ("https://inside.example/", "private"),
        ("https://nowhere.example/", "does not resolve"),
        ("https://metadata.google.internal/computeMetadata/v1/", "metadata"),
        ("https://user:pw@hooks.example/", "credentials"),
        ("https:///path", "no host"),
    ]:
        with pytest.raises(UnsafeUrl, match=match):
            check_url(url, resolve)


def test_urls_in_local_development() -> None:
    resolve = resolver({"127.0.0.1": ["127.0.0.1"], "intranet": ["192.168.0.10"]})
    check_url("http://127.0.0.1:8080/hook", resolve, allow_loopback=True)
    with pytest.raises(UnsafeUrl):
        check_url("http://127.0.0.1:8080/hook", resolve)
    with pytest.raises(UnsafeUrl, match="private"):
        check_url("http://intranet/hook", resolve, allow_loopback=True)
