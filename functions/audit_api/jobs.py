"""The Audit API's service endpoints: the seal task (Cloud Tasks) and the sweep (Cloud Scheduler).

Both answer 500 on failure so their caller retries; a task body that can never succeed is acknowledged
(and logged) instead, since Cloud Tasks retries every non-2xx answer.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import flask
from pydantic import BaseModel, ConfigDict, Field

from functions.audit_api.service import SEAL_PATH, build_service
from shared.http import problem_response
from shared.platform import Platform
from shared.problems import Problem
from shared.task_endpoint import Handler, task_endpoint

log = logging.getLogger(__name__)


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

    def seal(task: SealTask) -> dict[str, Any]:
        result = service.seal_and_reschedule(task.tenant_id)
        return {"result": "sealed" if result.sealed else "nothing-to-seal", **result.to_dict()}

    return task_endpoint({SEAL_PATH: (SealTask, seal)})


def build_sweeper(platform: Platform) -> Handler:
    service = build_service(platform)

    def handle(request: flask.Request) -> flask.Response:
        try:
            report = service.sweep()
        except Exception:
            return _failed(request, "the seal sweep failed")
        return _json(report, status=500 if report["failed"] else 200)

    return handle
