"""Cursor pagination over Firestore queries.

A cursor is opaque to clients: the last item's order value and document id, base64url-encoded. Pages
are ordered by (field, document id) so equal values never skip or repeat an item. A cursor only
positions a query that is already scoped to the caller's tenant, so a forged one cannot widen it, and
it is checked when the query string is validated (before any datastore call): its id is an id
(shared.contracts.ids) and its value a scalar or a timestamp, or the request is a 400.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, Field

from shared.contracts import json_text
from shared.contracts.ids import is_id
from shared.problems import bad_request

if TYPE_CHECKING:
    from google.cloud import firestore

T = TypeVar("T")
MAX_PAGE_SIZE = 200
MAX_CURSOR_LENGTH = 2048
INVALID_CURSOR = "The cursor is not valid: pass next_cursor from a previous page unchanged."


class PageParams(BaseModel):
    """A page of a list. The HTTP kernel decodes `cursor` when it validates the query string (400 for a
    forged one), before the handler runs."""

    limit: int = Field(default=50, ge=1, le=MAX_PAGE_SIZE, description="Items per page.")
    cursor: str | None = Field(
        default=None,
        max_length=MAX_CURSOR_LENGTH,
        description="`next_cursor` of the previous page, unchanged; absent for the first page.",
    )

    def check_cursor(self) -> None:
        if self.cursor is not None:
            decode_cursor(self.cursor)


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$t": value.isoformat()}
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"$t"}:
        return datetime.fromisoformat(value["$t"])
    return value


def encode_cursor(order_value: Any, doc_id: str) -> str:
    raw = json.dumps([_encode_value(order_value), doc_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class PageOf(BaseModel, Generic[T]):
    """The answer of a list: one page of items, and the cursor of the next page (null on the last)."""

    items: list[T]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


_SCALARS = (str, int, float, bool, type(None))


def _decode(cursor: str) -> tuple[Any, str]:
    """(order value, document id) of a cursor; ValueError for anything `encode_cursor` never makes."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, doc_id = json_text.loads(raw, max_depth=2)
        decoded = _decode_value(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(INVALID_CURSOR) from exc
    if not isinstance(doc_id, str) or not is_id(doc_id) or not isinstance(decoded, (*_SCALARS, datetime)):
        raise ValueError(INVALID_CURSOR)
    return decoded, doc_id


def decode_cursor(cursor: str) -> tuple[Any, str]:
    try:
        return _decode(cursor)
    except ValueError as exc:
        raise bad_request(INVALID_CURSOR) from exc


@dataclass(frozen=True)
class Page:
    snapshots: list[firestore.DocumentSnapshot[Any]]
    next_cursor: str | None


def paginate(
    collection: firestore.CollectionReference,
    query: firestore.Query | firestore.CollectionReference,
    order_field: str,
    params: PageParams,
    descending: bool = False,
) -> Page:
    from google.cloud import firestore

    direction = firestore.Query.DESCENDING if descending else firestore.Query.ASCENDING
    ordered = query.order_by(order_field, direction=direction).order_by("__name__", direction=direction)
    if params.cursor:
        value, doc_id = decode_cursor(params.cursor)
        ordered = ordered.start_after([value, collection.document(doc_id)])
    snapshots = list(ordered.limit(params.limit + 1).stream())
    more = len(snapshots) > params.limit
    snapshots = snapshots[: params.limit]
    next_cursor = None
    if more and snapshots:
        last = snapshots[-1]
        next_cursor = encode_cursor(last.get(order_field), last.id)
    return Page(snapshots, next_cursor)
