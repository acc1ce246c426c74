"""The one id type of the platform: what a path parameter, a cursor's position or a document id may be.

Firestore refuses `.`, `..`, ids made of `__x__` (names it reserves) and `/`, and a very long id does
worse: a path over the gRPC header limit makes the emulator drop the whole connection, and the client
retries for minutes. Checking ids here, before any datastore call, makes such input a 404 or a 400.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

MAX_ID_LENGTH = 256
# Printable ASCII without '/', '\\' and whitespace: every id we mint, slugs, uids, event slugs, emails.
ID_CHARS = r"[!-.0-\[\]-~]"
ID_PATTERN = f"^{ID_CHARS}{{1,{MAX_ID_LENGTH}}}$"
_ID = re.compile(ID_PATTERN)
_RESERVED = re.compile(r"^__.*__$")


def is_id(value: str) -> bool:
    return _ID.fullmatch(value) is not None and value not in (".", "..") and not _RESERVED.match(value)


def _checked(value: str) -> str:
    if not is_id(value):
        raise ValueError(
            f"not an id: 1 to {MAX_ID_LENGTH} printable characters without '/', '\\\\' or spaces, "
            "not '.', '..' or '__name__'"
        )
    return value


Id = Annotated[str, Field(pattern=ID_PATTERN), AfterValidator(_checked)]
"""A pydantic field type for ids a client sends in a body or a query string."""
