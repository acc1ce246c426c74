"""Cloud Functions entry points of the Access Control API. Thin: all wiring happens on the first request."""

from __future__ import annotations

import functions_framework

from functions.access_control_api.routes import build_router
from functions.access_control_api.subscriptions import build_handlers
from shared.platform import events_function, http_function

TRIGGERS = {"access_control_api": "http", "access_control_api_events": "pubsub-push"}

access_control_api = functions_framework.http(http_function(build_router))
access_control_api_events = functions_framework.http(
    events_function("access_control_api", build_handlers, serialize_by_tenant=True)
)
