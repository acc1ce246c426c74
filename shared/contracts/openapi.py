"""OpenAPI 3.1 documents of the HTTP APIs, generated from their routers.

Each route declares its permission, request body model, query model, answer and success statuses
(shared.http.Router); this module turns those declarations into one document per API. The kernel
validates requests against the very same models, and each HTTP function serves its document at
`GET /openapi.json`. `make schemas` writes them to schemas/openapi/<function>.json and
tests/unit/test_openapi.py fails when a checked-in document drifts from the code.
"""

from __future__ import annotations

import json
import re
from functools import cached_property
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema

from shared.authz import PUBLIC
from shared.contracts.ids import ID_PATTERN, MAX_ID_LENGTH
from shared.problems import CONTENT_TYPE as PROBLEM_TYPE
from shared.problems import PROBLEM_BASE

if TYPE_CHECKING:
    from shared.http import Route, Router

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1.0.0"
REF = "#/components/schemas/{model}"
_PARAM = re.compile(r"\{([a-z_][a-z0-9_]*)\}")

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "description": (
        "RFC 9457 problem details. `type` is a stable URI under "
        f"{PROBLEM_BASE}/ (for example `{PROBLEM_BASE}/validation-error`); validation errors list each "
        "field in `errors` as a JSON pointer. Other members give context (`current_status`, `permission`)."
    ),
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri", "examples": [f"{PROBLEM_BASE}/not-found"]},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["pointer", "detail"],
                "properties": {
                    "pointer": {"type": "string", "description": "RFC 6901 JSON pointer, as a URI fragment."},
                    "detail": {"type": "string"},
                    "type": {"type": "string"},
                    "in": {"type": "string", "enum": ["body", "query", "path", "header"]},
                },
            },
        },
    },
    "additionalProperties": True,
}

ERRORS: dict[int, str] = {
    400: "The request is malformed (not JSON, nested too deeply, a bad cursor or header).",
    401: "No valid bearer token (or, on a public route, no valid signature or token of its own).",
    403: "The caller lacks the route's permission (`x-permission`), or the access decision refused.",
    404: "Not found, or not visible to this caller (ids of other tenants are not revealed).",
    409: "A conflict with the current state (an illegal transition, a duplicate, a request in flight).",
    410: "Gone: the tenant was offboarded and its data erased (or, for an invitation, it expired or was "
    "revoked).",
    412: "`If-Match` does not name the current version.",
    413: "The body is too large.",
    415: "The body's media type is not one this route reads.",
    422: "The body or query string is not valid: `errors` points at each field.",
    503: "A service this route depends on is unavailable: retry later.",
}

HEADERS: dict[str, dict[str, Any]] = {
    "ETag": {"description": "The version of the resource, for `If-Match`.", "schema": {"type": "string"}},
    "Location": {"description": "Where the created resource is.", "schema": {"type": "string"}},
    "Idempotent-Replayed": {
        "description": "`true` when this answer is the stored answer to an earlier request with the same "
        "`Idempotency-Key`.",
        "schema": {"type": "string", "enum": ["true"]},
    },
}

