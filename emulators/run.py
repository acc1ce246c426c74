"""`make run`: the whole platform on the local emulators, a demo tenant, and a curl that works.

Stops every process it started on Ctrl-C (each in its own process group, Java and Node children too).
"""

from __future__ import annotations

import json
import secrets
import signal
import sys
import time
import urllib.error
import urllib.request
from types import FrameType
from typing import Any

from emulators import identity, mail, reference
from emulators.provision import ensure_secret, provision
from emulators.suite import MissingPrerequisite, Ports, Suite
from functions.manifest import discover
from functions.notification_api.service import PROVIDER_SECRET
from shared.auth import sign_local_service_token
from shared.catalog import load_catalog

OPERATOR = "operator@platform.local"
OPERATOR_PASSWORD = "local-password-1"  # noqa: S105 - the local Auth emulator's demo operator
DEMO_ADMIN = "admin@acme.example"
DEMO_PASSWORD = "acme-demo-password"  # noqa: S105 - set by the demo admin on the local emulators only
SCHEDULER_ACCOUNT = "cloud-scheduler@{project}.iam.gserviceaccount.com"

REFERENCE_PORT = 8091


def call(method: str, url: str, token: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data, headers, method=method)  # noqa: S310 - loopback only
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback only
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def demo(suite: Suite) -> dict[str, str]:
    operator_token = identity.token_for(OPERATOR, {"platform_operator": True, "roles": []})
    tenants = suite.function_url("tenant_api") + "/tenants"
    status, body = call("GET", f"{tenants}?limit=200", operator_token)
    existing = [t for t in (body or {}).get("items", []) if t["slug"] == "acme"]
    if existing:
        tenant = existing[0]
    else:
        status, tenant = call(
            "POST",
            tenants,
            operator_token,
            {"name": "Acme Corp", "slug": "acme", "plan": "growth", "admin_email": "admin@acme.example"},
        )
        if status != 201:
            raise RuntimeError(f"creating the demo tenant answered {status}: {tenant}")
    admin_claims = {"tenant_id": tenant["id"], "roles": ["admin"]}
    admin_token = identity.token_for("admin@acme.example", admin_claims)
    accepted = accept_first_invitation(suite)
    # The key a mail provider signs its delivery reports with (Notification API), made up locally.
    provider_key = ensure_secret(suite.project, PROVIDER_SECRET, secrets.token_urlsafe(24))
    return {
        "tenant_id": tenant["id"],
        "admin_token": admin_token,
        "operator_token": operator_token,
        "provider_key": provider_key,
        "admin_password": DEMO_PASSWORD if accepted else "",
    }


def accept_first_invitation(suite: Suite, timeout: float = 90.0) -> bool:
    """The demo admin follows the accept link of the invitation mail onboarding sent, as a person would
    in the portal, and sets DEMO_PASSWORD. False when no mail came in time (the banner says so)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        links = [found for m in mail.messages(suite.smtp_url, DEMO_ADMIN) if (found := mail.accept_link(m))]
        if links:
            _, token = links[-1]
            status, _ = call(
                "POST",
                suite.function_url("user_management_api") + "/invitations/accept",
                "",
                {"token": token, "password": DEMO_PASSWORD, "display_name": "Acme Admin"},
            )
            return status in (200, 409)  # 409: accepted by an earlier run
        time.sleep(1)
    return False


def print_banner(suite: Suite, info: dict[str, str], skipped: list[str]) -> None:
    rows = [
        ("Firestore emulator", suite.env["FIRESTORE_EMULATOR_HOST"]),
        ("Pub/Sub emulator", suite.env["PUBSUB_EMULATOR_HOST"]),
        ("Auth emulator", suite.env["FIREBASE_AUTH_EMULATOR_HOST"]),
        ("Cloud Tasks emulator", suite.env["CLOUD_TASKS_EMULATOR_HOST"]),
        ("Secret Manager emulator", suite.env["SECRET_MANAGER_EMULATOR_HOST"]),
        ("SMTP sink", f"{suite.env['CMP_SMTP_HOST']}:{suite.env['CMP_SMTP_PORT']}"),
        ("SMTP sink mails (GET, DELETE)", f"{suite.smtp_url}/messages"),
    ]
    rows += [(f"function {spec.name} ({spec.trigger})", suite.function_url(spec.name)) for spec in discover()]
    width = max(len(name) for name, _ in rows)
    portal = suite.function_url("portal") + "/"
    if info["admin_password"]:
        sign_in = f"workspace acme, {DEMO_ADMIN}, password {info['admin_password']}"
    else:
        sign_in = f"no invitation mail to {DEMO_ADMIN} yet: open its link from {suite.smtp_url}/messages"
    print(
        f"""
