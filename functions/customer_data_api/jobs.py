"""The Customer Data API's Cloud Tasks endpoint (queue `customer-import`):

- POST /import-chunk {tenant_id, job_id, phase, chunk}: one chunk of a bulk import, or of its revert.
  The next chunk is scheduled when one commits, so chunks run in order.

A failure answers 500 so Cloud Tasks retries; a body that can never succeed is acknowledged and logged,
since Cloud Tasks retries every non-2xx answer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Literal

import flask
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from functions.customer_data_api.service import CHUNK_PATH, build_service
from shared.http import problem_response
from shared.platform import Platform
from shared.problems import Problem, not_found

log = logging.getLogger(__name__)


class ChunkTask(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str = Field(min_length=1, max_length=128, pattern=r"^[^/]+$")
    job_id: str = Field(pattern=r"^cim_[0-9a-f]{20}$")
    phase: Literal["import", "revert"]
    chunk: int = Field(ge=0)


def _json(body: dict[str, str], status: int = 200) -> flask.Response:
    return flask.Response(json.dumps(body), status=status, content_type="application/json")


def build_task_handler(platform: Platform) -> Callable[[flask.Request], flask.Response]:
    service = build_service(platform)

    def handle(request: flask.Request) -> flask.Response:
        if request.method != "POST" or request.path.rstrip("/") != CHUNK_PATH:
            return problem_response(not_found(f"The resource {request.path}"), request.path)
        try:
            task = ChunkTask.model_validate_json(request.get_data())
        except ValidationError as exc:
            log.error(
                "malformed task acknowledged",
                extra={"errors": exc.errors(include_url=False, include_input=False)},
            )
            return _json({"result": "rejected"})
        try:
            return _json({"result": service.run_chunk(task.tenant_id, task.job_id, task.phase, task.chunk)})
        except Exception:
            log.exception("import chunk failed", extra={"job_id": task.job_id, "chunk": task.chunk})
        return problem_response(
            Problem(500, "internal", "The task failed; it will be retried."), request.path
        )

    return handle
