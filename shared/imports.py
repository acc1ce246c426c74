"""What every bulk import over HTTP shares: the uploaded file, CSV or NDJSON, read as UTF-8 text.

The file is the request body itself (Content-Type text/csv or application/x-ndjson), not a multipart
form: clients stream it with one `curl --data-binary`, and the size is checked before it is read.
"""

from __future__ import annotations

from typing import Literal

import flask

from shared.http import Upload
from shared.problems import Problem

ImportFormat = Literal["csv", "ndjson"]
IMPORT_TYPES: dict[str, ImportFormat] = {"text/csv": "csv", "application/x-ndjson": "ndjson"}
IMPORT_UPLOAD = Upload(tuple(IMPORT_TYPES), description="The file itself: CSV with a header row, or NDJSON.")


def uploaded_file(request: flask.Request, max_bytes: int) -> tuple[ImportFormat, str]:
    """The body's format and text: 415 for another media type, 413 above `max_bytes`, 422 if not UTF-8."""
    fmt = IMPORT_TYPES.get((request.mimetype or "").lower())
    if fmt is None:
        raise Problem(415, "unsupported-media-type", "Send the rows as text/csv or application/x-ndjson.")
    too_large = Problem(413, "too-large", f"An import is at most {max_bytes} bytes.")
    if request.content_length is not None and request.content_length > max_bytes:
        raise too_large
    data = request.get_data()
    if len(data) > max_bytes:
        raise too_large
    try:
        return fmt, data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Problem(
            422, "invalid-import", "The file is not UTF-8 text.", title="Validation failed"
        ) from exc
