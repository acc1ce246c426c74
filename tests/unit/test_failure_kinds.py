"""shared.intake.is_transient: outages get the longer budget, bugs the short one."""
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import pytest
import requests
from google.api_core import exceptions as gexc  # its constructors are untyped

from shared.intake import TransientError, is_transient
from shared.problems import Problem


def _caused(outer: Exception, cause: Exception) -> Exception:
    try:
        raise outer from cause
    except Exception as exc:
        return exc


@pytest.mark.parametrize(
    "exc",
    [
        TransientError("the CRM is restarting"),
        Problem(503, "dependency-unavailable", "down"),
        Problem(429, "too-many-requests", "slow down"),
        gexc.ServiceUnavailable("unavailable"),
        gexc.DeadlineExceeded("deadline"),
        gexc.Aborted("contention"),
        requests.ConnectionError("refused"),
        requests.ReadTimeout("slow"),
        TimeoutError(),
        _caused(RuntimeError("step failed"), gexc.ServiceUnavailable("down")),
    ],
    ids=repr,
)
def test_outages_are_transient(exc: Exception) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        RuntimeError("a bug"),
        KeyError("field"),
        Problem(422, "validation", "bad"),
        Problem(404, "not-found", "gone"),
        gexc.InvalidArgument("bad"),
        gexc.PermissionDenied("no"),
    ],
    ids=repr,
)
def test_bugs_and_refusals_are_permanent(exc: Exception) -> None:
    assert not is_transient(exc)
