"""The delivery task (Cloud Tasks, queue "webhook-delivery", max_attempts 1): one HTTP attempt of one
message. Retries are new named tasks scheduled by the service, so the answer here only says whether
this attempt was handled: a malformed task is acknowledged (and logged), never retried.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import flask
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from functions.integration_api.service import DELIVER_PATH, DeliverTask, build_service
from shared.http import problem_response
from shared.platform import Platform
from shared.problems import Problem, not_found

log = logging.getLogger(__name__)

Handler = Callable[[flask.Request], flask.Response]


class DeliverBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str = Field(min_length=1, max_length=128, pattern=r"^[^/]+$")
    message_id: str = Field(pattern=r"^msg_[0-9a-f]{32}$")
    dispatch: str = Field(pattern=r"^[0-9a-f]{16}$")
    attempt: int = Field(ge=1, le=100)
    waits: int = Field(default=0, ge=0)


def _json(body: dict[str, Any], status: int = 200) -> flask.Response:
    return flask.Response(json.dumps(body), status=status, content_type="application/json")


def build_delivery_handler(platform: Platform) -> Handler:
    service = build_service(platform)

    def handle(request: flask.Request) -> flask.Response:
        if request.method != "POST" or request.path.rstrip("/") != DELIVER_PATH:
            return problem_response(not_found(f"The resource {request.path}"), request.path)
        try:
            body = DeliverBody.model_validate_json(request.get_data())
        except ValidationError as exc:
            log.error("malformed delivery task acknowledged", extra={"errors": exc.errors(include_url=False)})
            return _json({"result": "rejected"})
        try:
            result = service.deliver(DeliverTask(**body.model_dump()))
        except Exception:
            log.exception("webhook delivery failed", extra={"message_id": body.message_id})
            return problem_response(
                Problem(500, "internal", "Delivery failed; it has been logged."), request.path
            )
        return _json({"result": result})

    return handle
