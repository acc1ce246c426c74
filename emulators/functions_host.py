"""Serve every function of functions/ locally, each a real functions-framework app, on one port.

`/<function name>/...` reaches that function with the path it would see deployed (the prefix moves to
SCRIPT_NAME), so push subscriptions and task targets point at http://127.0.0.1:PORT/<function name>.
One process keeps the suite light on a laptop; the cold start of each function is measured apart by
`make bench`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from typing import Any

import functions_framework
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Response
from werkzeug.wsgi import ClosingIterator

from functions.manifest import discover


class QuietQueryHandler(WSGIRequestHandler):
    """Access log without query strings: push endpoints carry the local service token there."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = self.path.split("?", 1)[0]
        self.log("info", '"%s %s" %s', self.command, path, code)


def health_app(environ: dict[str, Any], start_response: Any) -> Any:
    return Response("ok", mimetype="text/plain")(environ, start_response)


class Activity:
    """Counts the requests the functions have started and finished (a streamed body finishes when it is
    closed). `GET /_activity` answers both: the suite's tests take "nothing in flight and nothing new
    since the last look" as the sign that pushes and tasks have stopped arriving."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.started = 0
        self.finished = 0
        self._lock = threading.Lock()

    def _finish(self) -> None:
        with self._lock:
            self.finished += 1

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        with self._lock:
            self.started += 1
        try:
            body = self.app(environ, start_response)
        except BaseException:
            self._finish()
            raise
        return ClosingIterator(body, [self._finish])

    def report(self, environ: dict[str, Any], start_response: Any) -> Any:
        with self._lock:
            counts = {"started": self.started, "finished": self.finished}
        return Response(json.dumps(counts), mimetype="application/json")(environ, start_response)


class RootPath:
    """`POST /<function>` reaches the function at `/`, as deployed (Pub/Sub push follows no redirect)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if not environ.get("PATH_INFO"):
            environ["PATH_INFO"] = "/"
        return self.app(environ, start_response)


def build_app() -> Any:
    mounts: dict[str, Any] = {}
    for spec in discover():
        app = functions_framework.create_app(spec.name, str(spec.source), "http")  # type: ignore[no-untyped-call]
        mounts[f"/{spec.name}"] = RootPath(app)
    mounts["/_health"] = health_app
    activity = Activity(DispatcherMiddleware(health_app, mounts))
    return DispatcherMiddleware(activity, {"/_activity": activity.report})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the functions host binds to loopback only")
    server = make_server(args.host, args.port, build_app(), threaded=True, request_handler=QuietQueryHandler)
    # Cloud Tasks targets point back here; settings are read on each function's first request.
    os.environ.setdefault("CMP_FUNCTIONS_BASE_URL", f"http://{args.host}:{server.server_port}")
    print(f"READY {args.host}:{server.server_port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
