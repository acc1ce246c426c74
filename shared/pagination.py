"""Cursor pagination over Firestore queries.

A cursor is opaque to clients: the last item's order value and document id, base64url-encoded. Pages
are ordered by (field, document id) so equal values never skip or repeat an item. A cursor only
positions a query that is already scoped to the caller's tenant, so a forged one cannot widen it.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.cloud import firestore
from pydantic import BaseModel, Field

from shared.problems import bad_request

MAX_PAGE_SIZE = 200


class PageParams(BaseModel):
    limit: int = Field(default=50, ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = Field(default=None, max_length=2048)


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


def decode_cursor(cursor: str) -> tuple[Any, str]:
    invalid = "The cursor is not valid: pass next_cursor from a previous page unchanged."
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, doc_id = json.loads(raw)
        decoded = _decode_value(value)
    except (ValueError, TypeError) as exc:
        raise bad_request(invalid) from exc
    if not isinstance(doc_id, str) or not doc_id or "/" in doc_id:
        raise bad_request(invalid)
    return decoded, doc_id


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
