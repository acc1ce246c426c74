"""Base class of every event payload (the `data` of a CloudEvent)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict


class EventPayload(BaseModel):
    """A versioned, strict event payload: an unknown field is a schema violation, not silently dropped.

    Additive change is a new version (v2) with its own schema path, so a consumer never guesses.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    EVENT_NAME: ClassVar[str]  # exactly as the seed and schemas/catalog.json write it


class Actor(BaseModel):
    """Who caused an event: a signed-in user, a service (another API, a partner) or the platform itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["user", "service", "system"]
    id: str
    email: str | None = None
