"""Cloud Functions entry points of the Workflow API. Thin: all wiring happens on the first request."""

from __future__ import annotations

import functions_framework

from functions.workflow_api.jobs import build_step_handler
from functions.workflow_api.routes import build_router
from functions.workflow_api.subscriptions import build_handlers
from shared.platform import events_function, http_function, service_function

TRIGGERS = {
    "workflow_api": "http",
    "workflow_api_events": "pubsub-push",
    "workflow_api_tasks": "tasks",
}
# The HTTP function creates and rotates the tenant's webhook signing secret; the tasks function reads
# it to sign webhook actions.
NEEDS = {"workflow_api": ["webhook-secrets"], "workflow_api_tasks": ["webhook-secrets"]}
# Steps update contacts and answer privacy requests through the Customer Data API, as a service.
CALLS = {"workflow_api_tasks": ["customer_data_api"]}

workflow_api = functions_framework.http(http_function(build_router))
workflow_api_events = functions_framework.http(events_function("workflow_api", build_handlers))
workflow_api_tasks = functions_framework.http(service_function(build_step_handler))
