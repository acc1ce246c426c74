"""Standard Webhooks 1.0 signing and verification. Pure: no I/O, no clients.

A secret is ``whsec_`` followed by the base64 of 24 random bytes. A message is signed over
``{webhook-id}.{webhook-timestamp}.{body}`` with HMAC-SHA256 keyed by the base64-decoded secret; the
``webhook-signature`` header carries ``v1,<base64 signature>``, one per valid secret, separated by
spaces (during a rotation both the new and the previous secret sign, so receivers switch with no
downtime).

Partners verify with :func:`verify` (this module has no dependency outside the standard library, so it
can be copied as is)::

    from shared.webhook_signing import WebhookVerificationError, verify

    def receive(request):                         # any web framework
        try:
            verify(request.get_data(), request.headers, os.environ["CMP_WEBHOOK_SECRET"])
        except WebhookVerificationError:
            return "", 400
        event = json.loads(request.get_data())    # the CloudEvent; dedupe on headers["webhook-id"]
        ...
        return "", 204
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _random
import time
from collections.abc import Iterable, Mapping

SECRET_PREFIX = "whsec_"  # noqa: S105 (the format's prefix, not a secret)
SECRET_BYTES = 24
VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 300

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"


class WebhookVerificationError(Exception):
    """The message is not authentic: missing header, bad signature, or a timestamp out of tolerance."""


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(_random.token_bytes(SECRET_BYTES)).decode("ascii")


def _key(secret: str) -> bytes:
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a webhook secret is 'whsec_' followed by base64") from exc


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One signature: ``v1,<base64 HMAC-SHA256 of id.timestamp.body>``."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return f"{VERSION},{base64.b64encode(digest).decode('ascii')}"


def sign(msg_id: str, timestamp: int, body: bytes, secrets: Iterable[str]) -> dict[str, str]:
    """The three Standard Webhooks headers, signed with every secret given (newest first)."""
    signatures = [signature(s, msg_id, timestamp, body) for s in secrets]
    if not signatures:
        raise ValueError("at least one secret is needed to sign")
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: " ".join(signatures),
    }


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    raise WebhookVerificationError(f"missing header {name}")


def verify(
    payload: bytes,
    headers: Mapping[str, str],
    secret: str,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Raise WebhookVerificationError unless one `v1` signature of `headers` matches `payload` signed
    with `secret`, and the timestamp is within `tolerance_seconds` of now (either way, against replays).
    Header names are matched case-insensitively; `now` (unix seconds) is for tests."""
    msg_id = _header(headers, ID_HEADER)
    stamp = _header(headers, TIMESTAMP_HEADER)
    try:
        timestamp = int(stamp)
    except ValueError as exc:
        raise WebhookVerificationError("the webhook-timestamp is not an integer") from exc
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        raise WebhookVerificationError("the webhook-timestamp is outside the tolerance")
    try:
        expected = signature(secret, msg_id, timestamp, payload).encode()
    except ValueError as exc:
        raise WebhookVerificationError(str(exc)) from exc
    for candidate in _header(headers, SIGNATURE_HEADER).split(" "):
        version, _, _value = candidate.partition(",")
        if version == VERSION and hmac.compare_digest(candidate.encode(), expected):
            return
    raise WebhookVerificationError("no matching signature")
