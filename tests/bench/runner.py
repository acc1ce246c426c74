"""Start the suite on free ports, run the sections, print the table, write bench-results.json."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from emulators.provision import provision
from emulators.suite import ROOT, MissingPrerequisite, Ports, Suite
from functions.manifest import discover
from shared.catalog import load_catalog
from tests.bench import (
    authz,
    bulk_import,
    cold_start,
    customers,
    health,
    latency,
    notifications,
    offboarding,
    onboarding,
    pipeline,
    portal,
    sustained,
    webhooks,
    workflows,
)
from tests.bench.context import Bench, prepare, redirected_push_endpoints
from tests.bench.measure import Report
from tests.bench.procs import Fleet

SECTIONS = (
    "cold",
    "latency",
    "pipeline",
    "sustained",
    "authz",
    "import",
    "webhooks",
    "health",
    "workflows",
    "onboarding",
    "offboarding",
    "customers",
    "notifications",
    "portal",
)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--only", action="append", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--cold-runs", type=int, default=3, help="cold starts per function (median)")
    parser.add_argument("--requests", type=int, default=300, help="sequential GETs after the warm-up")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--throughput-requests", type=int, default=600)
    parser.add_argument("--threads", type=int, default=8, help="threads for the GET throughput")
    parser.add_argument("--tenants", type=int, default=20, help="tenants for the audit latency")
    parser.add_argument("--events", type=int, default=1000, help="User Invited events for the audit rate")
    parser.add_argument("--write-threads", type=int, default=16, help="threads for raw Firestore creates")
    parser.add_argument("--decisions", type=int, default=5000, help="warm-cache AccessStore decisions")
    parser.add_argument(
        "--authz-samples", type=int, default=200, help="token verifications, and decisions after invalidate()"
    )
    parser.add_argument("--import-rows", type=int, default=10_000, help="CSV rows of the bulk import")
    parser.add_argument("--import-timeout", type=float, default=300, help="seconds to wait for the import")
    parser.add_argument("--webhook-events", type=int, default=20, help="Contact Created events fanned out")
    parser.add_argument("--webhook-threads", type=int, default=16, help="threads for the direct POSTs")
    parser.add_argument(
        "--notification-events", type=int, default=10_000, help="events of the notification burst"
    )
    parser.add_argument("--verifications", type=int, default=10_000, help="signing.verify samples")
    parser.add_argument("--customer-contacts", type=int, default=100_000, help="contacts seeded")
    parser.add_argument(
        "--customer-import-rows", type=int, default=50_000, help="CSV rows of the contact import"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results.json")
    parser.add_argument("--keep-logs", action="store_true", help="keep the suite's and functions' logs")
    return parser.parse_args(argv)


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def sections(args: argparse.Namespace, bench: Bench, report: Report) -> dict[str, Callable[[], None]]:
    return {
        "cold": lambda: cold_start.run(bench, report, args.cold_runs),
        "latency": lambda: latency.run(
            bench, report, args.requests, args.warmup, args.throughput_requests, args.threads, budget_s=60
        ),
        "pipeline": lambda: pipeline.run(bench, report, args.tenants, timeout=30, budget_s=75),
        "sustained": lambda: sustained.run(bench, report, args.events, args.write_threads, timeout=75),
        "authz": lambda: authz.run(bench, report, args.decisions, args.authz_samples, budget_s=60),
        "import": lambda: bulk_import.run(bench, report, args.import_rows, timeout=args.import_timeout),
        "webhooks": lambda: webhooks.run(
            bench, report, args.webhook_events, args.webhook_threads, args.verifications, timeout=180
        ),
        "health": lambda: health.run(bench, report),
        "workflows": lambda: workflows.run(bench, report),
        "onboarding": lambda: onboarding.run(bench, report),
        "offboarding": lambda: offboarding.run(bench, report),
        "customers": lambda: customers.run(bench, report, args.customer_contacts, args.customer_import_rows),
        "notifications": lambda: notifications.run(bench, report, args.notification_events, 8, timeout=900),
        "portal": lambda: portal.run(report),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    started_at, started = datetime.now(UTC), time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="cmp-bench-"))
    (workdir / "suite").mkdir()
    suite = Suite(Ports.free(), log_dir=workdir / "suite")
    fleet: Fleet | None = None
    report = Report()
    timings: dict[str, float] = {}
    failed: list[str] = []
    clean_exit = False  # the logs are kept unless every section ran without error
    try:
        progress("starting the emulator suite on free ports (the Auth emulator takes ~15 s)...")
        suite.start()
        catalog = load_catalog()
        provisioned = provision(catalog, suite.project, suite.functions_url, suite.signing_key)
        timings["suite_start_s"] = time.perf_counter() - started
        fleet = Fleet({**os.environ, **suite.env}, workdir)
        functions = discover()
        redirected = redirected_push_endpoints(suite, functions)
        if redirected:
            raise RuntimeError(
                f"the push endpoints of {', '.join(redirected)} answer a redirect on the functions host: "
                "Pub/Sub push follows none, so no event would ever arrive"
            )
        bench = prepare(suite, catalog, functions, fleet, workdir)
        progress(f"functions: {', '.join(f.name for f in functions)}; tenant {bench.tenant_id}")
        for name, run in sections(args, bench, report).items():
            if args.only and name not in args.only:
                continue
            progress(f"section {name}...")
            section_started = time.perf_counter()
            try:
                run()
            except Exception as exc:  # one broken section must not hide the others' figures
                traceback.print_exc()
                report.skip(name, f"failed: {exc!r}"[:300])
                failed.append(name)
            timings[f"{name}_s"] = time.perf_counter() - section_started
        clean_exit = not failed and not args.keep_logs
    except MissingPrerequisite as missing:
        print(f"error: {missing}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        progress("interrupted: stopping everything")
        return 130
    finally:
        if fleet is not None:
            fleet.stop_all()
        suite.stop()
        if clean_exit:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            progress(f"logs kept in {workdir}")

    timings["total_s"] = time.perf_counter() - started
    print(report.render())
    report.write(
        args.out,
        {
            "started_at": started_at.isoformat(),
            "timings_s": {k: round(v, 1) for k, v in timings.items()},
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
            },
            "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "functions": [{"name": f.name, "trigger": f.trigger} for f in functions],
            "skipped_subscribers": provisioned.skipped_apis,
        },
    )
    total, suite_start = timings["total_s"], timings["suite_start_s"]
    print(f"\nWritten to {args.out} in {total:.0f} s (suite start {suite_start:.0f} s).")
    return 1 if failed else 0
