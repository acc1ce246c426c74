"""The step engine with small fakes: an in-memory document store, a unit of work whose commit can be made
to fail, and a task queue the test drives by hand (retries with the retry count header, as Cloud Tasks)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from google.cloud import firestore
from google.cloud.firestore_v1.field_path import FieldPath

from shared.config import Settings
from shared.problems import Problem
from shared.steps import FinishContext, Process, Step, StepContext, StepEngine, StepOutcome
from shared.tasks import TaskQueue
from shared.uow import Tx

# --- fakes -----------------------------------------------------------------------------------------


class Snapshot:
    def __init__(self, data: dict[str, Any] | None) -> None:
        self.exists = data is not None
        self._data = copy.deepcopy(data)

    def to_dict(self) -> dict[str, Any] | None:
        return copy.deepcopy(self._data)


class Ref:
    def __init__(self, store: Store, path: tuple[str, ...]) -> None:
        self.store = store
        self.path = path

    def get(self, transaction: object = None) -> Snapshot:
        return Snapshot(self.store.docs.get(self.path))

    def update(self, changes: Mapping[str, Any]) -> None:
        self.store.apply_update(self.path, changes)


class Collection:
    def __init__(self, store: Store, path: tuple[str, ...]) -> None:
        self.store = store
        self.path = path

    def document(self, doc_id: str) -> Ref:
        return Ref(self.store, (*self.path, doc_id))


class Store:
    def __init__(self) -> None:
        self.docs: dict[tuple[str, ...], dict[str, Any]] = {}

    def collection(self, *path: str) -> Collection:
        return Collection(self, path)

    def apply_update(self, path: tuple[str, ...], changes: Mapping[str, Any]) -> None:
        doc = self.docs[path]  # update() of a missing document fails, as in Firestore
        for key, value in changes.items():
            parts = FieldPath.from_string(key).parts
            target = doc
            for part in parts[:-1]:
                target = target.setdefault(part, {})
            if isinstance(value, firestore.Increment):
                target[parts[-1]] = target.get(parts[-1], 0) + value.value
            else:
                target[parts[-1]] = copy.deepcopy(value)


class FakeTx(Tx):
    """Reads see the store; writes are staged and applied only when the unit of work commits."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.events = []
        self.writes: list[Callable[[], None]] = []
        self.wrote = False

    def get(self, ref: Any) -> dict[str, Any] | None:
        assert not self.wrote, "Firestore transactions read before they write"
        return ref.get().to_dict()  # type: ignore[no-any-return]

    def create(self, ref: Any, data: dict[str, Any]) -> None:
        self.wrote = True

        def write() -> None:
            assert ref.path not in self.store.docs
            self.store.docs[ref.path] = copy.deepcopy(data)

        self.writes.append(write)

    def set(self, ref: Any, data: dict[str, Any], merge: bool = False) -> None:
        self.wrote = True
        self.writes.append(lambda: self.store.docs.__setitem__(ref.path, copy.deepcopy(data)))

    def update(self, ref: Any, data: dict[str, Any]) -> None:
        self.wrote = True
        self.writes.append(lambda: self.store.apply_update(ref.path, data))


class FakeUow:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.emitted: list[Any] = []
        self.fail_commits = 0  # the next N commits fail after the work ran (a lost transaction)

    def run(self, work: Callable[[Tx], Any], serialize_on: str | None = None) -> Any:
        tx = FakeTx(self.store)
        result = work(tx)
        if self.fail_commits:
            self.fail_commits -= 1
            raise RuntimeError("commit failed")
        for write in tx.writes:
            write()
        self.emitted.extend(tx.events)
        return result


@dataclass
class Task:
    name: str
    body: dict[str, Any]
    schedule_time: datetime | None
    retries: int = 0


