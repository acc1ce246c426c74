"""Cloud Functions entry points of the Notification API. Thin: all wiring happens on the first request."""

from __future__ import annotations

import functions_framework

from functions.notification_api.jobs import build_digest, build_send_handler
from functions.notification_api.routes import build_router
from functions.notification_api.subscriptions import build_handlers
from shared.platform import events_function, http_function, service_function

TRIGGERS = {
    "notification_api": "http",
    "notification_api_events": "pubsub-push",
    "notification_api_tasks": "tasks",
    "notification_api_digest": "scheduler:0 * * * *",
}
# The send task is the one function talking to the SMTP relay; it asks the User Management API for the
# token of an invitation mail's accept link as it sends it.
NEEDS = {"notification_api_tasks": ["smtp-relay"]}
CALLS = {"notification_api_tasks": ["user_management_api"]}

notification_api = functions_framework.http(http_function(build_router))
notification_api_events = functions_framework.http(events_function("notification_api", build_handlers))
notification_api_tasks = functions_framework.http(service_function(build_send_handler))
notification_api_digest = functions_framework.http(service_function(build_digest))
