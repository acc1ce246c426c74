"""1. Cold start: spawn -> first answer of each deployable function, vs a hello-world function."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from functions.build import build
from functions.manifest import FunctionSpec
from tests.bench.context import (
    SCHEDULER_ACCOUNT,
    TASKS_ACCOUNT,
    Bench,
    bearer,
    example_envelope,
    push_body,
)
from tests.bench.measure import Measurement, Report, ms
from tests.bench.procs import Answer, Probe, first_answer, write_baseline

SECTION = "1. Cold start: spawn -> first answer (median of {runs})"
BASELINE = "bare hello-world HTTP function, GET /"

# Which consumed event to push to an events function, when it matters (else the first consumed).
PREFERRED_EVENT = {"audit_api_events": "User Invited"}


def probe_for(spec: FunctionSpec, bench: Bench) -> Probe:
    """A representative first request for the function (a new event id on every call)."""
    tid = bench.tenant_id
    known = {
        "tenant_api": Probe(
            "GET", f"/tenants/{tid}", "GET /tenants/{id} (operator)", bearer(bench.operator_token)
        ),
        "audit_api": Probe(
            "GET",
            f"/tenants/{tid}/audit/entries?limit=10",
            "GET /tenants/{tid}/audit/entries (admin)",
            bearer(bench.admin_token),
        ),
        "portal": Probe("GET", "/", "GET / (the portal's index.html)", {}),
        "audit_api_tasks": Probe(
            "POST", "/seal", "seal task", bearer(bench.service_token(TASKS_ACCOUNT)), {"tenant_id": tid}
        ),
    }
    if spec.name in known:
        return known[spec.name]
    if spec.kind == "http":
        return Probe("GET", f"/tenants/{tid}", "GET /tenants/{tid} (admin)", bearer(bench.admin_token))
    if spec.kind == "pubsub-push":
        api = bench.catalog.api_by_module(spec.package)
        consumed = bench.catalog.consumed_by(api.name)
        wanted = PREFERRED_EVENT.get(spec.name)
        event = next((e for e in consumed if e.name == wanted), consumed[0])
        body = push_body(bench.suite.project, event, api, example_envelope(bench.catalog, event, tid))
        return Probe("POST", "/" + bench.push_query(), f"push {event.name}", {}, body)
    if spec.kind == "tasks":
        return Probe("POST", "/", "task", bearer(bench.service_token(TASKS_ACCOUNT)), {"tenant_id": tid})
    return Probe("POST", "/", "scheduled call", bearer(bench.service_token(SCHEDULER_ACCOUNT)), {})


def measure(bench: Bench, target: str, source: Path, probe: Probe) -> Answer:
    served = bench.fleet.spawn(target, source)
    try:
        return first_answer(served, probe)
    finally:
        bench.fleet.stop(served)


def run(bench: Bench, report: Report, runs: int) -> None:
    section = SECTION.format(runs=runs)
    build_dir = Path(tempfile.mkdtemp(prefix="build-", dir=bench.workdir))
    build(build_dir)
    hello = write_baseline(bench.workdir / "baselines", "hello")
    hello_probe = Probe("GET", "/", "GET /")
    targets = [(spec, build_dir / spec.name / "main.py") for spec in bench.functions]

    answers: dict[str, list[Answer]] = {spec.name: [] for spec, _ in targets}
    labels = {spec.name: probe_for(spec, bench).label for spec, _ in targets}
    baseline: list[Answer] = []
    for _ in range(runs):
        # Interleaved (baseline, every function, ...) so a slow patch of the machine hits all alike.
        baseline.append(measure(bench, "hello", hello, hello_probe))
        for spec, source in targets:
            answers[spec.name].append(measure(bench, spec.name, source, probe_for(spec, bench)))

    baseline_median = statistics.median(a.answered_s for a in baseline) * 1000
    report.samples["cold_start"] = {
        "baseline_hello_ms": ms([a.answered_s for a in baseline]),
        **{name: ms([a.answered_s for a in runs_]) for name, runs_ in answers.items()},
    }
    hello_port = statistics.median(a.port_open_s for a in baseline) * 1000
    for spec, _ in targets:
        runs_ = answers[spec.name]
        statuses = sorted({f"{a.status}{' ' + a.detail if a.detail else ''}" for a in runs_})
        port_open = statistics.median(a.port_open_s for a in runs_) * 1000
        report.add(
            Measurement(
                section,
                f"{spec.name} ({spec.kind})",
                "ms",
                statistics.median(a.answered_s for a in runs_) * 1000,
                baseline_median,
                BASELINE,
                note=f"{labels[spec.name]} -> {', '.join(statuses)}; port open at {port_open:,.0f} ms "
                f"(hello {hello_port:,.0f})",
            )
        )
