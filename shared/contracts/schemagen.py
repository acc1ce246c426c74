"""Generate the contracts under schemas/ from the code: the event payload schemas, the CloudEvent
envelope, the AsyncAPI document of the event interface (from the catalog), and the OpenAPI document of
every HTTP API (from its routes' declarations).

`python -m shared.contracts.schemagen` (what `make schemas` runs) rewrites schemas/events/<slug>/v1.json for
every catalog event, schemas/cloudevent/v1.json, schemas/asyncapi.json and schemas/openapi/<function>.json,
and removes generated files nothing owns any more.
tests/unit/test_schemas.py fails when a checked-in file differs from what `generate()` returns.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from shared.catalog import Catalog, load_catalog, schemas_dir
from shared.contracts.payloads import PAYLOADS
from shared.events import CloudEvent

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
CLOUDEVENT_SCHEMA_PATH = "cloudevent/v1.json"
GENERATED_DIRS = ("events", "cloudevent", "openapi")  # everything under these folders is generated


def event_schemas(catalog: Catalog) -> dict[str, dict[str, Any]]:
    missing = [event.name for event in catalog.events if event.name not in PAYLOADS]
    unknown = sorted(set(PAYLOADS) - {event.name for event in catalog.events})
    if missing or unknown:
        raise LookupError(
            f"catalog events without a payload model: {missing}; models not in the catalog: {unknown}"
        )
    schemas: dict[str, dict[str, Any]] = {}
    for event in catalog.events:
        schema = PAYLOADS[event.name].model_json_schema()
        schema.update(
            {
                "$schema": JSON_SCHEMA_DIALECT,
                "$id": catalog.schema_uri(event),
                "title": event.name,
                "x-cloudevents-type": event.type,
            }
        )
        schemas[event.schema_path] = schema
    return schemas


def cloudevent_schema(catalog: Catalog) -> dict[str, Any]:
    schema = CloudEvent.model_json_schema()
    schema.update(
        {"$schema": JSON_SCHEMA_DIALECT, "$id": f"{catalog.schema_base_uri}/{CLOUDEVENT_SCHEMA_PATH}"}
    )
    schema.setdefault(
        "description",
        "CloudEvents 1.0 envelope (structured mode) of every event; `data` follows `dataschema`.",
    )
    return schema


def generate(catalog: Catalog | None = None) -> dict[str, dict[str, Any]]:
    """Every generated schema keyed by its path relative to schemas/."""
    from shared.contracts import asyncapi, openapi

    catalog = catalog or load_catalog()
    return {
        **event_schemas(catalog),
        CLOUDEVENT_SCHEMA_PATH: cloudevent_schema(catalog),
        asyncapi.ASYNCAPI_PATH: asyncapi.document(catalog),
        **openapi.documents(),
    }


def render(schema: dict[str, Any]) -> str:
    """The exact text of a checked-in schema file."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(root: Path) -> list[Path]:
    """Write every generated schema under `root` (the schemas/ folder); return the paths written."""
    from shared.contracts.eventspage import EVENTS_PAGE_PATH, render_page

    written: list[Path] = []
    for relative, schema in sorted(generate().items()):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    (root / EVENTS_PAGE_PATH).write_text(render_page(), encoding="utf-8")
    written.append(root / EVENTS_PAGE_PATH)
    return written


def stale(root: Path) -> list[Path]:
    """Files in the generated folders that `generate()` no longer produces (e.g. a removed event)."""
    expected = {root / relative for relative in generate()}
    found = {path for folder in GENERATED_DIRS for path in (root / folder).rglob("*") if path.is_file()}
    return sorted(found - expected)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else schemas_dir()
    for path in stale(root):
        path.unlink()
        if not any(path.parent.iterdir()):
            path.parent.rmdir()
        print(f"removed {path}")
    written = write(root)
    print(f"wrote {len(written)} schemas under {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
