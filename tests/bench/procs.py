"""Functions served one per process by functions-framework, and the bare baseline functions.

Each process is started in its own session (process group) so stopping it also stops the gunicorn
workers it forks; `Fleet.stop_all()` stops whatever is still running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from emulators.suite import HOST, free_port

POLL_INTERVAL = 0.005  # between connect attempts while a function starts: short, so it barely adds up


@dataclass(frozen=True)
class Probe:
    """A representative first request to a function."""

    method: str
    path: str
    label: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None


@dataclass(frozen=True)
class Answer:
    port_open_s: float  # spawn -> the port accepts connections (the module is imported by then)
    answered_s: float  # spawn -> the first answer that is not a 5xx
    status: int
    detail: str  # e.g. the event intake's result


@dataclass
class Served:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    spawned_at: float  # time.perf_counter() just before the spawn

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with code {self.proc.returncode} while starting:\n{self.log_tail()}"
            )


class Fleet:
    """Starts functions-framework processes and stops each by its process group."""

    def __init__(self, env: Mapping[str, str], log_dir: Path) -> None:
        # The build folders must be self-contained: nothing reaches the repository through PYTHONPATH.
        self.env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
        self.log_dir = log_dir
        self.running: list[Served] = []
        self._count = 0

    def spawn(self, target: str, source: Path) -> Served:
        """`python -m functions_framework --target T --source S` in S's folder, on a free port."""
        self._count += 1
        port = free_port()
        log = self.log_dir / f"{self._count:02d}-{target}.log"
        argv = [
            sys.executable,
            "-m",
            "functions_framework",
            "--target",
            target,
            "--source",
            str(source),
            "--host",
            HOST,
            "--port",
            str(port),
        ]
        with log.open("wb") as handle:
            spawned_at = time.perf_counter()
            proc = subprocess.Popen(
                argv,
                cwd=source.parent,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        served = Served(target, proc, port, log, spawned_at)
        self.running.append(served)
        return served

    def stop(self, served: Served) -> None:
        if served.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(served.proc.pid, signal.SIGTERM)
            try:
                served.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(served.proc.pid, signal.SIGKILL)
                served.proc.wait(timeout=5)
        if served in self.running:
            self.running.remove(served)

    def stop_all(self) -> None:
        for served in list(reversed(self.running)):
            self.stop(served)


def wait_for_port(served: Served, deadline: float) -> float:
    """Short connect attempts until the port accepts; returns the perf_counter time it did."""
    while True:
        served.check_alive()
        try:
            with socket.create_connection((HOST, served.port), timeout=0.05):
                return time.perf_counter()
        except OSError:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{served.name} did not open port {served.port}") from None
            time.sleep(POLL_INTERVAL)


def first_answer(served: Served, probe: Probe, timeout: float = 60.0) -> Answer:
    """Time from spawn to the port opening and to the first answer below 500 to `probe`."""
    deadline = served.spawned_at + timeout
    port_open = wait_for_port(served, deadline)
    last = "no answer"
    with requests.Session() as session:
        while time.perf_counter() < deadline:
            try:
                response = session.request(
                    probe.method,
                    served.url + probe.path,
                    headers=dict(probe.headers),
                    json=probe.body,
                    timeout=max(0.1, deadline - time.perf_counter()),
                )
            except requests.ConnectionError as exc:  # accepted by the listener, dropped while starting
                served.check_alive()
                last = repr(exc)
                time.sleep(POLL_INTERVAL)
                continue
            answered = time.perf_counter()
            if response.status_code < 500:
                return Answer(
                    port_open - served.spawned_at,
                    answered - served.spawned_at,
                    response.status_code,
                    _detail(response),
                )
            last = f"{response.status_code} {response.text[:300]}"
            time.sleep(POLL_INTERVAL)
    raise TimeoutError(f"{served.name} gave no answer below 500 to {probe.label} in {timeout:.0f} s: {last}")


def _detail(response: requests.Response) -> str:
    """The intake's `result` (processed, duplicate, quarantined...) or a problem's `type`, if any."""
    with contextlib.suppress(ValueError):
        body = response.json()
        if isinstance(body, dict):
            for key in ("result", "type", "title"):
                if isinstance(body.get(key), str):
                    return str(body[key]).rsplit("/", 1)[-1]
    return ""


# --- bare baseline functions, written to a temporary folder ---------------------------------------------

HELLO_WORLD = '''"""Baseline: the smallest functions-framework HTTP function."""

import functions_framework


@functions_framework.http
def hello(request):
    return "hello"
'''

FIRESTORE_GET = '''"""Baseline: GET /<collection>/<id>: one Firestore get, the document as JSON."""

import os
from functools import cache

import flask
import functions_framework
from google.cloud import firestore


@cache
def db():
    return firestore.Client(project=os.environ["CMP_PROJECT_ID"])


@functions_framework.http
def get_document(request):
    collection, _, document = request.path.strip("/").partition("/")
    snapshot = db().collection(collection).document(document).get()
    if not snapshot.exists:
        return flask.jsonify({"error": "not found"}), 404
    return flask.jsonify(snapshot.to_dict())
'''

PUSH_RECORDER = '''"""Baseline: a push endpoint that records when each message arrived (time.time()).

POST: a Pub/Sub push; the arrival is keyed by the message's `seq` attribute. GET: every arrival so far.
"""

import threading
import time

import flask
import functions_framework

_arrivals = {}
_lock = threading.Lock()


@functions_framework.http
def recorder(request):
    if request.method == "POST":
        arrived = time.time()
        message = (request.get_json(silent=True) or {}).get("message") or {}
        key = (message.get("attributes") or {}).get("seq") or message.get("messageId", "")
        with _lock:
            _arrivals.setdefault(key, arrived)
        return "", 204
    with _lock:
        return flask.jsonify(_arrivals)
'''

BASELINES = {"hello": HELLO_WORLD, "get_document": FIRESTORE_GET, "recorder": PUSH_RECORDER}


def write_baseline(folder: Path, target: str) -> Path:
    """Write one baseline function as <folder>/<target>/main.py; returns its path."""
    source = folder / target / "main.py"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(BASELINES[target], encoding="utf-8")
    return source
