"""Cloud Functions entry points of the User Management API. Thin: all wiring happens on the first request."""

from __future__ import annotations

import functions_framework

from functions.user_management_api.jobs import build_task_handler
from functions.user_management_api.routes import build_router
from functions.user_management_api.subscriptions import build_handlers
from shared.platform import events_function, http_function, service_function

TRIGGERS = {
    "user_management_api": "http",
    "user_management_api_events": "pubsub-push",
    "user_management_api_tasks": "tasks",
}
# The Tenant API's seats (adapters.SeatPool, over HTTP as a platform service): the HTTP function takes
# and releases them (accept, deactivate, reactivate) and reads the pool; the tasks function reads it for
# a bulk import chunk. The events function only schedules a task.
CALLS = {
    "user_management_api": ["tenant_api"],
    "user_management_api_tasks": ["tenant_api"],
}
# Identity Platform administration (adapters.IdentityProvider): tenants, users, custom claims, token
# revocation, disabling users. The tasks function creates the IdP tenant for an import and resyncs claims.
NEEDS = {
    "user_management_api": ["identity-admin"],
    "user_management_api_tasks": ["identity-admin"],
}

user_management_api = functions_framework.http(http_function(build_router))
user_management_api_events = functions_framework.http(events_function("user_management_api", build_handlers))
user_management_api_tasks = functions_framework.http(service_function(build_task_handler))
