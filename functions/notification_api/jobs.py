"""The send task (Cloud Tasks, queue "notification-email") and the digest (Cloud Scheduler).

The send task answers 503 on a temporary SMTP failure so Cloud Tasks retries it with the queue's
backoff; a malformed task is acknowledged (and logged), never retried.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
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
from shared.problems import Problem, not_found

log = logging.getLogger(__name__)

Handler = Callable[[flask.Request], flask.Response]


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

    def handle(request: flask.Request) -> flask.Response:
        if request.method != "POST" or request.path.rstrip("/") != SEND_PATH:
            return problem_response(not_found(f"The resource {request.path}"), request.path)
        try:
            body = SendBody.model_validate_json(request.get_data())
        except ValidationError as exc:
            log.error("malformed send task acknowledged", extra={"errors": exc.errors(include_url=False)})
            return _json({"result": "rejected"})
        retries = int(request.headers.get("X-CloudTasks-TaskRetryCount", "0") or 0)
        try:
            result = service.send(body.tenant_id, body.notification_id, body.dispatch, retries)
        except NotReady:
            return problem_response(
                Problem(503, "not-ready", "The email is not committed yet."), request.path
            )
        except TemporaryFailure as exc:
            log.warning(
                "email not sent, will retry",
                extra={"notification_id": body.notification_id, "error": str(exc)},
            )
            return problem_response(
                Problem(503, "smtp-unavailable", "The mail relay is unavailable."), request.path
            )
        return _json({"result": result})

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
