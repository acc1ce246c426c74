"""Cloud Functions entry points of the Audit API. Thin: all wiring happens on the first request."""

from __future__ import annotations

import functions_framework

from functions.audit_api.jobs import build_seal_handler, build_sweeper
from functions.audit_api.routes import build_router
from functions.audit_api.subscriptions import build_handlers
from shared.platform import events_function, http_function, service_function

TRIGGERS = {
    "audit_api": "http",
    "audit_api_events": "pubsub-push",
    "audit_api_tasks": "tasks",
    "audit_api_sweeper": "scheduler:* * * * *",
}

audit_api = functions_framework.http(http_function(build_router))
audit_api_events = functions_framework.http(events_function("audit_api", build_handlers))
audit_api_tasks = functions_framework.http(service_function(build_seal_handler))
audit_api_sweeper = functions_framework.http(service_function(build_sweeper))
