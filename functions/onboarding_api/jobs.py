"""The step task (Cloud Tasks, queue "onboarding-steps"): one attempt of one step of one run."""

from __future__ import annotations

from collections.abc import Callable

import flask

from functions.onboarding_api.service import build_service
from shared.platform import Platform


def build_step_handler(platform: Platform) -> Callable[[flask.Request], flask.Response]:
    return build_service(platform).engine.serve
