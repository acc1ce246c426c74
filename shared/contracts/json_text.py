"""JSON text read with a bound on nesting: every JSON body, NDJSON row, cursor and signed report.

`json.loads` recurses once per level, so text nested a few thousand levels deep raises RecursionError
(not ValueError) and escapes the usual `except ValueError`. Firestore also refuses maps nested deeper
than 20 levels. And JSON may escape half of a surrogate pair (`"\\ud800"`): valid JSON, but not text,
so it fails later wherever the string is encoded (a hash, a Firestore write). `loads` turns all of
these into a ValueError, so callers that already refuse invalid JSON refuse these too.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AfterValidator

MAX_DEPTH = 16  # levels of objects and arrays; leaves room under Firestore's 20 for our own wrapping


class NotText(ValueError):
    def __init__(self) -> None:
        super().__init__("a string that is not Unicode text (an unpaired surrogate escape)")


class JsonTooDeep(ValueError):
    def __init__(self, max_depth: int) -> None:
        super().__init__(f"JSON nested more than {max_depth} levels deep")
        self.max_depth = max_depth


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def depth(value: Any) -> int:
    """Levels of objects and arrays in a parsed value (0 for a scalar), without recursion; NotText for a
    string (key or value) that is not Unicode text."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, str):
            if not _is_text(item):
                raise NotText
            continue
        if isinstance(item, dict):
            children: list[Any] = [*item.keys(), *item.values()]
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level + 1)
        stack.extend((child, level + 1) for child in children)
    return deepest


def loads(text: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """`json.loads`, raising ValueError: JsonTooDeep for text nested deeper than `max_depth`, NotText for
    a string that is not text."""
    try:
        value = json.loads(text)
    except RecursionError as exc:
        raise JsonTooDeep(max_depth) from exc
    if depth(value) > max_depth:
        raise JsonTooDeep(max_depth)
    return value


def _storable(value: Any) -> Any:
    """Firestore stores no array directly inside an array, and no empty or `__name__` map key."""
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        item, in_array = stack.pop()
        if isinstance(item, list):
            if in_array:
                raise ValueError("an array directly inside an array cannot be stored: wrap it in an object")
            stack.extend((child, True) for child in item)
        elif isinstance(item, dict):
            for key, child in item.items():
                if not key or (key.startswith("__") and key.endswith("__")):
                    raise ValueError(f"the key {key!r} cannot be stored: keys are not empty nor __name__")
                stack.append((child, False))
    return value


StorableMap = Annotated[dict[str, Any], AfterValidator(_storable)]
"""Free-form JSON a client sends to be stored as it is (audit details): what Firestore can hold."""
