"""Reading the local SMTP sink's mails (emulators/smtp_sink.py): `make run` and the tests use it to
follow an invitation mail's accept link, as the invitee would."""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any
from urllib.parse import unquote

ACCEPT_LINK = re.compile(r"(\S+#/accept\?token=([A-Za-z0-9._%~-]+))")


def messages(smtp_url: str, to: str | None = None) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{smtp_url}/messages", timeout=10) as response:  # noqa: S310 - loopback
        found: list[dict[str, Any]] = json.load(response)["messages"]
    if to is None:
        return found
    return [m for m in found if to.lower() in (r.lower() for r in m["rcpt_to"])]


def accept_link(message: dict[str, Any]) -> tuple[str, str] | None:
    """(the accept link, its invitation token) in a mail's text, or None."""
    match = ACCEPT_LINK.search(str(message.get("text", "")))
    return (match.group(1), unquote(match.group(2))) if match else None
