"""The User Management API's Cloud Tasks endpoints (queue `user-import`):

- POST /import-chunk  {tenant_id, job_id, chunk}: one chunk of a bulk import (the next one is scheduled
  when it commits, so chunks run in order and the seat count each reads is current);
- POST /resync-claims {tenant_id, role}: recompute the claims of the users holding a role, after a
  Permission Policy Changed.

Answers follow shared.task_endpoint: a failure is retried with the queue's retry config; a body that
can never succeed, or a task for a tenant that is gone (404), is acknowledged and logged.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from functions.user_management_api.service import CHUNK_PATH, RESYNC_PATH, build_service
from shared.platform import Platform
from shared.task_endpoint import Handler, task_endpoint

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


def build_task_handler(platform: Platform) -> Handler:
    service = build_service(platform)

    def import_chunk(task: ChunkTask) -> dict[str, Any]:
        return {"result": service.run_chunk(task.tenant_id, task.job_id, task.chunk)}

    def resync(task: ResyncTask) -> dict[str, Any]:
        return {"result": "resynced", "changed": service.resync_claims(task.tenant_id, task.role)}

    return task_endpoint({CHUNK_PATH: (ChunkTask, import_chunk), RESYNC_PATH: (ResyncTask, resync)})
