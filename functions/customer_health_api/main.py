"""Cloud Functions entry points of the Customer Health API. Thin: all wiring happens on the first request."""

from __future__ import annotations

import functions_framework

from functions.customer_health_api.routes import build_router
from functions.customer_health_api.subscriptions import build_handlers
from shared.platform import events_function, http_function

TRIGGERS = {
    "customer_health_api": "http",
    "customer_health_api_events": "pubsub-push",
}
# The Customer Data API's contacts (service.OrganizationDirectory, over HTTP as a platform service): the
# events function attributes a bounced recipient to its organization.
CALLS = {"customer_health_api_events": ["customer_data_api"]}

customer_health_api = functions_framework.http(http_function(build_router))
# Every event of a tenant rewrites that tenant's score document: one instance handles a tenant's
# events one at a time instead of aborting its own transactions.
customer_health_api_events = functions_framework.http(
    events_function("customer_health_api", build_handlers, serialize_by_tenant=True)
)
