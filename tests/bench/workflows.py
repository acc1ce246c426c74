"""10. Workflows: events/s the Workflow API evaluates against 100 active rules.

A fresh tenant gets RULES active workflows through the Workflow API (created and activated over HTTP),
all triggered by Contact Updated, each with its own condition (`lifecycle_stage` changed to `stage-<i>`,
and the change not made by an import). The events change `lifecycle_stage` to a stage no rule names,
so every rule is evaluated and none fires: the figures are the matching and intake cost, not runs.

- Pure matcher: `domain.judge` of every rule for each event, in process. Baseline: validating the same
  event's payload with its pydantic model (what the intake does once per event anyway), interleaved.
- Push path: the events pushed (Pub/Sub push bodies, 4 threads) to `workflow_api_events` built by
  `make build` and served alone by functions-framework: envelope and schema validation, the
  exactly-once transaction, one query of the tenant's active rules, evaluation, the stored event.
  Baseline: the same bodies to a bare functions-framework function that only acknowledges (the bench's
  push recorder), served the same way, in the same run.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from emulators import identity
from functions.build import build_one
from functions.workflow_api import domain
from functions.workflow_api.service import API_NAME
from shared.contracts import PAYLOADS
from tests.bench.context import HTTP_TIMEOUT, Bench, bearer, create_tenant, envelope, new_slug, push_body
from tests.bench.measure import Measurement, Report, Stats
from tests.bench.procs import Probe, first_answer, write_baseline

SECTION = "10. Workflows: events evaluated against 100 active rules"
BASELINE_PURE = "validating the event's payload with its pydantic model (once per event, in the intake)"
BASELINE_PUSH = "the same push bodies to a bare function that only acknowledges"
EVENT = "Contact Updated"
RULES = 100
THREADS = 4


def rule(i: int) -> dict[str, Any]:
    return {
        "trigger": EVENT,
        "conditions": {
            "all": [
                {"op": "changed", "field": "lifecycle_stage", "to": f"stage-{i}"},
                {"path": "source", "op": "ne", "value": "import"},
            ]
        },
        "steps": [{"name": "tell", "type": "notify", "message": "{{contact_id}} reached stage " + str(i)}],
    }


def event_data(i: int) -> dict[str, Any]:
    return {
        "contact_id": f"con_bench_{i:06d}",
        "changes": {"lifecycle_stage": {"before": "lead", "after": "no-rule-stage"}},
        "source": "manual",
        "actor": {"type": "user", "id": "usr_bench", "email": None},
    }


def pure(events: int) -> tuple[list[float], list[float], int]:
    """Seconds per event: judging every rule, and validating the payload; and how many fired."""
    rules = [(f"wfl_{i}", rule(i)) for i in range(RULES)]
    model = PAYLOADS[EVENT]
    judged, validated, fired = [], [], 0
    for i in range(events):
        data = event_data(i)
        view = domain.EventView(f"e{i}", EVENT, data["contact_id"], data, "/apis/customer-data-api")
        started = time.perf_counter()
        fired += sum(domain.judge(wid, definition, view).fires for wid, definition in rules)
        judged.append(time.perf_counter() - started)
        started = time.perf_counter()
        model.model_validate(data)
        validated.append(time.perf_counter() - started)
    return judged, validated, fired


def install(session: requests.Session, url: str, token: str) -> None:
    for i in range(RULES):
        created = session.post(
            url,
            json={"name": f"bench rule {i}", "definition": rule(i)},
            headers=bearer(token),
            timeout=HTTP_TIMEOUT,
        )
        if created.status_code != 201:
            raise RuntimeError(f"POST /workflows answered {created.status_code}: {created.text[:300]}")
        activated = session.post(
            f"{url}/{created.json()['id']}/activate", json={}, headers=bearer(token), timeout=HTTP_TIMEOUT
        )
        if activated.status_code != 200:
            raise RuntimeError(f"activate answered {activated.status_code}: {activated.text[:300]}")


def push_all(url: str, bodies: list[dict[str, Any]]) -> tuple[float, dict[str, int]]:
    """Every body POSTed by THREADS threads (one session each); seconds, and the answers' results."""
    local = threading.local()
    results: dict[str, int] = {}
    lock = threading.Lock()

    def post(body: dict[str, Any]) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        response = session.post(url, json=body, timeout=HTTP_TIMEOUT)
        key = str(response.status_code)
        if response.status_code == 200 and response.content:
            key = str(response.json().get("result", key))
        with lock:
            results[key] = results.get(key, 0) + 1

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        list(pool.map(post, bodies))
    return time.perf_counter() - started, results


