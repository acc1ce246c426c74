"""Cloud Scheduler calls this every minute; the local suite calls it every few seconds."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import flask
import functions_framework

from shared.platform import Platform, service_function

TRIGGERS = {"outbox_relay": "scheduler:* * * * *"}


def build(platform: Platform) -> Callable[[flask.Request], flask.Response]:
    grace = timedelta(seconds=platform.settings.outbox_relay_grace_seconds)

    def relay(request: flask.Request) -> flask.Response:
        return flask.jsonify({"republished": platform.outbox.relay(older_than=grace)})

    return relay


outbox_relay = functions_framework.http(service_function(build))
