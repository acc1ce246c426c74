"""Enqueue Cloud Tasks that call one of our functions, authenticated with an OIDC token.

Named tasks dedupe: creating a task whose name exists (or existed within about an hour) answers
ALREADY_EXISTS, which `enqueue` treats as success. That is what makes "at most one X per key" cheap.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.protobuf import timestamp_pb2

from shared.clients import tasks_client
from shared.config import Settings


def task_id(*parts: str) -> str:
    """A task id from free-form parts: letters, digits, hyphens and underscores only (max 500)."""
    readable = "-".join(parts)
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in readable)[:80]
    # Hash first: Cloud Tasks spreads names by prefix, and sequential prefixes slow dispatch down.
    return f"{hashlib.sha256(readable.encode()).hexdigest()[:16]}-{safe}"


class TaskQueue:
    def __init__(self, settings: Settings, queue: str, function: str) -> None:
        self.settings = settings
        self.queue_path = f"projects/{settings.project_id}/locations/{settings.location}/queues/{queue}"
        self.function = function

    def enqueue(
        self,
        path: str,
        payload: dict[str, Any],
        *,
        name: str | None = None,
        schedule_time: datetime | None = None,
    ) -> bool:
        """Create the task; False when a task of that name already exists (deduped)."""
        url = self.settings.function_url(self.function) + path
        task: dict[str, Any] = {
            "http_request": {
                "http_method": "POST",
                "url": url,
                "headers": {"Content-Type": "application/json"},
                "body": json.dumps(payload).encode(),
                "oidc_token": {
                    "service_account_email": self.settings.tasks_account,
                    "audience": self.settings.function_url(self.function),
                },
            }
        }
        if name is not None:
            task["name"] = f"{self.queue_path}/tasks/{name}"
        if schedule_time is not None:
            stamp = timestamp_pb2.Timestamp()
            stamp.FromDatetime(schedule_time)
            task["schedule_time"] = stamp
        try:
            tasks_client().create_task(request={"parent": self.queue_path, "task": task})
        except gexc.AlreadyExists:
            return False
        return True
