"""The delivery task (Cloud Tasks, queue "webhook-delivery", max_attempts 1): one HTTP attempt of one
message. Retries are new named tasks scheduled by the service, so the answer here only says whether
this attempt was handled: a malformed task is acknowledged (and logged), never retried.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from functions.integration_api.service import DELIVER_PATH, DeliverTask, build_service
from shared.platform import Platform
from shared.task_endpoint import Handler, task_endpoint


class DeliverBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str = Field(min_length=1, max_length=128, pattern=r"^[^/]+$")
    message_id: str = Field(pattern=r"^msg_[0-9a-f]{32}$")
    dispatch: str = Field(pattern=r"^[0-9a-f]{16}$")
    attempt: int = Field(ge=1, le=100)
    waits: int = Field(default=0, ge=0)


def build_delivery_handler(platform: Platform) -> Handler:
    service = build_service(platform)

    def deliver(body: DeliverBody) -> dict[str, Any]:
        return {"result": service.deliver(DeliverTask(**body.model_dump()))}

    return task_endpoint({DELIVER_PATH: (DeliverBody, deliver)})