Tenant Admin Portal: {portal}
  Sign in as the demo admin:  {sign_in}
  Or as the platform operator: leave the workspace empty, {OPERATOR}, password {OPERATOR_PASSWORD}""",
        flush=True,
    )
    print("\nCustomer Management platform, running locally\n")
    for name, url in rows:
        print(f"  {name.ljust(width)}  {url}")
    if skipped:
        names = ", ".join(skipped)
        print(f"\n  Subscribers with no function yet (their subscriptions are not created): {names}")
    tenant_url = suite.function_url("tenant_api") + f"/tenants/{info['tenant_id']}"
    audit_url = suite.function_url("audit_api") + f"/tenants/{info['tenant_id']}/audit/entries"
    users_url = suite.function_url("user_management_api") + f"/tenants/{info['tenant_id']}"
    notifications_url = suite.function_url("notification_api") + f"/tenants/{info['tenant_id']}/notifications"
    print(
        f"""
Demo tenant {info["tenant_id"]} (slug acme); its admin is admin@acme.example. Tokens last one hour.

  export ADMIN_TOKEN={info["admin_token"]}
  export OPERATOR_TOKEN={info["operator_token"]}

  curl -s -H "Authorization: Bearer $ADMIN_TOKEN" {tenant_url}
  curl -s -H "Authorization: Bearer $ADMIN_TOKEN" {audit_url}

  # invite a user (the answer carries the single-use invitation token)
  curl -s -X POST -H "Authorization: Bearer $ADMIN_TOKEN" -H "Content-Type: application/json" \\
       -d '{{"email": "new.user@acme.example", "role": "member"}}' {users_url}/invitations

  # the invitation mail the Notification API sent, as the local SMTP sink received it
  curl -s {suite.smtp_url}/messages

  # a hard bounce: the sink refuses ghost@acme.example with 550; invite it, and the address is
  # suppressed and Notification Bounced published (a provider's delivery reports go to POST
  # .../notifications/provider-events, signed Notification-Signature: t=<unix>,v1=<hex HMAC-SHA256 of
  # "t.body"> with the key {info["provider_key"]})
  curl -s -X POST -d '{{"address": "ghost@acme.example", "code": 550}}' {suite.smtp_url}/fail
  curl -s -X POST -H "Authorization: Bearer $ADMIN_TOKEN" -H "Content-Type: application/json" \
       -d '{{"email": "ghost@acme.example", "role": "member"}}' {users_url}/invitations
  curl -s -H "Authorization: Bearer $ADMIN_TOKEN" {notifications_url}/suppressions

  # as the platform operator: suspend the tenant, then see it in the audit trail
  curl -s -X POST -H "Authorization: Bearer $OPERATOR_TOKEN" -H "Content-Type: application/json" \\
       -d '{{"reason": "demo"}}' {tenant_url}/suspend

The outbox relay worker (workers/outbox_relay.py) runs as GKE runs it; the scheduled functions are
called every 5 s. Logs: {suite.log_dir}    Ctrl-C stops everything.
""",
        flush=True,
    )


def scheduler_loop(suite: Suite) -> None:
    """Stand in for Cloud Scheduler: call every scheduled function every few seconds."""
    token = sign_local_service_token(suite.signing_key, SCHEDULER_ACCOUNT.format(project=suite.project))
    scheduled = [spec for spec in discover() if spec.kind == "scheduler"]
    while True:
        time.sleep(5)
        for spec in scheduled:
            status, body = call("POST", suite.function_url(spec.name), token, {})
            if status >= 300:
                print(f"scheduled {spec.name} answered {status}: {body}", file=sys.stderr, flush=True)


def main() -> int:
    def terminate(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)  # also when started with SIGINT ignored (nohup, &)
    suite = Suite(Ports.fixed())
    try:
        print("Starting the emulators and functions (the Auth emulator takes ~15 s)...", flush=True)
        suite.start()
        report = provision(load_catalog(), suite.project, suite.functions_url, suite.signing_key)
        # As on GKE: the outbox relay runs continuously (the scheduled function stays the backstop).
        suite.start_worker("outbox relay worker", "workers.outbox_relay", "--interval", "2")
        print_banner(suite, demo(suite), report.skipped_apis)
        _, reference_url = reference.serve(REFERENCE_PORT)
        print(f"API reference (every API's OpenAPI document, the events page): {reference_url}", flush=True)
        scheduler_loop(suite)
    except MissingPrerequisite as missing:
        print(f"error: {missing}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nStopping...", flush=True)
    finally:
        suite.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