class FakeQueue(TaskQueue):
    def __init__(self) -> None:
        super().__init__(Settings(), "steps-test", "test_tasks")
        self.names: set[str] = set()
        self.pending: list[Task] = []
        self.created: list[Task] = []

    def enqueue(
        self,
        path: str,
        payload: dict[str, Any],
        *,
        name: str | None = None,
        schedule_time: datetime | None = None,
    ) -> bool:
        assert name is not None
        if name in self.names:
            return False
        self.names.add(name)
        task = Task(name, payload, schedule_time)
        self.pending.append(task)
        self.created.append(task)
        return True


@dataclass
class FakePlatform:
    db: Store = field(default_factory=Store)
    uow: FakeUow = field(init=False)

    def __post_init__(self) -> None:
        self.uow = FakeUow(self.db)


MAX_ATTEMPTS = 4


@dataclass
class World:
    platform: FakePlatform
    engine: StepEngine
    queue: FakeQueue
    processes: dict[str, Process]
    answers: list[tuple[int, dict[str, Any]]] = field(default_factory=list)

    def deliver(self, task: Task) -> int:
        status, body = self.engine.handle(
            json.dumps(task.body).encode(), {"X-CloudTasks-TaskRetryCount": str(task.retries)}
        )
        self.answers.append((status, body))
        return status

    def drain(self, limit: int = 100) -> None:
        """Dispatch tasks as the queue would: a non-2xx answer is retried until max_attempts."""
        for _ in range(limit):
            if not self.queue.pending:
                return
            task = self.queue.pending.pop(0)
            if self.deliver(task) >= 300:
                task.retries += 1
                if task.retries < MAX_ATTEMPTS:
                    self.queue.pending.append(task)
        raise AssertionError("the queue did not drain")

    def run(self, run_id: str = "r1") -> dict[str, Any]:
        return self.engine.inspect(tenant_id="t1", run_id=run_id)

    def start(self, process: str, run_id: str = "r1", **input: Any) -> bool:
        return self.engine.start(None, tenant_id="t1", process=process, run_id=run_id, input=input)


def world(*processes: Process) -> World:
    platform = FakePlatform()
    table = {p.name: p for p in processes}
    engine = StepEngine(
        platform,  # type: ignore[arg-type]
        queue="steps-test",
        function="test_tasks",
        collection="runs",
        resolve=lambda name, _input: table[name],
        max_attempts=MAX_ATTEMPTS,
        stalled_after=timedelta(minutes=5),
        commit_wait=timedelta(0),
    )
    queue = FakeQueue()
    engine._tasks = queue
    return World(platform, engine, queue, table)


class Counter:
    """A step body that counts its calls and can fail a number of times first."""

    def __init__(self, fail_first: int = 0, outcome: StepOutcome | None = None) -> None:
        self.calls: list[StepContext] = []
        self.fail_first = fail_first
        self.outcome = outcome

    def __call__(self, ctx: StepContext) -> StepOutcome | None:
        self.calls.append(ctx)
        if len(self.calls) <= self.fail_first:
            raise RuntimeError(f"boom {len(self.calls)}")
        return self.outcome


def finisher(log: list[FinishContext]) -> Callable[[FinishContext], None]:
    def on_finish(ctx: FinishContext) -> None:
        log.append(ctx)
        ctx.tx.emit(f"finished:{ctx.status}")  # type: ignore[arg-type]

    return on_finish


# --- tests -----------------------------------------------------------------------------------------


def test_a_run_goes_through_its_steps_once_and_finishes_in_one_transaction() -> None:
    a = Counter(outcome=StepOutcome(output={"user": "u1"}))
    b = Counter()
    finished: list[FinishContext] = []
    w = world(Process("p", [Step("a", a), Step("b", b)], on_finish=finisher(finished)))

    assert w.start("p", plan="growth") is True
    assert w.run()["status"] == "pending"
    w.drain()

    run = w.run()
    assert run["status"] == "succeeded"
    assert run["percent"] == 100
    assert [(s["name"], s["status"], s["attempts"]) for s in run["steps"]] == [
        ("a", "done", 1),
        ("b", "done", 1),
    ]
    assert run["steps"][0]["output"] == {"user": "u1"}
    assert all(s["duration_ms"] is not None and s["finished_at"] for s in run["steps"])
    assert len(a.calls) == 1 and len(b.calls) == 1
    assert b.calls[0].outputs["a"] == {"user": "u1"}
    assert b.calls[0].input == {"plan": "growth"}
    assert [f.status for f in finished] == ["succeeded"]
    assert finished[0].steps == {"a": "done", "b": "done"}
    assert w.platform.uow.emitted == ["finished:succeeded"]


