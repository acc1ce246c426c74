"""The local emulator suite: real Firestore and Pub/Sub emulators (gcloud), the Firebase Auth emulator
(firebase-tools), our Cloud Tasks and Secret Manager emulators, and every function served by
functions-framework. Used by `make run` (fixed ports) and by the tests (free ports).

Each child runs in its own process group, so stopping the suite also stops the Java and Node children
the launchers spawn. An emulator whose *_EMULATOR_HOST variable is already set is reused, not started.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
LOCAL_SIGNING_KEY_ENV = "CMP_LOCAL_SIGNING_KEY"
DEFAULT_PROJECT = "demo-cmp"
# How long a piece may take to start before the suite gives up. Generous: with the test workers each
# starting an Auth emulator (Node) at once on a 2-core machine that is busy, one took over 90 s. It stays
# within pytest-timeout's 300 s for a worker's first test, which starts the worker's suite.
STARTUP_DEADLINE = 240.0


class MissingPrerequisite(RuntimeError):
    """A tool the suite needs is not installed; the message says what to install."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def sdk_root() -> Path:
    candidates = [os.environ.get("CLOUDSDK_ROOT"), "/usr/lib/google-cloud-sdk", "/usr/share/google-cloud-sdk"]
    gcloud = shutil.which("gcloud")
    if gcloud:
        candidates.append(str(Path(gcloud).resolve().parent.parent))
    for candidate in candidates:
        if candidate and (Path(candidate) / "platform").is_dir():
            return Path(candidate)
    raise MissingPrerequisite(
        "The Google Cloud CLI is not installed: install google-cloud-cli with the components "
        "google-cloud-cli-firestore-emulator and google-cloud-cli-pubsub-emulator "
        "(or set CLOUDSDK_ROOT to its installation folder)."
    )


def _jar(pattern: str, component: str) -> Path:
    found = sorted(sdk_root().glob(pattern))
    if not found:
        raise MissingPrerequisite(
            f"The {component} is missing from {sdk_root()}: install the gcloud component "
            f"google-cloud-cli-{component.replace(' ', '-').lower()} "
            f"(`apt-get install google-cloud-cli-{component.replace(' ', '-').lower()}` "
            f"or `gcloud components install {component.replace(' ', '-').lower()}`)."
        )
    return found[-1]


def java() -> str:
    path = shutil.which("java")
    if path is None:
        raise MissingPrerequisite(
            "Java 11+ is needed by the Firestore and Pub/Sub emulators: install openjdk-17-jre."
        )
    return path


def firebase_cli() -> Path:
    cli = ROOT / "emulators" / "auth" / "node_modules" / ".bin" / "firebase"
    if not cli.exists():
        raise MissingPrerequisite(
            "The Firebase Auth emulator is not installed: run `make setup` "
            "(it runs npm ci in emulators/auth; needs Node.js 20+ and npm)."
        )
    return cli


def wait_until(
    check: Callable[[], bool],
    what: str,
    timeout: float,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.05
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} exited with code {proc.returncode} while starting:\n{tail}")
        with contextlib.suppress(OSError, urllib.error.URLError):
            if check():
                return
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    raise TimeoutError(f"{what} was not ready within {timeout:.0f} s")


def http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback only
            return bool(200 <= response.status < 500)

    return check


@dataclass
class Ports:
    firestore: int
    pubsub: int
    auth: int
    tasks: int
    secrets: int
    functions: int
    smtp: int = 0  # the SMTP sink (emulators/smtp_sink.py) and its HTTP view of the mails
    smtp_http: int = 0

    @classmethod
    def fixed(cls) -> Ports:
        return cls(
            firestore=8080,
            pubsub=8085,
            auth=9099,
            tasks=8123,
            secrets=8124,
            functions=8090,
            smtp=2525,
            smtp_http=8025,
        )

    @classmethod
    def free(cls) -> Ports:
        """0 everywhere: each piece gets a free port when it starts (the actual one is recorded)."""
        return cls(0, 0, 0, 0, 0, 0)


