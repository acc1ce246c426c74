"""Property-based tests of every operation of every API against its published OpenAPI document.

Schemathesis generates requests (valid ones and, on purpose, invalid ones) from schemas/openapi/*.json and
sends them to the functions of the running suite with real tokens from the Auth emulator: the admin of a
tenant and a platform operator. Path parameters named `tenant_id` are that tenant's id, so requests reach
the handlers instead of stopping at tenant isolation. Every answer must be no server error, have a status
code and a content type the document lists, and conform to the documented schema.

`make test` generates 3 random examples per operation and principal (Schemathesis' fuzzing phase);
`make fuzz` sets `CMP_FUZZ_EXAMPLES` higher and `CMP_FUZZ_PHASES=examples,coverage,fuzzing`, adding the
coverage phase: every boundary value and every violation of the schemas, deterministically (about 12,000
requests).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from emulators.provision import ensure_secret
from emulators.suite import Suite
from functions.notification_api.service import PROVIDER_SECRET
from shared.catalog import schemas_dir
from tests.conftest import reset_firestore, store_tenant
from tests.integration.test_notification_api import PROVIDER_SECRET_VALUE

# Uploads are text: CSV or NDJSON files, sent as generated.
schemathesis.serializer.alias("text/csv", "text/plain")
schemathesis.serializer.alias("application/x-ndjson", "text/plain")

EXAMPLES = int(os.environ.get("CMP_FUZZ_EXAMPLES", "3"))
PHASES = os.environ.get("CMP_FUZZ_PHASES", "fuzzing").split(",")
CONFIG = schemathesis.Config.from_dict(
    {"phases": {phase: {"enabled": phase in PHASES} for phase in ("examples", "coverage", "fuzzing")}}
)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
DOCUMENTS = sorted((schemas_dir() / "openapi").glob("*.json"))
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure reproduces
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
    database=None,
)


@pytest.fixture(scope="module")
def fuzz_tenant(suite: Suite, tokens: Callable[..., str]) -> dict[str, Any]:
    reset_firestore(suite.project)
    # As deployed: the provider's delivery reports are configured (else that route answers 503), with the
    # value the Notification API's tests sign with (functions cache the secret: one value per suite).
    ensure_secret(suite.project, PROVIDER_SECRET, PROVIDER_SECRET_VALUE)
    tenant = store_tenant(f"fuzz-{uuid.uuid4().hex[:8]}")
    return {
        "id": tenant["id"],
        "admin": tokens(f"admin@{tenant['slug']}.example", tenant["id"], ("admin",)),
        "operator": tokens("operator@platform.test", operator=True),
    }


def _unroutable(response: Any) -> bool:
    """A path with a line feed never reaches a function: the framework's router (werkzeug's path
    converter) answers its own HTML 404 first, as it would in production."""
    path = unquote(urlsplit(response.request.url).path)
    content_type = " ".join(response.headers.get("content-type", []))
    return "\n" in path and content_type.startswith("text/html")


def fuzz(document: Any) -> Callable[..., None]:
    api = document.stem
    schema = schemathesis.openapi.from_dict(json.loads(document.read_text(encoding="utf-8")), config=CONFIG)

    @pytest.mark.parametrize("who", ["admin", "operator"])
    @schema.parametrize()
    @FUZZ_SETTINGS
    def test(case: Any, who: str, suite: Suite, fuzz_tenant: dict[str, Any]) -> None:
        parameters = case.path_parameters or {}
        if "tenant_id" in parameters:
            parameters["tenant_id"] = fuzz_tenant["id"]
        response = case.call(
            base_url=suite.function_url(api),
            headers={"Authorization": f"Bearer {fuzz_tenant[who]}"},
            timeout=30,
        )
        if response.status_code == 404 and _unroutable(response):
            return
        case.validate_response(response, checks=CHECKS)

    test.__name__ = f"test_{api}_conforms_to_its_openapi_document"
    return cast("Callable[..., None]", test)


for _document in DOCUMENTS:
    _test = fuzz(_document)
    globals()[_test.__name__] = _test
