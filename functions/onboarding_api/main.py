"""Cloud Functions entry points of the Onboarding API. Thin: all wiring happens on the first request."""

from __future__ import annotations

import functions_framework

from functions.onboarding_api.jobs import build_step_handler
from functions.onboarding_api.routes import build_router
from functions.onboarding_api.subscriptions import build_handlers
from shared.platform import events_function, http_function, service_function

TRIGGERS = {
    "onboarding_api": "http",
    "onboarding_api_events": "pubsub-push",
    "onboarding_api_tasks": "tasks",
}
# The steps verify and complete what the other APIs make for a new tenant, over HTTP as a platform
# service: its identity tenant and invitation (User Management), the admin's seat (Tenant), the roles
# (Access Control), the health model (Customer Health) and the built-in workflows (Workflow).
CALLS = {
    "onboarding_api_tasks": [
        "tenant_api",
        "user_management_api",
        "access_control_api",
        "customer_health_api",
        "workflow_api",
    ],
}

onboarding_api = functions_framework.http(http_function(build_router))
onboarding_api_events = functions_framework.http(events_function("onboarding_api", build_handlers))
onboarding_api_tasks = functions_framework.http(service_function(build_step_handler))