PARAMETERS: dict[str, dict[str, Any]] = {
    "IdempotencyKey": {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "Retry-safe POST: the same key and body replay the first answer; the same key with "
        "another body is a 422, and while the first request runs a 409.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    },
    "IfMatch": {
        "name": "If-Match",
        "in": "header",
        "required": False,
        "description": "The `ETag` last read: the change applies only to that version (412 otherwise).",
        "schema": {"type": "string", "maxLength": 64},
    },
}


def _humanize(name: str) -> str:
    words = name.strip("_").replace("_", " ")
    return words[:1].upper() + words[1:]


def _operation_ids(router: Router) -> dict[int, str]:
    """The handler's name where unique in the API, else one made of the method and the path."""
    names = [route.handler.__name__ for route in router.routes]
    ids: dict[int, str] = {}
    for index, route in enumerate(router.routes):
        name = names[index]
        if name.isidentifier() and name not in ("<lambda>", "handler") and names.count(name) == 1:
            ids[index] = name
        else:
            path = re.sub(r"[^a-zA-Z0-9]+", "_", _PARAM.sub(r"by_\1", route.template)).strip("_")
            ids[index] = f"{route.method.lower()}_{path}"
    return ids


class _Schemas:
    """Every model the routes name, in components/schemas with pydantic's own $refs."""

    def __init__(self, router: Router) -> None:
        from shared.http import Upload

        wanted: list[tuple[type[BaseModel], Any]] = []
        for route in router.routes:
            body = route.body.model if isinstance(route.body, Upload) else route.body
            if body is not None:
                wanted.append((body, "validation"))
            if route.query is not None:
                wanted.append((route.query, "validation"))
            if isinstance(route.response, type) and issubclass(route.response, BaseModel):
                wanted.append((route.response, "serialization"))
        unique = list(dict.fromkeys(wanted))
        refs, definitions = models_json_schema(unique, ref_template=REF) if unique else ({}, {})
        self.refs: dict[Any, dict[str, Any]] = dict(refs)
        self.components: dict[str, Any] = dict(definitions.get("$defs", {}))

    def ref(self, model: type[BaseModel], mode: str) -> dict[str, Any]:
        return self.refs[(model, mode)]

    def inline(self, model: type[BaseModel], mode: str) -> dict[str, Any]:
        ref = self.ref(model, mode)["$ref"]
        schema: dict[str, Any] = self.components[ref.rsplit("/", 1)[1]]
        return schema


def _query_parameters(schemas: _Schemas, model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = schemas.inline(model, "validation")
    required = set(schema.get("required", []))
    parameters = []
    for name, prop in schema.get("properties", {}).items():
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": {k: v for k, v in prop.items() if k not in ("title", "description")},
        }
        if "description" in prop:
            parameter["description"] = prop["description"]
        parameters.append(parameter)
    return parameters


def _path_parameters(route: Route) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": "An id: printable ASCII without '/', '\\' or spaces; not '.', '..' or '__name__'.",
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH, "pattern": ID_PATTERN},
        }
        for name in route.params
    ]


def _request_body(schemas: _Schemas, route: Route) -> dict[str, Any] | None:
    from shared.http import Upload

    if route.body is None:
        return None
    if isinstance(route.body, Upload):
        upload = route.body
        content = {
            media: {"schema": schemas.ref(upload.model, "validation")}
            if upload.model is not None and media == "application/json"
            else {"schema": {"type": "string"}}
            for media in upload.media_types
        }
        return {"required": True, "description": upload.description, "content": content}
    model = route.body
    required = any(field.is_required() for field in model.model_fields.values())
    return {
        "required": required,
        "content": {"application/json": {"schema": schemas.ref(model, "validation")}},
    }


def _response_schema(schemas: _Schemas, route: Route) -> dict[str, Any]:
    if route.response is None:
        return {}
    if isinstance(route.response, type) and issubclass(route.response, BaseModel):
        return schemas.ref(route.response, "serialization")
    schema: dict[str, Any] = TypeAdapter(route.response).json_schema(ref_template=REF, mode="serialization")
    return schema


def _success(schemas: _Schemas, route: Route, status: int) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if route.etag and status != 204:
        headers["ETag"] = {"$ref": "#/components/headers/ETag"}
    if status == 201:
        headers["Location"] = {"$ref": "#/components/headers/Location"}
    if route.method == "POST" and route.permission != PUBLIC:
        headers["Idempotent-Replayed"] = {"$ref": "#/components/headers/Idempotent-Replayed"}
    response: dict[str, Any] = {
        "description": {201: "Created", 202: "Accepted", 204: "No content"}.get(status, "OK")
    }
    if headers:
        response["headers"] = headers
    if status != 204:
        response["content"] = {route.media_type: {"schema": _response_schema(schemas, route)}}
    return response


def _error_statuses(route: Route) -> list[int]:
    from shared.http import Upload

    # 401 on a public route: its own credential (a signature, a token); 410: an erased tenant
    statuses = {400, 401, 404, 410, 422, 503}
    if route.permission != PUBLIC:
        statuses.add(403)
    if route.body is not None:
        statuses.add(415)
    if isinstance(route.body, Upload):
        statuses.add(413)
    if route.method != "GET":
        statuses.add(409)
    if route.etag and route.method != "GET":
        statuses.add(412)
    return sorted(statuses)


