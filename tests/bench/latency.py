"""2. GET /tenants/{id}: latency (sequential) and throughput (threads), vs one bare Firestore get.

Both are served the same way: their own functions-framework process (gunicorn, as deployed), the
same HTTP client (a requests.Session per thread), the same headers and the same URL shape.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests

from functions.build import build_one
from tests.bench.context import Bench, bearer
from tests.bench.measure import Measurement, Report, Stats, ms
from tests.bench.procs import Probe, Served, first_answer, write_baseline

SECTION = "2. GET /tenants/{id} (own functions-framework process)"
BASELINE = "bare function: one Firestore get of the same document, as JSON"


@dataclass(frozen=True)
class Target:
    served: Served
    path: str
    headers: dict[str, str]

    @property
    def url(self) -> str:
        return self.served.url + self.path


def sequential(
    targets: list[Target], requests_: int, warmup: int, budget_s: float
) -> tuple[list[list[float]], list[Counter[int]]]:
    """Latencies of each target, requests alternating between targets so drift hits them alike."""
    sessions = [requests.Session() for _ in targets]
    latencies: list[list[float]] = [[] for _ in targets]
    statuses: list[Counter[int]] = [Counter() for _ in targets]
    deadline = time.perf_counter() + budget_s
    try:
        for i in range(warmup + requests_):
            if time.perf_counter() > deadline:
                break
            for k, target in enumerate(targets):
                started = time.perf_counter()
                response = sessions[k].get(target.url, headers=target.headers, timeout=30)
                elapsed = time.perf_counter() - started
                if i >= warmup:
                    latencies[k].append(elapsed)
                    statuses[k][response.status_code] += 1
    finally:
        for session in sessions:
            session.close()
    return latencies, statuses


def throughput(target: Target, total: int, threads: int, budget_s: float) -> tuple[float, int, Counter[int]]:
    """Requests/s over `total` requests sent by `threads` threads (or fewer, if the budget runs out)."""
    lock = threading.Lock()
    remaining = [total]
    statuses: Counter[int] = Counter()
    deadline = time.perf_counter() + budget_s

    def worker() -> None:
        with requests.Session() as session:
            while time.perf_counter() < deadline:
                with lock:
                    if remaining[0] == 0:
                        return
                    remaining[0] -= 1
                status = session.get(target.url, headers=target.headers, timeout=30).status_code
                with lock:
                    statuses[status] += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(worker) for _ in range(threads)]:
            future.result()
    elapsed = time.perf_counter() - started
    done = sum(statuses.values())
    return done / elapsed, done, statuses


def _statuses(counter: Counter[int]) -> str:
    return ", ".join(f"{count}x{status}" for status, count in sorted(counter.items()))


def run(
    bench: Bench, report: Report, requests_: int, warmup: int, total: int, threads: int, budget_s: float
) -> None:
    build_dir = bench.workdir / "build-latency"
    spec = next(s for s in bench.functions if s.name == "tenant_api")
    tenant_source = build_one(spec, build_dir) / "main.py"
    baseline_source: Path = write_baseline(bench.workdir / "baselines", "get_document")
    path = f"/tenants/{bench.tenant_id}"
    headers = bearer(bench.operator_token)

    tenant = bench.fleet.spawn("tenant_api", tenant_source)
    baseline = bench.fleet.spawn("get_document", baseline_source)
    try:
        for served in (tenant, baseline):
            answer = first_answer(served, Probe("GET", path, "GET /tenants/{id}", headers))
            if answer.status != 200:
                raise RuntimeError(f"{served.name} answered {answer.status} to GET {path}")
        target, base = Target(tenant, path, headers), Target(baseline, path, headers)

        (lat_t, lat_b), (st_t, st_b) = sequential([target, base], requests_, warmup, budget_s)
        # Throughput in the order target, baseline, baseline, target: linear drift cancels out.
        rates: dict[str, list[float]] = {"target": [], "baseline": []}
        counts: dict[str, Counter[int]] = {"target": Counter(), "baseline": Counter()}
        for name in ("target", "baseline", "baseline", "target"):
            rate, _, statuses = throughput(target if name == "target" else base, total, threads, budget_s / 4)
            rates[name].append(rate)
            counts[name].update(statuses)
    finally:
        bench.fleet.stop(tenant)
        bench.fleet.stop(baseline)

    t, b = Stats.of(lat_t), Stats.of(lat_b)
    report.samples["get_tenant"] = {
        "latency_ms": ms(lat_t),
        "baseline_latency_ms": ms(lat_b),
        "throughput_rps": rates["target"],
        "baseline_throughput_rps": rates["baseline"],
    }
    seq_note = f"{t.n} sequential after {warmup} warm-up; statuses {_statuses(st_t)} / {_statuses(st_b)}"
    report.add(
        Measurement(SECTION, "latency p50", "ms", t.p50 * 1000, b.p50 * 1000, BASELINE, note=seq_note),
        Measurement(SECTION, "latency p95", "ms", t.p95 * 1000, b.p95 * 1000, BASELINE),
        Measurement(
            SECTION,
            f"throughput, {threads} threads",
            "req/s",
            sum(rates["target"]) / 2,
            sum(rates["baseline"]) / 2,
            BASELINE,
            higher_is_better=True,
            note=f"mean of 2 x {total} requests each; statuses {_statuses(counts['target'])} / "
            f"{_statuses(counts['baseline'])}",
        ),
    )
