"""RFC 9457 problem details: every error the platform answers is one of these, never a stack trace."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

PROBLEM_BASE = "https://problems.cmp.example"
CONTENT_TYPE = "application/problem+json"


class Problem(Exception):
    """Raise anywhere below a route handler; the HTTP kernel turns it into application/problem+json."""

    def __init__(
        self,
        status: int,
        kind: str,
        detail: str,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.title = title or HTTPStatus(status).phrase
        self.detail = detail
        self.headers = headers or {}
        self.extensions = extensions

    def to_dict(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"{PROBLEM_BASE}/{self.kind}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extensions)
        return body


def bad_request(detail: str, **extensions: Any) -> Problem:
    return Problem(400, "bad-request", detail, **extensions)


def validation_failed(errors: list[dict[str, Any]]) -> Problem:
    return Problem(
        422,
        "validation-error",
        "The request is not valid: see `errors` for each field.",
        title="Validation failed",
        errors=errors,
    )


def unauthenticated(detail: str = "A valid bearer token is required.") -> Problem:
    return Problem(401, "unauthenticated", detail, headers={"WWW-Authenticate": "Bearer"})


def forbidden(permission: str, reason: str | None = None) -> Problem:
    """403; `reason` says why the access decision refused (a suspended tenant, a locked principal)."""
    detail = f"This principal lacks the permission {permission!r}."
    if reason is None:
        return Problem(403, "forbidden", detail, permission=permission)
    return Problem(403, "forbidden", detail, permission=permission, reason=reason)


def not_found(what: str) -> Problem:
    return Problem(404, "not-found", f"{what} was not found.")


def conflict(kind: str, detail: str, **extensions: Any) -> Problem:
    return Problem(409, kind, detail, **extensions)
