"""A durable step engine: a process is a list of idempotent steps run one by one on Cloud Tasks.

A run lives in one document, `tenants/{tid}/<collection>/{run_id}`, with every step's record embedded
(`steps.<name>`: status, attempts, timings, error, output) and the order of the steps (`order`).

How a step runs:
- Each step runs as a named Cloud Task on the engine's queue. The task carries the run's `seq` (a
  counter bumped by every transition: next step, branch, resume) and a fresh `token`; the run document
  stores the seq and token of the one dispatch it expects. A duplicate or stale dispatch (an earlier
  seq, another token, a finished run) is acknowledged and changes nothing.
- A step's outcome is recorded, and the next step's task created, in ONE Firestore transaction: the
  task is created before the commit, named after the transaction attempt's token, and the token is
  written with the outcome. The task usually arrives before the commit: its handler waits for it a
  little (`commit_wait`), then answers 503 and the queue retries. If that transaction never commits,
  its task keeps finding the run behind it (and is dropped after the queue's attempts) or finds
  another token once the step's retry committed (acknowledged as stale) —
  so no step is lost between a commit and an enqueue, and no second dispatch is ever expected.
  `start()` works the same way inside the caller's transaction (an event handler's unit of work): the
  first task waits (503) until the run document is committed.
- A step that raises answers 500 and the queue retries it with its retry_config backoff. The attempts
  are counted in the step record (before the step runs, so a killed attempt counts too) and from the
  `X-CloudTasks-TaskRetryCount` header; when the queue's `max_attempts` is reached the run is marked
  failed with the error, and `on_finish` runs in that transaction. `resume()` continues a failed run
  from the failed step (or another one) with a fresh attempt count.
- A step handler killed mid-way (process crash, instance stopped) gives the queue no answer: the queue
  retries the task, the step (idempotent) runs again, and only one transaction can advance the run.
- `StepOutcome.delay` / `Step.delay` become the next task's `schedule_time` (the run shows "waiting").

Refinements of the original contract, kept compatible: `handle()` takes the request headers as an
optional second argument (for the retry count); `StepEngine` takes optional `path` (default "/steps"),
`max_attempts` (default: the catalog queue's), `stalled_after` and `commit_wait`. `on_finish` runs
after the finishing transaction's read and before its writes, so it may read (tx.get), write and emit.
The queue's last attempt of a step that is killed (no answer at all) is not retried: before that
attempt runs, a watchdog task is scheduled `step_timeout` later (at least the dispatch deadline); if the
run is still at that attempt then, the watchdog marks it failed ("no answer"), on_finish included, so it
shows and can be resumed. `resume()` also accepts a run left "running" for `stalled_after`.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from google.cloud import firestore
from google.cloud.firestore_v1.field_path import FieldPath
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.problems import Problem, conflict, not_found
from shared.tasks import TaskQueue, task_id

if TYPE_CHECKING:
    import flask

    from shared.pagination import PageParams
    from shared.platform import Platform
    from shared.uow import Tx

log = logging.getLogger(__name__)

RUN_STATUSES = ("pending", "running", "waiting", "succeeded", "failed")
STEP_STATUSES = ("pending", "waiting", "running", "done", "skipped", "failed")
FINISHED = frozenset({"succeeded", "failed"})


@dataclass(frozen=True)
class StepOutcome:
    output: Mapping[str, Any] = field(default_factory=dict)
    next_step: str | None = None  # branch: the step to run next (default: the following one)
    delay: timedelta | None = None  # wait before the next step runs
    finish: bool = False  # end the run successfully now, skipping the rest
    skipped: bool = False  # this step had nothing to do


@dataclass(frozen=True)
class StepContext:
    tenant_id: str
    run_id: str
    process: str
    step: str
    attempt: int
    input: Mapping[str, Any]
    outputs: Mapping[str, Mapping[str, Any]]
    started_at: datetime  # when the run started


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[StepContext], StepOutcome | None]  # MUST be idempotent: it may run again after a crash
    delay: timedelta | None = None  # wait before this step starts


@dataclass(frozen=True)
class FinishContext:
    tx: Tx
    tenant_id: str
    run_id: str
    process: str
    status: str  # succeeded | failed
    input: Mapping[str, Any]
    outputs: Mapping[str, Mapping[str, Any]]
    steps: Mapping[str, str]  # step name -> status, in order
    started_at: datetime
    finished_at: datetime
    error: str | None = None
    failed_step: str | None = None

    def steps_with(self, *statuses: str) -> list[str]:
        return [name for name, status in self.steps.items() if status in statuses]


@dataclass(frozen=True)
class Process:
    name: str
    steps: Sequence[Step]
    on_finish: Callable[[FinishContext], None] | None = None  # inside the finishing transaction

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    def after(self, name: str) -> str | None:
        names = [s.name for s in self.steps]
        index = names.index(name) + 1
        return names[index] if index < len(names) else None


class StepTask(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str = Field(min_length=1, max_length=128, pattern=r"^[^/]+$")
    run_id: str = Field(min_length=1, max_length=128, pattern=r"^[^/]+$")
    seq: int = Field(ge=1)
    step: str = Field(min_length=1, max_length=200)
    token: str = Field(pattern=r"^[0-9a-f]{32}$")
    watchdog: bool = False  # the check after a last attempt, not a step attempt


def _path(*parts: str) -> str:
    # Quoted as needed: step names may hold characters a dotted field path cannot.
    path: str = FieldPath(*parts).to_api_repr()
    return path


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, Mapping):
        return {k: _iso(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_iso(v) for v in value]
    return value


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:1000]


class StepEngine:
    def __init__(
        self,
        platform: Platform,
        *,
        queue: str,
        function: str,
        collection: str,
        resolve: Callable[[str, Mapping[str, Any]], Process],
        path: str = "/steps",
        max_attempts: int | None = None,
        stalled_after: timedelta = timedelta(minutes=15),
        commit_wait: timedelta = timedelta(seconds=3),
        step_timeout: timedelta = timedelta(minutes=11),  # Cloud Tasks' HTTP dispatch deadline is 10 min
    ) -> None:
        self.platform = platform
        self.queue_name = queue
        self.function = function
        self.collection = collection
        self.resolve = resolve
        self.path = path
        self._max_attempts = max_attempts
        self.stalled_after = stalled_after
        self.commit_wait = commit_wait
        self.step_timeout = step_timeout
        self._tasks: TaskQueue | None = None

    # --- wiring ------------------------------------------------------------------------------------
    @property
    def tasks(self) -> TaskQueue:
        if self._tasks is None:
            self._tasks = TaskQueue(self.platform.settings, self.queue_name, self.function)
        return self._tasks

    @property
    def max_attempts(self) -> int:
        if self._max_attempts is None:
            self._max_attempts = self.platform.catalog.queue(self.queue_name).max_attempts
        return self._max_attempts

    def ref(self, tenant_id: str, run_id: str) -> firestore.DocumentReference:
        return self.platform.db.collection("tenants", tenant_id, self.collection).document(run_id)

    # --- start -------------------------------------------------------------------------------------
    def start(
        self, tx: Tx | None, *, tenant_id: str, process: str, run_id: str, input: Mapping[str, Any]
    ) -> bool:
        """Create the run (idempotent by run_id: False if it exists) and its first step's task.

        With `tx`, this must come before the caller's own writes (Firestore reads precede writes)."""
        if tx is None:
            return self.platform.uow.run(
                lambda t: self.start(t, tenant_id=tenant_id, process=process, run_id=run_id, input=input)
            )
        ref = self.ref(tenant_id, run_id)
        if tx.get(ref) is not None:
            return False
        proc = self.resolve(process, input)
        if not proc.steps:
            raise ValueError(f"process {process} has no steps")
        names = [s.name for s in proc.steps]
        if len(set(names)) != len(names):
            raise ValueError(f"process {process} repeats a step name")
        now = datetime.now(UTC)
        first = proc.steps[0]
        token = uuid.uuid4().hex
        steps = {name: {"status": "pending", "attempts": 0} for name in names}
        status = "pending"
        if first.delay:
            steps[first.name]["status"] = "waiting"
            status = "waiting"
        tx.create(
            ref,
            {
                "run_id": run_id,
                "tenant_id": tenant_id,
                "process": process,
                "input": dict(input),
                "order": names,
                "steps": steps,
                "status": status,
                "current_step": first.name,
                "seq": 1,
                "token": token,
                "generation": 0,
                "created_at": now,
                "started_at": now,
                "updated_at": now,
                "finished_at": None,
                "error": None,
                "failed_step": None,
            },
        )
        # Before the commit: the task waits (503) until this document exists.
        self._dispatch(tenant_id, run_id, 1, first.name, token, first.delay)
        return True

    def _dispatch(
        self, tenant_id: str, run_id: str, seq: int, step: str, token: str, delay: timedelta | None
    ) -> None:
        body = StepTask(tenant_id=tenant_id, run_id=run_id, seq=seq, step=step, token=token)
        when = datetime.now(UTC) + delay if delay else None
        name = task_id(self.collection, tenant_id, run_id, str(seq), token)
        self.tasks.enqueue(self.path, body.model_dump(), name=name, schedule_time=when)

    # --- the task endpoint -------------------------------------------------------------------------
    def handle(
        self, request_body: bytes, headers: Mapping[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        try:
            task = StepTask.model_validate_json(request_body)
        except ValidationError as exc:
            # A task that can never succeed is acknowledged (and logged), never retried.
            log.error("malformed step task acknowledged", extra={"errors": exc.errors(include_url=False)})
            return 200, {"result": "rejected"}
        ref = self.ref(task.tenant_id, task.run_id)
        if task.watchdog:
            return self._watch(task, ref)
        run, verdict = self._await_turn(task, ref)
        if verdict is not None:
            return verdict
        assert run is not None
        retry_count = _int_header(headers, "X-CloudTasks-TaskRetryCount")
        record = run["steps"].get(task.step, {})
        now = datetime.now(UTC)
        changes: dict[str, Any] = {
            _path("steps", task.step, "status"): "running",
            _path("steps", task.step, "attempts"): firestore.Increment(1),
            _path("steps", task.step, "last_attempt_at"): now,
            "status": "running",
            "updated_at": now,
        }
        if not record.get("started_at"):
            changes[_path("steps", task.step, "started_at")] = now
        ref.update(changes)
        attempt = int(record.get("attempts", 0)) + 1
        # The queue's own count also covers attempts that died before recording themselves.
        last_chance = attempt >= self.max_attempts or retry_count >= self.max_attempts - 1
        if last_chance:
            self._schedule_watchdog(task)
        try:
            proc = self.resolve(run["process"], run["input"])
            step = proc.step(task.step)
            ctx = StepContext(
                tenant_id=task.tenant_id,
                run_id=task.run_id,
                process=run["process"],
                step=task.step,
                attempt=attempt,
                input=run["input"],
                outputs={k: v.get("output") or {} for k, v in run["steps"].items() if "output" in v},
                started_at=run["started_at"],
            )
            outcome = step.run(ctx) or StepOutcome()
            finished = datetime.now(UTC)
            result = self.platform.uow.run(
                lambda tx: self._advance(tx, task, proc, outcome, now, finished),
                serialize_on=f"steps:{task.run_id}",
            )
        except Exception as exc:
            return self._step_failed(task, exc, attempt, last_chance)
        return 200, {"result": result}

    def _await_turn(
        self, task: StepTask, ref: firestore.DocumentReference
    ) -> tuple[dict[str, Any] | None, tuple[int, dict[str, Any]] | None]:
        """The run and None when this dispatch is the expected one; else the answer to give. The task
        was created just before its transaction committed, so it usually arrives first: wait a little
        for the commit here rather than through the queue's backoff."""
        deadline = time.monotonic() + self.commit_wait.total_seconds()
        pause = 0.02
        while True:
            snapshot = ref.get()
            run = snapshot.to_dict() if snapshot.exists else None
            verdict = self._verdict(task, run)
            if verdict is None or verdict[0] != 503 or time.monotonic() >= deadline:
                return run, verdict
            time.sleep(pause)
            pause = min(pause * 2, 0.25)

    def _schedule_watchdog(self, task: StepTask) -> None:
        body = task.model_copy(update={"watchdog": True}).model_dump()
        name = task_id(self.collection, task.tenant_id, task.run_id, str(task.seq), task.token, "watchdog")
        when = datetime.now(UTC) + self.step_timeout
        self.tasks.enqueue(self.path, body, name=name, schedule_time=when)

    def _watch(self, task: StepTask, ref: firestore.DocumentReference) -> tuple[int, dict[str, Any]]:
        """After the queue's last attempt of a step: a run still at that attempt got no answer from it."""
        error = "no answer from the step's last attempt (the handler was killed or timed out)"
        return 200, {"result": self._fail(task, ref, error)}

    def _fail(self, task: StepTask, ref: firestore.DocumentReference, error: str) -> str:
        """Mark the run failed at this dispatch's step, unless the run moved on meanwhile."""

        def fail(tx: Tx) -> str:
            run = tx.get(ref)
            if run is None or self._verdict(task, run) is not None:
                return "duplicate"
            now = datetime.now(UTC)
            record = {
                **run["steps"].get(task.step, {}),
                "status": "failed",
                "error": error,
                "finished_at": now,
            }
            steps = {**run["steps"], task.step: record}
            self._finish(tx, ref, run, steps, "failed", now, None, error, task.step)
            return "failed"

        result: str = self.platform.uow.run(fail, serialize_on=f"steps:{task.run_id}")
        return result

    def _verdict(self, task: StepTask, run: dict[str, Any] | None) -> tuple[int, dict[str, Any]] | None:
        """None when this dispatch is the one the run expects; otherwise the answer to give."""
        if run is None:
            # The transaction that created this task has not committed (yet, or ever): retry later.
            return 503, {"result": "waiting", "detail": "the run does not exist yet"}
        if task.seq > int(run["seq"]):
            # Before the status: a resume's task may arrive while the run still reads "failed".
            return 503, {"result": "waiting", "detail": "the run has not reached this step yet"}
        if run["status"] in FINISHED:
            return 200, {"result": "duplicate", "detail": f"the run is {run['status']}"}
        if task.seq < int(run["seq"]) or task.token != run["token"] or task.step != run["current_step"]:
            return 200, {"result": "duplicate", "detail": "a stale dispatch"}
        return None

    def _advance(
        self,
        tx: Tx,
        task: StepTask,
        proc: Process,
        outcome: StepOutcome,
        began: datetime,
        finished: datetime,
    ) -> str:
        ref = self.ref(task.tenant_id, task.run_id)
        run = tx.get(ref)
        if self._verdict(task, run) is not None:
            return "duplicate"  # another dispatch of this step advanced the run first
        assert run is not None
        record = {
            **run["steps"].get(task.step, {}),
            "status": "skipped" if outcome.skipped else "done",
            "output": dict(outcome.output),
            "finished_at": finished,
            "duration_ms": round((finished - began).total_seconds() * 1000, 3),
            "error": None,
        }
        steps = {**run["steps"], task.step: record}
        following = None if outcome.finish else (outcome.next_step or proc.after(task.step))
        if following is not None:
            step = proc.step(following)  # KeyError on a branch to an unknown step: a step failure
            token = uuid.uuid4().hex
            seq = int(run["seq"]) + 1
            delay = outcome.delay or step.delay
            # A branch back to an earlier step runs it afresh.
            steps[following] = {
                "status": "waiting" if delay else "pending",
                "attempts": 0,
                **({"not_before": finished + delay} if delay else {}),
            }
            tx.update(
                ref,
                {
                    "steps": steps,
                    "status": "waiting" if delay else "running",
                    "current_step": following,
                    "seq": seq,
                    "token": token,
                    "updated_at": finished,
                },
            )
            self._dispatch(task.tenant_id, task.run_id, seq, following, token, delay)
            return "advanced"
        # The last step (or an early finish): the steps never reached are skipped.
        for name in run["order"]:
            if steps[name]["status"] in ("pending", "waiting"):
                steps[name] = {**steps[name], "status": "skipped"}
        self._finish(tx, ref, run, steps, "succeeded", finished, proc)
        return "succeeded"

    def _finish(
        self,
        tx: Tx,
        ref: firestore.DocumentReference,
        run: dict[str, Any],
        steps: dict[str, dict[str, Any]],
        status: str,
        now: datetime,
        proc: Process | None,
        error: str | None = None,
        failed_step: str | None = None,
    ) -> None:
        proc = proc or self.resolve(run["process"], run["input"])
        if proc.on_finish is not None:
            proc.on_finish(
                FinishContext(
                    tx=tx,
                    tenant_id=run["tenant_id"],
                    run_id=run["run_id"],
                    process=run["process"],
                    status=status,
                    input=run["input"],
                    outputs={k: v.get("output") or {} for k, v in steps.items() if "output" in v},
                    steps={name: steps[name]["status"] for name in run["order"]},
                    started_at=run["started_at"],
                    finished_at=now,
                    error=error,
                    failed_step=failed_step,
                )
            )
        tx.update(
            ref,
            {
                "steps": steps,
                "status": status,
                "current_step": failed_step,
                "seq": int(run["seq"]) + 1,
                "token": uuid.uuid4().hex,
                "updated_at": now,
                "finished_at": now,
                "error": error,
                "failed_step": failed_step,
            },
        )

    def _step_failed(
        self, task: StepTask, exc: Exception, attempt: int, last_chance: bool
    ) -> tuple[int, dict[str, Any]]:
        error = _error(exc)
        log.warning(
            "step failed",
            exc_info=exc,
            extra={"run_id": task.run_id, "step": task.step, "attempt": attempt},
        )
        ref = self.ref(task.tenant_id, task.run_id)
        if not last_chance:
            ref.update(
                {
                    _path("steps", task.step, "error"): error,
                    _path("steps", task.step, "status"): "running",
                    "updated_at": datetime.now(UTC),
                }
            )
            return 500, {"result": "retry", "detail": f"attempt {attempt} of {self.max_attempts} failed"}
        return 200, {"result": self._fail(task, ref, error), "detail": error}

    # --- operator calls ----------------------------------------------------------------------------
    def resume(self, *, tenant_id: str, run_id: str, from_step: str | None = None) -> dict[str, Any]:
        """A failed (or stalled) run continues from the failed step, or from `from_step`."""
        ref = self.ref(tenant_id, run_id)

        def work(tx: Tx) -> None:
            run = tx.get(ref)
            if run is None:
                raise not_found(f"The run {run_id}")
            now = datetime.now(UTC)
            if run["status"] != "failed" and not self._stalled(run, now):
                raise conflict(
                    "run-not-resumable",
                    f"Only a failed or stalled run can be resumed; this one is {run['status']}.",
                    run_status=run["status"],
                )
            step_name = str(from_step or run.get("failed_step") or run.get("current_step"))
            if step_name not in run["order"]:
                raise Problem(
                    422, "unknown-step", f"The process has no step {step_name!r}.", steps=run["order"]
                )
            proc = self.resolve(run["process"], run["input"])
            step = proc.step(step_name)
            token = uuid.uuid4().hex
            seq = int(run["seq"]) + 1
            steps = dict(run["steps"])
            steps[step_name] = {**steps[step_name], "status": "pending", "attempts": 0}
            tx.update(
                ref,
                {
                    "steps": steps,
                    "status": "running",
                    "current_step": step_name,
                    "seq": seq,
                    "token": token,
                    "generation": int(run.get("generation", 0)) + 1,
                    "updated_at": now,
                    "finished_at": None,
                    "error": None,
                    "failed_step": None,
                },
            )
            self._dispatch(tenant_id, run_id, seq, step_name, token, step.delay)

        self.platform.uow.run(work, serialize_on=f"steps:{run_id}")
        return self.inspect(tenant_id=tenant_id, run_id=run_id)

    def _stalled(self, run: Mapping[str, Any], now: datetime) -> bool:
        if run["status"] != "running":
            return False
        record = run["steps"].get(run.get("current_step") or "", {})
        last = record.get("last_attempt_at")
        return isinstance(last, datetime) and now - last >= self.stalled_after

    def inspect(self, *, tenant_id: str, run_id: str) -> dict[str, Any]:
        snapshot = self.ref(tenant_id, run_id).get()
        if not snapshot.exists:
            raise not_found(f"The run {run_id}")
        return self.view(snapshot.to_dict() or {})

    @staticmethod
    def view(run: Mapping[str, Any]) -> dict[str, Any]:
        """The public shape of a run: JSON-safe, steps in order."""
        steps = []
        for name in run["order"]:
            record = run["steps"].get(name, {})
            steps.append(
                _iso(
                    {
                        "name": name,
                        "status": record.get("status", "pending"),
                        "attempts": record.get("attempts", 0),
                        "started_at": record.get("started_at"),
                        "finished_at": record.get("finished_at"),
                        "duration_ms": record.get("duration_ms"),
                        "not_before": record.get("not_before"),
                        "error": record.get("error"),
                        "output": record.get("output"),
                    }
                )
            )
        settled = sum(1 for s in steps if s["status"] in ("done", "skipped"))
        view: dict[str, Any] = _iso(
            {
                "run_id": run["run_id"],
                "tenant_id": run["tenant_id"],
                "process": run["process"],
                "status": run["status"],
                "current_step": run.get("current_step"),
                "generation": run.get("generation", 0),
                "percent": round(100 * settled / len(steps)) if steps else 100,
                "started_at": run.get("started_at"),
                "updated_at": run.get("updated_at"),
                "finished_at": run.get("finished_at"),
                "error": run.get("error"),
                "failed_step": run.get("failed_step"),
                "input": run.get("input", {}),
                "steps": steps,
            }
        )
        return view

    def runs(
        self, *, tenant_id: str, process: str | None = None, page: PageParams | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of runs, newest first: (runs, next_cursor)."""
        from shared.pagination import PageParams, paginate

        collection = self.platform.db.collection("tenants", tenant_id, self.collection)
        query: firestore.Query | firestore.CollectionReference = collection
        if process is not None:
            query = collection.where(filter=firestore.FieldFilter("process", "==", process))
        result = paginate(collection, query, "started_at", page or PageParams(), descending=True)
        return [self.view(s.to_dict() or {}) for s in result.snapshots], result.next_cursor

    # --- a ready-made task function ------------------------------------------------------------------
    def serve(self, request: flask.Request) -> flask.Response:
        """The body of a "tasks" function (wrap it with shared.platform.service_function)."""
        import flask as _flask

        from shared.http import problem_response

        if request.method != "POST" or request.path.rstrip("/") != self.path:
            return problem_response(not_found(f"The resource {request.path}"), request.path)
        status, body = self.handle(request.get_data(), dict(request.headers))
        return _flask.Response(json.dumps(body), status=status, content_type="application/json")


def _int_header(headers: Mapping[str, str] | None, name: str) -> int:
    if not headers:
        return 0
    for key, value in headers.items():
        if key.lower() == name.lower():
            try:
                return max(int(value), 0)
            except ValueError:
                return 0
    return 0