def test_start_is_idempotent_by_run_id() -> None:
    w = world(Process("p", [Step("a", Counter())]))
    assert w.start("p") is True
    assert w.start("p") is False
    assert len(w.queue.created) == 1


def test_the_first_task_waits_for_a_run_whose_transaction_has_not_committed() -> None:
    w = world(Process("p", [Step("a", Counter())]))
    w.platform.uow.fail_commits = 1
    with pytest.raises(RuntimeError):
        w.start("p")
    [orphan] = w.queue.created
    assert w.deliver(orphan) == 503  # the queue keeps it until the run exists, or drops it

    assert w.start("p") is True  # the caller's retry commits, with its own task
    w.queue.pending.remove(orphan)
    w.drain()
    assert w.run()["status"] == "succeeded"
    assert w.deliver(orphan) == 200  # late: acknowledged, changes nothing
    assert w.answers[-1][1]["result"] == "duplicate"


def test_a_duplicate_dispatch_runs_nothing_again() -> None:
    a, b = Counter(), Counter()
    w = world(Process("p", [Step("a", a), Step("b", b)]))
    w.start("p")
    first = w.queue.pending[0]
    w.drain()
    assert w.deliver(first) == 200
    assert w.answers[-1][1]["result"] == "duplicate"
    assert (len(a.calls), len(b.calls)) == (1, 1)


def test_a_lost_outcome_transaction_never_loses_nor_doubles_the_next_step() -> None:
    a, b = Counter(), Counter()
    w = world(Process("p", [Step("a", a), Step("b", b)]))
    w.start("p")
    task_a = w.queue.pending.pop(0)
    w.platform.uow.fail_commits = 1
    assert w.deliver(task_a) == 500  # step a ran, its transaction was lost after creating b's task
    [orphan_b] = w.queue.pending
    assert w.deliver(orphan_b) == 503  # the run has not reached b: retried later, not dropped
    assert len(b.calls) == 0
    w.queue.pending.clear()

    assert w.deliver(task_a) == 200  # the queue's retry of a commits, with a new task for b
    assert w.deliver(orphan_b) == 200  # now stale: another token
    w.drain()
    assert (len(a.calls), len(b.calls)) == (2, 1)
    assert w.run()["status"] == "succeeded"


def test_a_failing_step_is_retried_by_the_queue_and_then_succeeds() -> None:
    a = Counter(fail_first=2)
    w = world(Process("p", [Step("a", a)]))
    w.start("p")
    w.drain()
    run = w.run()
    assert run["status"] == "succeeded"
    assert run["steps"][0]["attempts"] == 3
    assert run["steps"][0]["error"] is None
    assert [c.attempt for c in a.calls] == [1, 2, 3]
    assert [status for status, _ in w.answers] == [500, 500, 200]


