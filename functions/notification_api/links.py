"""Accept links of invitation mails: the token comes from the User Management API as the mail is sent
(called as a platform service), so it is never in an event, a stored mail or a log line."""

from __future__ import annotations

import logging
from urllib.parse import quote

from shared.config import Settings
from shared.problems import Problem
from shared.services import ServiceClient

log = logging.getLogger(__name__)

USER_MANAGEMENT_API = "user_management_api"


class LinkUnavailable(Exception):
    """The User Management API did not answer: the mail waits (a retry asks again)."""


class InvitationLinks:
    def __init__(self, settings: Settings, client: ServiceClient) -> None:
        self.settings = settings
        self.client = client

    def accept_link(self, tenant_id: str, invitation_id: str) -> str | None:
        """The portal's accept link with a fresh token; None when the invitation can no longer be
        accepted (revoked, expired, accepted): such a mail is not sent. "" when the User Management API
        knows no such invitation (an event from elsewhere): the mail goes out without a link."""
        path = f"/tenants/{quote(tenant_id, safe='')}/invitations/{quote(invitation_id, safe='')}/mail-token"
        try:
            response = self.client.call(USER_MANAGEMENT_API, "POST", path)
        except Problem as exc:
            raise LinkUnavailable(exc.detail) from exc
        if response.status_code == 200:
            token = str(response.json()["token"])
            # In the fragment: browsers never send it to a server, so no access log records the token.
            return f"{self.settings.portal_base_url}#/accept?token={quote(token, safe='')}"
        if response.status_code == 404:
            log.warning("no invitation for the mail's link", extra={"invitation_id": invitation_id})
            return ""
        if response.status_code in (409, 410):
            return None
        log.warning("no invitation token for the mail", extra={"status": response.status_code})
        raise LinkUnavailable(f"the User Management API answered {response.status_code}")
