"""The HTTP side of a Cloud Tasks target: a POST route per kind of task, its JSON body a pydantic model.

Cloud Tasks retries every answer that is not 2xx, so the answer says what a retry could change:
- a body that fails validation can never succeed: it is acknowledged (`rejected`) and logged;
- a Problem the task raises is answered as it is (a 503 for a dependency that is down is retried with the
  queue's backoff), except a 404: what the task names is gone, and no retry brings it back;
- any other failure is logged and answered 500, and retried.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import flask
from pydantic import BaseModel, ValidationError

from shared.http import problem_response
from shared.problems import Problem, not_found

log = logging.getLogger(__name__)

Handler = Callable[[flask.Request], flask.Response]
TaskRun = Callable[[Any], Mapping[str, Any]]


def _json(body: Mapping[str, Any]) -> flask.Response:
    return flask.Response(json.dumps(body), status=200, content_type="application/json")


def task_endpoint(routes: Mapping[str, tuple[type[BaseModel], TaskRun]]) -> Handler:
    """`routes`: path → (the body's model, the run that takes the validated body and returns the answer)."""

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
                extra={"path": request.path, "errors": exc.errors(include_url=False, include_input=False)},
            )
            return _json({"result": "rejected"})
        try:
            return _json(run(task))
        except Problem as problem:
            if problem.status == 404:
                log.warning("task for something gone acknowledged", extra={"path": request.path})
                return _json({"result": "rejected"})
            log.warning("task answered a problem", extra={"path": request.path, "problem": problem.kind})
            return problem_response(problem, request.path)
        except Exception:
            log.exception("task failed", extra={"path": request.path})
        failed = Problem(500, "internal", "The task failed; it will be retried.")
        return problem_response(failed, request.path)

    return handle