def test_exhausted_retries_fail_the_run_and_resume_completes_it() -> None:
    a = Counter()
    b = Counter(fail_first=MAX_ATTEMPTS)
    c = Counter()
    finished: list[FinishContext] = []
    w = world(Process("p", [Step("a", a), Step("b", b), Step("c", c)], on_finish=finisher(finished)))
    w.start("p")
    w.drain()

    run = w.run()
    assert run["status"] == "failed"
    assert run["failed_step"] == "b"
    assert run["error"] == f"RuntimeError: boom {MAX_ATTEMPTS}"
    assert [s["status"] for s in run["steps"]] == ["done", "failed", "pending"]
    assert run["steps"][1]["attempts"] == MAX_ATTEMPTS
    assert [f.status for f in finished] == ["failed"]
    assert finished[0].failed_step == "b"
    assert len(c.calls) == 0

    resumed = w.engine.resume(tenant_id="t1", run_id="r1")
    assert resumed["status"] == "running"
    assert resumed["generation"] == 1
    w.drain()
    run = w.run()
    assert run["status"] == "succeeded"
    assert [s["status"] for s in run["steps"]] == ["done", "done", "done"]
    assert run["steps"][1]["attempts"] == 1  # a fresh count after the resume
    assert (len(a.calls), len(b.calls), len(c.calls)) == (1, MAX_ATTEMPTS + 1, 1)
    assert [f.status for f in finished] == ["failed", "succeeded"]
    assert w.platform.uow.emitted == ["finished:failed", "finished:succeeded"]


def test_the_retry_count_header_counts_attempts_a_crash_did_not_record() -> None:
    a = Counter(fail_first=1)
    w = world(Process("p", [Step("a", a)]))
    w.start("p")
    task = w.queue.pending.pop(0)
    task.retries = MAX_ATTEMPTS - 1  # earlier attempts died before recording themselves
    assert w.deliver(task) == 200
    assert w.run()["status"] == "failed"


def test_resume_refuses_a_run_that_is_neither_failed_nor_stalled_and_an_unknown_step() -> None:
    w = world(Process("p", [Step("a", Counter(fail_first=MAX_ATTEMPTS))]))
    w.start("p")
    with pytest.raises(Problem) as running:
        w.engine.resume(tenant_id="t1", run_id="r1")
    assert running.value.status == 409
    w.drain()
    with pytest.raises(Problem) as unknown:
        w.engine.resume(tenant_id="t1", run_id="r1", from_step="zzz")
    assert unknown.value.status == 422
    with pytest.raises(Problem) as missing:
        w.engine.resume(tenant_id="t1", run_id="nope")
    assert missing.value.status == 404
    assert w.run()["status"] == "failed"


def test_a_resume_task_arriving_before_the_resume_commits_waits_instead_of_being_dropped() -> None:
    w = world(Process("p", [Step("a", Counter(fail_first=MAX_ATTEMPTS))]))
    w.start("p")
    w.drain()
    assert w.run()["status"] == "failed"
    w.platform.uow.fail_commits = 1
    with pytest.raises(RuntimeError):
        w.engine.resume(tenant_id="t1", run_id="r1")
    early = w.queue.pending.pop(0)
    assert w.deliver(early) == 503  # the run still reads "failed": not a finished-run duplicate
    assert w.run()["status"] == "failed"


def test_a_stalled_run_can_be_resumed() -> None:
    w = world(Process("p", [Step("a", Counter())]))
    w.start("p")
    task = w.queue.pending.pop(0)
    path = ("tenants", "t1", "runs", "r1")
    w.platform.db.docs[path]["status"] = "running"
    w.platform.db.docs[path]["steps"]["a"]["last_attempt_at"] = datetime(2020, 1, 1).astimezone()
    w.engine.resume(tenant_id="t1", run_id="r1")
    assert w.deliver(task) == 200 and w.answers[-1][1]["result"] == "duplicate"  # the old dispatch
    w.drain()
    assert w.run()["status"] == "succeeded"


