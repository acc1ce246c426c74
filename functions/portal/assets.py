"""Serving the built portal (portal/ built by Vite into functions/portal/static/).

- `assets/*` have content-hashed names: cached for a year, immutable.
- `index.html` is never cached, so a deploy takes effect on the next load.
- `config.json` is the run-time configuration, so one bundle runs locally and deployed: the APIs' base
  URL, the Firebase project and browser API key, and the Auth emulator's address when one is used.
- Every answer carries a strict Content-Security-Policy: scripts and styles from this origin only (no
  inline script), connections to this origin, the APIs and Identity Platform only, no framing.
"""

from __future__ import annotations

import json
import mimetypes
import os
import re
from collections.abc import Callable
from pathlib import Path

import flask

from shared.config import Settings
from shared.platform import Platform

STATIC = Path(__file__).resolve().parent / "static"
ASSET = re.compile(r"^/assets/[A-Za-z0-9._-]+$")
IDENTITY_HOSTS = ("https://identitytoolkit.googleapis.com", "https://securetoken.googleapis.com")
YEAR = 365 * 24 * 3600


def runtime_config(settings: Settings, emulator_host: str | None) -> dict[str, object]:
    return {
        "apiBase": settings.portal_api_base.rstrip("/"),
        "projectId": settings.project_id,
        "apiKey": settings.identity_api_key,
        "authEmulator": f"http://{emulator_host}" if emulator_host else None,
    }


def content_security_policy(config: dict[str, object]) -> str:
    connect = ["'self'", *IDENTITY_HOSTS]
    for url in (config.get("apiBase"), config.get("authEmulator")):
        if isinstance(url, str) and url:
            connect.append(url)
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            f"connect-src {' '.join(connect)}",
            "manifest-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ]
    )


def build_handler(platform: Platform, static: Path = STATIC) -> Callable[[flask.Request], flask.Response]:
    config = runtime_config(platform.settings, os.environ.get("FIREBASE_AUTH_EMULATOR_HOST") or None)
    headers = {
        "Content-Security-Policy": content_security_policy(config),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    config_body = json.dumps(config)

    def answer(body: bytes | str, content_type: str, cache: str, status: int = 200) -> flask.Response:
        response = flask.Response(body, status=status, content_type=content_type)
        response.headers.update(headers)
        response.headers["Cache-Control"] = cache
        return response

    def handle(request: flask.Request) -> flask.Response:
        if request.method not in ("GET", "HEAD"):
            return answer("Method not allowed", "text/plain", "no-store", 405)
        path = request.path
        if path in ("/", "/index.html"):
            index = static / "index.html"
            if not index.is_file():
                return answer("The portal is not built: run `make portal`.", "text/plain", "no-store", 503)
            return answer(index.read_bytes(), "text/html; charset=utf-8", "no-cache")
        if path == "/config.json":
            return answer(config_body, "application/json", "no-store")
        if ASSET.fullmatch(path):
            file = static / path.lstrip("/")
            if file.is_file():
                kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
                return answer(file.read_bytes(), kind, f"public, max-age={YEAR}, immutable")
        return answer("Not found", "text/plain", "no-store", 404)

    return handle
