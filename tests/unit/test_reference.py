"""The API reference `make run` serves (emulators/reference.py): every API and every event is there, and
the renderer comes from the bundled npm package, never from a CDN."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from emulators import reference
from functions.manifest import discover
from shared.catalog import load_catalog, schemas_dir


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    server, address = reference.serve(0)
    yield address
    server.shutdown()
    server.server_close()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, ""


def test_the_index_links_every_api_and_the_events(url: str) -> None:
    status, page = get(url + "/")
    assert status == 200
    apis = sorted(p.stem for p in (schemas_dir() / "openapi").glob("*.json"))
    assert apis == sorted(spec.name for spec in discover() if spec.serves_api)
    assert sorted(re.findall(r'href="/api/([a-z_]+)"', page)) == apis
    assert 'href="/events"' in page


def test_an_api_page_renders_its_document_with_the_bundled_swagger_ui(url: str) -> None:
    status, page = get(url + "/api/tenant_api")
    assert status == 200
    assert "/schemas/openapi/tenant_api.json" in page
    scripts = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert scripts and all(s.startswith("/") for s in scripts), scripts  # nothing from another host
    if not reference.UI_DIR.is_dir():
        pytest.skip("tools/contracts is not installed (make setup runs npm ci there)")
    assert get(url + "/ui/swagger-ui-bundle.js")[0] == 200


def test_the_events_page_lists_every_event(url: str) -> None:
    status, page = get(url + "/events")
    assert status == 200
    for event in load_catalog().events:
        assert event.type in page


def test_only_the_contracts_are_served(url: str) -> None:
    assert get(url + "/schemas/openapi/tenant_api.json")[0] == 200
    assert get(url + "/schemas/../pyproject.toml")[0] == 404
    assert get(url + "/schemas/%2e%2e/pyproject.toml")[0] == 404
    assert get(url + "/ui/package.json")[0] == 404