def test_branch_finish_skip_and_delays() -> None:
    a = Counter(outcome=StepOutcome(next_step="c", delay=timedelta(hours=1)))
    b = Counter()
    c = Counter(outcome=StepOutcome(skipped=True))
    d = Counter(outcome=StepOutcome(finish=True))
    e = Counter()
    w = world(
        Process(
            "p",
            [
                Step("a", a),
                Step("b", b),
                Step("c", c),
                Step("d", d, delay=timedelta(minutes=5)),
                Step("e", e),
            ],
        )
    )
    w.start("p")
    w.deliver(w.queue.pending.pop(0))
    run = w.run()
    assert run["status"] == "waiting"
    assert run["current_step"] == "c"
    assert run["steps"][2]["status"] == "waiting" and run["steps"][2]["not_before"]
    task_c = w.queue.pending[0]
    assert task_c.schedule_time is not None
    w.drain()
    assert w.queue.created[2].schedule_time is not None  # d's own delay
    run = w.run()
    assert run["status"] == "succeeded"
    assert [s["status"] for s in run["steps"]] == ["done", "skipped", "skipped", "done", "skipped"]
    assert (len(b.calls), len(e.calls)) == (0, 0)


def test_a_branch_to_an_unknown_step_is_a_step_failure() -> None:
    w = world(Process("p", [Step("a", Counter(outcome=StepOutcome(next_step="nowhere")))]))
    w.start("p")
    w.drain()
    run = w.run()
    assert run["status"] == "failed"
    assert "nowhere" in run["error"]


def test_a_malformed_task_is_acknowledged_and_changes_nothing() -> None:
    w = world(Process("p", [Step("a", Counter())]))
    before = copy.deepcopy(w.platform.db.docs)
    assert w.engine.handle(b"{not json") == (200, {"result": "rejected"})
    assert w.engine.handle(json.dumps({"tenant_id": "t/1"}).encode())[1]["result"] == "rejected"
    assert w.platform.db.docs == before


def test_step_names_with_any_characters_are_recorded() -> None:
    w = world(Process("p", [Step("send e-mail.v2", Counter())]))
    w.start("p")
    w.drain()
    run = w.run()
    assert run["steps"][0]["name"] == "send e-mail.v2"
    assert run["steps"][0]["status"] == "done"
    assert run["steps"][0]["attempts"] == 1


class Killed(BaseException):
    """The process dies in the middle of the step: nothing after it runs, nothing answers."""


def test_a_last_attempt_killed_mid_way_is_failed_by_its_watchdog_and_can_be_resumed() -> None:
    calls: list[int] = []

    def dies_on_last_attempt(ctx: StepContext) -> None:
        calls.append(ctx.attempt)
        if len(calls) == 1:
            raise Killed

    finished: list[FinishContext] = []
    w = world(Process("p", [Step("a", dies_on_last_attempt)], on_finish=finisher(finished)))
    w.start("p")
    task = w.queue.pending.pop(0)
    task.retries = MAX_ATTEMPTS - 1  # the queue's last dispatch: it will not retry this one
    with pytest.raises(Killed):
        w.deliver(task)
    [watchdog] = w.queue.pending
    assert watchdog.body["watchdog"] is True and watchdog.schedule_time is not None
    assert w.run()["status"] == "running"

    assert w.deliver(w.queue.pending.pop(0)) == 200
    run = w.run()
    assert run["status"] == "failed"
    assert run["failed_step"] == "a" and "no answer" in run["error"]
    assert [f.status for f in finished] == ["failed"]

    w.engine.resume(tenant_id="t1", run_id="r1")
    w.drain()
    assert w.run()["status"] == "succeeded"
    assert calls == [1, 1]  # the resume starts a fresh attempt count


def test_a_watchdog_after_a_last_attempt_that_answered_changes_nothing() -> None:
    finished: list[FinishContext] = []
    w = world(Process("p", [Step("a", Counter())], on_finish=finisher(finished)))
    w.start("p")
    task = w.queue.pending.pop(0)
    task.retries = MAX_ATTEMPTS - 1
    assert w.deliver(task) == 200
    [watchdog] = w.queue.pending
    assert w.deliver(watchdog) == 200 and w.answers[-1][1]["result"] == "duplicate"
    assert w.run()["status"] == "succeeded"
    assert [f.status for f in finished] == ["succeeded"]
