"""5. Authorization: AccessStore.decide in-process, vs the ID token verification it follows.

A fresh tenant gets a few custom roles, groups and policies through the Access Control API (HTTP, as
its admin). Then, in this process, against the suite's Firestore emulator, the kernel's store
(`shared.access.access_store`) answers a fixed mix of decisions: granted by a token role, by a policy
naming the user, by a policy reaching the user through a group, and denied after walking every policy.

- warm cache: the snapshot is cached (a version re-read falls in at most every 2 s per tenant);
- right after `invalidate()`: each sample drops the snapshot, so the decision reloads it (seven reads);
- version re-check due: a second store whose cache is always stale by age (version_check_seconds=0),
  so each decision pays the one version read a warm store pays every 2 s per tenant.

Baseline: `UserAuthenticator().verify(token)` with check_revoked=True against the Auth emulator, the
step every authenticated request takes before any decision. The ratio is what authorization adds on
top of authentication. Samples of the three kinds are interleaved so drift hits them alike. The access
objects are deleted through the API afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import requests

from emulators import identity
from shared.access import AccessDecision, AccessStore, access_store
from shared.auth import UserAuthenticator
from shared.authz import Principal
from shared.clients import firestore_client
from tests.bench.context import HTTP_TIMEOUT, Bench, bearer, create_tenant, new_slug, settle_audit
from tests.bench.measure import Measurement, Report, Stats, ms

SECTION = "5. Authorization: AccessStore.decide in-process (Firestore emulator)"
BASELINE = "UserAuthenticator().verify(token), check_revoked=True, Auth emulator"
SETTLE_S = 20.0

ROLES: dict[str, list[str]] = {
    "support": ["users:read", "tenants:read"],
    "auditor": ["audit:read", "audit:export", "audit:verify"],
    "seat_manager": ["seats:read", "seats:assign", "seats:release"],
    "importer": ["user-imports:manage", "users:invite"],
}
GROUPS = 6
GROUP_MEMBERS = 25
POLICIES = 8

T = TypeVar("T")


def group_id(g: int) -> str:
    return f"team-{g}"


def policy_role(k: int) -> str:
    return list(ROLES)[k % len(ROLES)]


@dataclass(frozen=True)
class Case:
    label: str
    principal: Principal
    permission: str
    allowed: bool


def cases(tenant_id: str) -> list[Case]:
    """The decision mix: every path of `shared.access.decide` a tenant user takes."""
    direct, grouped = 1, 5  # policy k binds user direct-k and group team-(k % GROUPS) to policy_role(k)
    return [
        Case(
            "token role",
            Principal("claims-user", tenant_id, frozenset({"viewer"})),
            "users:read",
            True,
        ),
        Case(
            "policy, user",
            Principal(f"direct-{direct}", tenant_id),
            ROLES[policy_role(direct)][0],
            True,
        ),
        Case(
            "policy, group",
            Principal(f"u{grouped % GROUPS}-{GROUP_MEMBERS - 1:02d}", tenant_id),
            ROLES[policy_role(grouped)][-1],
            True,
        ),
        # Granted by two policies, neither reaching the user: every binding is looked at.
        Case("denied", Principal("stranger", tenant_id, frozenset({"member"})), "audit:export", False),
    ]


class AccessApi:
    """The tenant's /access resources over HTTP, as its admin."""

    def __init__(self, session: requests.Session, url: str, token: str) -> None:
        self.session, self.url, self.headers = session, url, bearer(token)

    def put(self, path: str, body: dict[str, Any]) -> None:
        response = self.session.put(self.url + path, json=body, headers=self.headers, timeout=HTTP_TIMEOUT)
        if response.status_code not in (200, 201):
            raise RuntimeError(f"PUT {path} answered {response.status_code}: {response.text[:500]}")

    def delete(self, path: str) -> None:
        response = self.session.delete(self.url + path, headers=self.headers, timeout=HTTP_TIMEOUT)
        if response.status_code not in (204, 404):
            raise RuntimeError(f"DELETE {path} answered {response.status_code}: {response.text[:500]}")


def configure(api: AccessApi) -> None:
    for role, permissions in ROLES.items():
        api.put(f"/roles/{role}", {"name": role.replace("_", " ").title(), "permissions": permissions})
    for g in range(GROUPS):
        members = [f"u{g}-{i:02d}" for i in range(GROUP_MEMBERS)]
        api.put(f"/groups/{group_id(g)}", {"description": f"Bench team {g}", "members": members})
    for k in range(POLICIES):
        members = [f"group:{group_id(k % GROUPS)}", f"user:direct-{k}"]
        api.put(f"/policies/pol-{k}", {"role": policy_role(k), "members": members})


def unconfigure(api: AccessApi) -> None:
    """Policies first: a role or group some policy still names cannot be deleted (409)."""
    for k in range(POLICIES):
        api.delete(f"/policies/pol-{k}")
    for g in range(GROUPS):
        api.delete(f"/groups/{group_id(g)}")
    for role in ROLES:
        api.delete(f"/roles/{role}")


