"""The Customer Data API's Cloud Tasks endpoint (queue `customer-import`):

- POST /import-chunk {tenant_id, job_id, phase, chunk}: one chunk of a bulk import, or of its revert.
  Each finished chunk schedules the one IMPORT_WINDOW places on, so a window of chunks runs at once.

Answers follow shared.task_endpoint: a failure is retried, a body that can never succeed is not.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from functions.customer_data_api.service import CHUNK_PATH, build_service
from shared.platform import Platform
from shared.task_endpoint import Handler, task_endpoint


class ChunkTask(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str = Field(min_length=1, max_length=128, pattern=r"^[^/]+$")
    job_id: str = Field(pattern=r"^cim_[0-9a-f]{20}$")
    phase: Literal["import", "revert"]
    chunk: int = Field(ge=0)


def build_task_handler(platform: Platform) -> Handler:
    service = build_service(platform)

    def import_chunk(task: ChunkTask) -> dict[str, Any]:
        return {"result": service.run_chunk(task.tenant_id, task.job_id, task.phase, task.chunk)}

    return task_endpoint({CHUNK_PATH: (ChunkTask, import_chunk)})
