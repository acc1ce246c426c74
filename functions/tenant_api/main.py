"""Cloud Functions entry points of the Tenant API. Thin: all wiring happens on the first request."""

from __future__ import annotations

import functions_framework

from functions.tenant_api.jobs import build_task_handler
from functions.tenant_api.routes import build_router
from functions.tenant_api.subscriptions import build_handlers
from shared.platform import events_function, http_function, service_function

TRIGGERS = {"tenant_api": "http", "tenant_api_events": "pubsub-push", "tenant_api_tasks": "tasks"}
# Offboarding (the tasks function) revokes the tenant's users' sessions and deletes its Identity
# Platform tenant when it erases the tenant.
NEEDS = {"tenant_api_tasks": ["identity-admin"]}
# The support ticket reads the tenant's health from the Customer Health API, and the proof of erasure
# goes to the Audit API's platform trail, as a platform service.
CALLS = {"tenant_api_tasks": ["customer_health_api", "audit_api", "integration_api"]}

tenant_api = functions_framework.http(http_function(build_router))
tenant_api_events = functions_framework.http(
    events_function("tenant_api", build_handlers, serialize_by_tenant=True)
)
tenant_api_tasks = functions_framework.http(service_function(build_task_handler))