def operation(schemas: _Schemas, route: Route, operation_id: str) -> dict[str, Any]:
    doc = (route.handler.__doc__ or "").strip()
    summary = route.summary or (doc.splitlines()[0] if doc else _humanize(route.handler.__name__))
    op: dict[str, Any] = {"operationId": operation_id, "summary": summary}
    if doc and doc.splitlines()[0] != summary:
        op["description"] = doc
    parameters = _path_parameters(route)
    if route.query is not None:
        parameters += _query_parameters(schemas, route.query)
    if route.method == "POST" and route.permission != PUBLIC:
        parameters.append({"$ref": "#/components/parameters/IdempotencyKey"})
    if route.etag and route.method != "GET":
        parameters.append({"$ref": "#/components/parameters/IfMatch"})
    if parameters:
        op["parameters"] = parameters
    body = _request_body(schemas, route)
    if body is not None:
        op["requestBody"] = body
    responses: dict[str, Any] = {str(s): _success(schemas, route, s) for s in route.status}
    for status in _error_statuses(route):
        responses[str(status)] = {"$ref": f"#/components/responses/E{status}"}
    op["responses"] = responses
    op["security"] = [] if route.permission == PUBLIC else [{"bearer": []}]
    op["x-permission"] = route.permission
    return op


_KINDS = re.compile(r'(?:Problem\(\s*\d{3},|conflict\()\s*"([a-z0-9-]+)"')
ROOT = Path(__file__).resolve().parents[2]


def problem_types(router: Router) -> list[str]:
    """The `type` URIs this API's code and the kernel can answer, read from their source: the kinds
    given to Problem(...) and conflict(...)."""
    from shared.catalog import load_catalog

    modules = {api.slug: api.module for api in load_catalog().apis}
    folders = [ROOT / "shared"]
    if router.api_slug in modules:
        folders.append(ROOT / "functions" / modules[router.api_slug])
    kinds = {
        kind for folder in folders for f in folder.glob("*.py") for kind in _KINDS.findall(f.read_text())
    }
    return [f"{PROBLEM_BASE}/{kind}" for kind in sorted(kinds)]


def document(router: Router) -> dict[str, Any]:
    """The OpenAPI 3.1 document of one API."""
    schemas = _Schemas(router)
    ids = _operation_ids(router)
    paths: dict[str, dict[str, Any]] = {}
    for index, route in enumerate(router.routes):
        paths.setdefault(route.template, {})[route.method.lower()] = operation(schemas, route, ids[index])
    components = {
        "schemas": {
            **schemas.components,
            "Problem": {**PROBLEM_SCHEMA, "x-problem-types": problem_types(router)},
        },
        "responses": {
            f"E{status}": {
                "description": text,
                "content": {PROBLEM_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
            }
            for status, text in ERRORS.items()
        },
        "headers": HEADERS,
        "parameters": PARAMETERS,
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "An Identity Platform ID token (custom claims `tenant_id`, `roles`, "
                "`platform_operator`), or a platform service's token. Each operation names the permission "
                "it needs in `x-permission`.",
            }
        },
    }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": _title(router),
            "version": API_VERSION,
            "description": "Generated from the routes' declarations; errors are RFC 9457 problem+json. "
            "Lists are paged by `limit` and `cursor` (the previous page's `next_cursor`).",
        },
        "paths": paths,
        "components": components,
    }


def _title(router: Router) -> str:
    from shared.catalog import load_catalog

    names = {api.slug: api.name for api in load_catalog().apis}
    return names.get(router.api_slug, router.api_slug)


def render(doc: dict[str, Any]) -> str:
    """The exact text of a checked-in document."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# --- every API of the repository (make schemas, tests) ---------------------------------------------------


class _NoDatastore:
    """Building a router must not touch the datastore: any use is a bug."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"a router used the datastore ({name}) while being built")


def offline_platform() -> Any:
    from shared.platform import Platform

    class Offline(Platform):
        @cached_property
        def db(self) -> Any:
            return _NoDatastore()

    return Offline()


def routers() -> dict[str, Router]:
    """Every HTTP function's router by function name, built without any client."""
    from functions.manifest import discover

    platform = offline_platform()
    found: dict[str, Router] = {}
    for spec in discover():
        if spec.serves_api:
            module = import_module(f"functions.{spec.package}.routes")
            found[spec.name] = module.build_router(platform)
    return found


def documents() -> dict[str, dict[str, Any]]:
    """Every API's document keyed by its path relative to schemas/ (openapi/<function>.json)."""
    return {f"openapi/{name}.json": document(router) for name, router in sorted(routers().items())}