@dataclass
class Suite:
    ports: Ports
    project: str = DEFAULT_PROJECT
    log_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="cmp-suite-")))
    signing_key: str = field(
        default_factory=lambda: os.environ.get(LOCAL_SIGNING_KEY_ENV) or os.urandom(24).hex()
    )
    serve_functions: bool = True
    # Only the emulators that serve many projects (Firestore, Pub/Sub, Tasks, Secret Manager): several
    # suites, each with a project of its own, can share them. The Auth emulator cannot be shared: it
    # signs in with an API key into its one default project.
    project_scoped_emulators_only: bool = False
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    # --- addresses ---------------------------------------------------------------------------------
    @property
    def functions_url(self) -> str:
        return f"http://{HOST}:{self.ports.functions}"

    def function_url(self, name: str) -> str:
        return f"{self.functions_url}/{name}"

    @property
    def smtp_url(self) -> str:
        """The SMTP sink's HTTP view: GET /messages, DELETE /messages, POST /fail."""
        return f"http://{HOST}:{self.ports.smtp_http}"

    # --- lifecycle ---------------------------------------------------------------------------------
    def _spawn(
        self, name: str, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.log_dir / f"{name}.log"
        handle = log.open("wb")
        proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            argv,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd or ROOT,
            env={**os.environ, **self.env, **(env or {})},
            start_new_session=True,  # own process group: stop() takes the Java/Node children too
        )
        handle.close()
        self.processes.append((name, proc))
        return proc, log

    def start(self) -> Suite:
        self.env.update(
            {
                "CMP_PROJECT_ID": self.project,
                "GOOGLE_CLOUD_PROJECT": self.project,
                "CMP_ENVIRONMENT": "local",
                "CMP_SERVICE_AUTH": "local",
                # Webhook endpoints of the suite are local receivers; production refuses loopback targets.
                "CMP_WEBHOOKS_ALLOW_LOOPBACK": "true",
                LOCAL_SIGNING_KEY_ENV: self.signing_key,
            }
        )
        # The Auth emulator (Node) is by far the slowest to start: it starts beside the others.
        auth_failure: list[BaseException] = []

        def start_auth() -> None:
            try:
                self._start_auth()
            except BaseException as exc:  # re-raised below, in the caller's thread
                auth_failure.append(exc)

        auth = threading.Thread(target=start_auth, name="start auth emulator", daemon=True)
        try:
            if not self.project_scoped_emulators_only:
                auth.start()
            self._start_firestore()
            self._start_pubsub()
            self.ports.tasks = self._start_python_emulator(
                "tasks",
                "emulators.tasks_emulator",
                self.ports.tasks,
                "CLOUD_TASKS_EMULATOR_HOST",
                ["--signing-key", self.signing_key],
            )
            self.ports.secrets = self._start_python_emulator(
                "secrets",
                "emulators.secrets_emulator",
                self.ports.secrets,
                "SECRET_MANAGER_EMULATOR_HOST",
                [],
            )
            if not self.project_scoped_emulators_only:
                auth.join()
                if auth_failure:
                    raise auth_failure[0]
                self._start_smtp_sink()
                if self.serve_functions:
                    self._start_functions()
        except BaseException:
            if auth.is_alive():
                auth.join()
            self.stop()
            raise
        os.environ.update(self.env)
        return self

    def _on_free_port(self, requested: int, start: Callable[[int], None]) -> int:
        """Start on `requested`, or on a free port; a free port taken by someone else in between
        (the process dies at start) is retried on another one."""
        attempts = 1 if requested else 3
        for attempt in range(attempts):
            port = requested or free_port()
            try:
                start(port)
                return port
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def _reuse(self, variable: str) -> bool:
        value = os.environ.get(variable)
        if value:
            self.env[variable] = value
            return True
        return False

    def _start_firestore(self) -> None:
        if self._reuse("FIRESTORE_EMULATOR_HOST"):
            return
        jar = _jar("platform/cloud-firestore-emulator/cloud-firestore-emulator.jar", "Firestore emulator")
        main = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"

        def start(port: int) -> None:
            argv = [java(), "-cp", str(jar), main, "start", f"--host={HOST}", f"--port={port}"]
            proc, log = self._spawn("firestore", argv)
            wait_until(http_ok(f"http://{HOST}:{port}/"), "Firestore emulator", STARTUP_DEADLINE, proc, log)

        self.ports.firestore = self._on_free_port(self.ports.firestore, start)
        self.env["FIRESTORE_EMULATOR_HOST"] = f"{HOST}:{self.ports.firestore}"

    def _start_pubsub(self) -> None:
        if self._reuse("PUBSUB_EMULATOR_HOST"):
            return
        self.start_pubsub()

    def start_pubsub(self) -> str:
        """Start a Pub/Sub emulator of this suite's own (on `ports.pubsub`, or a free port), even when
        another one is set in the environment; answers its host:port."""
        jar = _jar("platform/pubsub-emulator/lib/cloud-pubsub-emulator-*.jar", "Pub/Sub emulator")

        def start(port: int) -> None:
            proc, log = self._spawn("pubsub", [java(), "-jar", str(jar), f"--host={HOST}", f"--port={port}"])
            wait_until(http_ok(f"http://{HOST}:{port}/"), "Pub/Sub emulator", STARTUP_DEADLINE, proc, log)

        self.ports.pubsub = self._on_free_port(self.ports.pubsub, start)
        self.env["PUBSUB_EMULATOR_HOST"] = f"{HOST}:{self.ports.pubsub}"
        return self.env["PUBSUB_EMULATOR_HOST"]

    def _start_python(self, name: str, module: str, port: int, extra: list[str], env: dict[str, str]) -> int:
        """Start one of our Python servers; port 0 lets it bind any free port, read off its READY line."""
        proc, log = self._spawn(
            name, [sys.executable, "-m", module, "--host", HOST, "--port", str(port), *extra], env=env
        )
        ready = re.compile(r"^READY \S+:(\d+)$", re.MULTILINE)

        def bound() -> bool:
            return ready.search(log.read_text(errors="replace")) is not None

        wait_until(bound, name, STARTUP_DEADLINE, proc, log)
        found = ready.search(log.read_text(errors="replace"))
        assert found is not None
        return int(found.group(1))

    def _start_python_emulator(
        self, name: str, module: str, port: int, variable: str, extra: list[str]
    ) -> int:
        if self._reuse(variable):
            return port
        port = self._start_python(f"{name} emulator", module, port, extra, {})
        self.env[variable] = f"{HOST}:{port}"
        return port

    def _start_auth(self) -> None:
        if self._reuse("FIREBASE_AUTH_EMULATOR_HOST"):
            return
        cli = firebase_cli()
        config_dir = self.log_dir / "firebase"
        config_dir.mkdir(exist_ok=True)
        config = config_dir / "firebase.json"

        def start(port: int) -> None:
            emulators = {
                "auth": {"host": HOST, "port": port},
                "ui": {"enabled": False},
                "hub": {"host": HOST, "port": free_port()},
                "logging": {"host": HOST, "port": free_port()},
                "singleProjectMode": True,
            }
            config.write_text(json.dumps({"emulators": emulators}))
            argv = [
                str(cli),
                "emulators:start",
                "--only",
                "auth",
                "--project",
                self.project,
                "--config",
                str(config),
            ]
            proc, log = self._spawn(
                "auth",
                argv,
                env={"CI": "true", "FIREBASE_CLI_DISABLE_UPDATE_CHECK": "true", "HOME": str(config_dir)},
                cwd=config_dir,
            )
            wait_until(
                http_ok(f"http://{HOST}:{port}/"), "Firebase Auth emulator", STARTUP_DEADLINE, proc, log
            )

        self.ports.auth = self._on_free_port(self.ports.auth, start)
        self.env["FIREBASE_AUTH_EMULATOR_HOST"] = f"{HOST}:{self.ports.auth}"

    def _start_smtp_sink(self) -> None:
        self.ports.smtp = self._start_python(
            "smtp sink",
            "emulators.smtp_sink",
            self.ports.smtp,
            ["--http-port", str(self.ports.smtp_http)],
            {},
        )
        found = re.search(r"^HTTP \S+:(\d+)$", self.log_tail("smtp sink"), re.MULTILINE)
        assert found is not None
        self.ports.smtp_http = int(found.group(1))
        # Notification email goes to the sink.
        self.env.update({"CMP_SMTP_HOST": HOST, "CMP_SMTP_PORT": str(self.ports.smtp)})

    def _start_functions(self) -> None:
        self.ports.functions = self._start_python(
            "functions host", "emulators.functions_host", self.ports.functions, [], {"PYTHONPATH": str(ROOT)}
        )
        # Cloud Tasks targets point here. The host reads it on each function's first request.
        self.env["CMP_FUNCTIONS_BASE_URL"] = self.functions_url

    def start_worker(self, name: str, module: str, *args: str) -> None:
        """A long-running worker of workers/ (on GKE in production), with the suite's environment; it
        stops with the suite. Its output goes to <log_dir>/<name>.log."""
        self._spawn(name, [sys.executable, "-m", module, *args], env={"PYTHONPATH": str(ROOT)})

    def kill(self, name: str) -> None:
        """Kill one child (by its name: "pubsub", "functions host", ...) at once, as a crash would."""
        for entry in [entry for entry in self.processes if entry[0] == name]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(entry[1].pid, signal.SIGKILL)
            entry[1].wait()
            self.processes.remove(entry)

    def restart_functions(self) -> None:
        """Start the functions host again, on the port it had (push and task targets name it)."""
        self._start_functions()

    def stop(self) -> None:
        for _name, proc in reversed(self.processes):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for _name, proc in reversed(self.processes):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.processes.clear()

    def log_tail(self, name: str, chars: int = 4000) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""


@contextlib.contextmanager
def running(ports: Ports | None = None, **kwargs: object) -> Iterator[Suite]:
    suite = Suite(ports or Ports.free(), **kwargs)  # type: ignore[arg-type]
    suite.start()
    try:
        yield suite
    finally:
        suite.stop()


def check_prerequisites() -> list[str]:
    """What is missing for the suite to start, each with what to install; empty when all is there."""
    problems: list[str] = []
    for check in (
        java,
        lambda: _jar("platform/cloud-firestore-emulator/cloud-firestore-emulator.jar", "Firestore emulator"),
        lambda: _jar("platform/pubsub-emulator/lib/cloud-pubsub-emulator-*.jar", "Pub/Sub emulator"),
        firebase_cli,
    ):
        try:
            check()
        except MissingPrerequisite as missing:
            problems.append(str(missing))
    return problems


if __name__ == "__main__":
    missing = check_prerequisites()
    for line in missing:
        print(f"missing: {line}", file=sys.stderr)
    sys.exit(2 if missing else 0)
