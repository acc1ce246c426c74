"""Cloud Functions entry point of the Operations API. Thin: all wiring happens on the first request."""

from __future__ import annotations

import functions_framework

from functions.operations_api.routes import build_router
from shared.platform import http_function

TRIGGERS = {"operations_api": "http"}
CALLS = {"operations_api": ["audit_api"]}

operations_api = functions_framework.http(http_function(build_router))
