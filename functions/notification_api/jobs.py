"""The send task (Cloud Tasks, queue "notification-email") and the digest (Cloud Scheduler).

The send task answers 503 on a temporary SMTP failure so Cloud Tasks retries it with the queue's
backoff; a malformed task is acknowledged (and logged), never retried.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import flask
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from functions.notification_api.service import (
    REDISPATCH_AFTER,
    SEND_PATH,
    NotReady,
    TemporaryFailure,
    build_service,
)
from shared.http import problem_response
from shared.platform import Platform
from shared.problems import Problem
from shared.task_endpoint import Handler, task_endpoint

log = logging.getLogger(__name__)


class SendBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str = Field(min_length=1, max_length=128, pattern=r"^[^/]+$")
    notification_id: str = Field(pattern=r"^(ntf|dig)_[0-9a-f]{32}$")
    dispatch: str = Field(pattern=r"^[0-9a-f]{16}$")


class DigestBody(BaseModel):
    """Cloud Scheduler posts {}; an operator may ask for an earlier redispatch of pending emails."""

    model_config = ConfigDict(extra="forbid")

    redispatch_after_seconds: float = Field(default=REDISPATCH_AFTER.total_seconds(), ge=0)


def _json(body: dict[str, Any], status: int = 200) -> flask.Response:
    return flask.Response(json.dumps(body), status=status, content_type="application/json")


def build_send_handler(platform: Platform) -> Handler:
    service = build_service(platform)

    def send(body: SendBody, retries: int) -> dict[str, Any]:
        try:
            return {"result": service.send(body.tenant_id, body.notification_id, body.dispatch, retries)}
        except NotReady as exc:
            raise Problem(503, "not-ready", "The email is not committed yet.") from exc
        except TemporaryFailure as exc:
            log.warning(
                "email not sent, will retry",
                extra={"notification_id": body.notification_id, "error": str(exc)},
            )
            raise Problem(503, "smtp-unavailable", "The mail relay is unavailable.") from exc

    def handle(request: flask.Request) -> flask.Response:
        # The retry count decides when a failing address counts as refused for good.
        retries = int(request.headers.get("X-CloudTasks-TaskRetryCount", "0") or 0)
        return task_endpoint({SEND_PATH: (SendBody, lambda body: send(body, retries))})(request)

    return handle


def build_digest(platform: Platform) -> Handler:
    service = build_service(platform)

    def handle(request: flask.Request) -> flask.Response:
        try:
            body = DigestBody.model_validate_json(request.get_data() or b"{}")
        except ValidationError as exc:
            log.error("malformed digest request", extra={"errors": exc.errors(include_url=False)})
            return _json({"result": "rejected"}, status=400)
        try:
            after = timedelta(seconds=body.redispatch_after_seconds)
            return _json(service.run_digest(after))
        except Exception:
            log.exception("the digest run failed")
            return problem_response(
                Problem(500, "internal", "The digest run failed; it has been logged."), request.path
            )

    return handle
