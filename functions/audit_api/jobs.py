"""The Audit API's service endpoints: the seal task (Cloud Tasks) and the sweep (Cloud Scheduler).

Both answer 500 on failure so their caller retries; a task body that can never succeed is acknowledged
(and logged) instead, since Cloud Tasks retries every non-2xx answer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import flask
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from functions.audit_api.service import SEAL_PATH, build_service
from shared.http import problem_response
from shared.platform import Platform
from shared.problems import Problem, not_found

log = logging.getLogger(__name__)

Handler = Callable[[flask.Request], flask.Response]


class SealTask(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str = Field(min_length=1, max_length=128, pattern=r"^[^/]+$")


def _json(body: dict[str, Any], status: int = 200) -> flask.Response:
    return flask.Response(json.dumps(body), status=status, content_type="application/json")


def _failed(request: flask.Request, what: str) -> flask.Response:
    log.exception(what)
    return problem_response(Problem(500, "internal", f"{what}; it has been logged."), request.path)


def build_seal_handler(platform: Platform) -> Handler:
    service = build_service(platform)

    def handle(request: flask.Request) -> flask.Response:
        if request.method != "POST" or request.path.rstrip("/") != SEAL_PATH:
            return problem_response(not_found(f"The resource {request.path}"), request.path)
        try:
            task = SealTask.model_validate_json(request.get_data())
        except ValidationError as exc:
            log.error("malformed seal task acknowledged", extra={"errors": exc.errors(include_url=False)})
            return _json({"result": "rejected"})
        try:
            result = service.seal_and_reschedule(task.tenant_id)
        except Exception:
            return _failed(request, "sealing failed")
        return _json({"result": "sealed" if result.sealed else "nothing-to-seal", **result.to_dict()})

    return handle


def build_sweeper(platform: Platform) -> Handler:
    service = build_service(platform)

    def handle(request: flask.Request) -> flask.Response:
        try:
            report = service.sweep()
        except Exception:
            return _failed(request, "the seal sweep failed")
        return _json(report, status=500 if report["failed"] else 200)

    return handle
