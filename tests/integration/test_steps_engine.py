"""The step engine on the real emulators (Firestore, our Cloud Tasks emulator), with its task handler in a
process of its own that the test kills in the middle of a step and starts again.

Run as `python -m tests.integration.test_steps_engine PORT QUEUE MAX_ATTEMPTS MODE`, this module is that
process: a functions-framework-like host serving the "steps_probe" tasks function.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.cloud import firestore

from shared.config import Settings
from shared.platform import Platform
from shared.steps import FinishContext, Process, Step, StepContext, StepEngine, StepOutcome
from tests.conftest import eventually

ROOT = Path(__file__).resolve().parents[2]
FUNCTION = "steps_probe"
STEPS = ("one", "two", "three")
CRASH_STEP = "two"


def _db() -> firestore.Client:
    from shared.clients import firestore_client

    return firestore_client()


def _effects(tenant_id: str) -> firestore.CollectionReference:
    return _db().collection("tenants", tenant_id, "probe_effects")


def probe_step(ctx: StepContext) -> StepOutcome:
    """Counts every execution, then makes its side effect idempotently (keyed by run and step)."""
    effects = _effects(ctx.tenant_id)
    effects.document(f"{ctx.step}-calls").set({"calls": firestore.Increment(1)}, merge=True)
    mode = os.environ.get("PROBE_MODE", "")
    if ctx.step == CRASH_STEP and ctx.attempt == 1:
        if mode == "block":
            effects.document(f"{ctx.step}-began").set({"attempt": ctx.attempt})
            time.sleep(120)  # the test kills this process meanwhile
        if mode == "exit":
            os._exit(1)  # dies mid-way: after its work began, before any outcome is recorded
    if ctx.step == CRASH_STEP and mode == "fail" and not effects.document("fixed").get().exists:
        raise RuntimeError("the dependency is down")
    effect = effects.document(f"{ctx.step}-effect")
    if not effect.get().exists:
        effect.set({"run_id": ctx.run_id, "step": ctx.step, "attempt": ctx.attempt})
    return StepOutcome(output={"attempt": ctx.attempt})


def on_finish(ctx: FinishContext) -> None:
    ref = _effects(ctx.tenant_id).document(f"finished-{ctx.status}")
    ctx.tx.set(ref, {"count": firestore.Increment(1)}, merge=True)


def resolve(_name: str, _input: Any) -> Process:
    return Process("probe", [Step(name, probe_step) for name in STEPS], on_finish=on_finish)


def engine(platform: Platform, queue: str, max_attempts: int) -> StepEngine:
    return StepEngine(
        platform,
        queue=queue,
        function=FUNCTION,
        collection="probe_runs",
        resolve=resolve,
        max_attempts=max_attempts,
    )


def serve(port: int, queue: str, max_attempts: int) -> None:
    """The probe host: the engine's task endpoint behind the platform's service authentication."""
    import flask
    from werkzeug.middleware.dispatcher import DispatcherMiddleware
    from werkzeug.serving import make_server

    from shared.platform import service_function

    entry = service_function(lambda p: engine(p, queue, max_attempts).serve)
    app = flask.Flask("steps_probe")

    @app.route("/", defaults={"rest": ""}, methods=["POST"])
    @app.route("/<path:rest>", methods=["POST"])
    def task(rest: str) -> flask.Response:
        return entry(flask.request)

    root = DispatcherMiddleware(flask.Flask("root"), {f"/{FUNCTION}": app})
    make_server("127.0.0.1", port, root, threaded=True).serve_forever()


# --- the test side ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Probe:
    port: int
    queue: str
    max_attempts: int
    mode: str
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "CMP_FUNCTIONS_BASE_URL": f"http://127.0.0.1:{self.port}",
            "PROBE_MODE": self.mode,
            "PYTHONPATH": str(ROOT),
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.test_steps_engine",
                str(self.port),
                self.queue,
                str(self.max_attempts),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        eventually(self.listening, what="the probe host to listen")

    def listening(self) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def died(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None


@contextlib.contextmanager
def probe_host(project: str, mode: str, max_attempts: int = 30) -> Iterator[tuple[Probe, StepEngine]]:
    from google.cloud import tasks_v2
    from google.protobuf import duration_pb2

    from shared.clients import tasks_client
    from shared.config import get_settings

    location = get_settings().location
    queue = f"steps-probe-{uuid.uuid4().hex[:8]}"
    parent = f"projects/{project}/locations/{location}"
    tasks_client().create_queue(
        parent=parent,
        queue=tasks_v2.Queue(
            name=f"{parent}/queues/{queue}",
            retry_config=tasks_v2.RetryConfig(
                max_attempts=max_attempts,
                min_backoff=duration_pb2.Duration(nanos=200_000_000),
                max_backoff=duration_pb2.Duration(seconds=1),
                max_doublings=2,
            ),
        ),
    )
    probe = Probe(free_port(), queue, max_attempts, mode)
    settings = Settings(functions_base_url=f"http://127.0.0.1:{probe.port}")
    probe.start()
    try:
        yield probe, engine(Platform(settings), queue, max_attempts)
    finally:
        probe.kill()
        tasks_client().delete_queue(name=f"{parent}/queues/{queue}")


def _run(steps: StepEngine, tenant_id: str, run_id: str) -> dict[str, Any]:
    return steps.inspect(tenant_id=tenant_id, run_id=run_id)


def _settled(steps: StepEngine, tenant_id: str, run_id: str, status: str) -> dict[str, Any]:
    run: dict[str, Any] = eventually(
        lambda: (r := _run(steps, tenant_id, run_id))["status"] == status and r,
        timeout=60,
        what=f"the run to be {status}",
    )
    return run


def _counts(tenant_id: str) -> dict[str, Any]:
    return {doc.id: doc.to_dict() for doc in _effects(tenant_id).stream()}


@pytest.mark.parametrize("mode", ["block", "exit"])
def test_a_step_killed_mid_way_completes_exactly_once_when_its_host_comes_back(clean: Any, mode: str) -> None:
    tenant_id = f"t_{uuid.uuid4().hex[:10]}"
    with probe_host(clean.project, mode) as (probe, steps):
        assert steps.start(None, tenant_id=tenant_id, process="probe", run_id="run1", input={"n": 1})
        if mode == "block":
            eventually(
                lambda: _effects(tenant_id).document("two-began").get().exists, what="step two to begin"
            )
            assert _run(steps, tenant_id, "run1")["current_step"] == "two"
            probe.kill()
        else:
            eventually(probe.died, what="the host to die in step two")
        probe.start()  # the queue retries the task it got no answer for
        run = _settled(steps, tenant_id, "run1", "succeeded")

    assert [(s["name"], s["status"]) for s in run["steps"]] == [(n, "done") for n in STEPS]
    attempts = {s["name"]: s["attempts"] for s in run["steps"]}
    assert attempts["one"] == 1 and attempts["three"] == 1
    assert attempts["two"] >= 2  # the killed attempt counts
    assert run["steps"][1]["output"]["attempt"] >= 2
    effects = _counts(tenant_id)
    # Each step's effect exists once; steps one and three ran once; two ran once more than it was killed.
    assert sorted(k for k in effects if k.endswith("-effect")) == [f"{n}-effect" for n in sorted(STEPS)]
    assert effects["one-calls"]["calls"] == 1
    assert effects["three-calls"]["calls"] == 1
    assert effects["two-calls"]["calls"] == 2
    assert effects["two-effect"]["attempt"] >= 2
    assert effects["finished-succeeded"] == {"count": 1}
    assert "finished-failed" not in effects


def test_a_step_exhausting_its_retries_fails_the_run_and_resume_completes_it(clean: Any) -> None:
    tenant_id = f"t_{uuid.uuid4().hex[:10]}"
    with probe_host(clean.project, "fail", max_attempts=3) as (_probe, steps):
        assert steps.start(None, tenant_id=tenant_id, process="probe", run_id="run1", input={})
        # A duplicate start (the same run id) changes nothing.
        assert not steps.start(None, tenant_id=tenant_id, process="probe", run_id="run1", input={})
        failed = _settled(steps, tenant_id, "run1", "failed")
        assert failed["failed_step"] == "two"
        assert failed["error"] == "RuntimeError: the dependency is down"
        assert [s["status"] for s in failed["steps"]] == ["done", "failed", "pending"]
        assert failed["steps"][1]["attempts"] == 3

        _effects(tenant_id).document("fixed").set({"by": "operator"})
        steps.resume(tenant_id=tenant_id, run_id="run1")
        run = _settled(steps, tenant_id, "run1", "succeeded")

    assert [s["status"] for s in run["steps"]] == ["done", "done", "done"]
    assert run["generation"] == 1
    effects = _counts(tenant_id)
    assert effects["two-calls"]["calls"] == 4
    assert effects["one-calls"]["calls"] == 1 and effects["three-calls"]["calls"] == 1
    assert effects["finished-failed"] == {"count": 1}
    assert effects["finished-succeeded"] == {"count": 1}
    page, cursor = steps.runs(tenant_id=tenant_id, process="probe")
    assert [r["run_id"] for r in page] == ["run1"] and cursor is None


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
