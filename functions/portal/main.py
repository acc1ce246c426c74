"""Cloud Functions entry point of the Tenant Admin Portal: the built single-page app, served by us."""

from __future__ import annotations

import functions_framework

from functions.portal.assets import build_handler
from shared.platform import web_function

TRIGGERS = {"portal": "http"}
# The web configuration of Identity Platform (its browser API key) for the sign-in page.
NEEDS = {"portal": ["identity-client"]}

portal = functions_framework.http(web_function(build_handler))