def run(bench: Bench, report: Report, events: int = 300, pure_events: int = 2000) -> None:
    if "workflow_api" not in bench.served or "workflow_api_events" not in bench.served:
        report.skip(SECTION, "workflow_api or workflow_api_events is not served")
        return
    judged, validated, fired = pure(pure_events)
    if fired:
        raise RuntimeError(f"{fired} rules fired in the pure run; none should")

    slug = new_slug("bench-flows")
    catalog_event = bench.catalog.event(EVENT)
    api = bench.catalog.api(API_NAME)
    with requests.Session() as session:
        tenant_id = create_tenant(session, bench.url("tenant_api"), bench.operator_token, slug)
        token = identity.token_for(f"admin@{slug}.example", {"tenant_id": tenant_id, "roles": ["admin"]})
        installing = time.perf_counter()
        install(session, f"{bench.url('workflow_api')}/tenants/{tenant_id}/workflows", token)
        install_s = time.perf_counter() - installing

    def bodies(offset: int) -> list[dict[str, Any]]:
        made = []
        for i in range(events):
            payload = PAYLOADS[EVENT].model_validate(event_data(offset + i))
            cloud_event = envelope(
                bench.catalog, catalog_event, payload, tenant_id, f"con_bench_{offset + i:06d}"
            )
            made.append(push_body(bench.suite.project, catalog_event, api, cloud_event))
        return made

    spec = next(s for s in bench.functions if s.name == "workflow_api_events")
    source = build_one(spec, bench.workdir / "build-workflows") / "main.py"
    ours = bench.fleet.spawn("workflow_api_events", source)
    bare = bench.fleet.spawn("recorder", write_baseline(bench.workdir / "baselines", "recorder"))
    query = bench.push_query()
    try:
        warm = bodies(10_000_000)[:5]
        for served in (ours, bare):
            answer = first_answer(served, Probe("POST", "/" + query, "a push", {}, warm[0]))
            if answer.status >= 300:
                raise RuntimeError(f"{served.name} answered {answer.status}: {answer.detail}")
        push_all(ours.url + "/" + query, warm[1:])
        # Target, baseline, baseline, target: linear drift cancels out.
        rates: dict[str, list[float]] = {"ours": [], "bare": []}
        results: dict[str, dict[str, int]] = {"ours": {}, "bare": {}}
        for round_, name in enumerate(("ours", "bare", "bare", "ours")):
            served = ours if name == "ours" else bare
            elapsed, answered = push_all(served.url + "/" + query, bodies(round_ * events))
            rates[name].append(events / elapsed)
            for key, n in answered.items():
                results[name][key] = results[name].get(key, 0) + n
    finally:
        bench.fleet.stop(ours)
        bench.fleet.stop(bare)
    if set(results["ours"]) != {"processed"}:
        raise RuntimeError(f"workflow_api_events answered {results['ours']}")

    j, v = Stats.of(judged), Stats.of(validated)
    ours_rate = sum(rates["ours"]) / len(rates["ours"])
    bare_rate = sum(rates["bare"]) / len(rates["bare"])
    report.samples["workflows"] = {
        "tenant_id": tenant_id,
        "rules": RULES,
        "install_s": round(install_s, 3),
        "pure_events": pure_events,
        "judge_us_p50": round(j.p50 * 1e6, 3),
        "validate_us_p50": round(v.p50 * 1e6, 3),
        "push_events_per_round": events,
        "push_rates": rates,
        "push_results": results,
    }
    report.add(
        Measurement(
            SECTION,
            "pure matcher events/s (100 rules each)",
            "/s",
            1 / j.p50,
            1 / v.p50,
            BASELINE_PURE,
            higher_is_better=True,
            note=f"p50 {j.p50 * 1e6:,.1f} us per event for {RULES} rules (p95 {j.p95 * 1e6:,.1f} us); "
            f"validation p50 {v.p50 * 1e6:,.1f} us; {pure_events:,} events",
        ),
        Measurement(
            SECTION,
            "push path events/s (100 active rules)",
            "/s",
            ours_rate,
            bare_rate,
            BASELINE_PUSH,
            higher_is_better=True,
            note=f"{THREADS} threads, 2 x {events} events each, interleaved; {RULES} workflows "
            f"installed over HTTP in {install_s:,.1f} s",
        ),
    )