def timed(call: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


@dataclass
class Samples:
    warm: list[float]
    reload: list[float]
    recheck: list[float]
    verify: list[float]


def sample(
    store: AccessStore,
    stale: AccessStore,
    tenant_id: str,
    token: str,
    decisions: int,
    samples: int,
    budget_s: float,
) -> Samples:
    """`samples` rounds, each: one verification, one decision after invalidate(), one decision with a
    version re-check due, then decisions/samples warm decisions (cycling through the cases)."""
    mix = cases(tenant_id)
    authenticator = UserAuthenticator(check_revoked=True)

    def check(case: Case, decision: AccessDecision) -> None:
        if decision.allowed is not case.allowed:
            raise RuntimeError(f"{case.label}: expected allowed={case.allowed}, got {decision!r}")

    # Warm-up: the firebase app, the clients' channels, and one check of every case on both stores.
    authenticator.verify(token)
    for case in mix:
        check(case, store.decide(case.principal, case.permission, tenant_id))
        check(case, stale.decide(case.principal, case.permission, tenant_id))

    out = Samples([], [], [], [])
    per_round = -(-decisions // samples)
    deadline = time.perf_counter() + budget_s
    for r in range(samples):
        if time.perf_counter() > deadline:
            break
        elapsed, principal = timed(partial(authenticator.verify, token))
        if principal.tenant_id != tenant_id:
            raise RuntimeError(f"the token verified as {principal!r}, not a user of {tenant_id}")
        out.verify.append(elapsed)
        case = mix[r % len(mix)]
        store.invalidate(tenant_id)
        elapsed, decision = timed(partial(store.decide, case.principal, case.permission, tenant_id))
        check(case, decision)
        out.reload.append(elapsed)
        elapsed, decision = timed(partial(stale.decide, case.principal, case.permission, tenant_id))
        check(case, decision)
        out.recheck.append(elapsed)
        for i in range(min(per_round, decisions - len(out.warm))):
            case = mix[i % len(mix)]
            started = time.perf_counter()
            decision = store.decide(case.principal, case.permission, tenant_id)
            out.warm.append(time.perf_counter() - started)
            check(case, decision)
    return out


def run(bench: Bench, report: Report, decisions: int, samples: int, budget_s: float) -> None:
    slug = new_slug("bench-authz")
    with requests.Session() as session:
        tenant_id = create_tenant(session, bench.url("tenant_api"), bench.operator_token, slug)
        token = identity.token_for(f"admin@{slug}.example", {"tenant_id": tenant_id, "roles": ["admin"]})
        api = AccessApi(session, f"{bench.url('access_control_api')}/tenants/{tenant_id}/access", token)
        db = firestore_client()
        store = access_store(db)
        stale = AccessStore.for_firestore(db, version_check_seconds=0.0)
        try:
            configure(api)
            settled, unsealed = settle_audit(SETTLE_S)  # the changes' events travel through the suite
            snapshot = store.snapshot(tenant_id)
            got = (len(snapshot.roles), len(snapshot.groups), len(snapshot.policies))
            if got != (len(ROLES), GROUPS, POLICIES):
                raise RuntimeError(f"the snapshot holds (roles, groups, policies) = {got}")
            out = sample(store, stale, tenant_id, token, decisions, samples, budget_s)
        finally:
            unconfigure(api)
            store.invalidate(tenant_id)

    warm, reload, recheck, verify = (Stats.of(s) for s in (out.warm, out.reload, out.recheck, out.verify))
    report.samples["authz"] = {
        "tenant_id": tenant_id,
        "snapshot_version": snapshot.version,
        "settled_s": round(settled, 1),
        "unsealed_at_start": unsealed,
        "warm_decide_us": [round(s * 1e6, 2) for s in out.warm],
        "reload_decide_ms": ms(out.reload),
        "recheck_decide_ms": ms(out.recheck),
        "baseline_verify_ms": ms(out.verify),
    }
    mix = ", ".join(c.label for c in cases(tenant_id))
    shape = f"{len(ROLES)} custom roles, {GROUPS} groups of {GROUP_MEMBERS}, {POLICIES} policies"
    adds = f"adds {warm.p50 / verify.p50:.2%} to the verification"
    report.add(
        Measurement(
            SECTION,
            "decide p50, warm cache",
            "us",
            warm.p50 * 1e6,
            verify.p50 * 1e6,
            BASELINE,
            note=f"{warm.n} decisions ({mix}); {adds}; {verify.n} verifications",
        ),
        Measurement(
            SECTION,
            "decide p95, warm cache",
            "us",
            warm.p95 * 1e6,
            verify.p95 * 1e6,
            BASELINE,
            note=f"max {warm.max * 1e3:,.2f} ms (a version re-read is due every 2 s)",
        ),
        Measurement(
            SECTION,
            "decide p50 after invalidate() (reload)",
            "ms",
            reload.p50 * 1e3,
            verify.p50 * 1e3,
            BASELINE,
            note=f"{reload.n} samples; {shape}, snapshot version {snapshot.version}",
        ),
        Measurement(
            SECTION,
            "decide p95 after invalidate() (reload)",
            "ms",
            reload.p95 * 1e3,
            verify.p95 * 1e3,
            BASELINE,
            note=f"max {reload.max * 1e3:,.1f} ms; {_settled(settled, unsealed)}",
        ),
        Measurement(
            SECTION,
            "decide p50, version re-check due",
            "ms",
            recheck.p50 * 1e3,
            verify.p50 * 1e3,
            BASELINE,
            note=f"{recheck.n} samples, p95 {recheck.p95 * 1e3:,.1f} ms: one version read, "
            "what a warm store pays every 2 s per tenant",
        ),
    )


def _settled(waited: float, unsealed: int) -> str:
    if unsealed:
        return f"started with {unsealed} audit entries unsealed after {waited:.0f} s"
    return f"started quiet (waited {waited:.0f} s)"
