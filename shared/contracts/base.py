"""Base class of every event payload (the `data` of a CloudEvent)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

REGISTRY: dict[str, type[EventPayload]] = {}
"""Every payload model keyed by its event name: a model registers itself by declaring EVENT_NAME."""


class EventPayload(BaseModel):
    """A versioned, strict event payload: an unknown field is a schema violation, not silently dropped.

    Additive change is a new version (v2) with its own schema path, so a consumer never guesses.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    EVENT_NAME: ClassVar[str]  # exactly as the seed and schemas/catalog.json write it

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        name = cls.__dict__.get("EVENT_NAME")
        if name is None:
            return
        if name in REGISTRY and REGISTRY[name] is not cls:
            raise TypeError(f"{cls.__name__} and {REGISTRY[name].__name__} both declare {name!r}")
        REGISTRY[name] = cls


class Actor(BaseModel):
    """Who caused an event: a signed-in user, a service (another API, a partner) or the platform itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["user", "service", "system"]
    id: str
    email: str | None = None
