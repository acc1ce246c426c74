"""shared.access.AccessStore: cache reuse, version checks, invalidation, the LRU bound, thread safety.

A small fake loader stands in for Firestore; a fake clock moves time.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from shared.access import AccessStore, Binding, TenantAccess, TenantBlock
from shared.authz import Principal


class FakeLoader:
    """Tenants' versions in memory; counts the reads the store makes."""

    def __init__(self) -> None:
        self.versions: dict[str, int] = {}
        self.blocks: dict[str, TenantBlock] = {}
        self.loads: list[str] = []
        self.version_reads: list[str] = []
        self.during_load: list[object] = []  # callables run inside load (races)

    def version(self, tenant_id: str) -> int:
        self.version_reads.append(tenant_id)
        return self.versions.get(tenant_id, 0)

    def load(self, tenant_id: str) -> TenantAccess:
        self.loads.append(tenant_id)
        version = self.versions.get(tenant_id, 0)
        for hook in self.during_load:
            hook()  # type: ignore[operator]
        return TenantAccess(
            tenant_id=tenant_id,
            version=version,
            policies={"p1": Binding("p1", "admin", frozenset({"user:u1"}))},
            block=self.blocks.get(tenant_id),
        )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def loader() -> FakeLoader:
    return FakeLoader()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(loader: FakeLoader, clock: Clock) -> AccessStore:
    return AccessStore(loader, version_check_seconds=2.0, max_tenants=3, clock=clock)


def test_the_first_use_loads_and_a_second_within_the_interval_reads_nothing(
    store: AccessStore, loader: FakeLoader, clock: Clock
) -> None:
    loader.versions["t1"] = 4
    first = store.snapshot("t1")
    clock.now += 1.9
    assert store.snapshot("t1") is first
    assert loader.loads == ["t1"] and loader.version_reads == []
    assert first.version == 4


def test_after_the_interval_only_the_version_is_read_while_it_is_unchanged(
    store: AccessStore, loader: FakeLoader, clock: Clock
) -> None:
    first = store.snapshot("t1")
    clock.now += 2.0
    assert store.snapshot("t1") is first
    assert loader.version_reads == ["t1"] and loader.loads == ["t1"]
    clock.now += 1.0  # the check refreshed the entry: no read again within the interval
    assert store.snapshot("t1") is first
    assert loader.version_reads == ["t1"]


def test_a_version_bump_is_seen_at_the_next_check_and_reloads(
    store: AccessStore, loader: FakeLoader, clock: Clock
) -> None:
    store.snapshot("t1")
    loader.versions["t1"] = 1
    loader.blocks["t1"] = TenantBlock("suspended", "unpaid")
    clock.now += 0.5
    assert store.snapshot("t1").version == 0  # not checked yet: the cached snapshot stands
    clock.now += 2.0
    reloaded = store.snapshot("t1")
    assert reloaded.version == 1 and reloaded.block is not None
    assert loader.loads == ["t1", "t1"]


def test_invalidate_drops_the_snapshot_at_once(store: AccessStore, loader: FakeLoader) -> None:
    store.snapshot("t1")
    loader.versions["t1"] = 2
    store.invalidate("t1")
    assert store.snapshot("t1").version == 2
    assert loader.loads == ["t1", "t1"] and loader.version_reads == []
    store.invalidate("never-loaded")  # harmless


def test_a_load_that_raced_an_invalidation_is_answered_but_not_cached(
    store: AccessStore, loader: FakeLoader
) -> None:
    loader.during_load.append(lambda: store.invalidate("t1"))
    store.snapshot("t1")
    loader.during_load.clear()
    store.snapshot("t1")
    assert loader.loads == ["t1", "t1"]
    assert len(store) == 1


def test_memory_is_bounded_least_recently_used_first(
    store: AccessStore, loader: FakeLoader, clock: Clock
) -> None:
    for tenant in ("t1", "t2", "t3"):
        store.snapshot(tenant)
    store.snapshot("t1")  # t1 is now the most recently used: t2 is the oldest
    store.snapshot("t4")
    assert len(store) == 3
    loader.loads.clear()
    for tenant in ("t1", "t3", "t4"):
        store.snapshot(tenant)
    assert loader.loads == []
    store.snapshot("t2")
    assert loader.loads == ["t2"] and len(store) == 3


def test_concurrent_first_uses_of_one_tenant_load_it_once(loader: FakeLoader) -> None:
    gate = threading.Event()
    loader.during_load.append(lambda: gate.wait(timeout=5))
    store = AccessStore(loader, version_check_seconds=60)
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(store.snapshot, "t1") for _ in range(8)]
        time.sleep(0.1)
        gate.set()
        snapshots = {id(f.result(timeout=5)) for f in futures}
    assert loader.loads == ["t1"] and len(snapshots) == 1


