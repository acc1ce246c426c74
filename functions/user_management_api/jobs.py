"""The User Management API's Cloud Tasks endpoints (queue `user-import`):

- POST /import-chunk  {tenant_id, job_id, chunk}: one chunk of a bulk import (the next one is scheduled
  when it commits, so chunks run in order and the seat count each reads is current);
- POST /resync-claims {tenant_id, role}: recompute the claims of the users holding a role, after a
  Permission Policy Changed.

A failure answers 500 so Cloud Tasks retries (the queue's retry config); a body that can never succeed
is acknowledged and logged instead, since Cloud Tasks retries every non-2xx answer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import flask
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from functions.user_management_api.service import CHUNK_PATH, RESYNC_PATH, build_service
from shared.http import problem_response
from shared.platform import Platform
from shared.problems import Problem, not_found

log = logging.getLogger(__name__)

Handler = Callable[[flask.Request], flask.Response]
TENANT_ID = Field(min_length=1, max_length=128, pattern=r"^[^/]+$")


class ChunkTask(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str = TENANT_ID
    job_id: str = Field(min_length=1, max_length=128, pattern=r"^[^/]+$")
    chunk: int = Field(ge=0)


class ResyncTask(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str = TENANT_ID
    role: str = Field(min_length=1, max_length=64)


def _json(body: dict[str, Any], status: int = 200) -> flask.Response:
    return flask.Response(json.dumps(body), status=status, content_type="application/json")


def build_task_handler(platform: Platform) -> Handler:
    service = build_service(platform)

    def import_chunk(task: BaseModel) -> dict[str, Any]:
        assert isinstance(task, ChunkTask)
        return {"result": service.run_chunk(task.tenant_id, task.job_id, task.chunk)}

    def resync(task: BaseModel) -> dict[str, Any]:
        assert isinstance(task, ResyncTask)
        return {"result": "resynced", "changed": service.resync_claims(task.tenant_id, task.role)}

    routes: dict[str, tuple[type[BaseModel], Callable[[BaseModel], dict[str, Any]]]] = {
        CHUNK_PATH: (ChunkTask, import_chunk),
        RESYNC_PATH: (ResyncTask, resync),
    }

    def handle(request: flask.Request) -> flask.Response:
        found = routes.get(request.path.rstrip("/"))
        if request.method != "POST" or found is None:
            return problem_response(not_found(f"The resource {request.path}"), request.path)
        model, run = found
        try:
            task = model.model_validate_json(request.get_data())
        except ValidationError as exc:
            log.error(
                "malformed task acknowledged",
                extra={"errors": exc.errors(include_url=False, include_input=False)},
            )
            return _json({"result": "rejected"})
        try:
            return _json(run(task))
        except Problem as problem:
            if problem.status == 404:  # the tenant is gone: retrying cannot help
                log.warning("task for an unknown tenant acknowledged", extra={"path": request.path})
                return _json({"result": "rejected"})
            log.error("task failed", extra={"path": request.path, "problem": problem.kind})
        except Exception:
            log.exception("task failed", extra={"path": request.path})
        return problem_response(
            Problem(500, "internal", "The task failed; it will be retried."), request.path
        )

    return handle
