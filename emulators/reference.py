"""The API reference `make run` serves: every API's OpenAPI document rendered by Swagger UI (bundled from
npm in tools/contracts/, no CDN), the events page, and the raw contracts under /schemas/.

    /                     index: every API, the events page, the AsyncAPI document
    /api/<function>       Swagger UI for schemas/openapi/<function>.json
    /events               the events page (event, publisher, subscribers, handler)
    /schemas/<path>       the checked-in contracts as they are
    /ui/<file>            Swagger UI's files (tools/contracts/node_modules/swagger-ui-dist)
"""

from __future__ import annotations

import html
import json
import mimetypes
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from shared.catalog import load_catalog, schemas_dir

ROOT = Path(__file__).resolve().parent.parent
UI_DIR = ROOT / "tools" / "contracts" / "node_modules" / "swagger-ui-dist"
UI_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")


def _page(title: str, body: str, head: str = "") -> bytes:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"{head}<style>body{{font-family:sans-serif;margin:2rem}}table{{border-collapse:collapse}}"
        f"td,th{{border:1px solid #ccc;padding:.3rem .5rem;vertical-align:top;text-align:left}}</style>"
        f"</head><body>{body}</body></html>"
    ).encode()


def _apis() -> list[tuple[str, str]]:
    """(function, title) of every API whose document is checked in."""
    found = []
    for path in sorted((schemas_dir() / "openapi").glob("*.json")):
        title = json.loads(path.read_text(encoding="utf-8"))["info"]["title"]
        found.append((path.stem, title))
    return found


def index() -> bytes:
    items = "".join(
        f'<li><a href="/api/{name}">{html.escape(title)}</a> '
        f'(<a href="/schemas/openapi/{name}.json">openapi/{name}.json</a>)</li>'
        for name, title in _apis()
    )
    return _page(
        "API reference",
        "<h1>Customer Management platform: API reference</h1><h2>HTTP APIs (OpenAPI 3.1)</h2>"
        f"<ul>{items}</ul><h2>Events</h2><ul>"
        '<li><a href="/events">Events: publisher, subscribers, handler</a></li>'
        '<li><a href="/schemas/asyncapi.json">asyncapi.json</a> (AsyncAPI 3.0)</li>'
        '<li><a href="/schemas/catalog.json">catalog.json</a></li></ul>',
    )


def api_page(name: str) -> bytes:
    url = json.dumps(f"/schemas/openapi/{name}.json")
    return _page(
        f"{name}: API reference",
        '<div id="ui"></div><script src="/ui/swagger-ui-bundle.js"></script>'
        f'<script>SwaggerUIBundle({{url: {url}, dom_id: "#ui", deepLinking: true}});</script>',
        head='<link rel="stylesheet" href="/ui/swagger-ui.css">',
    )


def events_page() -> bytes:
    from shared.contracts.eventspage import handler_tables

    catalog = load_catalog()
    tables = handler_tables()
    rows = []
    for event in sorted(catalog.events, key=lambda e: e.name):
        handlers = "<br>".join(
            html.escape(f"{api}: {getattr(tables.get(api, {}).get(event.name), '__qualname__', 'none')}")
            for api in event.subscribers
        )
        receivers = [*event.subscribers, *(f"{p} (pull)" for p in event.partner_subscribers)]
        rows.append(
            f'<tr><td><a href="/schemas/{event.schema_path}">{html.escape(event.name)}</a><br>'
            f"<code>{html.escape(event.type)}</code></td><td>{html.escape(event.publisher)}</td>"
            f"<td>{html.escape(', '.join(receivers))}</td><td>{handlers}</td></tr>"
        )
    return _page(
        "Events",
        "<h1>Events</h1><p>Generated from schemas/catalog.json and each API's handler table.</p><table>"
        "<tr><th>Event</th><th>Published by</th><th>Received by</th><th>Handler</th></tr>"
        + "".join(rows)
        + "</table>",
    )


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        body: bytes | None = None
        content_type = "text/html; charset=utf-8"
        if path == "/":
            body = index()
        elif path == "/events":
            body = events_page()
        elif path.startswith("/api/") and path[5:] in dict(_apis()):
            body = api_page(path[5:])
        elif path.startswith("/ui/") and path[4:] in UI_FILES and (UI_DIR / path[4:]).is_file():
            body = (UI_DIR / path[4:]).read_bytes()
            content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
        elif path.startswith("/schemas/"):
            target = (schemas_dir() / path[len("/schemas/") :]).resolve()
            if target.is_file() and target.is_relative_to(schemas_dir().resolve()):
                body = target.read_bytes()
                content_type = mimetypes.guess_type(target.name)[0] or "text/plain"
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def serve(port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """Start the reference server on 127.0.0.1 in a daemon thread; answers it and its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    threading.Thread(target=server.serve_forever, name="api-reference", daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"