def test_many_threads_and_tenants_stay_within_the_bound(loader: FakeLoader) -> None:
    store = AccessStore(loader, version_check_seconds=0.0, max_tenants=5)

    def work(i: int) -> bool:
        return store.decide(Principal(uid="u1", tenant_id=f"t{i % 9}"), "tenants:read", f"t{i % 9}").allowed

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(work, range(400)))
    assert len(store) <= 5


def test_decide_answers_from_the_cached_snapshot(store: AccessStore, loader: FakeLoader) -> None:
    granted = store.decide(Principal(uid="u1", tenant_id="t1"), "seats:assign", "t1")
    assert granted.allowed and granted.reason == "granted by role admin via policy p1"
    loader.blocks["t1"] = TenantBlock("suspended", "unpaid")
    loader.versions["t1"] = 1
    store.invalidate("t1")
    blocked = store.decide(Principal(uid="u1", tenant_id="t1"), "seats:assign", "t1")
    assert not blocked.allowed and blocked.reason == "tenant suspended: unpaid"


def test_the_bound_must_hold_a_tenant(loader: FakeLoader) -> None:
    with pytest.raises(ValueError, match="max_tenants"):
        AccessStore(loader, max_tenants=0)


def test_defaults() -> None:
    store = AccessStore(FakeLoader())
    assert store.version_check_seconds == 2.0 and store.max_tenants == 1024


# A load that never returns, or fails: only that tenant's requests are affected, and never for long.


class HungLoader(FakeLoader):
    """Loads of the tenants in `hung` block until `release` is set; `entered` tells a load started."""

    def __init__(self, hung: set[str]) -> None:
        super().__init__()
        self.hung = hung
        self.release = threading.Event()
        self.entered = threading.Event()
        self.failing: set[str] = set()

    def version(self, tenant_id: str) -> int:
        self._wait(tenant_id)
        return super().version(tenant_id)

    def load(self, tenant_id: str) -> TenantAccess:
        self._wait(tenant_id)
        return super().load(tenant_id)

    def _wait(self, tenant_id: str) -> None:
        if tenant_id in self.failing:
            raise ConnectionError("the channel was torn down")
        if tenant_id in self.hung:
            self.entered.set()
            self.release.wait()


def test_a_hung_load_blocks_no_other_tenant() -> None:
    from tests.conftest import eventually

    loader = HungLoader({"t-hung"})
    store = AccessStore(loader, load_deadline_seconds=0.05)
    stuck = threading.Thread(target=store.snapshot, args=("t-hung",), daemon=True)
    stuck.start()
    try:
        assert loader.entered.wait(timeout=10)
        done: list[str] = []

        def others() -> None:
            # Every other tenant: any lock shared with the hung tenant (a stripe) would hold one of them.
            for i in range(300):
                done.append(store.snapshot(f"t{i}").tenant_id)

        threading.Thread(target=others, daemon=True).start()
        eventually(lambda: len(done) == 300, what="the other tenants' snapshots")
        assert stuck.is_alive()  # the hung load is still hung: nobody waited for it
    finally:
        loader.release.set()


def test_a_request_waiting_on_a_hung_load_gets_503_after_the_deadline() -> None:
    from shared.problems import Problem

    loader = HungLoader({"t-hung"})
    store = AccessStore(loader, load_deadline_seconds=0.05)
    threading.Thread(target=store.snapshot, args=("t-hung",), daemon=True).start()
    try:
        assert loader.entered.wait(timeout=10)
        with pytest.raises(Problem) as raised:
            store.decide(Principal(uid="u1", tenant_id="t-hung"), "tenants:read", "t-hung")
        assert raised.value.status == 503 and raised.value.headers["Retry-After"] == "1"
    finally:
        loader.release.set()


def test_a_failed_load_serves_the_last_good_snapshot_while_recent_then_503(clock: Clock) -> None:
    from shared.problems import Problem

    loader = HungLoader(set())
    store = AccessStore(loader, version_check_seconds=2.0, stale_seconds=30.0, clock=clock)
    good = store.snapshot("t1")
    loader.failing.add("t1")
    clock.now += 10  # past the version check, within the stale window
    assert store.snapshot("t1") is good
    clock.now += 25  # 35 s since the last good check
    with pytest.raises(Problem) as raised:
        store.snapshot("t1")
    assert raised.value.status == 503
    loader.failing.clear()
    assert store.snapshot("t1").tenant_id == "t1"  # recovered: the next request loads again


def test_a_load_older_than_its_deadline_is_abandoned_for_a_fresh_one(clock: Clock) -> None:
    loader = HungLoader({"t1"})
    store = AccessStore(loader, load_deadline_seconds=0.05, clock=clock)
    threading.Thread(target=store.snapshot, args=("t1",), daemon=True).start()
    try:
        assert loader.entered.wait(timeout=10)
        clock.now += 1  # the first load is past its deadline
        loader.hung.clear()
        assert store.snapshot("t1").tenant_id == "t1"
        assert loader.loads == ["t1"]  # the fresh load did the work; the first is still hung
    finally:
        loader.release.set()
