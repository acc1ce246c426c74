"""Cloud Functions entry points of the Integration API. Thin: all wiring happens on the first request."""

from __future__ import annotations

import functions_framework

from functions.integration_api.jobs import build_delivery_handler
from functions.integration_api.routes import build_router
from functions.integration_api.subscriptions import build_handlers
from shared.platform import events_function, http_function, service_function

TRIGGERS = {
    "integration_api": "http",
    "integration_api_events": "pubsub-push",
    "integration_api_tasks": "tasks",
}
# The HTTP function creates, rotates and deletes the endpoints' signing secrets; the tasks function reads
# them to sign deliveries. The events function (fan-out) never touches them.
NEEDS = {"integration_api": ["webhook-secrets"], "integration_api_tasks": ["webhook-secrets"]}

integration_api = functions_framework.http(http_function(build_router))
integration_api_events = functions_framework.http(events_function("integration_api", build_handlers))
integration_api_tasks = functions_framework.http(service_function(build_delivery_handler))
