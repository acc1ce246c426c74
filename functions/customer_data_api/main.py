"""Cloud Functions entry points of the Customer Data API. Thin: all wiring happens on the first request."""

from __future__ import annotations

import functions_framework

from functions.customer_data_api.jobs import build_task_handler
from functions.customer_data_api.routes import build_router
from functions.customer_data_api.subscriptions import build_handlers
from shared.platform import events_function, http_function, service_function

TRIGGERS = {
    "customer_data_api": "http",
    "customer_data_api_events": "pubsub-push",
    "customer_data_api_tasks": "tasks",
}

customer_data_api = functions_framework.http(http_function(build_router))
customer_data_api_events = functions_framework.http(events_function("customer_data_api", build_handlers))
customer_data_api_tasks = functions_framework.http(service_function(build_task_handler))
