"""Standard Webhooks 1.0 signing: the spec's test vector, round trips, rotation and stale timestamps."""

from __future__ import annotations

import pytest

from shared.webhook_signing import (
    WebhookVerificationError,
    generate_secret,
    sign,
    signature,
    verify,
)

VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_standard_webhooks_test_vector() -> None:
    assert signature(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY) == VECTOR_SIG
    headers = {"webhook-id": VECTOR_ID, "webhook-timestamp": str(VECTOR_TS), "webhook-signature": VECTOR_SIG}
    verify(VECTOR_BODY, headers, VECTOR_SECRET, now=VECTOR_TS + 10)


def test_generated_secrets_have_the_standard_format() -> None:
    import base64

    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 24
    assert generate_secret() != secret


def test_round_trip_and_header_names_are_case_insensitive() -> None:
    secret = generate_secret()
    headers = sign("msg_1", 1_700_000_000, b'{"a":1}', [secret])
    verify(b'{"a":1}', headers, secret, now=1_700_000_000)
    verify(b'{"a":1}', {k.title(): v for k, v in headers.items()}, secret, now=1_700_000_000)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: (h, b + b" "),
        lambda h, b: ({**h, "webhook-id": "msg_2"}, b),
        lambda h, b: ({**h, "webhook-timestamp": str(int(h["webhook-timestamp"]) + 1)}, b),
        lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b),
        lambda h, b: ({**h, "webhook-signature": "v2," + h["webhook-signature"][3:]}, b),
    ],
)
def test_any_change_is_refused(tamper: object) -> None:
    secret = generate_secret()
    headers, body = sign("msg_1", 1_700_000_000, b"{}", [secret]), b"{}"
    bad_headers, bad_body = tamper(headers, body)  # type: ignore[operator]
    with pytest.raises(WebhookVerificationError):
        verify(bad_body, bad_headers, secret, now=1_700_000_000)


def test_another_secret_is_refused() -> None:
    headers = sign("msg_1", 1_700_000_000, b"{}", [generate_secret()])
    with pytest.raises(WebhookVerificationError):
        verify(b"{}", headers, generate_secret(), now=1_700_000_000)


def test_during_rotation_both_secrets_sign_and_either_verifies() -> None:
    new, old = generate_secret(), generate_secret()
    headers = sign("msg_1", 1_700_000_000, b"{}", [new, old])
    assert len(headers["webhook-signature"].split(" ")) == 2
    verify(b"{}", headers, new, now=1_700_000_000)
    verify(b"{}", headers, old, now=1_700_000_000)


@pytest.mark.parametrize("skew", [301, -301, 10_000])
def test_a_stale_or_future_timestamp_is_refused(skew: int) -> None:
    secret = generate_secret()
    headers = sign("msg_1", 1_700_000_000, b"{}", [secret])
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        verify(b"{}", headers, secret, now=1_700_000_000 + skew)
    verify(b"{}", headers, secret, tolerance_seconds=abs(skew), now=1_700_000_000 + skew)
