"""The Cloud Tasks target's answers: Cloud Tasks retries every non-2xx, so each answer must say whether a
retry could change anything."""

from __future__ import annotations

import json
from typing import Any

import flask
import pytest
from pydantic import BaseModel, ConfigDict, Field
from werkzeug.test import EnvironBuilder

from shared.problems import Problem, not_found
from shared.task_endpoint import task_endpoint


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n: int = Field(ge=0)


def post(path: str, body: Any, method: str = "POST") -> flask.Response:
    ran: list[int] = []

    def run(task: Body) -> dict[str, Any]:
        ran.append(task.n)
        if task.n == 1:
            raise Problem(503, "dependency-unavailable", "down")
        if task.n == 2:
            raise not_found("Tenant t1")
        if task.n == 3:
            raise RuntimeError("boom")
        return {"result": "done", "n": task.n}

    handler = task_endpoint({"/run": (Body, run)})
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = flask.Request(EnvironBuilder(path=path, method=method, data=data).get_environ())
    return handler(request)


def test_a_task_that_runs_answers_its_result() -> None:
    response = post("/run/", {"n": 7})
    assert response.status_code == 200 and response.get_json() == {"result": "done", "n": 7}


@pytest.mark.parametrize("body", [b"{not json", {"n": -1}, {"n": 1, "extra": True}])
def test_a_body_that_can_never_succeed_is_acknowledged(body: Any) -> None:
    response = post("/run", body)
    assert response.status_code == 200 and response.get_json() == {"result": "rejected"}


def test_a_task_naming_something_gone_is_acknowledged() -> None:
    assert post("/run", {"n": 2}).get_json() == {"result": "rejected"}


def test_a_problem_is_answered_as_it_is_and_a_crash_as_500_so_both_are_retried() -> None:
    unavailable = post("/run", {"n": 1})
    assert unavailable.status_code == 503 and unavailable.content_type == "application/problem+json"
    crashed = post("/run", {"n": 3})
    assert crashed.status_code == 500 and json.loads(crashed.get_data())["status"] == 500


@pytest.mark.parametrize(("path", "method"), [("/other", "POST"), ("/run", "GET")])
def test_unknown_routes_answer_404(path: str, method: str) -> None:
    assert post(path, {"n": 0}, method).status_code == 404
